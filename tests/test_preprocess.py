"""The tensor path of preprocessing against the model's own image processor (CPU).

The documented tolerance: stage 1 equals the processor's resized uint8 image but for ±1 on
some pixels (none when upsampling or when no resize is needed; under 1% when shrinking; up to
about 16% when an image is shrunk one way and stretched the other), so after normalization the
difference is at most one uint8 step, ``1 / 255 / std``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import ViTImageProcessor

from worker.evaluation.preprocess import (
    Plan,
    ProcessorGeometry,
    geometry,
    plan_of,
    to_tensor,
    values,
)

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def photo(height: int, width: int, seed: int) -> Image.Image:
    """A smooth image with detail at every scale (random coarse pixels, bilinear upsampled)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (height // 5 + 2, width // 5 + 2, 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize((width, height), Image.BILINEAR)


def tensor_path(plan: Plan, image: Image.Image) -> np.ndarray:
    return values(plan, geometry(plan, to_tensor(image))[None])[0].numpy()


CASES = {
    "downscale bilinear": (dict(size={"height": 224, "width": 224}, resample=2), (375, 500)),
    "downscale bicubic": (dict(size={"height": 224, "width": 224}, resample=3), (480, 640)),
    "upscale digits": (dict(size={"height": 32, "width": 32}, resample=2), (8, 8)),
    "no resize": (dict(size={"height": 64, "width": 64}, resample=2), (64, 64)),
    "shortest edge and center crop": (
        dict(size={"shortest_edge": 256}, do_center_crop=True,
             crop_size={"height": 224, "width": 224}, resample=3), (300, 451)),
    "portrait, grayscale source": (dict(size={"height": 96, "width": 96}, resample=2), (200, 90)),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_the_tensor_path_equals_the_processor_within_one_uint8_step(case: str) -> None:
    options, (height, width) = CASES[case]
    processor = ViTImageProcessor(image_mean=MEAN, image_std=STD, **options)
    plan = plan_of(processor)
    assert plan.geometry == "torch"
    step = (1 / 255 / np.asarray(STD))[:, None, None]
    differing = []
    for seed in range(5):
        image = photo(height, width, seed)
        if "grayscale" in case:
            image = image.convert("L").convert("RGB")
        expected = processor(images=[image], return_tensors="np")["pixel_values"][0]
        mine = tensor_path(plan, image)
        assert mine.shape == expected.shape
        steps = np.abs(mine - expected) / step
        assert steps.max() <= 1.0 + 1e-3, f"{case}: {steps.max():.3f} uint8 steps"
        differing.append(float((steps > 0.5).mean()))
    if case in ("upscale digits", "no resize"):
        assert max(differing) == 0.0  # exact
    elif case.startswith("downscale") or case.startswith("shortest"):
        assert np.mean(differing) < 0.01  # under 1% of the values, by one step
    else:  # shrunk one way, stretched the other: more values off, still by one step at most
        assert np.mean(differing) < 0.2


def test_a_processor_the_plan_cannot_follow_runs_itself_for_stage_one() -> None:
    processor = ViTImageProcessor(size={"height": 48, "width": 48}, image_mean=MEAN, image_std=STD)
    processor.do_pad = True  # something the tensor plan does not mirror
    plan = plan_of(processor)
    assert plan.geometry.startswith("processor:")
    image = photo(100, 120, seed=1)
    processor.do_pad = False  # the reference: the processor's own output
    expected = processor(images=[image], return_tensors="np")["pixel_values"][0]
    processor.do_pad = True
    stage1 = ProcessorGeometry(ViTImageProcessor(size={"height": 48, "width": 48}))(image)
    mine = values(plan, stage1[None])[0].numpy()
    np.testing.assert_allclose(mine, expected, atol=1e-5)


def test_plans_differ_when_the_preprocessing_does() -> None:
    keys = {
        plan_of(ViTImageProcessor(size={"height": s, "width": s}, resample=r, image_std=d)).key()
        for s in (32, 64)
        for r in (2, 3)
        for d in ([0.5] * 3, [0.25] * 3)
    }
    assert len(keys) == 8


def test_a_float_resize_on_any_device_rounds_like_the_uint8_one() -> None:
    """The GPU path resizes in float32 and rounds; on the CPU that equals the uint8 kernel but
    for ±1 on few pixels, the same tolerance as against the processor."""
    plan = plan_of(ViTImageProcessor(size={"height": 224, "width": 224}, resample=2))
    image = to_tensor(photo(375, 500, seed=3))
    fast = geometry(plan, image)
    as_float = (
        torch.nn.functional.interpolate(
            image[None].float(),
            size=(224, 224),
            mode="bilinear",
            antialias=True,
            align_corners=False,
        )[0]
        .round()
        .clamp(0, 255)
        .to(torch.uint8)
    )
    difference = (fast.int() - as_float.int()).abs()
    assert int(difference.max()) <= 1
    assert float((difference > 0).float().mean()) < 0.2
