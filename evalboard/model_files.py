"""A model folder's files, read with bounds before anything loads them: configs (no custom
code), labels, processor image sizes, the weight index and safetensors headers, and whether
the classifier head fits the labels. Light: no torch, no transformers."""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evalboard.contents import gigabytes, json_object, named_file, printable, shown
from evalboard.errors import BadInputError, RefusedError
from evalboard.settings import Settings

# safetensors refuses headers over 100,000,000 bytes itself; so do we, before reading one.
MAX_SAFETENSORS_HEADER = 100_000_000
# Bits per element of every dtype safetensors knows.
SAFETENSORS_DTYPE_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "F4": 4,
    "F6_E2M3": 6, "F6_E3M2": 6, "I16": 16, "U16": 16, "F16": 16, "BF16": 16, "I32": 32,
    "U32": 32, "F32": 32, "C64": 64, "I64": 64, "U64": 64, "F64": 64,
}  # fmt: skip
PROCESSOR_CONFIGS = ("preprocessor_config.json", "processor_config.json")
# Keys of a processor config whose numbers are image sides in pixels (size, crop_size,
# shortest_edge, longest_edge, height, width, pad_size, size_divisor, ...).
_SIDE_WORDS = ("size", "edge", "height", "width")
# These must be at least one pixel: a zero side is no image.
_POSITIVE_SIDES = frozenset(
    {"size", "crop_size", "height", "width", "shortest_edge", "longest_edge"}
)
_LABEL_ID = re.compile(r"[0-9]{1,9}")
_LABEL_SEPARATORS = re.compile(r"[\s_\-]+")
# Groups of colliding labels a message spells out; the rest are counted.
_COLLISIONS_SHOWN = 5


def check_model_files(folder: Path, settings: Settings, *, root: Path | None = None) -> None:
    """Configs, labels, processor sizes, weight index and safetensors headers of a model
    folder, within the settings' bounds (``root`` bounds links: the folder by default)."""
    root = root or folder
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise BadInputError(f"model folder {str(folder)!r} has no config.json")
    config = json_object(config_path, what="model config.json")
    if config.get("auto_map"):
        raise RefusedError(
            "model config has 'auto_map': it needs custom code, which evalboard never runs"
        )
    n_labels = check_model_labels(config, settings)
    for name in PROCESSOR_CONFIGS:
        if (folder / name).is_file():
            processor = json_object(folder / name, what=f"model {name}")
            if processor.get("auto_map"):
                raise RefusedError(
                    f"model {name} has 'auto_map': it needs custom code, which evalboard never runs"
                )
            check_processor_sizes(processor, settings, what=f"model {name}")
    shards: set[Path] = set()
    for index in sorted(folder.glob("*.safetensors.index.json")):
        shards.update(_index_shards(index, folder, root))
    weights = sorted(shards | {p for p in folder.glob("*.safetensors") if p.is_file()})
    tensors: dict[str, list[int]] = {}
    declared = 0
    for file in weights:
        header = read_safetensors_header(file, what=f"model weights {printable(file.name)}")
        declared += header.data_bytes
        check_weight_bytes(declared, settings)
        tensors.update(header.shapes)
    if n_labels is not None:
        check_head(n_labels, tensors)


def _index_shards(index: Path, folder: Path, root: Path) -> set[Path]:
    what = f"model {printable(index.name)}"
    weight_map = json_object(index, what=what).get("weight_map")
    if not isinstance(weight_map, dict):
        raise BadInputError(f"{what} has no 'weight_map' object")
    shards = set()
    for name in weight_map.values():
        if not isinstance(name, str):
            raise BadInputError(f"{what} maps a tensor to something that is not a file name")
        shard = named_file(folder, name, root, what=what)
        if not shard.name.endswith(".safetensors") or not shard.is_file():
            raise BadInputError(
                f"{what} names {shown(str(name))}, which is not a .safetensors file"
            )
        shards.add(shard)
    return shards


def check_model_labels(config: dict[str, Any], settings: Settings) -> int | None:
    """The number of labels ``config`` declares (None: it declares none), after checking that
    ``id2label`` maps the ids 0…n-1 to names, agrees with ``num_labels`` and is within bounds."""
    what = "model config.json"
    num_labels = config.get("num_labels")
    if num_labels is not None:
        if isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 1:
            raise BadInputError(f"{what}: num_labels must be a whole number ≥ 1")
        check_label_count(num_labels, settings, what=what)
    id2label = config.get("id2label")
    if id2label is None:
        return num_labels
    if not isinstance(id2label, dict) or not id2label:
        raise BadInputError(f"{what}: id2label must be an object of label ids to names")
    check_label_count(len(id2label), settings, what=what)
    ids = set()
    for key, name in id2label.items():
        if not _LABEL_ID.fullmatch(key):
            raise BadInputError(f"{what}: id2label has a key {shown(key)}, not a label id 0, 1, …")
        if isinstance(name, bool) or not isinstance(name, str | int):
            raise BadInputError(f"{what}: id2label maps {key} to {type(name).__name__}, not a name")
        ids.add(int(key))
    if ids != set(range(len(id2label))):
        raise BadInputError(f"{what}: id2label's ids must be 0 to {len(id2label) - 1}, each once")
    if num_labels is not None and num_labels != len(id2label):
        raise BadInputError(
            f"{what}: num_labels is {num_labels} but id2label names {len(id2label)} labels"
        )
    if not isinstance(config.get("label2id", {}), dict):
        raise BadInputError(f"{what}: label2id must be an object of names to label ids")
    return len(id2label)


def check_hub_model_labels(repo_id: str, revision: str, settings: Settings) -> None:
    """A Hub model's labels at submit, where its config.json at ``revision`` is in the local
    Hub cache; the worker checks them again on the files it loads."""
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(repo_id, "config.json", revision=revision)
    if isinstance(cached, str):
        check_model_labels(json_object(Path(cached), what="model config.json"), settings)


def normalize_label(name: object) -> str:
    """A label as names are matched: in Unicode compatibility form (NFKC), case-folded, each
    run of whitespace, ``_`` and ``-`` one space, stripped. NFKC rather than NFC: it also
    joins full-width, ligature and other compatibility spellings that read as one name; any
    two labels that it joins are refused as ambiguous (``check_distinct_labels``), never
    silently merged."""
    text = unicodedata.normalize("NFKC", str(name))
    # Case folding can leave text out of normal form (a "ǰ" folds to j + caron).
    text = unicodedata.normalize("NFKC", text.casefold())
    return _LABEL_SEPARATORS.sub(" ", text).strip()


def label_collisions(names: Sequence[object], only: set[str] | None = None) -> list[list[int]]:
    """The indices of ``names`` that are one name once normalized, by groups of two or more
    (with ``only``: the groups whose normalized name is in it)."""
    groups: dict[str, list[int]] = {}
    for index, name in enumerate(names):
        groups.setdefault(normalize_label(name), []).append(index)
    return [
        indices
        for key, indices in groups.items()
        if len(indices) > 1 and (only is None or key in only)
    ]


def shown_label(name: object) -> str:
    """A label quoted for a message, with whatever could hide a difference escaped (controls,
    format characters, combining marks, unusual spaces)."""
    from evalboard.output import distinct_text

    return f"'{distinct_text(name)}'"


class AmbiguousLabelsError(BadInputError):
    """Two labels that a match by name would need to tell apart are one name."""


def check_distinct_labels(
    names: Sequence[object], *, what: str, unit: str, only: set[str] | None = None
) -> None:
    """Refuse ``names`` of which two are one name once normalized (``normalize_label``):
    labels are matched by name, so either could be the one meant. ``unit`` names a position
    ("output", "class") in the message; ``only`` limits the check to these normalized names."""
    collisions = label_collisions(names, only)
    if not collisions:
        return
    described = []
    for indices in collisions[:_COLLISIONS_SHOWN]:
        spellings = {str(names[i]) for i in indices}
        positions = ", ".join(str(i) for i in indices[:-1]) + f" and {indices[-1]}"
        if len(spellings) == 1:
            described.append(f"{shown_label(names[indices[0]])} at {unit}s {positions}")
        else:
            described.append(" and ".join(f"{shown_label(names[i])} ({unit} {i})" for i in indices))
    more = len(collisions) - _COLLISIONS_SHOWN
    raise AmbiguousLabelsError(
        f"ambiguous labels in {what}: {'; '.join(described)}"
        + (f"; and {more} more" if more > 0 else "")
        + ". Labels are matched by name, ignoring case, spaces, '_', '-' and Unicode form, so "
        "either could be the one meant: give each a distinct name"
    )


def label_columns(
    model_labels: Sequence[object], class_names: Sequence[object]
) -> list[int | None]:
    """For each dataset class, the model output of its name (None: the model has none).

    Names match once normalized. The same list in the same order matches by position, repeats
    included (ImageNet-1k names "crane" twice). Otherwise two class names that are one name,
    or a class whose name two outputs carry, is refused by name (``AmbiguousLabelsError``); a
    repeated model label that no class asks for is harmless.
    """
    model_keys = [normalize_label(label) for label in model_labels]
    class_keys = [normalize_label(name) for name in class_names]
    if model_keys == class_keys:
        return list(range(len(class_keys)))
    check_distinct_labels(class_names, what="the dataset's class names", unit="class")
    check_distinct_labels(
        model_labels, what="model config.json's id2label", unit="output", only=set(class_keys)
    )
    outputs = {key: index for index, key in enumerate(model_keys)}
    return [outputs.get(key) for key in class_keys]


def model_label_names(config: dict[str, Any]) -> list[str] | None:
    """A checked config's id2label names in output order (None: it names none)."""
    id2label = config.get("id2label")
    if not isinstance(id2label, dict) or not id2label:
        return None
    return [str(id2label[str(i)]) for i in range(len(id2label))]


def submitted_model_labels(source: str, name: str, revision: str | None) -> list[str] | None:
    """The id2label names of a model at submit: a local folder's config.json, or a Hub
    model's where its config.json at ``revision`` is in the local Hub cache."""
    if source == "hub":
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(name, "config.json", revision=revision)
        path = Path(cached) if isinstance(cached, str) else None
    else:
        path = Path(name) / "config.json"
    if path is None or not path.is_file():
        return None
    return model_label_names(json_object(path, what="model config.json"))


def check_label_count(count: int, settings: Settings, *, what: str) -> None:
    if count > settings.max_labels:
        raise BadInputError(
            f"{what} has {count} labels, over the limit of {settings.max_labels} "
            "(EVALBOARD_MAX_LABELS)"
        )


def check_processor_sizes(processor: dict[str, Any], settings: Settings, *, what: str) -> None:
    """Every image side a processor config declares (size, crop_size, shortest_edge, …) is a
    number of pixels from 1 to the limit: a resize to a million pixels a side never starts."""
    limit = settings.max_image_side
    stack: list[tuple[str, Any, bool]] = [("", processor, False)]
    while stack:
        key, value, is_side = stack.pop()
        if isinstance(value, dict):
            for name, inner in value.items():
                side = is_side or any(word in name.lower() for word in _SIDE_WORDS)
                stack.append((f"{key}.{name}" if key else name, inner, side))
        elif isinstance(value, list):
            stack.extend((key, inner, is_side) for inner in value)
        elif is_side and isinstance(value, int | float) and not isinstance(value, bool):
            smallest = 1 if key.rsplit(".", 1)[-1] in _POSITIVE_SIDES else 0
            if not math.isfinite(value) or not smallest <= value <= limit:
                raise BadInputError(
                    f"{what}: {printable(key)} is {value}, not an image side from {smallest} "
                    f"to the limit of {limit} pixels (EVALBOARD_MAX_IMAGE_SIDE)"
                )


class SafetensorsHeader:
    """What a safetensors file declares: its tensors' shapes and the bytes they take."""

    def __init__(self, shapes: dict[str, list[int]], data_bytes: int) -> None:
        self.shapes = shapes
        self.data_bytes = data_bytes


def read_safetensors_header(file: Path, *, what: str) -> SafetensorsHeader:
    """Read only the 8-byte length and the JSON header, both bounded, and check that the
    declared tensors tile the data exactly, as safetensors itself requires."""
    try:
        size = file.stat().st_size
        with file.open("rb") as handle:
            prefix = handle.read(8)
            length = int.from_bytes(prefix, "little") if len(prefix) == 8 else -1
            if length < 0:
                raise BadInputError(f"{what} is too short to be a safetensors file")
            if length > MAX_SAFETENSORS_HEADER:
                raise BadInputError(
                    f"{what} declares a {length}-byte header, over safetensors' own limit of "
                    f"{MAX_SAFETENSORS_HEADER}"
                )
            if 8 + length > size:
                raise BadInputError(f"{what} declares a header longer than the file")
            raw = handle.read(length)
    except OSError as error:
        raise BadInputError(f"{what} cannot be read: {error.strerror}") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):
        raise BadInputError(f"{what} has a malformed header (not UTF-8 JSON)") from None
    if not isinstance(header, dict):
        raise BadInputError(f"{what} has a malformed header (not a JSON object)")
    data_bytes = size - 8 - length
    shapes: dict[str, list[int]] = {}
    spans: list[tuple[int, int, str]] = []
    for name, info in header.items():
        if name == "__metadata__":
            if info is not None and not isinstance(info, dict):
                raise BadInputError(f"{what} has a malformed header (__metadata__)")
            continue
        shape, begin, end = _tensor_entry(name, info, data_bytes, what=what)
        shapes[name] = shape
        spans.append((begin, end, name))
    position = 0
    for begin, end, name in sorted(spans):
        if begin != position:
            raise BadInputError(
                f"{what} has a malformed header: tensor {shown(name)} does not start where the "
                "previous one ends"
            )
        position = end
    if position != data_bytes:
        raise BadInputError(
            f"{what} has a malformed header: its tensors take {position} bytes, the file holds "
            f"{data_bytes}"
        )
    return SafetensorsHeader(shapes, data_bytes)


def _tensor_entry(
    name: str, info: object, data_bytes: int, *, what: str
) -> tuple[list[int], int, int]:
    malformed = f"{what} has a malformed header: tensor {shown(name)}"
    if not isinstance(info, dict):
        raise BadInputError(f"{malformed} is not an object")
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if dtype not in SAFETENSORS_DTYPE_BITS:
        raise BadInputError(f"{malformed} has an unknown dtype")
    if not isinstance(shape, list) or not all(_natural(d) for d in shape):
        raise BadInputError(f"{malformed} has a shape that is not a list of sizes")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(_natural(o) for o in offsets)
        or not offsets[0] <= offsets[1] <= data_bytes
    ):
        raise BadInputError(f"{malformed} has data offsets outside the file")
    bits = SAFETENSORS_DTYPE_BITS[str(dtype)]
    elements = 1
    for dimension in shape:
        elements *= dimension
        if elements * bits > 8 * data_bytes:
            raise BadInputError(f"{malformed} declares more bytes than the file holds")
    if elements * bits != 8 * (offsets[1] - offsets[0]):
        raise BadInputError(f"{malformed}: its shape and dtype do not match its data offsets")
    return list(shape), offsets[0], offsets[1]


def _natural(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_weight_bytes(declared: int, settings: Settings, *, what: str = "model weights") -> None:
    if declared > settings.max_weight_bytes:
        raise BadInputError(
            f"{what} take {gigabytes(declared)}, over the limit of "
            f"{gigabytes(settings.max_weight_bytes)} "
            f"(EVALBOARD_MAX_WEIGHT_BYTES={settings.max_weight_bytes})"
        )


def check_head(n_labels: int, tensors: dict[str, list[int]]) -> None:
    """The classification head's output size must be the number of labels the config names.

    The head is found by its name (``classifier``, as transformers' image classifiers call it);
    a model that names it otherwise is checked by the worker against the model its config
    builds."""
    outputs: dict[str, int] = {}
    for name, shape in tensors.items():
        parts = name.split(".")
        if len(parts) > 1 and any("classifier" in part for part in parts[:-1]):
            if (parts[-1] == "bias" and len(shape) == 1) or (
                parts[-1] == "weight" and len(shape) == 2
            ):
                outputs[name] = shape[0]
    if outputs and n_labels not in outputs.values():
        name = max(outputs)
        raise BadInputError(
            f"model config.json names {n_labels} labels (id2label/num_labels) but its "
            f"classification head {printable(name)} has {outputs[name]} outputs"
        )
