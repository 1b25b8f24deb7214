"""Shared fixtures: an isolated evalboard home per test, digits datasets, tiny real models."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# No network at test time; caches in a throwaway folder so runs never share leftovers.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_EVALUATE_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="evalboard-hf-"))
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import pytest  # noqa: E402

from tests import factories, servers  # noqa: E402
from tests.servers import Backend  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class DigitsData:
    imagefolder: Path
    parquet: Path
    saved: Path
    root: Path


@dataclass(frozen=True)
class TinyModels:
    vit: Path
    resnet: Path
    trained_resnet: Path
    permuted_resnet: Path  # trained_resnet with outputs and id2label in another order
    root: Path


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
def digits(data_root: Path) -> DigitsData:
    root = data_root / "digits"
    return DigitsData(
        imagefolder=factories.write_digits_imagefolder(root / "imagefolder"),
        parquet=factories.write_digits_parquet(root / "parquet"),
        saved=factories.write_digits_saved(root / "saved"),
        root=root,
    )


@pytest.fixture(scope="session")
def tiny_models(data_root: Path) -> TinyModels:
    root = data_root / "models"
    trained = factories.train_tiny_resnet(root / "trained-resnet")
    return TinyModels(
        vit=factories.make_vit(root / "vit"),
        resnet=factories.make_resnet(root / "resnet"),
        trained_resnet=trained,
        permuted_resnet=factories.permute_labels(
            trained, root / "permuted-resnet", [3, 1, 4, 0, 5, 9, 2, 6, 8, 7]
        ),
        root=root,
    )


@pytest.fixture(autouse=True)
def catalog_unchanged() -> Iterator[None]:
    """The tests' process must keep the built-in spec as the workers know it: a test that
    registers a changed version here would make every later submission a mismatch."""
    from evalboard import catalog

    before = catalog.default_spec(catalog.IMAGE_CLASSIFICATION)
    yield
    assert catalog.default_spec(catalog.IMAGE_CLASSIFICATION) == before, "the catalog changed"


@pytest.fixture()
def fresh_streamlit_caches() -> Iterator[None]:
    """Dashboard tests: cached reads would otherwise leak rows from another test's database."""
    import streamlit as st

    st.cache_data.clear()
    yield
    st.cache_data.clear()


@pytest.fixture()
def served_files(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The media file managers of the AppTest runs, to fetch what a download would serve."""
    from streamlit.runtime.media_file_manager import MediaFileManager
    from streamlit.runtime.media_file_storage import MediaFileStorage
    from streamlit.testing.v1 import app_test as app_test_module

    managers: list[MediaFileManager] = []

    class RecordingMediaFileManager(MediaFileManager):
        def __init__(self, storage: MediaFileStorage) -> None:
            super().__init__(storage)
            managers.append(self)

    monkeypatch.setattr(app_test_module, "MediaFileManager", RecordingMediaFileManager)
    return managers


def _activate(
    monkeypatch: pytest.MonkeyPatch,
    home: Path,
    allowed: Path,
    *,
    database_url: str | None = None,
    broker_url: str | None = None,
) -> None:
    """Point every EVALBOARD_* setting at this test's home and backend, and migrate."""
    from db.migrate import upgrade
    from db.session import dispose_engines
    from evalboard.settings import reset_settings_cache

    home.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("EVALBOARD_HOME", str(home))
    for name, value in (
        ("EVALBOARD_DATABASE_URL", database_url),
        ("EVALBOARD_BROKER_URL", broker_url),
    ):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("EVALBOARD_ALLOWED_PATHS", f"{home},{allowed}")
    monkeypatch.setenv("EVALBOARD_HEARTBEAT_SECONDS", "1")
    reset_settings_cache()
    dispose_engines()
    _reconfigure_celery()
    upgrade()


def _deactivate() -> None:
    from db.session import dispose_engines
    from evalboard.settings import reset_settings_cache

    dispose_engines()
    reset_settings_cache()


@pytest.fixture()
def evalboard_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data_root: Path
) -> Iterator[Path]:
    """A fresh EVALBOARD_HOME with an embedded (SQLite) database migrated to head."""
    home = tmp_path / "home"
    _activate(monkeypatch, home, data_root)
    yield home
    _deactivate()


@pytest.fixture(params=["embedded", "production"])
def backend(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    data_root: Path,
) -> Iterator[Backend]:
    """Both deployments on real parts: SQLite + kombu's SQL transport, PostgreSQL + Redis."""
    home = tmp_path / "home"
    if request.param == "embedded":
        _activate(monkeypatch, home, data_root)
        from evalboard.settings import get_settings

        settings = get_settings()
        yield Backend("embedded", str(settings.database_url), str(settings.broker_url))
        _deactivate()
        return
    with servers.postgres_database() as database_url, servers.redis_database() as broker_url:
        _activate(monkeypatch, home, data_root, database_url=database_url, broker_url=broker_url)
        yield Backend("production", database_url, broker_url)
        _deactivate()


@pytest.fixture()
def start_worker(backend: Backend, tmp_path: Path) -> Iterator[Callable[..., servers.Worker]]:
    """Start real Celery workers on the active backend; all are stopped at teardown."""
    from evalboard.settings import get_settings, subprocess_env

    started: list[servers.Worker] = []

    def start(
        name: str = "w1", queues: str = "eval,train,light", ready: bool = True
    ) -> servers.Worker:
        worker = servers.Worker(
            subprocess_env(get_settings()),
            tmp_path / f"worker-{name}-{len(started)}.log",
            name=f"{name}-{len(started)}",
            queues=queues,
        )
        started.append(worker)
        if ready:
            worker.wait_ready()
        return worker

    yield start
    for worker in started:
        worker.stop()


def _reconfigure_celery() -> None:
    from kombu import pools

    from evalboard.settings import get_settings
    from worker.celery_app import app, configure

    # Forget connections and producers bound to the previous test's broker.
    pools.reset()
    app._pool = None
    app.amqp._producer_pool = None
    configure(app, get_settings())
