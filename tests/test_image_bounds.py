"""Images whose resize would be out of bounds are bad images by name, in every resize mode,
in evaluation and in training; and the images/s a user reads is the whole pass.

A 1×200000 strip behind ``shortest_edge`` 32 would be resized to 32×6.4M (the report: the
whole job failed `out_of_memory`). Stage 1 now computes the resized size first.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from PIL import Image
from sklearn.metrics import accuracy_score

from evalboard import catalog
from evalboard.errors import BadInputError
from evalboard.references import resolve_dataset, resolve_model
from evalboard.settings import get_settings
from tests import factories, servers
from tests.conftest import TinyModels
from tests.test_end_to_end import run_json
from worker.evaluation.engine import EvaluationOutcome, EvaluationRequest, run_evaluation
from worker.evaluation.pipeline import cpu_geometry
from worker.evaluation.preprocess import ProcessorGeometry, plan_of

TALL = Image.new("L", (1, 200_000), color=255)  # width 1, height 200000: a 1×N strip
WIDE = Image.new("L", (200_000, 1), color=255)


def _clip(size: dict[str, int], crop: int | None = None) -> Any:
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(
        size=size, do_center_crop=crop is not None,
        crop_size={"height": crop or 32, "width": crop or 32},
        image_mean=[0.5] * 3, image_std=[0.5] * 3,
    )  # fmt: skip


def _convnext() -> Any:
    from transformers import ConvNextImageProcessor

    return ConvNextImageProcessor(size={"shortest_edge": 32}, crop_pct=0.875,
                                  image_mean=[0.5] * 3, image_std=[0.5] * 3)  # fmt: skip


def _vit() -> Any:
    from worker.demo import image_processor

    return image_processor(32)  # size height/width 32, as the tiny models have


# Every resize mode the plan knows, and one it leaves to the processor itself (crop_pct).
PROCESSORS: dict[str, Callable[[], Any]] = {
    "shortest_edge+crop": lambda: _clip({"shortest_edge": 32}, crop=32),  # the report
    "shortest_edge": lambda: _clip({"shortest_edge": 32}),
    "shortest+longest_edge": lambda: _clip({"shortest_edge": 32, "longest_edge": 64}),
    "crop_pct (processor)": _convnext,
    "height/width": _vit,
}
REFUSED = {"shortest_edge+crop", "shortest_edge", "shortest+longest_edge", "crop_pct (processor)"}


@pytest.fixture(scope="module")
def strips_parquet(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    """The digits test split with a 1×200000 and a 200000×1 PNG at rows 3 and 7."""
    images, labels = factories.digits_images("test")
    images = [*images[:3], TALL, *images[3:6], WIDE, *images[6:]]
    labels = [*labels[:3], 0, *labels[3:6], 1, *labels[6:]]
    return factories.write_image_parquet(data_root / "strips", {"test": (images, labels)})


def model_with(processor: Any, trained: Path, target: Path) -> Path:
    """The trained tiny ResNet behind another image processor."""
    if not target.exists():
        shutil.copytree(trained, target)
        for name in ("preprocessor_config.json", "processor_config.json"):
            (target / name).unlink(missing_ok=True)
        processor.save_pretrained(target)
    return target


def evaluate(model: Path, dataset: Path, **options: Any) -> EvaluationOutcome:
    settings = get_settings()
    return run_evaluation(
        EvaluationRequest(
            resolve_model(str(model), None, settings),
            resolve_dataset(str(dataset), None, None, settings),
            batch_size=32,
            **options,
        )
    )


@pytest.mark.parametrize("mode", list(PROCESSORS))
def test_a_strip_in_either_direction_is_skipped_by_name_in_every_resize_mode(
    mode: str, evalboard_home: Path, tiny_models: TinyModels, digits, strips_parquet: Path,
    data_root: Path,
) -> None:  # fmt: skip
    model = model_with(PROCESSORS[mode](), tiny_models.trained_resnet,
                       data_root / f"strips-model-{mode.split()[0]}")  # fmt: skip
    outcome = evaluate(model, strips_parquet)
    bad = outcome.provenance["bad_images"]
    good = evaluate(model, digits.parquet)  # the same split without the strips
    if mode in REFUSED:
        assert bad["count"] == 2, bad
        assert [row["row"] for row in bad["rows"]] == [3, 7]
        assert all("would be resized to" in row["reason"] for row in bad["rows"]), bad
        assert outcome.n_samples == good.n_samples
        # Accuracy over the rest: scikit-learn's, on the split without the strips.
        assert outcome.metric_values()["accuracy"] == pytest.approx(
            accuracy_score(good.references, good.predictions), abs=1e-12
        )
        np.testing.assert_array_equal(outcome.predictions, good.predictions)
    else:  # an exact size takes any aspect ratio: nothing to refuse
        assert bad["count"] == 0
        assert outcome.n_samples == good.n_samples + 2


def test_under_a_policy_that_fails_the_run_names_the_strips(
    evalboard_home: Path, tiny_models: TinyModels, strips_parquet: Path, data_root: Path
) -> None:
    default = catalog.default_spec(catalog.IMAGE_CLASSIFICATION)
    strict = dataclasses.replace(default, name="image-classification-strict-images",
                                 on_bad_image="fail")  # fmt: skip
    catalog.register_spec(strict, replace=True)
    model = model_with(PROCESSORS["shortest_edge+crop"](), tiny_models.trained_resnet,
                       data_root / "strips-model-shortest_edge+crop")  # fmt: skip
    with pytest.raises(BadInputError) as raised:
        evaluate(model, strips_parquet, spec_name=strict.name)
    message = str(raised.value)
    assert "2 unreadable image(s) at rows 3, 7" in message
    assert "EVALBOARD_MAX_RESIZED_PIXELS" in message


def test_through_a_worker_the_strips_are_skipped_and_the_rest_scored(
    backend: servers.Backend, start_worker: Callable[..., servers.Worker],
    tiny_models: TinyModels, digits, strips_parquet: Path, data_root: Path,
) -> None:  # fmt: skip
    model = model_with(PROCESSORS["shortest_edge+crop"](), tiny_models.trained_resnet,
                       data_root / "strips-model-shortest_edge+crop")  # fmt: skip
    start_worker()
    report = run_json("submit", "--model", str(model), "--dataset", str(strips_parquet),
                      "--wait")  # fmt: skip
    assert report["state"] == "succeeded", report["error"]
    assert report["provenance"]["bad_images"]["count"] == 2
    assert report["n_samples"] == len(factories.digits_images("test")[1])
    in_process = run_json("evaluate", "--model", str(model), "--dataset", str(digits.parquet))
    assert report["metrics"] == in_process["metrics"]  # the strips changed nothing else


def test_training_skips_the_strips_too(tiny_models: TinyModels, strips_parquet: Path) -> None:
    import datasets

    from worker.training.tensors import materialize

    rows = datasets.load_dataset("parquet", data_files=str(strips_parquet / "test.parquet"),
                                 split="train")  # fmt: skip
    rows = rows.cast_column("image", datasets.Image(decode=False))
    rows = rows.add_column("__evalboard_row__", list(range(len(rows))))
    tensors = materialize(
        rows, image_column="image", label_column="label",
        processor=PROCESSORS["shortest_edge+crop"](), threads=1,
        max_pixels=get_settings().max_image_pixels, split="train",
    )  # fmt: skip
    assert [row["row"] for row in tensors.skipped] == [3, 7]
    assert len(tensors) == len(rows) - 2
    assert tuple(tensors.images.shape[1:]) == (3, 32, 32)


@hypothesis_settings(max_examples=40, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(
    mode=st.sampled_from(list(PROCESSORS)),
    long_side=st.integers(1, 600),
    ratio=st.integers(1, 600),
    tall=st.booleans(),
    bound=st.sampled_from([2_000, 20_000, 4096 * 4096]),
)
def test_what_stage_1_lets_through_stays_within_the_bound(
    mode: str, long_side: int, ratio: int, tall: bool, bound: int
) -> None:
    """Any size, either orientation: refused, or resized within the bound (measured on the
    real output; the processor's own path is run itself, the bound being its upper limit)."""
    short = max(1, long_side // ratio)
    height, width = (long_side, short) if tall else (short, long_side)
    processor = PROCESSORS[mode]()
    plan = plan_of(processor)
    stage1 = cpu_geometry(
        plan, ProcessorGeometry(processor) if plan.geometry != "torch" else None, bound
    )
    image = Image.new("RGB", (width, height), color=(10, 20, 30))
    reason = stage1.refusal(height, width)
    if reason is not None:
        assert "would be resized to" in reason
        return
    estimated = stage1.resized_size(height, width)
    assert min(estimated) >= 1 and estimated[0] * estimated[1] <= bound
    output = stage1(image)
    assert output.shape[0] == 3 and output.shape[1] * output.shape[2] <= bound


def test_images_per_s_is_the_whole_pass_and_the_model_alone_is_named(
    evalboard_home: Path, tiny_models: TinyModels, digits
) -> None:
    first = evaluate(tiny_models.trained_resnet, digits.parquet)  # uncached: decodes first
    provenance = first.provenance
    assert provenance["tensor_cache"] == "written"
    assert provenance["decode_s"] > 0
    whole, model_alone = provenance["images_per_s"], provenance["model_images_per_s"]
    assert whole == pytest.approx(first.n_samples / provenance["inference_s"], rel=1e-2)
    assert 0 < whole <= model_alone
    again = evaluate(tiny_models.trained_resnet, digits.parquet)
    assert again.provenance["tensor_cache"] == "hit"
    assert again.provenance["decode_s"] is None
    assert again.provenance["images_per_s"] > 0 and again.provenance["model_images_per_s"] > 0
