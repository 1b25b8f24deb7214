"""The Celery app the workers and beat run (``celery -A worker.celery_app``).

The app and its configuration live in the light core (``evalboard.queue``), so that every
process enqueues by task name without importing worker code; here the worker's tasks join it.
"""

from __future__ import annotations

from typing import Any

from celery import signals

from evalboard.queue import (  # noqa: F401 - the names `celery -A` and the tests look up
    ALL_QUEUES,
    EVALUATE_TASK,
    TASK_ROUTES,
    TRAIN_TASK,
    app,
    configure,
    declare_queues,
)

app.conf.imports = ("worker.tasks",)


@signals.worker_process_init.connect
def _limit_memory(**_kwargs: Any) -> None:
    """Each job runs in a prefork child with a memory limit (RLIMIT_DATA), so one job can never take
    the host: an allocation past it fails in that job (``out_of_memory``)."""
    from worker.limits import limit_child_memory

    limit_child_memory()


@signals.worker_init.connect
def _declare_queues(**_kwargs: Any) -> None:
    """The worker's queues exist before its consumer looks for them (see ``declare_queues``)."""
    declare_queues()
