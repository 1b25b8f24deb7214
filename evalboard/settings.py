"""One settings object, read from ``EVALBOARD_*`` variables, shared by every process."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from celery.schedules import crontab
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PLACEHOLDER_SECRETS = {
    "", "changeme", "change-me", "change_me", "secret", "admin", "password", "adminsecret",
    "admin-secret", "evalboard", "replaceme", "replace-me", "todo", "xxx",
}  # fmt: skip
MIN_ADMIN_SECRET_LENGTH = 16


def is_placeholder(secret: str) -> bool:
    """A secret nobody should deploy: a known placeholder (any case, spaces around ignored) or
    shorter than MIN_ADMIN_SECRET_LENGTH characters."""
    secret = secret.strip()
    return secret.lower() in PLACEHOLDER_SECRETS or len(secret) < MIN_ADMIN_SECRET_LENGTH


class Settings(BaseSettings):
    """Configuration of evalboard; every field maps to ``EVALBOARD_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="EVALBOARD_", extra="ignore")

    environment: Literal["development", "production"] = "development"
    home: Path = Field(default=Path(".evalboard"))
    database_url: str | None = None
    broker_url: str | None = None
    # Folders from which local models and datasets may be read; default: HOME and the cwd.
    # Given as a comma- or os.pathsep-separated list of folders.
    allowed_paths: Annotated[list[Path], NoDecode] = Field(default_factory=list)
    admin_secret: str = ""
    # Evaluation knobs: None means "choose for the device" (the batch size by a timed probe;
    # the threads that decode and resize images by the CPU count).
    eval_batch_size: int | None = Field(default=None, ge=1, le=4096)
    eval_num_workers: int | None = Field(default=None, ge=0, le=64)
    device: str | None = None
    heartbeat_seconds: float = 10.0
    # evalboard up restarts its worker when queued work waits this long while nothing runs.
    worker_stall_seconds: float = Field(default=120.0, gt=0)
    # On Ctrl-C, evalboard up gives running jobs this long to finish before it stops them.
    stop_grace_seconds: float = Field(default=20.0, ge=0)
    dashboard_port: int = 8501
    # Time limits per kind of job (seconds): the soft one ends the job with ``timeout``.
    eval_time_limit: float = 2 * 3600
    train_time_limit: float = 24 * 3600
    # Unacknowledged Redis messages are redelivered after this; above the longest job.
    visibility_timeout: float = 26 * 3600
    # A submission queued this long whose message the broker lost (a Redis restarted empty)
    # is sent again by beat, which checks every half of it (at most every minute).
    requeue_after_seconds: float = Field(default=120.0, gt=0)
    # Security: pickle checkpoints are refused unless allowed (then loaded weights_only).
    allow_pickle_weights: bool = False
    max_image_pixels: int = 89_478_485  # PIL's own default decompression-bomb limit
    # The most pixels an image may have once the model's processor resized it (a 1×200000
    # image behind shortest_edge 32 would be 6.4M×32); a bigger one is a bad image.
    max_resized_pixels: int = Field(default=4096 * 4096, gt=0)
    # Address-space limit of one job in its worker child (None: 3/4 of the memory; 0: none).
    job_memory_gb: float | None = Field(default=None, ge=0)
    # The preprocessed-tensor cache under HOME/cache/tensors (0 turns it off); LRU-evicted.
    cache_max_gb: float = Field(default=20.0, ge=0)
    # Who may submit: anonymous local use is allowed by default in development only.
    allow_anonymous: bool | None = None
    # Per-submitter quotas; None means unlimited.
    quota_per_day: int | None = None
    quota_concurrent: int | None = None
    quota_attempts_per_day: int | None = None
    # Catalog plugins: comma-separated modules that register tasks, specs and metrics.
    plugins: str = ""
    # Re-evaluation: beat's crontab for the check ("off" turns it off) and an optional age limit.
    reevaluate_schedule: str = "0 3 * * *"
    reevaluate_max_age_days: float | None = Field(default=None, gt=0)
    # Webhooks: seconds per delivery attempt; private and loopback addresses (default: allowed
    # in development only, where the service itself runs on loopback).
    webhook_timeout_s: float = Field(default=5.0, gt=0, le=60)
    webhook_allow_private: bool | None = None
    # Bounds on what a submitted model or dataset declares, checked before anything allocates:
    # a processor's image sizes (pixels per side), a model's or dataset's number of labels, the
    # bytes of weights a model declares (or its config describes), and the bytes hashed.
    max_image_side: int = Field(default=4096, gt=0)
    max_labels: int = Field(default=100_000, gt=0)
    max_weight_bytes: int = Field(default=8 * 2**30, gt=0)
    max_hash_bytes: int = Field(default=10 * 2**30, gt=0)

    @field_validator("allowed_paths", mode="before")
    @classmethod
    def _split_paths(cls, value: object) -> object:
        if isinstance(value, str):
            parts = value.replace(os.pathsep, ",").split(",")
            return [Path(part.strip()) for part in parts if part.strip()]
        return value

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        self.home = self.home.expanduser().resolve()
        if self.database_url is None:
            self.database_url = f"sqlite:///{self.home / 'evalboard.db'}"
        if self.broker_url is None:
            self.broker_url = f"sqla+sqlite:///{self.home / 'broker.db'}"
        if not self.allowed_paths:
            self.allowed_paths = [self.home, Path.cwd()]
        self.allowed_paths = [p.expanduser().resolve() for p in self.allowed_paths]
        if self.allow_anonymous is None:
            self.allow_anonymous = self.environment == "development"
        if self.webhook_allow_private is None:
            self.webhook_allow_private = self.environment == "development"
        if self.reevaluate_schedule.strip().lower() not in ("", "off"):
            crontab_of(self.reevaluate_schedule)  # a ValueError names what is wrong
        if self.environment == "production" and is_placeholder(self.admin_secret):
            raise ValueError(
                "EVALBOARD_ADMIN_SECRET must be set to a real secret (not a placeholder, at "
                f"least {MIN_ADMIN_SECRET_LENGTH} characters) when EVALBOARD_ENVIRONMENT=production"
            )
        return self

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "artifacts"

    def ensure_home(self) -> None:
        """Create the data folder (SQLite files, artifacts, beat schedule) if missing."""
        self.home.mkdir(parents=True, exist_ok=True)


def crontab_of(expression: str) -> crontab:
    """A Celery crontab from a five-field crontab string (minute hour day month weekday)."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(
            f"{expression!r} is not a crontab string: give five fields, "
            "minute hour day-of-month month day-of-week (for instance '0 3 * * *')"
        )
    minute, hour, day_of_month, month_of_year, day_of_week = fields
    return crontab(
        minute=minute,
        hour=hour,
        day_of_month=day_of_month,
        month_of_year=month_of_year,
        day_of_week=day_of_week,
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()


def reset_settings_cache() -> None:
    """Forget the cached settings (tests change ``EVALBOARD_*`` between cases)."""
    get_settings.cache_clear()


def subprocess_env(settings: Settings) -> dict[str, str]:
    """Environment for child processes so they see exactly these settings."""
    env = dict(os.environ)
    env["EVALBOARD_HOME"] = str(settings.home)
    env["EVALBOARD_DATABASE_URL"] = str(settings.database_url)
    env["EVALBOARD_BROKER_URL"] = str(settings.broker_url)
    return env
