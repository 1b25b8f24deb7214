"""What a submitted folder holds, checked before anything reads it for real.

Every file a folder's files name (a symlink's target, an index's weight shards, a saved
dataset's arrow files and split folders, an imagefolder's metadata, an image ``path`` in a
parquet or arrow file, a Hub dataset card's data files) must lie inside the submitted folder
(a Hub dataset's: inside its snapshot, its links inside its repository's blobs), so a
submission can never make a worker read what lies outside. Configs and weight headers are
read with bounds before anything allocates. Messages name the file inside the folder that is
wrong, never anything outside.

Here: the path rules, the folder walk and bounded JSON that both kinds of folder share; a
model's files are checked in ``model_files``, a dataset's in ``dataset_files``. Light: no torch.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evalboard.errors import BadInputError, RefusedError
from evalboard.settings import Settings

# A config larger than this is not a config (a 100,000-label id2label is about 4 MB).
MAX_JSON_BYTES = 32 * 2**20


def is_inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def inside_any(path: Path, roots: Sequence[Path]) -> Path | None:
    """The first of ``roots`` that ``path`` lies inside, or None."""
    return next((root for root in roots if is_inside(path, root)), None)


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


def check_links(folder: Path, roots: Sequence[Path], *, what: str) -> None:
    """Every entry under ``folder`` is a file or a folder, and every link leads, by its first
    hop and in the end, inside one of ``roots``; no link's target outside is ever opened."""
    real_roots = [real_path(root) for root in roots]

    def unreadable(error: OSError) -> None:
        raise BadInputError(f"{what} has an entry that cannot be read: {error.strerror}")

    for directory, subdirectories, files in os.walk(folder, onerror=unreadable):
        for name in (*subdirectories, *files):
            entry = Path(directory) / name
            relative = printable(entry.relative_to(folder))
            info = entry.lstat()
            if stat.S_ISLNK(info.st_mode):
                first_hop = Path(os.path.normpath(entry.parent / os.readlink(entry)))
                target = real_path(entry)
                if inside_any(first_hop, [*roots, *real_roots]) is None or (
                    inside_any(target, real_roots) is None
                ):
                    raise RefusedError(
                        f"{what} holds a link {shown(relative)} that points outside it; links "
                        "may only point inside the dataset"
                    )
                try:
                    info = entry.stat()
                except OSError as error:
                    kind = "a symlink loop" if error.errno == errno.ELOOP else "a link to nothing"
                    raise BadInputError(f"{what} holds {kind} at {shown(relative)}") from None
            if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
                raise BadInputError(
                    f"{what} holds {shown(relative)}, which is neither a file nor a folder "
                    "(a FIFO, socket or device)"
                )


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


def read_text(path: Path, *, what: str, encoding: str = "utf-8") -> str:
    """A small text file read with bounds: size and encoding; every failure is ``bad_input``."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_JSON_BYTES + 1)
    except OSError as error:
        raise BadInputError(f"{what} cannot be read: {error.strerror}") from None
    if len(raw) > MAX_JSON_BYTES:
        raise BadInputError(f"{what} is larger than {MAX_JSON_BYTES} bytes")
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as error:
        raise BadInputError(f"{what} is not UTF-8 text (byte {error.start})") from None


def load_json(path: Path, *, what: str) -> Any:
    """A JSON file read with bounds: size, UTF-8, nesting; every failure is ``bad_input``."""
    text = read_text(path, what=what)
    try:
        return json.loads(text)
    except RecursionError:
        raise BadInputError(f"{what} is nested too deeply to be a config") from None
    except ValueError as error:
        raise BadInputError(f"{what} is not valid JSON: {error}") from None


def json_object(path: Path, *, what: str) -> dict[str, Any]:
    """A bounded JSON file (``load_json``) that must hold an object."""
    value = load_json(path, what=what)
    if not isinstance(value, dict):
        raise BadInputError(f"{what} is not a JSON object")
    return value


def named_file(
    folder: Path, name: object, root: Path, *, what: str, link_roots: Sequence[Path] = ()
) -> Path:
    """The file that ``name`` (relative to ``folder``) names; it must lie inside ``root`` (or,
    through a link, inside one of ``link_roots``: a Hub snapshot's blobs), in the content hash
    (not hidden), and be a regular file or folder."""
    if not isinstance(name, str) or not name or "\x00" in name:
        raise BadInputError(f"{what} names a file by something that is not a file name")
    written = Path(name)
    if written.is_absolute() or ".." in written.parts:
        raise RefusedError(
            f"{what} names {shown(name)}, which is not a plain relative name inside the folder"
        )
    target = real_path(folder / written)
    home = inside_any(target, [root, *link_roots])
    if home is None:
        raise RefusedError(f"{what} names {shown(name)}, which leads outside the folder")
    if is_hidden(target.relative_to(home)):
        raise RefusedError(f"{what} names a hidden file {shown(name)}, outside the content hash")
    if not target.exists():
        raise BadInputError(f"{what} names {shown(name)}, which is not in the folder")
    return target
