"""The leaderboard at scale: 100,000 results over 2,000 models and 20 dataset/split pairs.

Fills a fresh database (SQLite, PostgreSQL or both) through the real migrations, with every
metric row of the spec present (7 per result), then times, over views picked in turn:

- baseline: the naive shape (every result of the view's metric as ORM objects, newest per model
  kept in Python), measured in the same run;
- board: the leaderboard query and the ranking (``db.leaderboard.build_board``);
- page: the dashboard's data load for one page (``db.board_page.board_page``: board, filters'
  options, the page's 50 rows with every metric, the charts' points);
- export: every row with every metric (``evalboard leaderboard --format json``).

    python benchmarks/bench_leaderboard.py [--backend sqlite|postgresql|both]
        [--results 100000] [--models 2000] [--views 20] [--repeat 30]

PostgreSQL: a throwaway database is made through EVALBOARD_TEST_POSTGRES_URL (default
postgresql://postgres@127.0.0.1:5432/postgres) and dropped afterwards.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert, select  # noqa: E402

from db.board_page import board_page  # noqa: E402
from db.board_rows import leaderboard_rows  # noqa: E402
from db.identity import columns_key  # noqa: E402
from db.leaderboard import board_view, build_board  # noqa: E402
from db.migrate import upgrade  # noqa: E402
from db.models import DatasetRef, ModelRef, Result, Submission  # noqa: E402
from db.session import dispose_engines, get_engine, session_scope  # noqa: E402
from evalboard import catalog  # noqa: E402

SPEC = catalog.default_spec(catalog.IMAGE_CLASSIFICATION)
CHUNK = 20_000
DEFAULT_COLUMNS = columns_key(SPEC.task, {})  # every result on the default columns' board


@contextmanager
def database(backend: str) -> Iterator[str]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{folder}/board.db"
        return
    import psycopg

    admin = os.environ.get(
        "EVALBOARD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    name = f"evalboard_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    base = admin.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        dispose_engines()
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def fill(url: str, *, results: int, models: int, views: int, seed: int = 0) -> list[tuple]:
    """Insert the board's data with Core bulk inserts; returns the (dataset, split) views."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    datasets = views // 2 or 1
    splits = ["test", "validation"] if views > 1 else ["test"]
    pairs = [(f"/data/dataset-{d}", split) for d in range(datasets) for split in splits][:views]
    architectures = ["ResNetForImageClassification", "ViTForImageClassification",
                     "ConvNextForImageClassification", "SwinForImageClassification"]  # fmt: skip
    with session_scope(url) as session:
        session.execute(insert(DatasetRef), [
            {"id": d + 1, "source": "local", "name": f"/data/dataset-{d}", "config": "default",
             "fingerprint": f"fp-{d}", "created_at": now, "last_seen_at": now}
            for d in range(datasets)
        ])  # fmt: skip
        refs = []
        for m in range(models):
            for revision in range(3):  # a few revisions each: "latest per model" has work to do
                refs.append({
                    "id": m * 3 + revision + 1, "source": "hub" if m % 3 == 0 else "local",
                    "name": f"org-{m % 50}/model-{m}" if m % 3 == 0 else f"/data/models/m{m}",
                    "resolved_revision": f"rev-{m}-{revision}",
                    "created_at": now - timedelta(days=3 - revision),
                    "last_seen_at": now - timedelta(days=3 - revision),
                    "architecture": architectures[m % 4], "parameter_count": 10_000 * (1 + m),
                })  # fmt: skip
        session.execute(insert(ModelRef), refs)
    names = {m: refs[m * 3]["name"] for m in range(models)}
    submissions, metric_rows = [], []
    for i in range(results):
        dataset_name, split = pairs[i % len(pairs)]
        dataset_id = int(dataset_name.rsplit("-", 1)[1]) + 1
        model = rng.randrange(models)
        revision = rng.randrange(3)
        model_id = model * 3 + revision + 1
        created = now - timedelta(days=3 - revision, seconds=rng.randrange(80_000))
        submissions.append({
            "id": i + 1, "kind": "evaluate", "task": SPEC.task,
            "submitter": f"user-{rng.randrange(40)}", "model_id": model_id,
            "dataset_id": dataset_id, "split": split, "column_mapping": {}, "parameters": {},
            "spec_name": SPEC.name, "spec_version": SPEC.version, "trigger": "submitted",
            "state": "succeeded", "progress": 1.0, "attempts": 1, "created_at": created,
            "finished_at": created,
        })  # fmt: skip
        accuracy = rng.random()
        for offset, name in enumerate(SPEC.metrics):
            value = max(0.0, accuracy - 0.01 * offset)
            metric_rows.append({
                "submission_id": i + 1, "model_id": model_id, "model_name": names[model],
                "dataset_id": dataset_id,
                "task": SPEC.task, "split": split, "metric": name, "value": value,
                "higher_is_better": True, "ci_low": max(0.0, value - 0.02),
                "ci_high": min(1.0, value + 0.02), "n_samples": 5000,
                "spec_name": SPEC.name, "spec_version": SPEC.version,
                "model_revision": f"rev-{model}-{revision}",
                "dataset_fingerprint": f"fp-{dataset_id - 1}", "provenance": {},
                "columns_key": DEFAULT_COLUMNS, "created_at": created,
            })  # fmt: skip
    for table, rows in ((Submission, submissions), (Result, metric_rows)):
        for start in range(0, len(rows), CHUNK):
            with session_scope(url) as session:
                session.execute(insert(table), rows[start : start + CHUNK])
    if url.startswith("postgresql"):
        # What autovacuum does to a live database: statistics, and the visibility map that lets
        # the board's covering index answer without visiting the table.
        engine = get_engine(url)
        with engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                "VACUUM ANALYZE"
            )
    else:
        with session_scope(url) as session:
            session.connection().exec_driver_sql("ANALYZE")
    return pairs


def naive(session: Any, dataset: str, split: str) -> int:
    """The baseline: the view's results as ORM objects, newest per model kept in Python."""
    rows = session.scalars(
        select(Result)
        .join(DatasetRef, Result.dataset_id == DatasetRef.id)
        .where(DatasetRef.name == dataset, Result.split == split, Result.metric == "accuracy")
    ).unique()
    newest: dict[str, Any] = {}
    for result in rows:
        name = result.model.name
        if name not in newest or result.created_at > newest[name].created_at:
            newest[name] = result
    return len(sorted(newest.values(), key=lambda r: -r.value))


def timed(function: Callable[[], Any], samples: list[float]) -> Any:
    started = time.perf_counter()
    value = function()
    samples.append((time.perf_counter() - started) * 1000)
    return value


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(url: str, pairs: list[tuple], repeat: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"baseline": [], "board": [], "page": [], "export": []}
    sizes = []
    for dataset, split in pairs:  # a running service has read every view before: warm caches
        with session_scope(url) as session:
            build_board(session, board_view(dataset=dataset, split=split))
    # As the dashboard does once after start-up (dashboard/process.py): what is alive now is
    # out of the collector's reach, so a full collection walks only what a read allocates.
    gc.collect()
    gc.freeze()
    for round_ in range(repeat + 1):  # round 0 is not counted either
        dataset, split = pairs[round_ % len(pairs)]
        view = board_view(dataset=dataset, split=split)
        samples: dict[str, list[float]] = {key: [] for key in times}
        with session_scope(url) as session:
            timed(partial(naive, session, dataset, split), samples["baseline"])
        with session_scope(url) as session:
            board = timed(partial(build_board, session, view), samples["board"])
        with session_scope(url) as session:
            timed(partial(board_page, session, view, page=1), samples["page"])
        with session_scope(url) as session:
            export = partial(leaderboard_rows, session, dataset=dataset, split=split)
            timed(export, samples["export"])
        if round_:
            for key, values in samples.items():
                times[key].extend(values)
            sizes.append(len(board.entries))
    print(f"  rows per view (models ranked or stale): median {statistics.median(sizes):.0f}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--results", type=int, default=100_000)
    parser.add_argument("--models", type=int, default=2_000)
    parser.add_argument("--views", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    print(f"{args.results:,} results × {len(SPEC.metrics)} metric rows over {args.models:,} "
          f"models and {args.views} dataset/split pairs; {args.repeat} rounds")  # fmt: skip
    for backend in backends:
        with database(backend) as url:
            upgrade(url)
            started = time.perf_counter()
            pairs = fill(url, results=args.results, models=args.models, views=args.views)
            print(f"{backend}: filled in {time.perf_counter() - started:.0f} s")
            times = measure(url, pairs, args.repeat)
            base = statistics.median(times["baseline"])
            for key, samples in times.items():
                p50, p95 = percentile(samples, 0.5), percentile(samples, 0.95)
                print(f"  {key:9s} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  "
                      f"({base / p50:5.1f}× the baseline's speed at p50)")  # fmt: skip
            dispose_engines()


if __name__ == "__main__":
    main()
