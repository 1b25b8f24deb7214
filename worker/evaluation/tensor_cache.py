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
- The images file is written through a memory map, and a memory-mapped write on a full disk
  kills the process with SIGBUS: its blocks are reserved first (``posix_fallocate``), leaving a
  margin free for the database beside it. When they cannot be, the evaluation runs without the
  cache. A writer holds a lock on its temporary folder while it lives, so the folder of a dead
  writer (killed, out of space) is recognised and removed by the next open, write or eviction.
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

from evalboard.errors import is_no_space

FORMAT = 1
# A writer's folder without a lock file (an older writer's) untouched this long is dead.
STALE_TEMPORARY_S = 6 * 3600
WRITING = ".writing"  # in a writer's folder: locked (flock) for as long as the writer lives
# What an entry must leave free on its disk (the SQLite database may live beside it): this
# share of the disk, at most MARGIN_MAX_BYTES.
MARGIN_SHARE = 0.05
MARGIN_MAX_BYTES = 1 << 30
_verified: set[tuple[str, int, int]] = set()


class NoSpace(Exception):
    """The disk cannot hold the entry: the evaluation goes on without the cache."""


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


def _reserve(path: Path, size: int) -> None:
    """Allocate the file's blocks now, so that writing through its memory map cannot meet a
    full disk; raises the OSError of a disk that cannot hold them."""
    descriptor = os.open(path, os.O_RDWR)
    try:
        try:
            os.posix_fallocate(descriptor, 0, size)
        except OSError as error:
            if is_no_space(error):
                raise
            # A filesystem without fallocate (EINVAL, EOPNOTSUPP): write the blocks instead.
            block = bytes(1 << 22)
            os.lseek(descriptor, 0, os.SEEK_SET)
            for start in range(0, size, len(block)):
                os.write(descriptor, block[: min(len(block), size - start)])
            os.fsync(descriptor)
    finally:
        os.close(descriptor)


class Writer:
    """Fills a new entry batch by batch; ``finish`` publishes it, ``abort`` drops it."""

    def __init__(self, cache: TensorCache, key: str, count: int, shape: tuple[int, ...]) -> None:
        self.cache = cache
        self.key = key
        self.folder = cache.root / f"tmp-{key[:16]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.folder.mkdir(parents=True)
        self._lock: int | None = None
        try:
            # Held until this process ends: the folder's owner is alive while it is locked.
            # Locked under another name first, so nobody finds it unlocked.
            unnamed = self.folder / f"{WRITING}-{uuid.uuid4().hex[:8]}"
            self._lock = os.open(unnamed, os.O_WRONLY | os.O_CREAT, 0o600)
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.rename(unnamed, self.folder / WRITING)
            # The header is written and the file sized (sparse); its blocks are reserved
            # before the first image is written through the map.
            self.images = np.lib.format.open_memmap(
                self.folder / "images.npy", mode="w+", dtype=np.uint8, shape=(count, *shape)
            )
            _reserve(self.folder / "images.npy", (self.folder / "images.npy").stat().st_size)
        except OSError as error:
            self.abort()
            if is_no_space(error):
                raise NoSpace(str(error)) from error
            raise
        self.labels = np.zeros(count, dtype=np.int64)
        self.filled = 0

    def add(self, images: np.ndarray, labels: np.ndarray) -> None:
        end = self.filled + len(images)
        self.images[self.filled : end] = images
        self.labels[self.filled : end] = labels
        self.filled = end

    def finish(self, meta: dict[str, Any]) -> bool:
        """Publish the entry; False when it was dropped instead. Its first ``count`` images are
        the readable ones (unreadable images leave unused rows at the end of the file). A disk
        too full for the last small files drops the entry: the evaluation has its images."""
        count = self.filled
        try:
            self.images.flush()
            del self.images
            np.save(self.folder / "labels.npy", self.labels[:count])
            files = {
                name: {
                    "bytes": (self.folder / name).stat().st_size,
                    "crc32": _crc(self.folder / name),
                }
                for name in ("images.npy", "labels.npy")
            }
            document = {"format": FORMAT, "count": count, "files": files,
                        "created": time.time(), **meta}  # fmt: skip
            (self.folder / "meta.json").write_text(json.dumps(document))
        except OSError as error:
            self.abort()
            if is_no_space(error):
                self.cache.skipped = "no space"
                return False
            raise
        (self.folder / WRITING).unlink(missing_ok=True)
        target = self.cache.root / self.key
        try:
            self.folder.rename(target)
        except OSError:  # another writer published the same entry first: keep theirs
            self.abort()
            return True
        self._unlock()
        _touch(target / "used")
        for name in files:  # checksummed just now: this process need not read them again
            stat = (target / name).stat()
            _verified.add((str(target / name), stat.st_mtime_ns, stat.st_size))
        self.cache.evict(keep=self.key)
        return True

    def abort(self) -> None:
        if hasattr(self, "images"):
            del self.images  # unmapped before its file goes
        shutil.rmtree(self.folder, ignore_errors=True)
        self._unlock()

    def _unlock(self) -> None:
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None


def _touch(path: Path) -> None:
    """Mark an entry used; a full disk may refuse even that, which costs only LRU order."""
    try:
        path.touch()
    except OSError:
        pass


def _dead_writer(folder: Path, now: float) -> bool:
    """Whether a writer's temporary folder belongs to a process that is gone."""
    try:
        descriptor = os.open(folder / WRITING, os.O_RDONLY)
    except FileNotFoundError:
        try:  # a folder without a lock file: dead once untouched for long
            return now - folder.stat().st_mtime > STALE_TEMPORARY_S
        except OSError:
            return False
    except OSError:
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return False  # its writer holds the lock: alive
    finally:
        os.close(descriptor)
    return True


class TensorCache:
    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.skipped = "off"  # why the last ``writer`` gave none: "off" | "no space"

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def open(self, key: str) -> Entry | None:
        """The entry for ``key`` if it is complete and intact; a damaged one is removed."""
        folder = self.root / key
        if not self.enabled:
            return None
        self.remove_dead_writers()
        if not (folder / "meta.json").is_file():
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
        _touch(folder / "used")
        return Entry(folder, images, labels, meta)

    def writer(self, key: str, count: int, shape: tuple[int, ...]) -> Writer | None:
        """A writer for a new entry; None when the cache is off, or the entry cannot fit under
        the cap or on the disk (``skipped`` then says why)."""
        size = count * int(np.prod(shape))
        self.skipped = "off"
        if not self.enabled or size > self.max_bytes:
            return None
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self.remove_dead_writers()
            disk = shutil.disk_usage(self.root)
            if disk.free - size < min(MARGIN_MAX_BYTES, disk.total * MARGIN_SHARE):
                raise NoSpace(f"{size} bytes do not fit in the {disk.free} free on the disk")
            return Writer(self, key, count, shape)
        except NoSpace:
            self.skipped = "no space"
            return None
        except OSError as error:
            if not is_no_space(error):
                raise
            self.skipped = "no space"
            return None

    def remove_dead_writers(self) -> list[str]:
        """Remove the temporary folders of writers that are gone; returns their names."""
        removed: list[str] = []
        now = time.time()
        try:
            folders = [f for f in self.root.iterdir() if f.name.startswith("tmp-")]
        except OSError:
            return removed
        for folder in folders:
            if folder.is_dir() and _dead_writer(folder, now):
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder.name)
        return removed

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
        try:
            with self._locked():
                self.remove_dead_writers()
                return self._evict_unlocked(keep)
        except OSError as error:  # a disk too full for even the lock file: evict next time
            if is_no_space(error):
                return []
            raise

    def _evict_unlocked(self, keep: str | None) -> list[str]:
        removed = []
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
