"""The Celery app the workers and beat run (``celery -A worker.celery_app``).

The app and its configuration live in the light core (``evalboard.queue``), so that every
process enqueues by task name without importing worker code; here the worker's tasks join it.
"""

from __future__ import annotations

from evalboard.queue import (  # noqa: F401 - the names `celery -A` and the tests look up
    ALL_QUEUES,
    EVALUATE_TASK,
    TASK_ROUTES,
    TRAIN_TASK,
    app,
    configure,
)

app.conf.imports = ("worker.tasks",)
