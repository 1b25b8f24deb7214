"""What a submitted folder holds, checked before anything reads it for real.

Every file a folder's files name (a symlink's target, an index's weight shards, a saved
dataset's arrow files and split folders, an imagefolder's metadata, an image ``path`` in a
parquet or arrow file) must lie inside the submitted folder, so a submission can never make a
worker read what lies outside. Configs and weight headers are read with bounds before anything
allocates. Messages name the file inside the folder that is wrong, never anything outside.
Light: no torch, no datasets (pyarrow only, imported when a dataset is scanned).
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import stat
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalboard.errors import BadInputError, RefusedError
from evalboard.settings import Settings

if TYPE_CHECKING:
    import pyarrow as pa

# A config larger than this is not a config (a 100,000-label id2label is about 4 MB).
MAX_JSON_BYTES = 32 * 2**20
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
METADATA_FILES = ("metadata.csv", "metadata.jsonl", "metadata.parquet")


def is_inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def real_path(path: Path | str) -> Path:
    """The path with every symlink resolved; never raises (a loop stays unresolved)."""
    return Path(os.path.realpath(path))


def is_hidden(relative: Path) -> bool:
    """Hidden files and folders are not part of a content hash (caches, lock files)."""
    return any(part.startswith(".") for part in relative.parts)


def gigabytes(size: int) -> str:
    return f"{size / 2**30:.2f} GiB"


def shown(value: str, limit: int = 120) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "…")


def printable(value: object) -> str:
    """Text safe to store and show: what is not UTF-8 (a file name's bytes, a lone surrogate
    from JSON) and NUL bytes, which no database column takes, are escaped."""
    text = str(value).encode("utf-8", "backslashreplace").decode("utf-8")
    return text.replace("\x00", "\\x00")


# ---- the folder itself: links, special files, bytes ---------------------------------------


def check_folder(folder: Path, settings: Settings, *, what: str, root: Path | None = None) -> int:
    """Refuse links that lead outside ``root`` (the folder itself by default), link loops,
    special files, and more bytes than a submission may hash; returns the bytes to hash."""
    root = root or folder
    total = 0

    def unreadable(error: OSError) -> None:
        raise BadInputError(f"{what} folder has an entry that cannot be read: {error.strerror}")

    for directory, subdirectories, files in os.walk(folder, onerror=unreadable):
        for name in (*subdirectories, *files):
            entry = Path(directory) / name
            relative = entry.relative_to(folder)
            info = _entry_stat(entry, relative, root, what=what)
            if stat.S_ISREG(info.st_mode):
                if not is_hidden(relative):
                    total += info.st_size
            elif not stat.S_ISDIR(info.st_mode):
                raise BadInputError(
                    f"{what} folder holds {str(relative)!r}, which is neither a file nor a folder "
                    "(a FIFO, socket or device)"
                )
    check_hash_bytes(total, settings, what=what)
    return total


def _entry_stat(entry: Path, relative: Path, root: Path, *, what: str) -> os.stat_result:
    info = entry.lstat()
    if not stat.S_ISLNK(info.st_mode):
        return info
    # Where the link says it goes (its first hop) and where it leads: both inside.
    first_hop = Path(os.path.normpath(entry.parent / os.readlink(entry)))
    target = real_path(entry)
    if not is_inside(first_hop, root) or not is_inside(target, root):
        raise RefusedError(
            f"{what} folder holds a link {str(relative)!r} that points outside the {what} "
            "folder; links may only point inside it"
        )
    if is_hidden(target.relative_to(root)):
        raise RefusedError(
            f"{what} folder holds a link {str(relative)!r} to a hidden file, which is not part "
            "of its content hash"
        )
    try:
        return entry.stat()
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise BadInputError(
                f"{what} folder holds a symlink loop at {str(relative)!r}"
            ) from None
        raise BadInputError(f"{what} folder holds a link {str(relative)!r} to nothing") from None


def check_file(file: Path, settings: Settings, *, what: str) -> int:
    """A submitted single file: a regular file no larger than what a submission may hash."""
    info = file.stat()
    if not stat.S_ISREG(info.st_mode):
        raise BadInputError(f"{what} path is neither a regular file nor a folder")
    check_hash_bytes(info.st_size, settings, what=what)
    return info.st_size


def check_hash_bytes(total: int, settings: Settings, *, what: str) -> None:
    if total > settings.max_hash_bytes:
        raise BadInputError(
            f"{what} holds {gigabytes(total)}, over the limit of "
            f"{gigabytes(settings.max_hash_bytes)} hashed at submit "
            f"(EVALBOARD_MAX_HASH_BYTES={settings.max_hash_bytes})"
        )


def load_json(path: Path, *, what: str) -> Any:
    """A JSON file read with bounds: size, UTF-8, nesting; every failure is ``bad_input``."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_JSON_BYTES + 1)
    except OSError as error:
        raise BadInputError(f"{what} cannot be read: {error.strerror}") from None
    if len(raw) > MAX_JSON_BYTES:
        raise BadInputError(f"{what} is larger than {MAX_JSON_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BadInputError(f"{what} is not UTF-8 text (byte {error.start})") from None
    try:
        return json.loads(text)
    except RecursionError:
        raise BadInputError(f"{what} is nested too deeply to be a config") from None
    except ValueError as error:
        raise BadInputError(f"{what} is not valid JSON: {error}") from None


def _json_object(path: Path, *, what: str) -> dict[str, Any]:
    value = load_json(path, what=what)
    if not isinstance(value, dict):
        raise BadInputError(f"{what} is not a JSON object")
    return value


def named_file(folder: Path, name: object, root: Path, *, what: str) -> Path:
    """The file that ``name`` (relative to ``folder``) names; it must lie inside ``root``, in
    the content hash (not hidden), and be a regular file or folder."""
    if not isinstance(name, str) or not name or "\x00" in name:
        raise BadInputError(f"{what} names a file by something that is not a file name")
    written = Path(name)
    if written.is_absolute() or ".." in written.parts:
        raise RefusedError(
            f"{what} names {shown(name)}, which is not a plain relative name inside the folder"
        )
    target = real_path(folder / written)
    if not is_inside(target, root):
        raise RefusedError(f"{what} names {shown(name)}, which leads outside the folder")
    if is_hidden(target.relative_to(root)):
        raise RefusedError(f"{what} names a hidden file {shown(name)}, outside the content hash")
    if not target.exists():
        raise BadInputError(f"{what} names {shown(name)}, which is not in the folder")
    return target


# ---- models ----------------------------------------------------------------------------------


def check_model_files(folder: Path, settings: Settings, *, root: Path | None = None) -> None:
    """Configs, labels, processor sizes, weight index and safetensors headers of a model
    folder, within the settings' bounds (``root`` bounds links: the folder by default)."""
    root = root or folder
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise BadInputError(f"model folder {str(folder)!r} has no config.json")
    config = _json_object(config_path, what="model config.json")
    if config.get("auto_map"):
        raise RefusedError(
            "model config has 'auto_map': it needs custom code, which evalboard never runs"
        )
    n_labels = check_model_labels(config, settings)
    for name in PROCESSOR_CONFIGS:
        if (folder / name).is_file():
            processor = _json_object(folder / name, what=f"model {name}")
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
    weight_map = _json_object(index, what=what).get("weight_map")
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


# ---- datasets --------------------------------------------------------------------------------


def check_dataset_files(
    path: Path, local_format: str, *, image_columns: Sequence[str] = (), structs: bool = True
) -> None:
    """Every file the dataset's own files name lies inside it: a saved dataset's split folders
    and arrow files, an imagefolder's metadata ``file_name``, and every image ``path`` (where
    no bytes are embedded) in its parquet or arrow files, in image structs (``structs``) and in
    the string columns given as ``image_columns`` (they are cast to images)."""
    root = path
    if local_format == "save_to_disk":
        files = saved_dataset_files(path)
        for file in files:
            _check_table_paths(file, root, "arrow", image_columns, structs)
    elif local_format == "parquet":
        parquet = [path] if path.is_file() else _visible(path, path.rglob("*.parquet"))
        for file in parquet:
            _check_table_paths(file, root, "parquet", image_columns, structs)
    elif path.is_dir():
        for name in METADATA_FILES:
            for file in _visible(path, path.rglob(name)):
                _check_metadata_file(file, root)


def _visible(root: Path, paths: Iterable[Path]) -> list[Path]:
    return sorted(p for p in paths if p.is_file() and not is_hidden(p.relative_to(root)))


def saved_dataset_files(path: Path) -> list[Path]:
    """The arrow files a ``save_to_disk`` folder names, each checked to lie inside it."""
    folders = [path]
    if (path / "dataset_dict.json").is_file():
        what = "dataset_dict.json"
        splits = _json_object(path / "dataset_dict.json", what=what).get("splits")
        if not isinstance(splits, list) or not splits:
            raise BadInputError(f"{what} has no list of 'splits'")
        folders = [named_file(path, split, path, what=what) for split in splits]
    files = []
    for folder in folders:
        what = printable(folder.relative_to(path) / "state.json")
        if not (folder / "state.json").is_file():
            raise BadInputError(f"saved dataset has no {what}")
        entries = _json_object(folder / "state.json", what=what).get("_data_files")
        if not isinstance(entries, list) or not entries:
            raise BadInputError(f"{what} has no list of '_data_files'")
        for entry in entries:
            name = entry.get("filename") if isinstance(entry, dict) else None
            files.append(named_file(folder, name, path, what=what))
    return files


def _check_metadata_file(file: Path, root: Path) -> None:
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.json as pa_json
    import pyarrow.parquet as pq

    what = printable(file.relative_to(root))
    try:
        if file.suffix == ".csv":
            table = pa_csv.read_csv(file)
        elif file.suffix == ".jsonl":
            table = pa_json.read_json(file)
        else:
            table = pq.read_table(file)
    except (pa.ArrowException, OSError, ValueError) as error:
        raise BadInputError(f"{what} cannot be read as a table: {printable(error)}") from None
    for column in table.column_names:
        if column == "file_name" or column.endswith("_file_name"):
            for row, name in enumerate(table.column(column).to_pylist()):
                where = f"{what} row {row} ({printable(column)})"
                named_file(file.parent, name, root, what=where)


def _is_image_struct(kind: pa.DataType) -> bool:
    import pyarrow as pa

    if not pa.types.is_struct(kind):
        return False
    names = {kind.field(i).name for i in range(kind.num_fields)}
    return {"bytes", "path"} <= names


def _path_columns(schema: pa.Schema, image_columns: Sequence[str], structs: bool) -> list[str]:
    import pyarrow as pa

    columns = []
    for field in schema:
        if structs and _is_image_struct(field.type):
            columns.append(field.name)
        elif field.name in image_columns and (
            pa.types.is_string(field.type) or pa.types.is_large_string(field.type)
        ):
            columns.append(field.name)
    return columns


def _check_table_paths(
    file: Path, root: Path, kind: str, image_columns: Sequence[str], structs: bool
) -> None:
    import pyarrow as pa

    what = printable(file.relative_to(root) if file != root else file.name)
    try:
        for column, first_row, values in _path_batches(file, kind, image_columns, structs):
            check_image_paths(
                values, [root], what=f"{what}, column {column!r}", first_row=first_row
            )
    except (pa.ArrowException, OSError) as error:
        raise BadInputError(f"{what} is not a readable {kind} file: {printable(error)}") from None


def _path_batches(
    file: Path, kind: str, image_columns: Sequence[str], structs: bool
) -> Iterator[tuple[str, int, pa.Array | pa.ChunkedArray]]:
    """(column, first row, values) of every column that may name image files, batch by batch;
    parquet row groups whose statistics say every image has bytes are not even read."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if kind == "parquet":
        parquet = pq.ParquetFile(file)
        columns = _path_columns(parquet.schema_arrow, image_columns, structs)
        first_row = 0
        for index in range(parquet.metadata.num_row_groups if columns else 0):
            group = parquet.metadata.row_group(index)
            wanted = [c for c in columns if not _all_bytes_embedded(group, c)]
            if wanted:
                table = parquet.read_row_group(index, columns=wanted)
                for column in wanted:
                    yield column, first_row, table.column(column)
            first_row += group.num_rows
        return
    with pa.memory_map(str(file)) as source:
        reader = pa.ipc.open_stream(source)
        columns = _path_columns(reader.schema, image_columns, structs)
        first_row = 0
        for batch in reader:
            for column in columns:
                yield column, first_row, batch.column(column)
            first_row += batch.num_rows


def _all_bytes_embedded(group: Any, column: str) -> bool:
    for index in range(group.num_columns):
        chunk = group.column(index)
        if chunk.path_in_schema == f"{column}.bytes":
            statistics = chunk.statistics
            return bool(statistics is not None and statistics.has_null_count and
                        statistics.null_count == 0)  # fmt: skip
    return False


def check_image_paths(
    values: pa.Array | pa.ChunkedArray, roots: Sequence[Path], *, what: str, first_row: int = 0
) -> None:
    """Each image that is read from a path (no bytes embedded) names an absolute path inside
    one of ``roots``, by what is written and by where its links lead, and not a hidden file."""
    import pyarrow as pa
    import pyarrow.compute as pc

    chunks = values.chunks if isinstance(values, pa.ChunkedArray) else [values]
    row = first_row
    for chunk in chunks:
        if pa.types.is_struct(chunk.type):
            paths = chunk.field("path")
            # Only images without bytes are read from their path (and only those present).
            named = pc.and_(pc.is_null(chunk.field("bytes")), chunk.is_valid())
        else:
            paths, named = chunk, chunk.is_valid()
        named = pc.and_(named, paths.is_valid())
        for offset in pc.indices_nonzero(named).to_pylist():
            path = paths[offset].as_py()
            _check_image_path(path, roots, what=f"{what} row {row + offset}")
        row += len(chunk)


def _check_image_path(value: str, roots: Sequence[Path], *, what: str) -> None:
    written = Path(value) if "\x00" not in value else Path("x")
    if not written.is_absolute() or ".." in written.parts:
        raise RefusedError(
            f"{what} names an image by a path that is not absolute; images read from a path "
            "must lie inside the dataset folder"
        )
    for root in roots:
        # By what is written first: nothing outside is even looked at.
        if is_inside(written, root) or is_inside(written, real_path(root)):
            real_root = real_path(root)
            target = real_path(written)
            if is_inside(target, real_root) and not is_hidden(target.relative_to(real_root)):
                return
    raise RefusedError(
        f"{what} names an image outside the dataset folder; images read from a path must lie "
        "inside it"
    )
