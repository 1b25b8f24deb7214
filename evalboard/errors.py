"""Failure categories: a fixed set, each with a message a person can act on."""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator
from enum import StrEnum


class FailureCategory(StrEnum):
    BAD_INPUT = "bad_input"
    NOT_FOUND = "not_found"
    REFUSED = "refused"
    TIMEOUT = "timeout"
    OUT_OF_MEMORY = "out_of_memory"
    RESOURCES = "resources"  # no space left on a disk (or over a quota)
    WORKER_LOST = "worker_lost"
    CANCELLED = "cancelled"
    INTERNAL = "internal"


class EvalboardError(Exception):
    """An error with a failure category; its message is shown to the submitter."""

    category: FailureCategory = FailureCategory.INTERNAL

    def __init__(self, message: str, category: FailureCategory | None = None) -> None:
        super().__init__(message)
        if category is not None:
            self.category = category

    @property
    def message(self) -> str:
        return str(self)

    def as_dict(self) -> dict[str, str]:
        return {"category": self.category.value, "message": self.message}


class BadInputError(EvalboardError):
    category = FailureCategory.BAD_INPUT


class NotFoundError(EvalboardError):
    category = FailureCategory.NOT_FOUND


class RefusedError(EvalboardError):
    category = FailureCategory.REFUSED


class ResourcesError(EvalboardError):
    category = FailureCategory.RESOURCES


# What an out-of-space error says where no errno is left on it: SQLite ("database or disk is
# full"), PostgreSQL (SQLSTATE 53100 "could not extend file … No space left on device"),
# pyarrow and others that quote strerror.
NO_SPACE_WORDS = ("no space left on device", "disk quota exceeded", "database or disk is full")
NEARLY_FULL_BYTES = 1 << 20


def _chain(error: BaseException | None) -> Iterator[BaseException]:
    """``error`` and the exceptions it wraps: SQLAlchemy's ``orig`` (the driver's), then
    Python's ``__cause__`` and ``__context__``."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = getattr(error, "orig", None) or error.__cause__ or error.__context__


def is_no_space(error: BaseException | None) -> bool:
    """Whether ``error``, or an exception it wraps, says a disk is full or over its quota."""
    for link in _chain(error):
        if isinstance(link, OSError) and link.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if getattr(link, "sqlstate", None) == "53100":
            return True
        if any(words in str(link).lower() for words in NO_SPACE_WORDS):
            return True
    return False


def caused_by_no_space(error: BaseException) -> bool:
    """Whether an exception in ``error``'s chain is an OSError saying the disk is full (by its
    errno alone: our messages may quote a submitter's text, which must not choose the category).
    """
    return any(
        isinstance(link, OSError) and link.errno in (errno.ENOSPC, errno.EDQUOT)
        for link in _chain(error)
    )


def as_failure(error: EvalboardError, home: object) -> EvalboardError:
    """``error``, or the full-disk error when a full disk is what it wraps (a dataset that
    "could not be read" because its cache could not be written)."""
    if error.category is not FailureCategory.RESOURCES and caused_by_no_space(error):
        return no_space_error(error, home)
    return error


def is_no_space_at(error: BaseException | None, folder: str | os.PathLike[str]) -> bool:
    """``is_no_space``, or SQLite's bare "disk I/O error" where ``folder``'s disk has almost no
    room left (what SQLite says when it cannot even grow its shared-memory file)."""
    if is_no_space(error):
        return True
    if not any("disk i/o error" in str(link).lower() for link in _chain(error)):
        return False
    try:
        return shutil.disk_usage(folder).free < NEARLY_FULL_BYTES
    except OSError:
        return False


def no_space_error(error: BaseException, home: object) -> ResourcesError:
    """The one message for a full disk, naming the folder that was being written: the file in
    ``error``'s chain, SQLite's own folder (EVALBOARD_HOME), else the folders evalboard writes."""
    hub_cache = os.environ.get("HF_HOME") or os.path.expanduser("~/.cache/huggingface")
    where = f"{home} (EVALBOARD_HOME) or {hub_cache} (HF_HOME)"
    if any("database or disk is full" in str(link) for link in _chain(error)):
        where = str(home)
    for link in _chain(error):
        if isinstance(link, OSError) and link.filename:
            where = os.path.dirname(os.path.abspath(os.fsdecode(link.filename)))
            break
        if getattr(link, "sqlstate", None) == "53100":
            where = "the database server's data folder"
            break
    return ResourcesError(
        f"no space left on device under {where}: free space (or raise the quota) and try "
        "again, or set EVALBOARD_CACHE_MAX_GB lower (0 turns the tensor cache off)"
    )
