"""Training hyperparameters for the pages: defaults, widget bounds and a readable table.

Everything comes from ``TrainingParams`` (pydantic only), so the form never drifts from it.
"""

from __future__ import annotations

import typing
from typing import Any

import pandas as pd

from evalboard.training_params import TrainingParams

DEFAULTS = TrainingParams()

# What an empty (None) value means, in the words of the Train form.
NONE_MEANS = {
    "validation_split": "stratified split of the train split",
    "test_split": "test, else validation",
    "early_stopping_patience": "off",
}


def bounds(name: str) -> tuple[float | None, float | None]:
    """(min, max) for the widget of field ``name``; strict bounds are left to validation.

    A ``gt=0`` field gets ``min=0`` so that 0 reaches TrainingParams and its message is shown.
    """
    low: float | None = None
    high: float | None = None
    # Pydantic keeps Field(ge=…, lt=…) as annotated_types objects; read them by attribute.
    for constraint in TrainingParams.model_fields[name].metadata:
        for attribute in ("ge", "gt"):
            if getattr(constraint, attribute, None) is not None:
                low = float(getattr(constraint, attribute))
        for attribute in ("le", "lt"):
            if getattr(constraint, attribute, None) is not None:
                high = float(getattr(constraint, attribute))
    return low, high


def int_bounds(name: str) -> tuple[int | None, int | None]:
    low, high = bounds(name)
    return (None if low is None else int(low), None if high is None else int(high))


def choices(name: str) -> list[str]:
    """The allowed values of a Literal field, in declaration order."""
    return [str(value) for value in typing.get_args(TrainingParams.model_fields[name].annotation)]


def hyperparameter_table(parameters: dict[str, Any]) -> pd.DataFrame:
    """Two text columns, hyperparameter and value, in TrainingParams' field order."""
    names = [name for name in TrainingParams.model_fields if name in parameters]
    names += sorted(name for name in parameters if name not in TrainingParams.model_fields)
    rows = []
    for name in names:
        value = parameters[name]
        shown = NONE_MEANS.get(name, "default") if value is None else f"{value}"
        rows.append({"hyperparameter": name.replace("_", " "), "value": shown})
    return pd.DataFrame(rows, columns=["hyperparameter", "value"])
