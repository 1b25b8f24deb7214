"""The worker's process pool: Celery's prefork pool, with locks that a killed child cannot keep.

When the broker cannot drive Celery's event loop (kombu's SQL transport, the embedded
deployment), Celery runs billiard's blocking pool: its children share one pipe of jobs and one
of results, each guarded by a process-shared semaphore. An idle child waits for its next job
*holding* the jobs lock, so a child SIGKILLed while idle (the kernel's OOM killer, an operator)
takes the lock with it: every replacement child then blocks on it for ever, the worker takes no
more work, and a SIGTERM hangs too (the pool's shutdown acquires the same lock). billiard has
no option for this, so here those two locks are POSIX record locks (``fcntl.lockf``), which the
kernel releases when the process holding them dies, however it dies.

Selected by ``worker_pool`` (``evalboard.queue.configure``), so ``celery … worker`` and
``evalboard worker`` both run it; the event-loop pool (Redis) has no shared locks and is kept.
"""

from __future__ import annotations

import errno
import fcntl
import os
import tempfile
import threading
import time
from typing import IO

from billiard.pool import Pool as BlockingPool
from celery.concurrency.prefork import TaskPool as PreforkTaskPool


class ProcessLock:
    """A lock between forked processes that is released when its holder dies.

    POSIX record locks belong to a process and are not inherited across ``fork``, so every
    child that inherits this object competes for the same lock on the same open file; threads
    of one process are kept apart by a thread lock, made anew in each process.
    """

    def __init__(self) -> None:
        self._file: IO[bytes] = tempfile.TemporaryFile(prefix="evalboard-pool-lock-")
        self._pid = os.getpid()
        self._threads = threading.Lock()

    def _thread_lock(self) -> threading.Lock:
        if self._pid != os.getpid():
            # Forked: the parent's thread lock may have been held at the fork, by a thread
            # that does not exist here.
            self._pid, self._threads = os.getpid(), threading.Lock()
        return self._threads

    def acquire(self, block: bool = True, timeout: float | None = None) -> bool:
        """Take the lock; False when ``block`` is false or ``timeout`` passed before it was free."""
        threads = self._thread_lock()
        if not threads.acquire(block, -1 if timeout is None or not block else timeout):
            return False
        try:
            if block and timeout is None:
                fcntl.lockf(self._file.fileno(), fcntl.LOCK_EX)
                return True
            deadline = time.monotonic() + (timeout or 0.0)
            while True:
                try:
                    fcntl.lockf(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return True
                except OSError as error:
                    if error.errno not in (errno.EACCES, errno.EAGAIN):
                        raise
                if not block or time.monotonic() >= deadline:
                    threads.release()
                    return False
                time.sleep(0.01)
        except BaseException:
            threads.release()
            raise

    def release(self) -> None:
        fcntl.lockf(self._file.fileno(), fcntl.LOCK_UN)
        self._thread_lock().release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *_exc: object) -> None:
        self.release()


class DeathSafeBlockingPool(BlockingPool):
    """billiard's blocking pool whose shared-queue locks die with the child holding them."""

    def _setup_queues(self) -> None:
        super()._setup_queues()
        if self._ctx.get_start_method() != "fork":
            return  # spawned children get pickled locks: keep billiard's own there
        # Children take the jobs lock while they wait for a job and the results lock while they
        # report one; the parent reads results and writes jobs without them.
        self._inqueue._rlock = ProcessLock()
        self._outqueue._wlock = ProcessLock()


class TaskPool(PreforkTaskPool):
    """Celery's prefork pool (``-P prefork``), with ``DeathSafeBlockingPool`` as its blocking
    pool; the event-loop pool (``AsynPool``, used with Redis) is unchanged."""

    BlockingPool = DeathSafeBlockingPool
