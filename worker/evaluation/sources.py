"""Load one split of an image-classification dataset from the Hub or a local path."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from evalboard.errors import BadInputError, NotFoundError
from evalboard.references import ResolvedDataset


@dataclass
class LoadedSplit:
    """A split ready for inference: rows, the image column, integer labels and class names."""

    dataset: Any  # datasets.Dataset with an Image column and an int label column
    split: str
    image_column: str
    label_column: str
    class_names: list[str]
    excluded_unlabelled: int = 0
    notes: list[str] = field(default_factory=list)


def available_splits(resolved: ResolvedDataset) -> dict[str, Any]:
    """Every split of the dataset, by name (loaded lazily by ``datasets``)."""
    import datasets

    try:
        if resolved.source == "hub":
            loaded = datasets.load_dataset(
                resolved.name, resolved.hub_config, revision=resolved.fingerprint
            )
        elif resolved.local_format == "save_to_disk":
            loaded = datasets.load_from_disk(resolved.name)
        elif resolved.local_format == "parquet":
            if resolved.name.endswith(".parquet"):
                loaded = datasets.load_dataset("parquet", data_files={"train": resolved.name})
            else:
                loaded = datasets.load_dataset("parquet", data_dir=resolved.name)
        else:
            loaded = datasets.load_dataset("imagefolder", data_dir=resolved.name)
    except FileNotFoundError as error:
        raise NotFoundError(f"dataset {resolved.name!r} could not be found: {error}") from error
    except (ValueError, datasets.exceptions.DatasetGenerationError) as error:
        raise BadInputError(f"dataset {resolved.name!r} could not be read: {error}") from error
    if isinstance(loaded, datasets.Dataset):
        return {"train": loaded}
    return dict(loaded)


def choose_split(splits: dict[str, Any], requested: str | None, preference: tuple[str, ...]) -> str:
    """The requested split, or the first of ``preference`` that exists."""
    if requested:
        if requested not in splits:
            raise NotFoundError(
                f"split {requested!r} does not exist; available: {', '.join(sorted(splits))}"
            )
        return requested
    for name in preference:
        if name in splits:
            return name
    if len(splits) == 1:
        return next(iter(splits))
    raise BadInputError(f"no split given and none of {preference} exists: {sorted(splits)}")


def load_split(
    resolved: ResolvedDataset,
    *,
    split: str | None,
    image_column: str = "image",
    label_column: str = "label",
    preference: tuple[str, ...] = ("test", "validation", "train"),
) -> LoadedSplit:
    """Load the split, check the column mapping, and make labels integer class ids."""
    import datasets

    splits = available_splits(resolved)
    split_name = choose_split(splits, split, preference)
    dataset = splits[split_name]
    columns = list(dataset.column_names)
    for role, column in (("image", image_column), ("label", label_column)):
        if column not in columns:
            raise BadInputError(
                f"{role} column {column!r} is not in split {split_name!r}; columns: {columns}"
            )
    if not isinstance(dataset.features[image_column], datasets.Image):
        try:
            dataset = dataset.cast_column(image_column, datasets.Image())
        except Exception as error:  # noqa: BLE001 - any failure means "not images"
            raise BadInputError(
                f"column {image_column!r} does not hold images ({dataset.features[image_column]})"
            ) from error
    dataset = dataset.select_columns([image_column, label_column])
    feature = dataset.features[label_column]
    if isinstance(feature, datasets.ClassLabel):
        class_names = [str(name) for name in feature.names]
    else:
        values = dataset.unique(label_column)
        if any(isinstance(v, str) for v in values):
            class_names = sorted(str(v) for v in values if v is not None)
            dataset = dataset.cast_column(label_column, datasets.ClassLabel(names=class_names))
        else:
            class_names = [str(v) for v in sorted(v for v in values if v is not None and v >= 0)]
            lookup = {int(name): index for index, name in enumerate(class_names)}
            dataset = dataset.map(
                lambda batch: {
                    label_column: [
                        lookup.get(v, -1) if v is not None else -1 for v in batch[label_column]
                    ]
                },
                batched=True,
            )
    before = len(dataset)
    labels = dataset[label_column]
    keep = [index for index, value in enumerate(labels) if value is not None and value >= 0]
    if len(keep) != before:
        dataset = dataset.select(keep)
    if len(dataset) == 0:
        raise BadInputError(f"split {split_name!r} has no labelled rows")
    if not class_names:
        raise BadInputError(f"label column {label_column!r} has no class names")
    return LoadedSplit(
        dataset=dataset,
        split=split_name,
        image_column=image_column,
        label_column=label_column,
        class_names=class_names,
        excluded_unlabelled=before - len(dataset),
    )
