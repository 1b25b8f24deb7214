"""The Celery app. Light to import (no torch): the dashboard and CLI enqueue by task name."""

from __future__ import annotations

from celery import Celery

from evalboard.settings import Settings, get_settings

EVALUATE_TASK = "evalboard.evaluate"
TRAIN_TASK = "evalboard.train"
REAP_TASK = "evalboard.reap_stale"

EVAL_QUEUE = "eval"
TRAIN_QUEUE = "train"
LIGHT_QUEUE = "light"
ALL_QUEUES = (EVAL_QUEUE, TRAIN_QUEUE, LIGHT_QUEUE)

TASK_ROUTES = {
    EVALUATE_TASK: {"queue": EVAL_QUEUE},
    TRAIN_TASK: {"queue": TRAIN_QUEUE},
    "evalboard.*": {"queue": LIGHT_QUEUE},
}
# After its own deadline a job gets this long to record ``timeout`` before it is killed.
HARD_LIMIT_GRACE_S = 60


def transport_options(broker_url: str, visibility_timeout: float) -> dict[str, object]:
    """Broker options per transport (the SQLAlchemy transport passes them to create_engine)."""
    if broker_url.startswith(("redis://", "rediss://")):
        return {"visibility_timeout": visibility_timeout}
    if broker_url.startswith("sqla+sqlite"):
        return {"connect_args": {"timeout": 30}}
    return {}


def configure(app: Celery, settings: Settings) -> None:
    """Apply the settings-derived configuration to ``app``."""
    app.conf.update(
        broker_url=settings.broker_url,
        broker_connection_retry_on_startup=True,
        broker_transport_options=transport_options(
            str(settings.broker_url), settings.visibility_timeout
        ),
        # The soft limit is the jobs' own deadline, checked between batches and steps (an
        # exception raised anywhere, mid-import say, can leave the process unusable); Celery's
        # hard limit is the backstop that replaces a child stuck elsewhere.
        task_annotations={
            EVALUATE_TASK: {"time_limit": settings.eval_time_limit + HARD_LIMIT_GRACE_S},
            TRAIN_TASK: {"time_limit": settings.train_time_limit + HARD_LIMIT_GRACE_S},
        },
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,  # state and results live in our database
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_routes=TASK_ROUTES,
        task_default_queue=LIGHT_QUEUE,
        task_create_missing_queues=True,
        beat_schedule={
            "reap-stale-submissions": {
                "task": REAP_TASK,
                "schedule": max(30.0, settings.heartbeat_seconds * 3),
            },
        },
        beat_schedule_filename=str(settings.home / "celerybeat-schedule"),
        imports=("worker.tasks",),
        worker_hijack_root_logger=False,
    )


def create_app(settings: Settings | None = None) -> Celery:
    app = Celery("evalboard")
    configure(app, settings or get_settings())
    return app


app = create_app()
