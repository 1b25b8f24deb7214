"""Training data: train, validation and test splits with one shared label space."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from evalboard.errors import BadInputError
from evalboard.references import ResolvedDataset
from evalboard.training_params import TrainingParams
from worker.evaluation.labels import check_class_names, normalize_label
from worker.evaluation.sources import LoadedSplit, available_splits, load_split


@dataclass
class TrainingData:
    train: Any
    validation: Any
    class_names: list[str]
    validation_note: str


def _remap(loaded: LoadedSplit, class_names: list[str], role: str) -> Any:
    """Relabel a split by class name (matched as evaluation matches labels) into the train
    split's label ids."""
    check_class_names(loaded.class_names)
    index = {normalize_label(name): i for i, name in enumerate(class_names)}
    present = set(loaded.dataset.unique(loaded.label_column))
    unknown = [
        name
        for position, name in enumerate(loaded.class_names)
        if normalize_label(name) not in index and position in present
    ]
    if unknown:
        raise BadInputError(
            f"{role} split {loaded.split!r} has classes the train split does not: {sorted(unknown)}"
        )
    mapping = [index.get(normalize_label(name), -1) for name in loaded.class_names]
    column = loaded.label_column
    return loaded.dataset.map(
        lambda batch: {column: [mapping[v] for v in batch[column]]}, batched=True
    )


def load_training_data(
    dataset: ResolvedDataset, params: TrainingParams, *, image_column: str, label_column: str
) -> TrainingData:
    """Load and check the splits before any training starts."""
    import datasets

    splits = available_splits(dataset)
    if params.train_split not in splits:
        raise BadInputError(
            f"train split {params.train_split!r} does not exist; available: {sorted(splits)}"
        )
    # Undecoded: the images are decoded once, in threads, when they become tensors.
    train = load_split(
        dataset,
        split=params.train_split,
        image_column=image_column,
        label_column=label_column,
        decode=False,
        splits=splits,
    )
    class_names = train.class_names
    # They become the trained model's id2label, which evaluation matches by name.
    check_class_names(class_names)
    counts = _class_counts(train.dataset[label_column], len(class_names))
    empty = [name for name, count in zip(class_names, counts, strict=True) if count == 0]
    if empty:
        raise BadInputError(f"classes with no training example: {empty}")
    if len(class_names) < 2:
        raise BadInputError("training needs at least two classes")
    train_rows = train.dataset.cast_column(label_column, datasets.ClassLabel(names=class_names))
    if params.validation_split:
        validation = load_split(
            dataset,
            split=params.validation_split,
            image_column=image_column,
            label_column=label_column,
            decode=False,
            splits=splits,
        )
        return TrainingData(
            train_rows,
            _remap(validation, class_names, "validation"),
            class_names,
            f"validation split {params.validation_split!r}",
        )
    share = f"{params.validation_fraction:.0%}"
    try:
        parts = train_rows.train_test_split(
            test_size=params.validation_fraction,
            stratify_by_column=label_column,
            seed=params.seed,
        )
        note = f"stratified {share} of {params.train_split!r}, seed {params.seed}"
    except ValueError:
        # Too few examples of some class to stratify: a plain seeded split instead.
        parts = train_rows.train_test_split(test_size=params.validation_fraction, seed=params.seed)
        note = (
            f"random {params.validation_fraction:.0%} of {params.train_split!r}, seed {params.seed}"
        )
    return TrainingData(parts["train"], parts["test"], class_names, note)


def _class_counts(labels: Any, n_classes: int) -> list[int]:
    counts = [0] * n_classes
    for label in labels:
        if 0 <= label < n_classes:
            counts[label] += 1
    return counts
