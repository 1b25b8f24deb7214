"""Failure categories: a fixed set, each with a message a person can act on."""

from __future__ import annotations

from enum import StrEnum


class FailureCategory(StrEnum):
    BAD_INPUT = "bad_input"
    NOT_FOUND = "not_found"
    REFUSED = "refused"
    TIMEOUT = "timeout"
    OUT_OF_MEMORY = "out_of_memory"
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
