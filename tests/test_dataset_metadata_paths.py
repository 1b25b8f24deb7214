"""Every file a dataset's own metadata names lies inside the dataset, whatever the source: a
Hub dataset's card ``configs`` (``data_files``, globs, ``data_dir``, in README.md or
``.huggingface.yaml``), the links of its snapshot in the local Hub cache, its imagefolder
metadata, and what ``datasets`` resolved from them. Refused by name before queueing, again on
the worker before anything is read; no message ever quotes a file outside.

The outside files hold a marker as a column name and as a value: had any been read, a
message or a result would show it (or its 50 rows).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from db.models import Result, Submission
from db.session import session_scope
from evalboard.errors import EvalboardError, FailureCategory
from evalboard.references import ResolvedDataset, resolve_dataset
from evalboard.settings import Settings
from tests import factories, servers
from tests.test_end_to_end import evalboard

MARKER = "evalboard-secret-7f3a"
OUTSIDE_ROWS = 50
_names = itertools.count()


# ---- the outside files and Hub snapshots ------------------------------------------------------


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder outside every allowed folder: digits rows (50), a CSV, an image, a zip, each
    carrying the marker as a column name and as a value."""
    folder = tmp_path_factory.mktemp("outside")
    rows = factories.digits_dataset_dict(limit=OUTSIDE_ROWS)["test"]
    rows = rows.add_column(f"{MARKER}_column", [f"{MARKER}_value"] * OUTSIDE_ROWS)
    rows.to_parquet(str(folder / "secret.parquet"))
    images, _ = factories.digits_images(limit=1)
    images[0].save(folder / "secret.png")
    csv = f"image,label,{MARKER}_column\n{folder / 'secret.png'},0,{MARKER}_value\n"
    (folder / "secret.csv").write_text(csv)
    with zipfile.ZipFile(folder / "secret.zip", "w") as archive:
        archive.writestr("secret.csv", csv)
    (folder / "README.md").write_text(_card(f"{folder}/secret.parquet"))
    return folder


def _card(path: str, *, key: str = "data_files", split: str = "test") -> str:
    """A README whose one config names ``path`` (as ``data_files`` of ``split``, or as
    ``data_dir``)."""
    if key == "data_dir":
        return f"---\nconfigs:\n- config_name: default\n  data_dir: {json.dumps(path)}\n---\n"
    return (
        "---\nconfigs:\n- config_name: default\n  data_files:\n"
        f"  - split: {split}\n    path: {json.dumps(path)}\n---\n"
    )


def _hub_digits(name: str, files: dict[str, str] | None = None) -> tuple[str, Path]:
    """Digits as a cached Hub dataset (``data/<split>-….parquet``); ``files`` added to it."""
    repo_id, commit = factories.cached_hub_dataset(f"{name}-{next(_names)}", files=files)
    return repo_id, _snapshot(repo_id, commit)


def _snapshot(repo_id: str, commit: str) -> Path:
    from huggingface_hub import constants

    repo = Path(constants.HF_HUB_CACHE) / f"datasets--{repo_id.replace('/', '--')}"
    return repo / "snapshots" / commit


def _hub_imagefolder(name: str, rows: int = 12) -> tuple[str, Path]:
    """Digits as a cached Hub imagefolder: ``test/<n>.png`` and ``test/metadata.jsonl``."""
    from huggingface_hub import constants

    repo_name = f"{name}-{next(_names)}"
    commit = hashlib.sha1(repo_name.encode()).hexdigest()
    repo = Path(constants.HF_HUB_CACHE) / f"datasets--evalboard-tests--{repo_name}"
    folder = repo / "snapshots" / commit / "test"
    folder.mkdir(parents=True)
    images, labels = factories.digits_images(limit=rows)
    lines = []
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        image.save(folder / f"{index}.png")
        lines.append(json.dumps({"file_name": f"{index}.png", "label": label}))
    (folder / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    return f"evalboard-tests/{repo_name}", repo / "snapshots" / commit


def _as_blobs(snapshot: Path) -> None:
    """Lay the snapshot out as huggingface_hub writes one: each file a relative link to its
    content in the repository's ``blobs``."""
    blobs = snapshot.parent.parent / "blobs"
    blobs.mkdir(exist_ok=True)
    for file in sorted(p for p in snapshot.rglob("*") if p.is_file() and not p.is_symlink()):
        blob = blobs / hashlib.sha256(file.read_bytes()).hexdigest()
        file.replace(blob)
        file.symlink_to(os.path.relpath(blob, file.parent))


def _relative(target: Path, snapshot: Path) -> str:
    """``target`` written relative to the snapshot: ``../../../…/outside/secret.csv``."""
    return os.path.relpath(target, snapshot)


def _test_split_file(snapshot: Path) -> Path:
    return next((snapshot / "data").glob("test-*.parquet"))


# ---- refused at submit, through the real CLI, before anything is queued -----------------------

# Each builds a cached Hub dataset whose own metadata names a file outside it.
OUTSIDE_CASES: dict[str, Callable[[Path], str]] = {
    "absolute parquet path": lambda o: _hub_digits(
        "abs", {"README.md": _card(f"{o}/secret.parquet")}
    )[0],
    "relative ../ csv path": lambda o: _relative_card(o, "secret.csv"),
    "glob reaching out": lambda o: _relative_card(o, "secret.parquet", glob=True),
    "data_dir reaching out": lambda o: _relative_card(o, "", key="data_dir"),
    "file:// URL": lambda o: _hub_digits("file", {"README.md": _card(f"file://{o}/secret.csv")})[0],
    "hf:// URL of another repository": lambda o: _hub_digits(
        "hf", {"README.md": _card("hf://datasets/someone/else@main/data/test.parquet")}
    )[0],
    "http:// URL": lambda o: _hub_digits(
        "http", {"README.md": _card("http://127.0.0.1:9/secret.parquet")}
    )[0],
    "zip:// chained path": lambda o: _hub_digits(
        "zip", {"README.md": _card(f"zip://secret.csv::{o}/secret.zip")}
    )[0],
    "chained path without a scheme": lambda o: _hub_digits(
        "chain", {"README.md": _card(f"secret.csv::{o}/secret.zip")}
    )[0],
    "home folder": lambda o: _hub_digits("home", {"README.md": _card("~/secret.parquet")})[0],
    "environment variable": lambda o: _hub_digits("var", {"README.md": _card("$HOME/x.parquet")})[
        0
    ],
    ".huggingface.yaml configs": lambda o: _hub_digits(
        "yaml", {".huggingface.yaml": _card(f"{o}/secret.parquet").strip("-\n")}
    )[0],
    "a second config, not the one submitted": lambda o: _hub_digits(
        "second",
        {
            "README.md": "---\nconfigs:\n- config_name: default\n  data_files: data/*.parquet\n"
            f"- config_name: other\n  data_files:\n  - {o}/secret.parquet\n---\n"
        },
    )[0],
    "a link in the snapshot to an outside file": lambda o: _linked(o / "secret.parquet"),
    "a link to another repository's snapshot": lambda o: _linked(
        _test_split_file(_hub_digits("other-repo")[1])
    ),
    "a README that is a link outside": lambda o: _linked(o / "README.md", name="README.md"),
    "a link to an outside folder": lambda o: _linked(o, name="data/more"),
    "metadata.jsonl file_name outside": lambda o: _metadata(
        o, lambda s: _relative(o / "secret.png", s / "test")
    ),
    "metadata.jsonl absolute file_name": lambda o: _metadata(o, lambda s: str(o / "secret.png")),
    "metadata.jsonl file_name through a link": lambda o: _metadata(o, None),
}


def _relative_card(outside: Path, name: str, *, glob: bool = False, key: str = "data_files") -> str:
    repo_id, snapshot = _hub_digits("relative")
    path = _relative(outside / name, snapshot) if name else _relative(outside, snapshot)
    if glob:  # ../../…/*/secret.parquet: the outside folder's name is matched by a glob
        parent, _, _ = path.rpartition("/")
        path = f"{parent.rpartition('/')[0]}/*/{name}"
    (snapshot / "README.md").write_text(_card(path, key=key))
    return repo_id


def _linked(target: Path, *, name: str | None = None) -> str:
    repo_id, snapshot = _hub_digits("linked")
    link = snapshot / name if name else _test_split_file(snapshot)
    if link.exists():
        link.unlink()
    link.symlink_to(target)
    return repo_id


def _metadata(outside: Path, file_name: Callable[[Path], str] | None) -> str:
    """The imagefolder's first row names an outside image: by ``file_name(snapshot)``, or (None)
    by a plain name whose file is a link to it."""
    repo_id, snapshot = _hub_imagefolder("metadata")
    metadata = snapshot / "test" / "metadata.jsonl"
    lines = metadata.read_text().splitlines()
    if file_name is None:
        (snapshot / "test" / "0.png").unlink()
        (snapshot / "test" / "0.png").symlink_to(outside / "secret.png")
    else:
        first = json.loads(lines[0])
        lines[0] = json.dumps({**first, "file_name": file_name(snapshot)})
    metadata.write_text("\n".join(lines) + "\n")
    return repo_id


def _names_the_escape(message: str) -> bool:
    return "outside" in message or "not a plain relative name inside" in message


def _submissions() -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(Submission)) or 0)


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)
@pytest.mark.parametrize("case", list(OUTSIDE_CASES))
def test_a_hub_dataset_naming_a_file_outside_is_refused_before_queueing(
    backend, case: str, outside: Path
) -> None:
    model = factories.cached_hub_model("metadata-paths-resnet")
    dataset = OUTSIDE_CASES[case](outside)
    completed = evalboard("submit", "--model", model, "--dataset", dataset, "--json")
    assert completed.returncode == 2, (completed.stdout, completed.stderr)
    report = json.loads(completed.stdout)
    assert report["submission_id"] is None
    assert report["error"]["category"] == "refused", report["error"]
    assert _names_the_escape(report["error"]["message"]), report["error"]
    assert MARKER not in completed.stdout + completed.stderr
    assert _submissions() == 0


# ---- re-checked on the worker: the cache changed after submit ---------------------------------


def _outside_after_submit(outside: Path) -> dict[str, tuple[str, Callable[[], None]]]:
    """Datasets that are fine at submit, each with the change that makes it name a file
    outside once it is queued."""
    changes: dict[str, tuple[str, Callable[[], None]]] = {}
    absolute, snapshot_a = _hub_digits("later-absolute")
    changes["absolute"] = (
        absolute,
        lambda: (snapshot_a / "README.md").write_text(_card(f"{outside}/secret.parquet")),
    )
    relative, snapshot_r = _hub_digits("later-relative")
    changes["relative"] = (
        relative,
        lambda: (snapshot_r / "README.md").write_text(
            _card(_relative(outside / "secret.csv", snapshot_r))
        ),
    )
    linked, snapshot_l = _hub_digits("later-link")

    def link() -> None:
        _test_split_file(snapshot_l).unlink()
        (snapshot_l / "data" / "test-00000-of-00001.parquet").symlink_to(outside / "secret.parquet")

    changes["link"] = (linked, link)
    images, snapshot_m = _hub_imagefolder("later-metadata")

    def metadata() -> None:
        file = snapshot_m / "test" / "metadata.jsonl"
        lines = file.read_text().splitlines()
        first = json.loads(lines[0])
        lines[0] = json.dumps({**first, "file_name": str(outside / "secret.png")})
        file.write_text("\n".join(lines) + "\n")

    changes["metadata"] = (images, metadata)
    return changes


def _final(ids: list[int]) -> dict[int, dict[str, Any]]:
    def read() -> dict[int, dict[str, Any]]:
        with session_scope() as session:
            rows = session.scalars(select(Submission).where(Submission.id.in_(ids))).all()
            return {
                row.id: {
                    "state": row.state,
                    "category": row.failure_category,
                    "message": row.failure_message or "",
                    "results": [(r.n_samples) for r in row.results],
                }
                for row in rows
            }

    done = ("succeeded", "failed", "cancelled")
    servers.wait_for(
        lambda: all(row["state"] in done for row in read().values()), 400, "submissions end"
    )
    return read()


def test_the_worker_refuses_a_hub_dataset_that_names_a_file_outside_after_submit(
    backend, start_worker, outside: Path
) -> None:
    model = factories.cached_hub_model("metadata-paths-resnet")
    control, _ = _hub_digits("later-control")
    changes = _outside_after_submit(outside)
    ids: dict[str, int] = {}
    for case, (dataset, _) in [*changes.items(), ("control", (control, None))]:
        completed = evalboard("submit", "--model", model, "--dataset", dataset, "--json")
        assert completed.returncode == 0, (completed.stdout, completed.stderr)
        ids[case] = json.loads(completed.stdout)["submission_id"]
    for _, change in changes.values():
        change()
    start_worker()
    final = _final(list(ids.values()))
    for case in changes:
        row = final[ids[case]]
        assert (row["state"], row["category"]) == ("failed", "refused"), (case, row)
        assert _names_the_escape(row["message"]), (case, row)
        assert MARKER not in row["message"]
        assert row["results"] == []
    assert final[ids["control"]]["state"] == "succeeded", final[ids["control"]]
    assert set(final[ids["control"]]["results"]) == {359}
    with session_scope() as session:
        assert session.scalar(select(func.count()).where(Result.n_samples == OUTSIDE_ROWS)) == 0


# ---- in-process: the loader's own check, what is accepted, local folders ----------------------


def test_the_loader_refuses_data_files_that_datasets_resolved_outside(
    evalboard_home: Path, outside: Path
) -> None:
    """The second line, past the card's text: what ``datasets`` resolved is checked before any
    file is read, with a message that names neither the file nor its content."""
    import datasets

    from worker.evaluation.sources import check_builder_files

    repo_id, snapshot = _hub_digits("builder", {"README.md": _card(f"{outside}/secret.parquet")})
    commit = snapshot.name
    builder = datasets.load_dataset_builder(str(snapshot))
    resolved = ResolvedDataset("hub", repo_id, "default", None, commit)
    with pytest.raises(EvalboardError) as failure:
        check_builder_files(builder, resolved, str(snapshot))
    assert failure.value.category == FailureCategory.REFUSED
    assert "resolves outside" in str(failure.value)
    assert str(outside) not in str(failure.value) and MARKER not in str(failure.value)
    # From the Hub, online: only the repository at its commit.
    for files, inside in (
        ([f"hf://datasets/{repo_id}@{commit}/data/test.parquet"], True),
        ([f"hf://datasets/{repo_id}@{commit}/../../other/x@main/t.parquet"], False),
        ([f"hf://datasets/someone/else@{commit}/data/test.parquet"], False),
        ([f"{outside}/secret.parquet"], False),
    ):
        builder.config.data_files = datasets.data_files.DataFilesDict(
            {"test": datasets.data_files.DataFilesList(files, [None] * len(files))}
        )
        online = ResolvedDataset("hub", repo_id, "default", None, commit)
        outcome = _outcome(lambda b=builder, o=online: check_builder_files(b, o, repo_id))
        assert outcome == ("ok" if inside else "refused"), files


def test_a_snapshot_laid_out_with_blobs_as_the_hub_writes_it_loads(evalboard_home: Path) -> None:
    from worker.evaluation.sources import available_splits

    config = Settings(allowed_paths=[evalboard_home])
    repo_id, snapshot = _hub_digits("blobs", {"README.md": _card("data/test-*.parquet")})
    _as_blobs(snapshot)
    assert _test_split_file(snapshot).is_symlink()
    splits = available_splits(resolve_dataset(repo_id, None, None, config))
    assert {name: len(rows) for name, rows in splits.items()} == {"test": 359}

    images, snapshot = _hub_imagefolder("blobs-images")
    _as_blobs(snapshot)
    splits = available_splits(resolve_dataset(images, None, None, config))
    assert {name: len(rows) for name, rows in splits.items()} == {"test": 12}


@pytest.mark.parametrize("card", ["README.md", ".huggingface.yaml"])
def test_a_local_folder_ignores_the_configs_of_its_card(
    evalboard_home: Path, outside: Path, card: str
) -> None:
    from worker.evaluation.sources import available_splits

    folder = factories.write_digits_parquet(evalboard_home / f"local-{card}")
    (folder / card).write_text(_card(f"{outside}/secret.parquet"))
    local = resolve_dataset(str(folder), None, None, Settings(allowed_paths=[evalboard_home]))
    splits = available_splits(local)
    assert {name: len(rows) for name, rows in splits.items()} == {"train": 1438, "test": 359}
    assert all(f"{MARKER}_column" not in rows.column_names for rows in splits.values())


# Every shape ``datasets`` takes for data_files, each naming the outside file in another place.
DATA_FILES_SHAPES = {
    "a path": "data_files: {p}",
    "a list of paths": "data_files:\n  - data/*.parquet\n  - {p}",
    "a split with a list of paths": (
        "data_files:\n  - split: test\n    path:\n    - data/x\n    - {p}"
    ),
    "a mapping of splits": "data_files:\n    test: {p}",
    "a mapping of splits to lists": "data_files:\n    test: [data/x, {p}]",
}


@pytest.mark.parametrize("shape", list(DATA_FILES_SHAPES))
def test_every_shape_of_data_files_is_checked(
    evalboard_home: Path, outside: Path, shape: str
) -> None:
    entry = DATA_FILES_SHAPES[shape].format(p=json.dumps(f"{outside}/secret.parquet"))
    card = f"---\nconfigs:\n- config_name: default\n  {entry}\n---\n"
    repo_id, _ = _hub_digits("shape", {"README.md": card})
    config = Settings(allowed_paths=[evalboard_home])
    assert _outcome(lambda: resolve_dataset(repo_id, None, None, config)) == "refused"


def test_a_malformed_card_is_bad_input_and_names_only_the_card(evalboard_home: Path) -> None:
    config = Settings(allowed_paths=[evalboard_home])
    for card in (
        "---\nconfigs: [a\n---\n",  # not YAML
        "---\nconfigs: data/*.parquet\n---\n",  # not a list
        "---\nconfigs:\n- config_name: x\n  data_files: 3\n---\n",  # not a pattern
        "---\nconfigs:\n- config_name: x\n  data_files:\n  - [[a]]\n---\n",
    ):
        repo_id, _ = _hub_digits("malformed", {"README.md": card})
        assert _outcome(lambda r=repo_id: resolve_dataset(r, None, None, config)) == "bad_input"


def _outcome(call: Callable[[], object]) -> str:
    try:
        call()
    except EvalboardError as error:
        assert error.category != FailureCategory.INTERNAL, error
        assert MARKER not in str(error)
        return error.category.value
    return "ok"


# ---- Hypothesis: a pattern is refused, or datasets' own resolver stays inside the snapshot ----

SEGMENTS = ["data", "*", "**", "..", ".", "test-*.parquet", "secret.parquet", "outside", "~",
            "$HOME", "", "x\\..", "[d]ata", ".?", "*.parquet"]  # fmt: skip
PREFIXES = ["", "/", "./", "file://", "hf://datasets/", "zip://", "local://", "c:", "::"]


@pytest.fixture(scope="module")
def fuzz_snapshot(outside: Path) -> Path:
    from huggingface_hub import constants

    # Beside the Hub cache lies ``outside``'s twin: a pattern that escapes would match it.
    repo_id, snapshot = _hub_digits("fuzz")
    twin = Path(constants.HF_HUB_CACHE).parent / "outside"
    twin.mkdir(exist_ok=True)
    (twin / "secret.parquet").write_bytes((outside / "secret.parquet").read_bytes())
    return snapshot


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    prefix=st.sampled_from(PREFIXES),
    segments=st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=7),
)
def test_a_pattern_is_refused_or_matches_only_files_inside_the_snapshot(
    fuzz_snapshot: Path, prefix: str, segments: list[str]
) -> None:
    from datasets.data_files import resolve_pattern

    from evalboard.contents import is_inside, real_path
    from evalboard.hub_dataset_files import check_data_pattern

    pattern = prefix + "/".join(segments)
    try:
        check_data_pattern(pattern, what="data_files")
    except EvalboardError as error:
        assert error.category in (FailureCategory.REFUSED, FailureCategory.BAD_INPUT), error
        return
    try:
        matched = resolve_pattern(pattern, base_path=str(real_path(fuzz_snapshot)))
    except (FileNotFoundError, ValueError):
        return  # matches nothing, or datasets refuses the pattern itself: nothing is read
    assert matched
    for file in matched:
        assert is_inside(real_path(file), real_path(fuzz_snapshot)), (pattern, file)
