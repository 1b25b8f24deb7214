"""A trained model folder as zip bytes for the download button, built once per folder state."""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

# (relative path, size, mtime_ns) of every file: changes whenever the folder's content does.
FolderSignature = tuple[tuple[str, int, int], ...]


def model_files(folder: Path) -> list[Path]:
    """The regular files inside ``folder``, sorted; symlinks are skipped so none lead outside."""
    root = folder.resolve()
    files: list[Path] = []
    for directory, subdirectories, names in os.walk(root, followlinks=False):
        subdirectories.sort()
        for name in sorted(names):
            path = Path(directory) / name
            if path.is_symlink() or not path.is_file():
                continue
            if not path.resolve().is_relative_to(root):
                continue
            files.append(path)
    return files


def folder_signature(folder: Path) -> FolderSignature:
    """What the cache is keyed on besides the path: each file's name, size and mtime."""
    root = folder.resolve()
    signature = []
    for path in model_files(root):
        stat = path.stat()
        signature.append((path.relative_to(root).as_posix(), stat.st_size, stat.st_mtime_ns))
    return tuple(signature)


# Small: a model zip can be hundreds of MB and only the newest few are asked for again.
@lru_cache(maxsize=2)
def zip_folder(folder: str, signature: FolderSignature) -> bytes:
    """The files of ``signature`` inside ``folder`` as a zip archive (stored under their names)."""
    root = Path(folder)
    buffer = io.BytesIO()
    # Weights barely compress; storing them keeps a click fast.
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for relative, _size, _mtime in signature:
            archive.write(root / relative, arcname=relative)
    return buffer.getvalue()


def model_zip(folder: Path) -> bytes:
    """The current content of ``folder`` as zip bytes, from the cache when unchanged."""
    root = folder.resolve()
    return zip_folder(str(root), folder_signature(root))


def model_zip_later(folder: Path) -> Callable[[], bytes]:
    """A no-argument callable for st.download_button: zips only when someone clicks."""
    return lambda: model_zip(folder)
