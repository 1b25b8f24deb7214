"""A Trainer callback that writes progress to the database and stops on cancel."""

from __future__ import annotations

import time
from typing import Any

from transformers import TrainerCallback

from db import submissions as queries
from db import training as training_queries
from db.session import session_scope
from worker.jobs import Deadline, JobTimeout

# Share of the whole job that training takes; the final evaluation is the rest.
TRAINING_SHARE = 0.9


class DatabaseProgress(TrainerCallback):
    """Logs step, epoch, loss, learning rate and validation metrics; honours cancellation."""

    def __init__(
        self,
        submission_id: int,
        deadline: Deadline | None = None,
        check_every_s: float = 1.0,
        *,
        attempt: int | None = None,
    ) -> None:
        self.submission_id = submission_id
        self.attempt = attempt
        self.deadline = deadline
        self.check_every_s = check_every_s
        self.cancelled = False
        self.timed_out: JobTimeout | None = None
        self.last_loss: float | None = None
        self._last_check = 0.0

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
               **kwargs: Any) -> None:  # fmt: skip
        logs = logs or {}
        if _number(logs.get("loss")) is not None:
            self.last_loss = _number(logs.get("loss"))
        metrics = {
            key.removeprefix("eval_"): float(value)
            for key, value in logs.items()
            if key.startswith("eval_")
            and isinstance(value, int | float)
            and not key.endswith(("_runtime", "_per_second"))
        }
        with session_scope() as session:
            training_queries.record_training_log(
                session,
                self.submission_id,
                step=int(state.global_step),
                epoch=float(state.epoch) if state.epoch is not None else None,
                loss=_number(logs.get("loss")),
                learning_rate=_number(logs.get("learning_rate")),
                metrics=metrics,
            )

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.deadline is not None and self.timed_out is None:
            try:
                self.deadline.check()
            except JobTimeout as error:  # stop at this step; the job records the timeout
                self.timed_out = error
                control.should_training_stop = True
                control.should_save = False
                return
        now = time.monotonic()
        if now - self._last_check < self.check_every_s and state.global_step < state.max_steps:
            return
        self._last_check = now
        fraction = state.global_step / max(state.max_steps, 1)
        with session_scope() as session:
            running = queries.record_progress(
                session, self.submission_id, TRAINING_SHARE * fraction, attempt=self.attempt,
                detail={"done": int(state.global_step), "total": int(state.max_steps),
                        "unit": "steps", "epoch": state.epoch, "loss": self.last_loss},
            )  # fmt: skip
        if not running:  # cancelled (or taken over): stop at this step
            self.cancelled = True
            control.should_training_stop = True
            control.should_save = False


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None
