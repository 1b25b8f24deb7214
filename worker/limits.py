"""Keeping one job from taking the host.

Each prefork child limits its private writable memory (RLIMIT_DATA) to
``EVALBOARD_JOB_MEMORY_GB`` (by default three quarters of the machine's memory), so a job
that allocates past it gets a MemoryError (``out_of_memory``) instead of the kernel's OOM
killer taking the host. Not on CUDA workers, whose driver maps memory beyond any such limit.
(A job whose process dies anyway is counted in ``jobs.claim``: the second loss fails it.)
"""

from __future__ import annotations

import os
import resource

from evalboard.settings import get_settings

GB = 1024**3


def job_memory_bytes() -> int | None:
    """The address-space limit of one job; None when there is none (or on a CUDA worker)."""
    settings = get_settings()
    if settings.job_memory_gb == 0:
        return None
    try:
        import torch

        if torch.cuda.is_available():
            return None
    except ImportError:
        pass
    if settings.job_memory_gb is not None:
        return int(settings.job_memory_gb * GB)
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return int(total * 0.75)


def limit_child_memory() -> None:
    limit = job_memory_bytes()
    if limit is None:
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
