"""Training hyperparameters with AutoTrain-like defaults. Light: every process shows them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_SEED = 2**32 - 1


class TrainingParams(BaseModel):
    """What a training submission asks for; stored with it and beside its checkpoints."""

    # Infinite and NaN numbers are refused by name, like any value outside its bounds.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    train_split: str = Field("train", min_length=1, max_length=255)
    validation_split: str | None = Field(None, max_length=255)  # None: a stratified split
    validation_fraction: float = Field(0.1, gt=0.0, lt=0.5)
    test_split: str | None = Field(None, max_length=255)  # None: test, then validation
    epochs: float = Field(3.0, gt=0, le=1000)
    learning_rate: float = Field(5e-5, gt=0, le=10.0)
    batch_size: int = Field(8, ge=1, le=4096)
    warmup_ratio: float = Field(0.1, ge=0.0, lt=1.0)
    weight_decay: float = Field(0.0, ge=0.0, le=10.0)
    gradient_accumulation: int = Field(1, ge=1, le=1024)
    seed: int = Field(42, ge=0, le=MAX_SEED)
    mixed_precision: Literal["auto", "no", "fp16", "bf16"] = "auto"
    early_stopping_patience: int | None = Field(3, ge=1, le=1000)  # None: no early stopping
    early_stopping_threshold: float = Field(0.0, ge=0.0, le=1.0)
    auto_find_batch_size: bool = False
    augment: bool = False
