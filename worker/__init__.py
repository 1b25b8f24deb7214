"""The worker room: the Celery app, thin tasks, and the evaluation and training packages."""
