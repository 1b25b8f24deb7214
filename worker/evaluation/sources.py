"""Load one split of an image-classification dataset from the Hub or a local path."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from evalboard.contents import inside_any, printable, real_path
from evalboard.dataset_files import check_image_paths
from evalboard.errors import BadInputError, NotFoundError, RefusedError
from evalboard.hub_dataset_files import (
    check_hub_dataset,
    check_hub_snapshot,
    hub_snapshot,
    snapshot_roots,
)
from evalboard.model_files import check_label_count
from evalboard.references import ResolvedDataset
from evalboard.settings import get_settings

ROW_ID = "__evalboard_row__"
# How datasets (4 and later) refuses a dataset that is a loading script; it has no exception
# class of its own for it.
SCRIPTS_UNSUPPORTED = "Dataset scripts are no longer supported"


class BadImage(Exception):
    """One image that cannot be used: corrupt, or over the pixel limit."""


def decode_image(value: Any, max_pixels: int) -> Any:
    """An RGB PIL image from a datasets image value, refusing decompression bombs."""
    import io
    import warnings

    from PIL import Image, UnidentifiedImageError

    if isinstance(value, Image.Image):
        return to_rgb(value)
    data = value.get("bytes") if isinstance(value, dict) else None
    source: Any = io.BytesIO(data) if data is not None else (value or {}).get("path")
    if source is None:
        raise BadImage("no image data")
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(source)
            if image.width * image.height > max_pixels:
                raise BadImage(
                    f"{image.width}x{image.height} pixels is over the limit of {max_pixels}"
                )
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise BadImage(f"over the pixel limit of {max_pixels}: {error}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise BadImage(f"unreadable image: {error}") from None
    return to_rgb(image)


def to_rgb(image: Any) -> Any:
    """Grayscale, RGBA and palette images become RGB (palette through RGBA: transparency)."""
    if image.mode == "RGB":
        return image
    if image.mode == "P":
        image = image.convert("RGBA")
    return image.convert("RGB")


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
            loaded = _load_hub_dataset(resolved)
        elif resolved.local_format == "save_to_disk":
            loaded = datasets.load_from_disk(resolved.name)
        elif resolved.local_format == "parquet":
            if resolved.name.endswith(".parquet"):
                loaded = _load_checked(resolved, "parquet", data_files={"train": resolved.name})
            else:
                loaded = _load_checked(resolved, "parquet", data_dir=resolved.name)
        else:
            loaded = _load_checked(resolved, "imagefolder", data_dir=resolved.name)
    except FileNotFoundError as error:
        raise NotFoundError(
            f"dataset {resolved.name!r} could not be found: {loader_message(error)}"
        ) from error
    except ConnectionError as error:  # datasets' word for "the Hub did not answer"
        raise NotFoundError(
            f"dataset {resolved.name!r} at commit {resolved.fingerprint[:12]} could not be "
            "loaded: the Hub did not answer and it is not in the local caches "
            f"({loader_message(error)})"
        ) from error
    except (ValueError, datasets.exceptions.DatasetGenerationError) as error:
        raise BadInputError(
            f"dataset {resolved.name!r} could not be read: {loader_message(error)}"
        ) from error
    except RuntimeError as error:
        if SCRIPTS_UNSUPPORTED not in str(error):
            raise
        raise _script_refused(resolved) from None
    if isinstance(loaded, datasets.Dataset):
        return {"train": loaded}
    return dict(loaded)


def loader_message(error: BaseException, limit: int = 600) -> str:
    """What a loader's exception says, for a person: its own words and those of the error it
    wraps (``DatasetGenerationError`` alone says nothing), printable and bounded. It may
    quote the dataset's own files, never another's: every file the loader was given was
    checked to lie inside the dataset before it read one (``_load_checked``)."""
    parts = [f"{type(error).__name__}: {error}"]
    cause = error.__cause__
    if cause is not None and str(cause) and str(cause) not in parts[0]:
        parts.append(f"{type(cause).__name__}: {cause}")
    text = printable("; ".join(parts))
    return text if len(text) <= limit else text[:limit] + "…"


def _script_refused(resolved: ResolvedDataset) -> RefusedError:
    return RefusedError(
        f"dataset {resolved.name!r} is a loading script; dataset scripts are not run"
    )


def _load_hub_dataset(resolved: ResolvedDataset) -> Any:
    """A Hub dataset at its resolved commit. Offline (``HF_HUB_OFFLINE``), from that commit's
    snapshot in the local Hub cache when it is there (``hf download --repo-type dataset``, or
    an earlier online run, put it there): the files laid out as on the Hub, configs read from
    its README as the Hub would. ``datasets`` itself only knows its own prepared cache.

    Whatever the files the card names, they are checked before ``datasets`` sees the card
    (on its text) and again once ``datasets`` has resolved them, before it reads one."""
    from evalboard.references import hub_offline

    if hub_offline():
        snapshot = hub_snapshot(resolved.name, resolved.fingerprint)
        if snapshot is not None:
            # What the Hub refuses to load (a loading script named after the repository), the
            # snapshot must not load either, data files or not.
            script = snapshot / f"{resolved.name.rsplit('/', 1)[-1]}.py"
            if script.is_file():
                raise _script_refused(resolved)
            check_hub_snapshot(snapshot, what=f"dataset {resolved.name!r}", metadata=False)
            return _load_checked(resolved, str(snapshot), name=resolved.hub_config)
    else:
        check_hub_dataset(resolved.name, resolved.fingerprint, offline=False)
    return _load_checked(
        resolved, resolved.name, name=resolved.hub_config, revision=resolved.fingerprint
    )


def _load_checked(resolved: ResolvedDataset, path: str, **options: Any) -> Any:
    """``datasets.load_dataset``, in its three steps, with the data files the builder
    resolved (from the card, ``data_dir`` and globs: the parser that reads them) checked to
    lie inside the dataset before any is read."""
    import datasets

    builder = datasets.load_dataset_builder(path, **options)
    check_builder_files(builder, resolved, path)
    builder.download_and_prepare()
    return builder.as_dataset()


def check_builder_files(builder: Any, resolved: ResolvedDataset, path: str) -> None:
    """Every data file of every split ``builder`` will read lies inside the dataset: a local
    dataset's folder (or file), a cached snapshot (its links: its repository's blobs), or,
    from the Hub, the repository at its resolved commit. The message never names the file."""
    roots: list[Path] = []
    real_roots: list[Path] = []
    if resolved.source == "local":
        roots = [Path(resolved.name), real_path(resolved.name)]
        real_roots = [real_path(resolved.name)]
    elif path != resolved.name:  # a snapshot in the local Hub cache
        real_roots = snapshot_roots(Path(path))
        roots = [Path(path), real_roots[0]]
    hub_prefix = f"hf://datasets/{resolved.name}@{resolved.fingerprint}/"
    for split, files in dict(builder.config.data_files or {}).items():
        for index, file in enumerate(files):
            name = str(file)
            if roots:
                inside = _local_file_inside(name, roots, real_roots)
            else:
                tail = PurePosixPath(name[len(hub_prefix) :])
                inside = name.startswith(hub_prefix) and ".." not in tail.parts
            if not inside or "::" in name:
                raise RefusedError(
                    f"dataset {resolved.name!r}: data file {index} of split {printable(split)!r} "
                    "resolves outside the dataset; a dataset's data files must lie inside its "
                    "own folder"
                )


def _local_file_inside(name: str, roots: list[Path], real_roots: list[Path]) -> bool:
    if "://" in name:
        return False
    written = Path(os.path.normpath(name))
    return inside_any(written, roots) is not None and (
        inside_any(real_path(written), real_roots) is not None
    )


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
    decode: bool = True,
    splits: dict[str, Any] | None = None,
) -> LoadedSplit:
    """Load the split, check the column mapping, and make labels integer class ids
    (``splits``: what ``available_splits`` already found, so files are listed once per job)."""
    import datasets

    if splits is None:
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
    check_images_stay_inside(dataset, image_column, resolved, split_name)
    # The row's position in the split as loaded: what a person can look up.
    dataset = dataset.add_column(ROW_ID, list(range(len(dataset))))
    if not decode:
        dataset = dataset.cast_column(image_column, datasets.Image(decode=False))
    dataset, class_names = _integer_labels(dataset, label_column)
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


def image_roots(resolved: ResolvedDataset) -> list[Path]:
    """The folders a dataset's images may be read from: the submitted folder; for a Hub
    dataset, its own folder in the Hub cache and the archives ``datasets`` extracted."""
    if resolved.source == "local":
        return [Path(resolved.name)]
    import datasets
    from huggingface_hub import constants

    return [
        Path(constants.HF_HUB_CACHE) / f"datasets--{resolved.name.replace('/', '--')}",
        Path(datasets.config.HF_DATASETS_CACHE) / "downloads",
    ]


def check_images_stay_inside(
    dataset: Any, image_column: str, resolved: ResolvedDataset, split: str
) -> None:
    """Before any image is read: every image read from a path (no embedded bytes) lies inside
    the dataset, or the whole submission is refused; no per-image reason ever speaks of a file
    outside."""
    roots = image_roots(resolved)
    first_row = 0
    for batch in dataset.with_format("arrow").iter(batch_size=4096):
        check_image_paths(
            batch.column(image_column),
            roots,
            what=f"split {split!r}, column {image_column!r}",
            first_row=first_row,
        )
        first_row += batch.num_rows


# Label features that hold one class per row: a name (text) or a class id (a number).
_LABEL_DTYPES = frozenset(
    {"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16",
     "float32", "float64", "string", "large_string"}
)  # fmt: skip


def _integer_labels(dataset: Any, label_column: str) -> tuple[Any, list[str]]:
    """Labels as class ids (-1 for unlabelled rows) and the class names, from any label type.

    A ClassLabel keeps its names; strings become sorted names; whole numbers (also floats
    with NaN gaps, as pandas writes them) become names of their decimal value. Lists, bools
    and anything else are no class labels.
    """
    import datasets

    feature = dataset.features[label_column]
    limit_what = f"label column {label_column!r}"
    if isinstance(feature, datasets.ClassLabel):
        check_label_count(feature.num_classes, get_settings(), what=limit_what)
        outside = [
            v
            for v in dataset.unique(label_column)
            if v is not None and not -1 <= v < len(feature.names)
        ]
        if outside:
            raise BadInputError(
                f"{limit_what} holds class ids {sorted(outside)[:10]} outside its "
                f"{len(feature.names)} class names"
            )
        return dataset, [str(name) for name in feature.names]
    if not isinstance(feature, datasets.Value) or feature.dtype not in _LABEL_DTYPES:
        kind = feature.dtype if isinstance(feature, datasets.Value) else type(feature).__name__
        raise BadInputError(
            f"{limit_what} holds {kind} values; a label is one class per row: a class name "
            "(text) or a whole-number class id"
        )
    values = [v for v in dataset.unique(label_column) if not _missing(v)]
    check_label_count(len(values), get_settings(), what=limit_what)
    if any(isinstance(v, str) for v in values):
        class_names = sorted({str(v) for v in values})
        lookup: dict[Any, int] = {name: index for index, name in enumerate(class_names)}
        key = str
    else:
        if any(isinstance(v, float) and not float(v).is_integer() for v in values):
            raise BadInputError(
                f"label column {label_column!r} holds numbers that are not class ids "
                "(fractions); give integer or string labels"
            )
        ids = sorted({int(v) for v in values if int(v) >= 0})
        class_names = [str(v) for v in ids]
        lookup = {v: index for index, v in enumerate(ids)}
        key = int  # type: ignore[assignment]
    return (
        dataset.map(
            lambda batch: {
                label_column: [
                    -1 if _missing(v) else lookup.get(key(v), -1) for v in batch[label_column]
                ]
            },
            batched=True,
            features=datasets.Features({**dataset.features, label_column: datasets.Value("int64")}),
        ),
        class_names,
    )


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
