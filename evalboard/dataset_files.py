"""Every file a dataset's own files name lies inside the dataset: a saved dataset's split
folders and arrow files, an imagefolder's metadata ``file_name`` and every image ``path`` in a
parquet or arrow table (a Hub dataset's card: ``hub_dataset_files``). Light: pyarrow only,
imported when a dataset is scanned."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalboard.contents import is_hidden, is_inside, json_object, named_file, printable, real_path
from evalboard.errors import BadInputError, RefusedError

if TYPE_CHECKING:
    import pyarrow as pa

METADATA_FILES = ("metadata.csv", "metadata.jsonl", "metadata.parquet")


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
                check_metadata_file(file, root)


def _visible(root: Path, paths: Iterable[Path]) -> list[Path]:
    return sorted(p for p in paths if p.is_file() and not is_hidden(p.relative_to(root)))


def saved_dataset_files(path: Path) -> list[Path]:
    """The arrow files a ``save_to_disk`` folder names, each checked to lie inside it."""
    folders = [path]
    if (path / "dataset_dict.json").is_file():
        what = "dataset_dict.json"
        splits = json_object(path / "dataset_dict.json", what=what).get("splits")
        if not isinstance(splits, list) or not splits:
            raise BadInputError(f"{what} has no list of 'splits'")
        folders = [named_file(path, split, path, what=what) for split in splits]
    files = []
    for folder in folders:
        what = printable(folder.relative_to(path) / "state.json")
        if not (folder / "state.json").is_file():
            raise BadInputError(f"saved dataset has no {what}")
        entries = json_object(folder / "state.json", what=what).get("_data_files")
        if not isinstance(entries, list) or not entries:
            raise BadInputError(f"{what} has no list of '_data_files'")
        for entry in entries:
            name = entry.get("filename") if isinstance(entry, dict) else None
            files.append(named_file(folder, name, path, what=what))
    return files


def check_metadata_file(file: Path, root: Path, link_roots: Sequence[Path] = ()) -> None:
    """Every ``file_name`` (``*_file_name``, and each of ``file_names``, ``*_file_names``) an
    imagefolder metadata table names lies inside ``root`` (through a link: in ``link_roots``)."""
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
        lists = column == "file_names" or column.endswith("_file_names")
        if lists or column == "file_name" or column.endswith("_file_name"):
            for row, value in enumerate(table.column(column).to_pylist()):
                where = f"{what} row {row} ({printable(column)})"
                for name in value if lists and isinstance(value, list) else [value]:
                    named_file(
                        file.parent, name, real_path(root), what=where, link_roots=link_roots
                    )


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
