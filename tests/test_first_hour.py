"""A newcomer's first commands, from any folder, on a fresh home: words, never a traceback."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import DigitsData, TinyModels
from tests.test_end_to_end import ROOT

COMMAND = [sys.executable, "-m", "evalboard.cli"]


def fresh(tmp_path: Path, *args: str, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The command in an empty folder, with EVALBOARD_HOME there unless given."""
    folder = tmp_path / "somewhere"
    folder.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVALBOARD_")}
    env["EVALBOARD_HOME"] = str(home or folder / "home")
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([*COMMAND, *args], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


@pytest.mark.parametrize(
    "args",
    [
        ("status", "1"), ("status", "1", "--json"), ("cancel", "1"),
        ("leaderboard", "--dataset", "./nothing", "--split", "test"),
        ("history", "--model", "./nothing"), ("history", "--model", "./nothing", "--json"),
    ],
)  # fmt: skip
def test_read_only_commands_on_a_fresh_home_say_which_home_and_what_to_do(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    completed = fresh(tmp_path, *args)
    output = completed.stdout + completed.stderr
    assert completed.returncode == 2
    assert "Traceback" not in output
    assert str(tmp_path / "somewhere" / "home") in output
    assert "EVALBOARD_HOME" in output
    assert not (tmp_path / "somewhere" / "home" / "evalboard.db").exists()  # nothing created
    if "--json" in args:
        assert json.loads(completed.stdout)["error"]["category"] == "not_found"


def test_the_embedded_database_migrates_itself_on_the_first_submit(
    tmp_path: Path, digits: DigitsData, tiny_models: TinyModels, data_root: Path
) -> None:
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVALBOARD_")}
    env.update(EVALBOARD_HOME=str(home), EVALBOARD_ALLOWED_PATHS=f"{home},{data_root}",
               PYTHONPATH=str(ROOT))  # fmt: skip
    completed = subprocess.run(
        [*COMMAND, "submit", "--model", str(tiny_models.resnet), "--dataset",
         str(digits.parquet), "--json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["state"] == "queued"
    board = fresh(tmp_path, "leaderboard", "--dataset", str(digits.parquet), "--split", "test",
                  home=home)  # fmt: skip
    assert board.returncode == 0 and "no results yet" in board.stdout


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    completed = subprocess.run(
        f"{sys.executable} -m evalboard.cli --help | head -1; "
        f"{sys.executable} -m evalboard.cli status 1 | head -1",
        shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**os.environ, "EVALBOARD_HOME": str(tmp_path / "home"), "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert "Traceback" not in completed.stderr
    assert "BrokenPipeError" not in completed.stderr


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)
def test_wait_shows_live_progress_on_a_terminal_and_keeps_json_pure(
    backend, start_worker, digits: DigitsData, tiny_models: TinyModels,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("EVALBOARD_EVAL_BATCH_SIZE", "8")  # many batches: progress to show
    start_worker()
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [*COMMAND, "submit", "--model", str(tiny_models.trained_resnet), "--dataset",
         str(digits.imagefolder), "--split", "train", "--wait", "--json"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=terminal, env=dict(os.environ),
    )  # fmt: skip
    os.close(terminal)
    shown = b""
    deadline = time.monotonic() + 240
    while process.poll() is None and time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 0.5)
        if ready:
            try:
                shown += os.read(controller, 65536)
            except OSError:
                break
    stdout = process.communicate(timeout=60)[0]
    os.close(controller)
    report = json.loads(stdout)  # stdout stays pure JSON
    assert report["state"] == "succeeded"
    text = shown.decode(errors="replace")
    assert "queue" in text or "evaluating" in text
    assert "evaluating" in text and "images" in text and "%" in text
    assert "/1438" in text or "1438" in text
