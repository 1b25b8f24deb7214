"""Training hyperparameters with AutoTrain-like defaults. Light: the dashboard shows them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class TrainingParams(BaseModel):
    """What a training submission asks for; stored with it and beside its checkpoints."""

    model_config = ConfigDict(extra="forbid")

    train_split: str = "train"
    validation_split: str | None = None  # None: a stratified split of the train split
    validation_fraction: float = Field(0.1, gt=0.0, lt=0.5)
    test_split: str | None = None  # None: test, then validation (as evaluation does)
    epochs: float = Field(3.0, gt=0)
    learning_rate: float = Field(5e-5, gt=0)
    batch_size: int = Field(8, ge=1, le=4096)
    warmup_ratio: float = Field(0.1, ge=0.0, lt=1.0)
    weight_decay: float = Field(0.0, ge=0.0)
    gradient_accumulation: int = Field(1, ge=1)
    seed: int = 42
    mixed_precision: Literal["auto", "no", "fp16", "bf16"] = "auto"
    early_stopping_patience: int | None = Field(3, ge=1)  # None: no early stopping
    early_stopping_threshold: float = Field(0.0, ge=0.0)
    auto_find_batch_size: bool = False
    augment: bool = False
