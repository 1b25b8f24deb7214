"""The dashboard's fine-tuning views through AppTest: the Train form, training details, lineage.

No training runs here: logs, runs and results are written the way the worker writes them.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.testing.v1 import AppTest

from db import training as training_queries
from db.models import Submission
from db.results import complete_submission
from db.schemas import DatasetRefCreate, MetricResult, ModelRefCreate, SubmissionCreate
from db.session import session_scope
from db.submissions import (
    claim_submission,
    create_submission,
    fail_submission,
    record_progress,
)
from evalboard.settings import get_settings
from evalboard.training_params import TrainingParams
from tests import factories

pytestmark = pytest.mark.usefixtures("fresh_streamlit_caches")

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "dashboard"
TIMEOUT_S = 30
SCRIPT_TAG = "<script>alert(1)</script>"
DEFAULTS = TrainingParams()
NUMBER_FIELDS = (
    "epochs learning_rate batch_size warmup_ratio weight_decay gradient_accumulation seed "
    "validation_fraction early_stopping_patience early_stopping_threshold"
).split()
# (step, epoch, loss, learning rate, validation metrics) as the Trainer callback logs them.
LOGS: list[tuple[int, float, float | None, float | None, dict[str, float]]] = [
    (10, 0.5, 2.25, 4e-5, {}),
    (20, 1.0, 1.5, 3e-5, {}),
    (20, 1.0, None, None, {"accuracy": 0.625, "f1_macro": 0.5, "loss": 1.75}),
    (30, 1.5, 0.875, 2e-5, {}),
]


@pytest.fixture(scope="module")
def base_model(data_root: Path) -> Path:
    """An untrained tiny classifier folder under an allowed path; nothing here trains it."""
    return factories.make_resnet(data_root / "dashboard-training-resnet")


def page(name: str) -> AppTest:
    return AppTest.from_file(str(DASHBOARD / "views" / name), default_timeout=TIMEOUT_S)


def all_submissions() -> list[Submission]:
    with session_scope() as session:
        return list(session.scalars(select(Submission).order_by(Submission.id)).unique())


def submit(model: ModelRefCreate, *, kind: str = "evaluate", **fields: Any) -> int:
    """A queued submission of ``model`` on digits, as the service records one."""
    request = SubmissionCreate(
        kind=kind,
        submitter="trainer",
        model=model,
        dataset=DatasetRefCreate(source="local", name="digits", fingerprint="fp-digits"),
        column_mapping={"image": "image", "label": "label"},
        task=factories.SPEC.task,
        spec_name=factories.SPEC.name,
        spec_version=factories.SPEC.version,
        **fields,
    )
    with session_scope() as session:
        return create_submission(session, request).id


def succeed(submission_id: int, accuracy: float | None) -> None:
    """Run it to ``succeeded`` with one test accuracy (a training stores no metric itself)."""
    metrics = [
        MetricResult(metric="accuracy", value=value, higher_is_better=True)
        for value in ([] if accuracy is None else [accuracy])
    ]
    with session_scope() as session:
        claim_submission(session, submission_id)  # a training is already running
        assert complete_submission(
            session, submission_id, metrics=metrics, n_samples=359, provenance={"split": "test"}
        )


def new_training(base: str = "base-model", **hyperparameters: Any) -> int:
    """A queued training of ``base``, with ``hyperparameters`` over the defaults."""
    model = ModelRefCreate(source="local", name=base, resolved_revision=f"rev-{base}")
    training = TrainingParams(**hyperparameters).model_dump()
    return submit(model, kind="train", split="train", parameters={"training": training})


def start_training(training_id: int, *, progress: float = 0.3) -> Path:
    """Claim it, log LOGS and record its run with a saved model folder; returns model_dir."""
    output_dir = get_settings().artifacts_dir / f"run-{training_id}"
    model_dir = output_dir / "model"
    model_dir.mkdir(parents=True)
    (model_dir / "config.json").write_text('{"model_type": "resnet"}')
    (model_dir / "model.safetensors").write_bytes(bytes(range(256)) * 8)
    (model_dir / "README.md").write_text("# evalboard-run\n")
    with session_scope() as session:
        assert claim_submission(session, training_id)
        assert record_progress(session, training_id, progress)
        training_queries.ensure_training_run(session, training_id, output_dir=str(output_dir))
        for step, epoch, loss, learning_rate, metrics in LOGS:
            training_queries.record_training_log(
                session,
                training_id,
                step=step,
                epoch=epoch,
                loss=loss,
                learning_rate=learning_rate,
                metrics=metrics,
            )
    return model_dir


def finish_training(training_id: int, model_dir: Path, *, accuracy: float) -> int:
    """Evaluate the trained model on test and mark the training succeeded, as the job does."""
    trained = ModelRefCreate(
        source="trained",
        name=str(model_dir),
        resolved_revision=f"hash-{training_id}",
        lineage_submission_id=training_id,
    )
    evaluation_id = submit(trained, split="test")
    with session_scope() as session:
        evaluation = session.get(Submission, evaluation_id)
        assert evaluation is not None
        training_queries.update_training_run(
            session,
            training_id,
            trained_model_id=evaluation.model_id,
            evaluation_submission_id=evaluation_id,
        )
    succeed(evaluation_id, accuracy)
    succeed(training_id, None)
    return evaluation_id


def record_result(model: str, value: float) -> int:
    """A succeeded evaluation of a local ``model`` on digits' test split."""
    submission_id = submit(
        ModelRefCreate(source="local", name=model, resolved_revision=f"rev-{model}")
    )
    succeed(submission_id, value)
    return submission_id


def chart_series(at: AppTest) -> dict[str, dict[int, float]]:
    """Every line of every chart on the page: series name → {step: value}.

    Each chart must draw lines with a marker on every point, from data without gaps: a series
    logged once per epoch is then drawn, not left out between the other series' steps.
    """
    series: dict[str, dict[int, float]] = {}
    for chart in at.get("vega_lite_chart"):
        spec = json.loads(chart.proto.spec)
        assert spec["mark"] == {"type": "line", "point": True}
        for dataset in chart.proto.datasets:
            points = convert_arrow_bytes_to_pandas_df(dataset.data.data)
            assert not points[["series", "step", "value"]].isna().any().any()
            for _, point in points.iterrows():
                series.setdefault(point["series"], {})[int(point["step"])] = point["value"]
    return series


def hyperparameters_shown(at: AppTest) -> dict[str, str]:
    """The hyperparameter table on the page, as {name: value}."""
    for frame in at.dataframe:
        table = frame.value
        if list(table.columns) == ["hyperparameter", "value"]:
            return dict(zip(table["hyperparameter"], table["value"], strict=True))
    raise AssertionError("no hyperparameter table on the page")


def downloaded(managers: list[MediaFileManager], at: AppTest) -> tuple[str, bytes]:
    """Click the page's one download button the way the browser does: file name and bytes."""
    [button] = at.get("download_button")
    manager = managers[-1]
    url = manager.execute_deferred(button.proto.deferred_file_id)
    file_id = url.rsplit("/", 1)[-1].split(".")[0]
    served = manager.read_file(file_id)
    assert served is not None
    return str(served.filename), served.content


def fill_train_form(at: AppTest, *, model: str, dataset: str, **numbers: float) -> AppTest:
    at.text_input(key="train_model").input(model)
    at.text_input(key="train_dataset").input(dataset)
    for name, value in numbers.items():
        at.number_input(key=f"train_{name}").set_value(value)
    return at


# --- Train ----------------------------------------------------------------------------------


def test_train_form_shows_the_training_defaults(evalboard_home: Path) -> None:
    at = page("train.py").run()

    assert not at.exception
    assert at.title[0].value == "Fine-tune a model"
    numbers = {name: at.number_input(key=f"train_{name}").value for name in NUMBER_FIELDS}
    assert numbers == {name: getattr(DEFAULTS, name) for name in numbers}
    assert at.text_input(key="train_train_split").value == "train"
    assert at.text_input(key="train_validation_split").value == ""
    assert at.text_input(key="train_test_split").value == ""
    mixed_precision = at.selectbox(key="train_mixed_precision")
    assert mixed_precision.value == "auto"
    assert mixed_precision.options == ["auto", "no", "fp16", "bf16"]
    assert at.checkbox(key="train_auto_find_batch_size").value is False
    assert at.checkbox(key="train_augment").value is False
    # Bounds come from TrainingParams too: a batch size of 0 cannot even be entered.
    assert at.number_input(key="train_batch_size").min == 1
    assert at.number_input(key="train_batch_size").max == 4096


def test_train_form_queues_one_training_with_the_entered_hyperparameters(
    evalboard_home: Path, digits, base_model: Path
) -> None:
    at = page("train.py").run()
    fill_train_form(
        at,
        model=str(base_model),
        dataset=str(digits.parquet),
        epochs=5.0,
        learning_rate=0.002,
        batch_size=32,
        early_stopping_patience=0,
    )
    at.text_input(key="train_submitter").input("alice")
    at.text_input(key="train_validation_split").input("test")
    at.selectbox(key="train_mixed_precision").select("no")
    at.checkbox(key="train_augment").check()
    at.form_submit_button[0].click().run()

    assert not at.exception
    assert [error.value for error in at.error] == []
    [submission] = all_submissions()
    assert submission.kind == "train"
    assert submission.state == "queued"
    assert submission.celery_task_id  # enqueued on the broker
    assert submission.model.name == str(base_model.resolve())
    assert submission.dataset.name == str(digits.parquet.resolve())
    assert submission.split == "train"
    assert submission.submitter == "alice"
    assert (
        submission.parameters["training"]
        == DEFAULTS.model_copy(
            update={
                "epochs": 5.0,
                "learning_rate": 0.002,
                "batch_size": 32,
                "early_stopping_patience": None,  # 0 in the form: no early stopping
                "validation_split": "test",
                "mixed_precision": "no",
                "augment": True,
            }
        ).model_dump()
    )
    assert [message.value for message in at.success] == [
        f"Queued training submission {submission.id}. Follow it on the Submissions page."
    ]


@pytest.mark.parametrize(
    ("dataset", "numbers", "category", "problem"),
    [
        ("{digits}", {"epochs": 0.0}, "bad_input", "epochs: Input should be greater than 0"),
        ("{digits}", {"learning_rate": 0.0}, "bad_input", "learning_rate"),
        ("{home}/missing-dataset", {}, "not_found", "does not exist"),
    ],
)
def test_train_form_with_a_bad_input_shows_the_problem_and_queues_nothing(
    evalboard_home: Path,
    digits,
    base_model: Path,
    dataset: str,
    numbers: dict[str, float],
    category: str,
    problem: str,
) -> None:
    at = page("train.py").run()
    dataset_path = dataset.format(home=evalboard_home, digits=digits.parquet)
    fill_train_form(at, model=str(base_model), dataset=dataset_path, **numbers)
    at.form_submit_button[0].click().run()

    assert not at.exception
    assert not at.success
    assert len(at.error) == 1
    message = at.error[0].value.replace("\\", "")  # markdown escapes are not part of the words
    assert message.startswith(f"**{category}**")
    assert problem in message
    assert all_submissions() == []


# --- Submissions: training details ----------------------------------------------------------


def test_running_training_shows_progress_curves_and_hyperparameters(
    evalboard_home: Path,
) -> None:
    other = new_training("other-base")
    training_id = new_training(SCRIPT_TAG, epochs=5, learning_rate=0.002, batch_size=32)
    start_training(training_id, progress=0.45)

    at = page("submissions.py").run()

    assert not at.exception
    selector = at.selectbox(key="training_id")
    assert selector.options == [
        f"{training_id}: {SCRIPT_TAG} (running)",
        f"{other}: other-base (queued)",
    ]
    assert at.query_params["training"] == str(training_id)
    bars = {bar.proto.text: bar.proto.value for bar in at.get("progress")}
    assert bars["Step 30 · epoch 1.50 · loss 0.8750 · learning rate 2.00e-05"] == 45
    metrics = {metric.label: metric.value for metric in at.metric}
    assert metrics == {
        "Step": "30",
        "Epoch": "1.50",
        "Training loss": "0.8750",
        "Learning rate": "2.00e-05",
        "Validation accuracy": "0.6250",
    }
    assert chart_series(at) == {
        "training loss": {10: 2.25, 20: 1.5, 30: 0.875},
        "validation loss": {20: 1.75},
        "validation accuracy": {20: 0.625},
        "validation F1 (macro)": {20: 0.5},
    }
    shown = hyperparameters_shown(at)
    assert shown["epochs"] == "5.0"
    assert shown["learning rate"] == "0.002"
    assert shown["batch size"] == "32"
    assert shown["validation split"] == "stratified split of the train split"
    assert not at.get("download_button")  # nothing to download before it succeeded
    # The base model's name is data: escaped, so it renders as the characters, never as HTML.
    assert any(r"\<script\>alert\(1\)\</script\>" in caption.value for caption in at.caption)
    assert not at.get("html")
    assert not any(getattr(element.proto, "allow_html", False) for element in at.markdown)


def test_training_view_follows_the_training_in_the_url(evalboard_home: Path) -> None:
    first = new_training("first-base", epochs=7)
    new_training("second-base")

    at = page("submissions.py")
    at.query_params["training"] = str(first)
    at.run()

    assert not at.exception
    assert at.selectbox(key="training_id").value == first
    assert hyperparameters_shown(at)["epochs"] == "7.0"
    assert any("No training step logged yet." == info.value for info in at.info)


def test_succeeded_training_shows_test_metrics_and_serves_the_model_zip(
    evalboard_home: Path, served_files: list[MediaFileManager], tmp_path: Path
) -> None:
    training_id = new_training()
    model_dir = start_training(training_id)
    outside = tmp_path / "secret.txt"
    outside.write_text("not part of the model")
    (model_dir / "leak.txt").symlink_to(outside)
    evaluation_id = finish_training(training_id, model_dir, accuracy=0.875)

    at = page("submissions.py").run()

    assert not at.exception
    test_metrics = next(frame.value for frame in at.dataframe if "metric" in frame.value)
    assert dict(zip(test_metrics["metric"], test_metrics["value"], strict=True)) == {
        "accuracy": 0.875
    }
    assert any(f"submission {evaluation_id}" in caption.value for caption in at.caption)
    file_name, content = downloaded(served_files, at)
    assert file_name == f"evalboard-training-{training_id}-model.zip"
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        assert sorted(archive.namelist()) == ["README.md", "config.json", "model.safetensors"]
        assert archive.read("model.safetensors") == (model_dir / "model.safetensors").read_bytes()


def test_failed_training_shows_its_reason_and_no_download(evalboard_home: Path) -> None:
    training_id = new_training()
    start_training(training_id)
    with session_scope() as session:
        assert fail_submission(
            session, training_id, category="out_of_memory", message="CUDA out of memory [x](y)"
        )

    at = page("submissions.py").run()

    assert not at.exception
    assert [error.value for error in at.error] == [
        r"**out_of_memory**: CUDA out of memory \[x\]\(y\)"
    ]
    assert not at.get("download_button")


# --- Leaderboard: lineage -------------------------------------------------------------------


def test_leaderboard_shows_what_a_fine_tuned_model_was_trained_from(
    evalboard_home: Path,
) -> None:
    record_result("plain-model", 0.5)
    training_id = new_training("google/vit-base", epochs=4, batch_size=16)
    model_dir = start_training(training_id)
    finish_training(training_id, model_dir, accuracy=0.9)

    at = page("leaderboard.py").run()

    assert not at.exception
    table = at.dataframe[0].value.set_index("model")
    fine_tuned = f"google/vit-base fine-tuned (run {training_id})"
    assert list(table.index) == [fine_tuned, "plain-model"]
    assert list(table["source"]) == ["trained", "submitted"]
    # Its page tells the lineage and the hyperparameters.
    model = page("model.py")
    model.query_params["model"] = str(model_dir)
    model.run()
    assert not model.exception
    assert any(
        "Fine\\-tuned from google/vit\\-base" in info.value
        and f"training submission {training_id}" in info.value
        for info in model.info
    )
    shown = hyperparameters_shown(model)
    assert shown["epochs"] == "4.0"
    assert shown["batch size"] == "16"
    assert shown["learning rate"] == str(DEFAULTS.learning_rate)


def test_a_model_that_was_not_fine_tuned_shows_no_lineage(evalboard_home: Path) -> None:
    record_result("plain-model", 0.5)

    at = page("model.py")
    at.query_params["model"] = "plain-model"
    at.run()

    assert not at.exception
    assert not any("Fine" in info.value for info in at.info)
    assert not at.expander


# --- The app as a whole ---------------------------------------------------------------------


def test_app_reaches_the_train_page(evalboard_home: Path) -> None:
    at = AppTest.from_file(str(DASHBOARD / "app.py"), default_timeout=TIMEOUT_S).run()
    at.switch_page("views/train.py").run()

    assert not at.exception
    assert at.title[0].value == "Fine-tune a model"


def test_training_views_never_import_model_or_dataset_libraries(
    evalboard_home: Path, digits, base_model: Path
) -> None:
    training_id = new_training()
    finish_training(training_id, start_training(training_id), accuracy=0.5)
    # A fresh interpreter: this test process already imported torch to build the fixtures.
    script = textwrap.dedent(
        f"""
        import json, sys
        from streamlit.testing.v1 import AppTest

        at = AppTest.from_file({str(DASHBOARD / "app.py")!r}, default_timeout=60).run()
        at.switch_page("views/train.py").run()
        at.text_input(key="train_model").input({str(base_model)!r})
        at.text_input(key="train_dataset").input({str(digits.parquet)!r})
        at.form_submit_button[0].click().run()
        problems = [e.value for e in at.exception] + [e.value for e in at.error]
        at.switch_page("views/submissions.py").run()
        at.selectbox(key="training_id").set_value({training_id}).run()
        problems += [e.value for e in at.exception]
        heavy = ("torch", "transformers", "datasets")
        print(json.dumps({{
            "loaded": sorted(m for m in sys.modules if m.split(".")[0] in heavy
                             or m.startswith(("worker.evaluation", "worker.jobs",
                                              "worker.training.trainer"))),
            "problems": problems,
            "downloads": len(at.get("download_button")),
        }}))
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr
    outcome = json.loads(completed.stdout.strip().splitlines()[-1])
    assert outcome["problems"] == []
    assert outcome["downloads"] == 1
    assert outcome["loaded"] == []
