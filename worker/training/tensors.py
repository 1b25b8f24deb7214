"""Training data as tensors: decoded and resized once, then batch transforms only.

Every image of the train and validation splits goes through the evaluation's stage 1 (threads,
the same torch resize) once, before the first step; each step then indexes uint8 tensors and
its collator rescales, normalizes and (optionally) augments the whole batch in torch. No
per-sample Python work is left for DataLoader workers to do, which a Celery prefork child
could not start anyway.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from evalboard.errors import BadInputError
from worker.evaluation.pipeline import cpu_geometry, decoded_batches
from worker.evaluation.preprocess import Plan, ProcessorGeometry, plan_of, values
from worker.evaluation.sources import LoadedSplit

if TYPE_CHECKING:
    import torch


@dataclass
class ImageTensors:
    """A split as stage-1 tensors: uint8 ``[N, 3, H, W]`` and int64 labels."""

    images: torch.Tensor
    labels: torch.Tensor
    skipped: list[dict[str, Any]]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"pixel_values": self.images[index], "labels": self.labels[index]}


def materialize(
    dataset: Any, *, image_column: str, label_column: str, processor: Any, threads: int,
    max_pixels: int, split: str,
) -> ImageTensors:  # fmt: skip
    """Decode and resize every image of ``dataset`` once (unreadable ones are skipped)."""
    import torch

    plan = plan_of(processor)
    stage1 = cpu_geometry(plan, ProcessorGeometry(processor) if plan.geometry != "torch" else None)
    loaded = LoadedSplit(dataset, split, image_column, label_column, class_names=[])
    images: list[torch.Tensor] = []
    labels: list[np.ndarray] = []
    skipped: list[dict[str, Any]] = []
    for batch in decoded_batches(loaded, stage1, batch_size=256, threads=threads,
                                 max_pixels=max_pixels):  # fmt: skip
        for positions, stack in batch.stacked or []:
            images.append(stack)
            labels.append(batch.labels[positions])
        skipped.extend(batch.bad)
    if not images:
        raise BadInputError(f"no readable image in the {split} split")
    shapes = {tuple(stack.shape[1:]) for stack in images}
    if len(shapes) > 1:
        raise BadInputError(
            f"the base model's processor gives images of several sizes ({sorted(shapes)}); "
            "training needs one size (a processor with a fixed size or a center crop)"
        )
    return ImageTensors(torch.cat(images), torch.from_numpy(np.concatenate(labels)).long(), skipped)


class BatchTransform:
    """The collator: stack, augment (optional), rescale and normalize a batch in torch."""

    def __init__(self, plan: Plan, *, augment: bool, seed: int) -> None:
        import torch

        self.plan = plan
        self.augment = augment
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        images = torch.stack([row["pixel_values"] for row in rows])
        labels = torch.stack([row["labels"] for row in rows])
        if self.augment:
            images = self.light_augmentation(images)
        return {"pixel_values": values(self.plan, images), "labels": labels}

    def light_augmentation(self, images: torch.Tensor) -> torch.Tensor:
        """A small random rotation (±10°), shift (±5%) and brightness change (±15%) per image,
        as one batched affine warp: safe for most image classes."""
        import torch
        import torch.nn.functional as functional

        count = len(images)
        angle = (torch.rand(count, generator=self.generator) * 20 - 10) * math.pi / 180
        shift = torch.rand(count, 2, generator=self.generator) * 0.2 - 0.1  # of the half-size
        brightness = torch.rand(count, generator=self.generator) * 0.3 + 0.85
        cos, sin = torch.cos(angle), torch.sin(angle)
        theta = torch.stack(
            [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
        )
        pixels = images.float()
        grid = functional.affine_grid(theta, list(pixels.shape), align_corners=False)
        warped = functional.grid_sample(pixels, grid, padding_mode="zeros", align_corners=False)
        warped = warped * brightness[:, None, None, None]
        return warped.round_().clamp_(0, 255).to(torch.uint8)
