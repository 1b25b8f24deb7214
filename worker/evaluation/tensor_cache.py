"""The preprocessed-tensor cache: a split's images after stage 1 (uint8, memory-mapped).

Keyed by (dataset fingerprint, config, split, columns, preprocessing plan, spec name and
version), so ten models that share a processor decode and resize the images once. Entries
live under ``EVALBOARD_HOME/cache/tensors`` and are shared by ``evalboard evaluate`` and every
worker on the machine.

- An entry is written in a private temporary folder and renamed into place when complete, so
  nobody ever reads a partial entry; when two workers write the same entry, the first rename
  wins and the other's copy is dropped.
- Its ``meta.json`` records the sizes and a CRC-32 of every file; an entry that does not match
  (a killed writer's leftovers, a truncated or altered file) is removed and rebuilt, never
  trusted. The check runs once per process and entry.
- The cache is capped (``EVALBOARD_CACHE_MAX_GB``): least-recently-used entries are evicted,
  under a file lock, after each write.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import time
import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = 1
STALE_TEMPORARY_S = 6 * 3600  # a writer's folder untouched this long belongs to a dead writer
_verified: set[tuple[str, int, int]] = set()


def cache_key(**parts: Any) -> str:
    text = json.dumps({"format": FORMAT, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _crc(path: Path) -> int:
    value = 0
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            value = zlib.crc32(block, value)
    return value


@dataclass
class Entry:
    """A complete, verified entry: memory-mapped images and their labels."""

    path: Path
    images: np.ndarray  # uint8 [N, 3, H, W], read-only memory map
    labels: np.ndarray  # int64 [N]
    meta: dict[str, Any]


class Writer:
    """Fills a new entry batch by batch; ``finish`` publishes it, ``abort`` drops it."""

    def __init__(self, cache: TensorCache, key: str, count: int, shape: tuple[int, ...]) -> None:
        self.cache = cache
        self.key = key
        self.folder = cache.root / f"tmp-{key[:16]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.folder.mkdir(parents=True)
        self.images = np.lib.format.open_memmap(
            self.folder / "images.npy", mode="w+", dtype=np.uint8, shape=(count, *shape)
        )
        self.labels = np.zeros(count, dtype=np.int64)
        self.filled = 0

    def add(self, images: np.ndarray, labels: np.ndarray) -> None:
        end = self.filled + len(images)
        self.images[self.filled : end] = images
        self.labels[self.filled : end] = labels
        self.filled = end

    def finish(self, meta: dict[str, Any]) -> None:
        """Publish the entry. Its first ``count`` images are the readable ones (unreadable
        images leave unused rows at the end of the file)."""
        count = self.filled
        self.images.flush()
        del self.images
        np.save(self.folder / "labels.npy", self.labels[:count])
        files = {
            name: {"bytes": (self.folder / name).stat().st_size, "crc32": _crc(self.folder / name)}
            for name in ("images.npy", "labels.npy")
        }
        document = {"format": FORMAT, "count": count, "files": files, "created": time.time(),
                    **meta}  # fmt: skip
        (self.folder / "meta.json").write_text(json.dumps(document))
        target = self.cache.root / self.key
        try:
            self.folder.rename(target)
        except OSError:  # another writer published the same entry first: keep theirs
            shutil.rmtree(self.folder, ignore_errors=True)
            return
        (target / "used").touch()
        for name in files:  # checksummed just now: this process need not read them again
            stat = (target / name).stat()
            _verified.add((str(target / name), stat.st_mtime_ns, stat.st_size))
        self.cache.evict(keep=self.key)

    def abort(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


class TensorCache:
    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def open(self, key: str) -> Entry | None:
        """The entry for ``key`` if it is complete and intact; a damaged one is removed."""
        folder = self.root / key
        if not self.enabled or not (folder / "meta.json").is_file():
            return None
        try:
            meta = json.loads((folder / "meta.json").read_text())
            for name, expected in meta["files"].items():
                stat = (folder / name).stat()
                if stat.st_size != expected["bytes"]:
                    raise ValueError(f"{name} has {stat.st_size} bytes, not {expected['bytes']}")
                marker = (str(folder / name), stat.st_mtime_ns, stat.st_size)
                if marker not in _verified:
                    if _crc(folder / name) != expected["crc32"]:
                        raise ValueError(f"{name} does not match its checksum")
                    _verified.add(marker)
            # Copy-on-write: torch takes the pages as they are (it refuses read-only arrays),
            # and nothing written to them could reach the file.
            images = np.load(folder / "images.npy", mmap_mode="c")[: meta["count"]]
            labels = np.load(folder / "labels.npy")
            if len(images) != meta["count"] or len(labels) != meta["count"]:
                raise ValueError("counts do not match")
        except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError):
            shutil.rmtree(folder, ignore_errors=True)
            return None
        (folder / "used").touch()
        return Entry(folder, images, labels, meta)

    def writer(self, key: str, count: int, shape: tuple[int, ...]) -> Writer | None:
        """A writer for a new entry; None when the cache is off or the entry cannot fit."""
        size = count * int(np.prod(shape))
        if not self.enabled or size > self.max_bytes:
            return None
        self.root.mkdir(parents=True, exist_ok=True)
        return Writer(self, key, count, shape)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def entries(self) -> list[tuple[float, int, Path]]:
        """(last used, bytes, folder) of every published entry."""
        found = []
        for folder in self.root.iterdir() if self.root.is_dir() else []:
            if folder.name.startswith("tmp-") or not folder.is_dir():
                continue
            try:
                used = (folder / "used").stat().st_mtime
                size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
            except OSError:
                continue
            found.append((used, size, folder))
        return found

    def evict(self, keep: str | None = None) -> list[str]:
        """Remove least-recently-used entries until the cache fits its cap (and dead writers'
        leftovers); returns the keys removed."""
        removed = []
        with self._locked():
            now = time.time()
            for folder in self.root.iterdir():
                if folder.name.startswith("tmp-"):
                    try:
                        if now - folder.stat().st_mtime > STALE_TEMPORARY_S:
                            shutil.rmtree(folder, ignore_errors=True)
                    except OSError:
                        pass
            entries = sorted(self.entries())
            total = sum(size for _, size, _ in entries)
            for _, size, folder in entries:
                if total <= self.max_bytes:
                    break
                if folder.name == keep:
                    continue
                shutil.rmtree(folder, ignore_errors=True)
                total -= size
                removed.append(folder.name)
        return removed


def default_cache() -> TensorCache:
    from evalboard.settings import get_settings

    settings = get_settings()
    return TensorCache(settings.home / "cache" / "tensors", int(settings.cache_max_gb * 1024**3))
