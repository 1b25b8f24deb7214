"""Zero-code fine-tuning: labels, progress, cancel, artifacts, lineage and resume."""

from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path

import datasets
import pytest
import yaml
from sqlalchemy import func, select

from dashboard.artifacts import model_zip
from db import training as training_queries
from db.models import Result, Submission
from db.session import session_scope
from evalboard.errors import BadInputError
from evalboard.references import model_hash, resolve_dataset
from evalboard.settings import get_settings
from evalboard.submit import EvaluationInput, submit
from evalboard.training_params import TrainingParams
from tests import factories
from tests.conftest import DigitsData
from tests.servers import wait_for
from tests.test_end_to_end import evalboard, run_json
from worker.training.data import load_training_data

FAST = {"epochs": 5, "learning_rate": 2e-3, "batch_size": 32}


@pytest.fixture(scope="module")
def base_models(data_root: Path) -> dict[str, Path]:
    root = data_root / "base-models"
    return {
        "resnet-82k": factories.build_resnet(
            root / "resnet-82k", embedding_size=32, hidden_sizes=(32, 64)
        ),
        "resnet-22k": factories.build_resnet(root / "resnet-22k"),
    }


def test_train_on_digits_reaches_095_and_is_ranked_with_its_lineage(
    backend, start_worker, digits: DigitsData, base_models: dict[str, Path]
) -> None:
    start_worker()
    base = base_models["resnet-82k"]
    report = run_json(
        "train", "--model", str(base), "--dataset", str(digits.imagefolder),
        "--epochs", "5", "--learning-rate", "2e-3", "--batch-size", "32", "--wait",
    )  # fmt: skip
    assert report["state"] == "succeeded", report
    assert report["kind"] == "train"
    assert report["metrics"]["accuracy"] >= 0.95
    assert report["n_samples"] == 359
    training = report["training"]
    assert training["parameters"]["learning_rate"] == 2e-3
    assert training["parameters"]["epochs"] == 5
    losses = [log["loss"] for log in training["logs"] if log["loss"] is not None]
    accuracies = [log["eval_accuracy"] for log in training["logs"] if "eval_accuracy" in log]
    assert len(losses) >= 5 and losses[-1] < losses[0]
    assert len(accuracies) >= 1 and max(accuracies) > 0.9

    # Artifacts: safetensors + processor + model card with model-index + training params.
    model_dir = Path(training["model_dir"])
    assert (model_dir / "model.safetensors").is_file()
    assert (model_dir / "preprocessor_config.json").is_file()
    assert not list(model_dir.glob("*.bin"))
    card = (model_dir / "README.md").read_text()
    front_matter = yaml.safe_load(card.split("---")[1])
    card_metrics = {
        m["type"]: m["value"] for m in front_matter["model-index"][0]["results"][0]["metrics"]
    }
    # The card is written before the model's hash is taken: it carries the best epoch's
    # validation metrics; the test metrics live in the run's record beside the folder.
    assert card_metrics["accuracy"] == pytest.approx(max(accuracies))
    assert front_matter["base_model"] == str(base)
    params = json.loads((model_dir / "training_params.json").read_text())
    assert params["hyperparameters"]["batch_size"] == 32
    assert len(params["epochs"]) == 5
    run_record = json.loads((model_dir.parent / "training_params.json").read_text())
    assert run_record["test_metrics"] == pytest.approx(report["metrics"])
    checkpoints = list((model_dir.parent / "checkpoints").glob("checkpoint-*"))
    assert 1 <= len(checkpoints) <= 2  # only the best and the last are kept

    # The revision is the hash of exactly the folder users download; nothing in it changed.
    status = run_json("status", str(training["evaluation_submission_id"]))
    assert status["revision"] == model_hash(model_dir)
    unzipped = get_settings().home / "downloaded"
    zipfile.ZipFile(io.BytesIO(model_zip(model_dir))).extractall(unzipped)
    assert model_hash(unzipped) == status["revision"]

    # Ranked on the test split's leaderboard, with its lineage.
    board = json.loads(
        evalboard(
            "leaderboard",
            "--dataset",
            str(digits.imagefolder),
            "--split",
            "test",
            "--format",
            "json",
        ).stdout  # fmt: skip
    )
    row = next(r for r in board if r["model"] == str(model_dir))
    assert row["rank"] == 1
    assert row["lineage_submission_id"] == report["submission_id"]
    assert row["base_model"] == str(base)
    assert row["training_parameters"]["learning_rate"] == 2e-3
    status = run_json("status", str(row["submission_id"]))
    assert status["lineage"]["base_model"] == str(base)

    # Submitted again from its folder: the same revision, still one row, with its lineage.
    again = run_json(
        "submit", "--model", str(model_dir), "--dataset", str(digits.imagefolder), "--wait"
    )
    assert again["revision"] == status["revision"]
    board = json.loads(
        evalboard(
            "leaderboard", "--dataset", str(digits.imagefolder), "--split", "test",
            "--format", "json",
        ).stdout
    )  # fmt: skip
    rows = [r for r in board if r["model"] == str(model_dir)]
    assert len(rows) == 1 and rows[0]["rank"] == 1
    assert rows[0]["lineage_submission_id"] == report["submission_id"]


def test_a_class_without_training_examples_is_named_before_training(
    evalboard_home: Path, data_root: Path
) -> None:
    images = factories.digits_images("train", mode="L", limit=200)
    train = [(image, label) for image, label in zip(*images, strict=True) if label != 7]
    root = factories.write_image_parquet(
        data_root / "no-sevens",
        {"train": ([i for i, _ in train], [label for _, label in train])},
    )
    dataset = resolve_dataset(str(root), None, None, get_settings())
    with pytest.raises(BadInputError, match=r"no training example: \['7'\]"):
        load_training_data(dataset, TrainingParams(), image_column="image", label_column="label")


def test_a_validation_split_with_fewer_classes_is_relabelled_by_name(
    evalboard_home: Path, data_root: Path
) -> None:
    train_images, train_labels = factories.digits_images("train", mode="L", limit=300)
    test_images, test_labels = factories.digits_images("test", mode="L", limit=300)
    kept = [
        (i, str(label)) for i, label in zip(test_images, test_labels, strict=True) if label >= 5
    ]
    root = factories.write_image_parquet(
        data_root / "string-labels-few-validation",
        {
            "train": (list(train_images), [str(label) for label in train_labels]),
            "validation": ([i for i, _ in kept], [label for _, label in kept]),
        },
        label_feature=datasets.Value("string"),
    )
    dataset = resolve_dataset(str(root), None, None, get_settings())
    data = load_training_data(
        dataset,
        TrainingParams(validation_split="validation"),
        image_column="image",
        label_column="label",
    )
    assert data.class_names == [str(i) for i in range(10)]
    names = [data.class_names[label] for label in data.validation["label"]]
    assert names == [label for _, label in kept]  # same names, train's ids


def test_cancelling_a_training_stops_it_and_the_queue_goes_on(
    evalboard_home: Path, start_worker, digits: DigitsData, base_models: dict[str, Path]
) -> None:
    start_worker()
    submission_id = submit(
        EvaluationInput(model=str(base_models["resnet-22k"]), dataset=str(digits.imagefolder)),
        {"epochs": 50, "learning_rate": 2e-3, "batch_size": 16},
    ).submission_id

    def logged() -> bool:
        with session_scope() as session:
            return len(training_queries.training_logs(session, submission_id)) >= 2

    wait_for(logged, 120, "training never logged a step")
    cancelled = evalboard("cancel", str(submission_id))
    assert cancelled.returncode == 0, cancelled.stdout
    report = run_json(
        "submit", "--model", str(base_models["resnet-22k"]), "--dataset", str(digits.saved),
        "--wait",
    )  # fmt: skip
    assert report["state"] == "succeeded"  # the worker is free again: training stopped
    status = run_json("status", str(submission_id))
    assert status["state"] == "cancelled"
    assert status["error"]["category"] == "cancelled"
    assert status["training"]["evaluation_submission_id"] is None
    assert status["training"]["step"] < 50 * 1150 / 16


@pytest.mark.parametrize("backend", ["production"], indirect=True)
def test_a_training_whose_worker_is_killed_resumes_from_its_checkpoint(
    backend, start_worker, digits: DigitsData, base_models: dict[str, Path]
) -> None:
    from worker.scheduling.reaper import reap_stale

    first = start_worker("first")
    submission_id = submit(
        EvaluationInput(model=str(base_models["resnet-22k"]), dataset=str(digits.imagefolder)),
        {"epochs": 4, "learning_rate": 2e-3, "batch_size": 32},
    ).submission_id
    checkpoints = get_settings().artifacts_dir / f"run-{submission_id}" / "checkpoints"
    wait_for(lambda: any(checkpoints.glob("checkpoint-*/trainer_state.json")), 180,
              "no checkpoint was written")  # fmt: skip
    first.kill()
    with session_scope() as session:
        assert session.get(Submission, submission_id).state == "running"
        logs_before = len(training_queries.training_logs(session, submission_id))
    time.sleep(3)  # heartbeat (every 1 s here) goes stale
    assert reap_stale(limit_seconds=2) == 1
    start_worker("second")

    def finished() -> bool:
        with session_scope() as session:
            return session.get(Submission, submission_id).state in ("succeeded", "failed")

    wait_for(finished, 300, "resumed training never finished")
    report = run_json("status", str(submission_id))
    assert report["state"] == "succeeded", report
    assert report["training"]["resumed_from"], "did not resume from a checkpoint"
    resumed_step = int(Path(report["training"]["resumed_from"]).name.split("-")[1])
    assert resumed_step > 0
    with session_scope() as session:
        submission = session.get(Submission, submission_id)
        assert submission.attempts == 2
        evaluation_id = report["training"]["evaluation_submission_id"]
        results = session.scalar(select(func.count()).where(Result.submission_id == evaluation_id))
        evaluations = session.scalar(
            select(func.count()).select_from(Submission).where(Submission.kind == "evaluate")
        )
        logs = training_queries.training_logs(session, submission_id)
    assert results == len(report["metrics"]) and evaluations == 1  # one result set
    # After the resume, steps continue from the checkpoint instead of starting over.
    second_run_steps = [log.step for log in logs[logs_before:]]
    assert second_run_steps and min(second_run_steps) > resumed_step
    assert report["metrics"]["accuracy"] > 0.5


def test_a_training_whose_final_evaluation_outlasts_the_stale_limit_is_not_requeued(
    backend, start_worker, digits: DigitsData, base_models: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    from db.training import get_training_run
    from worker.scheduling.reaper import reap_stale

    # Heartbeats every 0.2 s and a stale limit of 0.8 s: the final evaluation (about 2 s on
    # the train split) outlasts the limit several times over.
    limit_s = 0.8
    monkeypatch.setenv("EVALBOARD_HEARTBEAT_SECONDS", "0.2")
    start_worker()
    submission_id = submit(
        EvaluationInput(model=str(base_models["resnet-22k"]), dataset=str(digits.imagefolder)),
        {"epochs": 1, "learning_rate": 2e-3, "batch_size": 64, "test_split": "train"},
    ).submission_id

    def evaluation_state() -> str | None:
        with session_scope() as session:
            run = get_training_run(session, submission_id)
            if run is None or run.evaluation_submission_id is None:
                return None
            return session.get(Submission, run.evaluation_submission_id).state

    wait_for(lambda: evaluation_state() == "running", 180, "the final evaluation never ran")
    started = time.monotonic()
    reaped = 0
    while evaluation_state() == "running":
        reaped += reap_stale(limit_seconds=limit_s)
        time.sleep(0.3)
    assert time.monotonic() - started > 1.5 * limit_s  # it did outlast the stale limit
    assert reaped == 0
    wait_for(lambda: run_json("status", str(submission_id))["state"] != "running", 60, "stuck")
    with session_scope() as session:
        training = session.get(Submission, submission_id)
        assert (training.state, training.attempts) == ("succeeded", 1)
