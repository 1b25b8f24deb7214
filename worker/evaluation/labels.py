"""Align a model's labels with a dataset's class names, by name, whatever their orders."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from evalboard.errors import BadInputError

_DEFAULT_LABEL = re.compile(r"^LABEL_\d+$")


class LabelAlignmentError(BadInputError):
    """The dataset has class names the model does not know."""


def normalize_label(name: str) -> str:
    return re.sub(r"[\s_\-]+", " ", str(name)).strip().casefold()


def align_labels(model_labels: Sequence[str], class_names: Sequence[str]) -> np.ndarray:
    """For each dataset class (in dataset order), the index of the model output with its name.

    Exact names are matched first, then names equal after case and separator folding.
    """
    exact = {label: index for index, label in enumerate(model_labels)}
    folded: dict[str, int] = {}
    for index, label in enumerate(model_labels):
        folded.setdefault(normalize_label(label), index)
    columns: list[int] = []
    missing: list[str] = []
    for name in class_names:
        if name in exact:
            columns.append(exact[name])
        elif normalize_label(name) in folded:
            columns.append(folded[normalize_label(name)])
        else:
            missing.append(name)
    if missing:
        hint = ""
        if all(_DEFAULT_LABEL.match(label) for label in model_labels):
            hint = " (the model's config has only default LABEL_n names; set id2label)"
        shown = ", ".join(repr(m) for m in missing[:20])
        more = f" and {len(missing) - 20} more" if len(missing) > 20 else ""
        model_shown = ", ".join(repr(m) for m in list(model_labels)[:20])
        raise LabelAlignmentError(
            f"labels do not match: dataset classes {shown}{more} are not among the model's "
            f"labels [{model_shown}{', …' if len(model_labels) > 20 else ''}]{hint}"
        )
    if len(set(columns)) != len(columns):
        raise LabelAlignmentError("two dataset classes map to the same model label")
    return np.asarray(columns, dtype=np.int64)
