"""The reconciler: send again the queued submissions whose message the broker lost.

A Redis restarted without its data (``shutdown nosave``, a lost volume), a broker row deleted,
a send that failed at submit, a worker killed holding a message it had not started: the
database still says ``queued``, but no message will ever come. Beat runs ``requeue_lost``;
it sends again what has been queued longer than ``EVALBOARD_REQUEUE_AFTER_SECONDS`` and whose
task id is in none of the broker's places. A second delivery is harmless: a worker claims a
submission with a conditional update on its state and attempts (``db.submissions``), so only
one delivery runs it, and the others find it taken or finished and do nothing.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta
from typing import Any

from db import submissions as queries
from db.models import utcnow
from db.session import session_scope
from evalboard.queue import ALL_QUEUES, app
from evalboard.settings import get_settings
from evalboard.submit import enqueue

log = logging.getLogger(__name__)


def task_id_of(message: Any) -> str | None:
    """The Celery task id of a kombu message (a dict, or its JSON text); None if it has none."""
    if isinstance(message, bytes | str):
        try:
            message = json.loads(message)
        except ValueError:
            return None
    if not isinstance(message, dict):
        return None
    headers, properties = message.get("headers") or {}, message.get("properties") or {}
    task_id = headers.get("id") or properties.get("correlation_id")
    return str(task_id) if task_id else None


def redis_task_ids(channel: Any, *, reserved_within: float) -> set[str]:
    """Task ids waiting in the queues' lists, or reserved by a worker (the ``unacked`` hash)
    less than ``reserved_within`` seconds ago: a reservation older than that whose submission
    is still queued belongs to a worker that died or stopped taking work."""
    import redis

    client = redis.Redis(connection_pool=channel.client.connection_pool)
    prefix = getattr(channel, "global_keyprefix", "") or ""
    found: set[str] = set()
    for queue in ALL_QUEUES:
        for priority in channel.priority_steps:
            key = prefix + channel._q_for_pri(queue, priority)
            found.update(filter(None, map(task_id_of, client.lrange(key, 0, -1))))
    index: Any = client.zrange(prefix + channel.unacked_index_key, 0, -1, withscores=True)
    reserved_at = {tag: float(score) for tag, score in index}
    oldest = time.time() - reserved_within
    for tag, entry in client.hgetall(prefix + channel.unacked_key).items():
        if reserved_at.get(tag, time.time()) < oldest:
            continue
        try:
            message = json.loads(entry)[0]
        except (ValueError, IndexError, TypeError):
            continue
        task_id = task_id_of(message)
        if task_id:
            found.add(task_id)
    return found


def sql_task_ids(channel: Any) -> set[str]:
    """Task ids of the messages kombu's SQL transport still holds for a worker to take.

    A delivered message stays in ``kombu_message`` with ``visible`` false whether it ran or
    its worker died before claiming it, so only visible ones count.
    """
    message_cls, queue_cls = channel.message_cls, channel.queue_cls
    session = channel.session
    try:
        payloads = (
            session.query(message_cls.payload)
            .join(queue_cls, message_cls.queue_id == queue_cls.id)
            .filter(message_cls.visible.is_(True), queue_cls.name.in_(ALL_QUEUES))
            .all()
        )
    finally:
        session.rollback()  # end the read at once: SQLite shares this file with the workers
    return {task_id for (payload,) in payloads if (task_id := task_id_of(payload))}


def broker_task_ids(*, reserved_within: float) -> set[str] | None:
    """The task ids the broker still holds for a worker; None for a broker it cannot read."""
    broker = str(app.conf.broker_url)
    with app.connection_for_read() as connection:
        channel = connection.default_channel
        if broker.startswith(("redis://", "rediss://")):
            return redis_task_ids(channel, reserved_within=reserved_within)
        if broker.startswith("sqla+"):
            return sql_task_ids(channel)
    return None


def requeue_lost(after_seconds: float | None = None) -> list[int]:
    """Send again every submission queued longer than ``after_seconds`` (the setting by
    default) whose message the broker no longer holds; returns their ids."""
    after = get_settings().requeue_after_seconds if after_seconds is None else after_seconds
    # The broker first: a message taken in between is then seen as present, not as lost.
    present = broker_task_ids(reserved_within=after)
    if present is None:
        log.warning("cannot list the messages of broker %s: nothing re-sent", app.conf.broker_url)
        return []
    cutoff = utcnow() - timedelta(seconds=after)
    with session_scope() as session:
        lost = [
            (submission.id, submission.kind)
            for submission in queries.long_queued(session, older_than=cutoff)
            if submission.celery_task_id not in present
        ]
    for submission_id, kind in lost:
        log.warning("submission %s was queued but its message is gone: sent again", submission_id)
        enqueue(submission_id, kind)
    return [submission_id for submission_id, _ in lost]
