"""The Celery app and how work is routed: light (no torch, no worker code), shared by all.

Every process enqueues by task name through this app; workers add their tasks to it
(``worker.celery_app``). Beat's schedule lives here too: the reaper and re-evaluation.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from evalboard.settings import Settings, crontab_of, get_settings

EVALUATE_TASK = "evalboard.evaluate"
TRAIN_TASK = "evalboard.train"
REAP_TASK = "evalboard.reap_stale"
REQUEUE_TASK = "evalboard.requeue_lost"
REEVALUATE_TASK = "evalboard.reevaluate"
NOTIFY_TASK = "evalboard.notify"

EVAL_QUEUE = "eval"
TRAIN_QUEUE = "train"
LIGHT_QUEUE = "light"
ALL_QUEUES = (EVAL_QUEUE, TRAIN_QUEUE, LIGHT_QUEUE)

TASK_ROUTES = {
    EVALUATE_TASK: {"queue": EVAL_QUEUE},
    TRAIN_TASK: {"queue": TRAIN_QUEUE},
    "evalboard.*": {"queue": LIGHT_QUEUE},
}
KIND_TASKS = {"evaluate": EVALUATE_TASK, "train": TRAIN_TASK}
# After its own deadline a job gets this long to record ``timeout`` before it is killed.
HARD_LIMIT_GRACE_S = 60
# How long a new prefork child may take to start (its imports) before it is replaced.
CHILD_START_TIMEOUT_S = 60.0


def transport_options(broker_url: str, visibility_timeout: float) -> dict[str, object]:
    """Broker options per transport (the SQLAlchemy transport passes them to create_engine)."""
    if broker_url.startswith(("redis://", "rediss://")):
        return {"visibility_timeout": visibility_timeout}
    if broker_url.startswith("sqla+sqlite"):
        from sqlalchemy.pool import NullPool

        # kombu keeps one engine per broker for the process's lifetime: a pooled SQLite
        # connection would cross the fork into embedded beat and the prefork children, where
        # using it fails with "disk I/O error" (and kombu's recovery leaves beat's producer on
        # a closed channel). Without a pool every checkout opens the file afresh.
        return {"connect_args": {"timeout": 30}, "poolclass": NullPool}
    return {}


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """What beat sends: the reaper every few heartbeats, the reconciler of lost messages, the
    re-evaluation check on its crontab."""
    schedule: dict[str, dict[str, Any]] = {
        "reap-stale-submissions": {
            "task": REAP_TASK,
            "schedule": max(30.0, settings.heartbeat_seconds * 3),
        },
        # Queued work whose message the broker lost is sent again (worker.scheduling.reconcile).
        "requeue-lost-submissions": {
            "task": REQUEUE_TASK,
            "schedule": min(60.0, max(1.0, settings.requeue_after_seconds / 2)),
        },
    }
    if settings.reevaluate_schedule.strip().lower() not in ("", "off"):
        schedule["reevaluate-due"] = {
            "task": REEVALUATE_TASK,
            "schedule": crontab_of(settings.reevaluate_schedule),
            "kwargs": {"trigger": "scheduled"},
        }
    return schedule


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
        # Prefork with locks a killed child cannot keep (see worker.prefork); a child that has not
        # said it is up after this long is replaced, but one that imports torch on a busy
        # machine needs more than Celery's 4 s, or it is killed and replaced for ever.
        worker_pool="worker.prefork:TaskPool",
        worker_proc_alive_timeout=CHILD_START_TIMEOUT_S,
        task_routes=TASK_ROUTES,
        task_default_queue=LIGHT_QUEUE,
        task_create_missing_queues=True,
        beat_schedule=beat_schedule(settings),
        beat_scheduler="worker.beat:Scheduler",
        beat_schedule_filename=str(settings.home / "celerybeat-schedule"),
        timezone="UTC",
        worker_hijack_root_logger=False,
    )


def declare_queues(attempts: int = 5) -> None:
    """Create the broker's queues, however many processes do it at once.

    kombu's SQL transport (the embedded broker) creates a queue's row on first use and guards
    that only within one process: a worker starting while a submitter sends its first task can
    both insert ``eval`` (``UNIQUE constraint failed: kombu_queue.name``), and the loser's send
    fails. Declaring up front (``evalboard migrate``, a worker's start, a process's first send)
    and taking the other's row on a conflict closes that. Redis needs nothing.
    """
    from kombu import Queue
    from sqlalchemy.exc import SQLAlchemyError

    if not str(app.conf.broker_url).startswith("sqla+"):
        return
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        for name in ALL_QUEUES:
            for attempt in range(attempts):
                try:
                    Queue(name, channel=channel).declare()
                    break
                except SQLAlchemyError:
                    # The other process's insert won (or the table was being created): start
                    # over in a fresh transaction, where its row is visible.
                    channel.session.rollback()
                    if attempt == attempts - 1:
                        raise


def create_app(settings: Settings | None = None) -> Celery:
    app = Celery("evalboard")
    configure(app, settings or get_settings())
    return app


app = create_app()


# The brokers this process has declared its queues on (tests and tools switch brokers).
_declared: set[str] = set()


def send(task_name: str, *args: Any, **kwargs: Any) -> str:
    """Send a task by name; returns the Celery task id."""
    broker = str(app.conf.broker_url)
    if broker not in _declared:
        declare_queues()
        _declared.add(broker)
    return str(app.send_task(task_name, args=list(args), kwargs=kwargs).id)
