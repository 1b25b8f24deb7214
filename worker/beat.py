"""Beat's scheduler: Celery's persistent one, whose producer outlives a broker recovery.

Beat sends every entry through one cached producer. When a send meets a connection error while
declaring its queue, kombu reconnects and declares again on a new channel, but leaves the
producer on the channel it closed: every later send fails with ``channel disconnected`` and the
reaper and the reconciler never run again. Before each send the producer is moved to the live
connection (kombu's own ``Producer.revive``) when its channel has been closed.
"""

from __future__ import annotations

from typing import Any

from celery.beat import PersistentScheduler, ScheduleEntry


class Scheduler(PersistentScheduler):
    """``PersistentScheduler`` that revives its producer when kombu closed its channel."""

    def apply_entry(self, entry: ScheduleEntry, producer: Any = None) -> None:
        """Send ``entry``, first putting a producer left on a closed channel back on a live one."""
        if producer is not None and producer.channel.connection is None:
            producer.revive(self._ensure_connected())
        super().apply_entry(entry, producer=producer)
