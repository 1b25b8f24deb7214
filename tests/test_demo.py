"""``evalboard demo``: digits and small base models, fine-tuned through the queue, ranked."""

from __future__ import annotations

import json
from pathlib import Path

from tests.test_end_to_end import evalboard


def test_demo_fine_tunes_three_models_through_the_queue_and_ranks_them(
    evalboard_home: Path,
) -> None:
    completed = evalboard("demo", "--json", timeout=900)
    assert completed.returncode == 0, completed.stdout + completed.stderr[-3000:]
    rows = json.loads(completed.stdout)
    assert len(rows) == 3
    assert [row["rank"] for row in rows] == sorted(row["rank"] for row in rows)
    assert all(row["model_source"] == "trained" for row in rows)
    bases = {Path(row["base_model"]).name for row in rows}
    assert bases == {"resnet-82k", "resnet-22k", "vit-24k"}
    assert rows[0]["value"] >= 0.9  # a meaningful leaderboard, not three coin flips
    assert all(row["training_parameters"]["epochs"] == 5 for row in rows)
    assert (evalboard_home / "demo" / "digits" / "test").is_dir()
