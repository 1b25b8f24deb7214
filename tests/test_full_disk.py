"""A full disk: the tensor cache steps aside, every no-space error is `resources`, nothing is
left behind, the admin secret survives, and the worker goes on once space returns.

EVALBOARD_HOME (and, where a test says so, HF_HOME) lies on a real 60 MB tmpfs filled to leave
3 MiB, as in the report; on the embedded deployment the SQLite database is there too.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests import conftest, factories, servers
from tests.conftest import DigitsData
from tests.servers import Backend
from tests.test_end_to_end import evalboard

SMALL_DISK = "60m"
LEFT_FREE = 3 * 2**20


@pytest.fixture()
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 60 MB filesystem (tmpfs), unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.fail(
            "the full-disk tests mount a 60 MB tmpfs, which needs root (CI runs as root): "
            "run them as root, or inside `unshare -rm`"
        )
    mount = tmp_path / "small-disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SMALL_DISK}", "tmpfs", str(mount)],
                   check=True)  # fmt: skip
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture(params=["embedded", "production"])
def backend(
    request: pytest.FixtureRequest,
    small_disk: Path,
    monkeypatch: pytest.MonkeyPatch,
    data_root: Path,
) -> Iterator[Backend]:
    """conftest's two deployments, with EVALBOARD_HOME on the small disk (and so, embedded,
    the SQLite database and broker; production keeps them on PostgreSQL and Redis)."""
    home = small_disk / "home"
    if request.param == "embedded":
        conftest._activate(monkeypatch, home, data_root)
        from evalboard.settings import get_settings

        settings = get_settings()
        yield Backend("embedded", str(settings.database_url), str(settings.broker_url))
        conftest._deactivate()
        return
    with servers.postgres_database() as database_url, servers.redis_database() as broker_url:
        conftest._activate(monkeypatch, home, data_root, database_url=database_url,
                           broker_url=broker_url)  # fmt: skip
        yield Backend("production", database_url, broker_url)
        conftest._deactivate()


@pytest.fixture(scope="session")
def resnet_64px(data_root: Path) -> Path:
    """A processor at 64×64: the digits' train split is then 1438 × 12 KiB = 17 MiB of cache."""
    return factories.make_resnet(data_root / "resnet-64px-full-disk", image_size=64)


@pytest.fixture(scope="session")
def noise_parquet(data_root: Path) -> Path:
    """400 random 96×96 RGB PNGs (11 MB of parquet): more than 3 MiB once datasets caches it."""
    rng = np.random.default_rng(0)
    from PIL import Image

    images = [Image.fromarray(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8))
              for _ in range(400)]  # fmt: skip
    return factories.write_image_parquet(
        data_root / "noise-parquet", {"test": (images, [i % 10 for i in range(400)])}
    )


class Filler:
    """Takes a disk's free space down to ``leave`` bytes; ``release`` gives it back."""

    def __init__(self, disk: Path) -> None:
        self.disk = disk
        self.files: list[Path] = []

    def fill(self, leave: int) -> None:
        path = self.disk / f"filler-{uuid.uuid4().hex[:8]}"
        self.files.append(path)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            take = shutil.disk_usage(self.disk).free - leave
            if take > 0:
                os.posix_fallocate(descriptor, 0, take)
            if leave == 0:  # the last blocks, to the byte (unbuffered: nothing left to flush)
                os.lseek(descriptor, 0, os.SEEK_END)
                try:
                    while True:
                        os.write(descriptor, b"\0" * 4096)
                except OSError:
                    pass
        finally:
            os.close(descriptor)
        assert shutil.disk_usage(self.disk).free <= leave + 64 * 1024

    def release(self) -> None:
        for path in self.files:
            path.unlink(missing_ok=True)
        self.files.clear()


@pytest.fixture()
def filler(small_disk: Path) -> Iterator[Filler]:
    filled = Filler(small_disk)
    yield filled
    filled.release()


def temporaries(home: Path) -> list[str]:
    root = home / "cache" / "tensors"
    return [p.name for p in root.iterdir() if p.name.startswith("tmp-")] if root.is_dir() else []


def report_of(completed: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert completed.returncode >= 0, f"killed by signal {-completed.returncode}"
    assert "Traceback" not in completed.stderr, completed.stderr
    assert completed.stdout, completed.stderr
    report: dict[str, Any] = json.loads(completed.stdout)
    return report


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)
def test_evaluate_on_a_full_disk_runs_without_the_cache_and_leaves_no_temporaries(
    backend: Backend, small_disk: Path, filler: Filler, resnet_64px: Path, digits: DigitsData
) -> None:
    home = small_disk / "home"
    filler.fill(LEFT_FREE)
    args = ("evaluate", "--model", str(resnet_64px), "--dataset", str(digits.parquet),
            "--split", "train", "--json")  # fmt: skip
    cramped = report_of(evalboard(*args))
    assert cramped["state"] == "succeeded", cramped
    # The entry (17 MiB) cannot be reserved in 3 MiB: the evaluation goes on without it.
    assert cramped["provenance"]["tensor_cache"] == "no space"
    assert cramped["n_samples"] == 1438
    assert temporaries(home) == []
    assert shutil.disk_usage(small_disk).free >= LEFT_FREE - 512 * 1024  # nothing kept

    filler.release()
    roomy = report_of(evalboard(*args))
    assert roomy["provenance"]["tensor_cache"] == "written"
    assert roomy["metrics"] == cramped["metrics"]  # the same numbers, cache or not
    assert temporaries(home) == []


def test_a_worker_on_a_full_disk_names_the_failure_and_takes_the_next_once_space_returns(
    backend: Backend,
    start_worker: Callable[..., servers.Worker],
    small_disk: Path,
    filler: Filler,
    monkeypatch: pytest.MonkeyPatch,
    resnet_64px: Path,
    noise_parquet: Path,
    digits: DigitsData,
) -> None:
    home = small_disk / "home"
    # The worker's Hugging Face cache (datasets' Arrow files) is on the small disk too.
    monkeypatch.setenv("HF_HOME", str(small_disk / "hf"))
    worker = start_worker()
    filler.fill(LEFT_FREE)

    cramped = report_of(evalboard(
        "submit", "--model", str(resnet_64px), "--dataset", str(digits.parquet),
        "--split", "train", "--wait", "--json",
    ))  # fmt: skip
    assert cramped["state"] == "succeeded", cramped
    assert cramped["provenance"]["tensor_cache"] == "no space"

    # 11 MB of images do not fit in datasets' cache: named, and the worker lives on.
    noise = ("submit", "--model", str(resnet_64px), "--dataset", str(noise_parquet), "--wait",
             "--json")  # fmt: skip
    full = report_of(evalboard(*noise))
    assert full["state"] == "failed", full
    assert full["error"]["category"] == "resources", full["error"]
    assert "no space left on device" in full["error"]["message"]
    assert "EVALBOARD_CACHE_MAX_GB" in full["error"]["message"]
    assert worker.process.poll() is None
    assert temporaries(home) == []
    assert "Signal 7" not in worker.log() and "SIGBUS" not in worker.log()

    filler.release()
    started = time.monotonic()
    again = report_of(evalboard(*noise))  # a failed submission is no duplicate: run again
    assert again["state"] == "succeeded", again
    assert again["submission_id"] != full["submission_id"]
    assert again["provenance"]["tensor_cache"] == "written"
    assert time.monotonic() - started < 240
    assert temporaries(home) == []


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)
def test_a_failure_is_recorded_once_the_database_disk_has_room_again(
    backend: Backend, small_disk: Path, filler: Filler, digits: DigitsData, resnet_64px: Path
) -> None:
    """SQLite beside the cache cannot record the failure while the disk is full: the job
    keeps trying, and the submission ends `failed` with `resources`, not stuck `running`."""
    from db import submissions as queries
    from db.session import dispose_engines, session_scope
    from worker import jobs

    queued = report_of(evalboard("submit", "--model", str(resnet_64px), "--dataset",
                                 str(digits.parquet), "--json"))  # fmt: skip
    submission_id = queued["submission_id"]
    attempt = jobs.claim(submission_id)
    assert attempt is not None
    dispose_engines()  # no open connection: SQLite must grow its files to write
    filler.fill(0)
    threading.Timer(4.0, filler.release).start()
    started = time.monotonic()
    jobs.record_failure(
        submission_id,
        OSError(28, "No space left on device", str(small_disk / "home" / "cache")),
        what="evaluation", limit=60, attempt=attempt,
    )  # fmt: skip
    assert time.monotonic() - started >= 3.5  # it waited for the space
    with session_scope() as session:
        submission = queries.get_submission(session, submission_id)
        assert submission is not None
        assert (submission.state, submission.failure_category) == ("failed", "resources")
        assert "no space left on device under" in str(submission.failure_message)


def test_status_on_a_full_disk_answers_in_words_and_the_admin_secret_survives(
    backend: Backend, small_disk: Path, filler: Filler, digits: DigitsData, resnet_64px: Path
) -> None:
    home = small_disk / "home"
    secret = home / "admin_secret"
    queued = report_of(evalboard("submit", "--model", str(resnet_64px), "--dataset",
                                 str(digits.parquet), "--json"))  # fmt: skip
    secret.unlink(missing_ok=True)
    filler.fill(0)

    for args in (("status", str(queued["submission_id"])), ("token", "list")):
        completed = evalboard(*args)
        assert completed.returncode >= 0
        assert "Traceback" not in completed.stderr, completed.stderr
        if completed.returncode == 0:  # the database could still be read
            assert args[0] != "status" or "queued" in completed.stdout
        else:
            assert "error [resources]: no space left on device" in completed.stderr, (
                completed.stderr
            )
        assert not secret.exists() or len(secret.read_text().strip()) >= 16  # never 0 bytes

    filler.release()
    listed = evalboard("token", "list")
    assert listed.returncode == 0, listed.stderr
    kept = secret.read_text()
    assert len(kept.strip()) >= 16
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert [p.name for p in home.iterdir() if p.name.startswith(".admin_secret")] == []

    # The leftover of the old bug, a 0-byte secret, is replaced, and admin commands work.
    secret.write_bytes(b"")
    issued = evalboard("token", "issue", "bob")
    assert issued.returncode == 0, issued.stderr
    assert "token 1 for bob" in issued.stdout
    assert len(secret.read_text().strip()) >= 16
    assert evalboard("token", "list").returncode == 0


def test_a_writer_killed_while_reserving_leaves_nothing_that_outlives_it(
    tmp_path: Path,
) -> None:
    """A dead writer's folder is removed at the next open, write or eviction; a live one's
    is kept."""
    from worker.evaluation.tensor_cache import TensorCache, cache_key

    root = tmp_path / "tensors"
    script = (
        "import os, signal\n"
        "from pathlib import Path\n"
        "from worker.evaluation.tensor_cache import TensorCache\n"
        f"writer = TensorCache(Path({str(root)!r}), 1 << 30).writer('d' * 64, 100, (3, 8, 8))\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    completed = subprocess.run([sys.executable, "-c", script], cwd=conftest.ROOT, timeout=120)
    assert completed.returncode == -signal.SIGKILL
    assert [p.name[:4] for p in root.iterdir() if p.is_dir()] == ["tmp-"]
    cache = TensorCache(root, 1 << 30)
    alive = cache.writer(cache_key(name="alive"), 10, (3, 4, 4))
    assert alive is not None
    assert [p.name[:4] for p in root.iterdir() if p.is_dir()] == ["tmp-"]  # only the live one
    assert alive.folder.is_dir()
    cache.evict()
    assert alive.folder.is_dir()  # its writer holds the lock: kept
    alive.add(np.ones((10, 3, 4, 4), np.uint8), np.arange(10))
    assert alive.finish({"bad_images": []})
    assert [p.name for p in root.iterdir() if p.is_dir()] == [cache_key(name="alive")]
