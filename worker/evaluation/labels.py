"""Align a model's labels with a dataset's class names, by name, whatever their orders."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from evalboard.errors import BadInputError
from evalboard.model_files import (
    check_distinct_labels,
    label_columns,
    normalize_label,
    shown_label,
)

__all__ = ["LabelAlignmentError", "align_labels", "check_class_names", "normalize_label"]

_DEFAULT_LABEL = re.compile(r"^LABEL_\d+$")
# Names a mismatch message spells out; the rest are counted.
_SHOWN = 20


class LabelAlignmentError(BadInputError):
    """The dataset has class names the model does not know, or names that are ambiguous."""


def check_class_names(class_names: Sequence[str]) -> None:
    """Refuse a dataset whose class names are not distinct once normalized."""
    try:
        check_distinct_labels(class_names, what="the dataset's class names", unit="class")
    except BadInputError as error:
        raise LabelAlignmentError(error.message) from None


def align_labels(model_labels: Sequence[str], class_names: Sequence[str]) -> np.ndarray:
    """For each dataset class (in dataset order), the index of the model output with its name.

    Names match once normalized (``normalize_label``: Unicode form, case, separators); a match
    that would be ambiguous is refused by name (``label_columns``).
    """
    try:
        matched = label_columns(model_labels, class_names)
    except BadInputError as error:
        raise LabelAlignmentError(error.message) from None
    missing = [name for name, index in zip(class_names, matched, strict=True) if index is None]
    if missing:
        hint = ""
        if all(_DEFAULT_LABEL.match(label) for label in model_labels):
            hint = " (the model's config has only default LABEL_n names; set id2label)"
        shown = ", ".join(shown_label(m) for m in missing[:_SHOWN])
        more = f" and {len(missing) - _SHOWN} more" if len(missing) > _SHOWN else ""
        model_shown = ", ".join(shown_label(m) for m in list(model_labels)[:_SHOWN])
        raise LabelAlignmentError(
            f"labels do not match: dataset classes {shown}{more} are not among the model's "
            f"labels [{model_shown}{', …' if len(model_labels) > _SHOWN else ''}]{hint}"
        )
    return np.asarray(matched, dtype=np.int64)
