"""What the dashboard does once per process, not on every rerun of its script."""

from __future__ import annotations

import gc

_frozen = False


def freeze_startup_objects() -> None:
    """Move what start-up made (Streamlit, SQLAlchemy, pandas, the views' modules: a few
    hundred thousand long-lived objects) out of the garbage collector's reach, once.

    A full collection then walks only what requests allocate: without this, reading a large
    leaderboard triggered one every few requests, and each paused the process for 40–80 ms,
    longer than the query. Frozen objects still die by reference count; only reference cycles
    among them would stay (start-up makes none worth reclaiming)."""
    global _frozen
    if not _frozen:
        gc.collect()
        gc.freeze()
        _frozen = True
