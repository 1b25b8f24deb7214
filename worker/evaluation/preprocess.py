"""The spec's preprocessing as tensor operations: one algorithm on every device.

The model's own image processor decides the parameters (size, crop, resample, rescale, mean,
std); the work is done by torch, in two stages:

1. geometry, per image: decoded RGB uint8 → antialiased resize (bilinear or bicubic, as the
   processor asks) → center crop → uint8 ``[3, H, W]``. This is what the tensor cache keeps.
2. values, per batch on the device: ``x * rescale``, then ``(x - mean) / std``, float32.

On a CUDA worker with torchvision, JPEGs are decoded by nvjpeg and stage 1 runs on the GPU; on
a CPU the images are decoded by PIL and stage 1 runs in torch on the CPU. Both run the same
torch resize, so a result does not depend on the worker that took it. Against the processor's
own PIL path the difference is one uint8 step on a small share of pixels (measured:
``tests/test_preprocess.py`` and the README). A processor this module does not know how to
follow (padding, size bounds, ``crop_pct``) is run itself for stage 1 instead.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

# PIL's resampling filters (the processors store them as ints) → torch's interpolate modes.
RESAMPLE_MODES = {0: "nearest", 2: "bilinear", 3: "bicubic", 1: "bilinear", 4: "bilinear",
                  5: "bicubic"}  # fmt: skip
PREPROCESSING = "torch-resize-1"


class Unsupported(Exception):
    """The processor does something stage 1 does not mirror: run the processor itself."""


@dataclass(frozen=True)
class Plan:
    """What a model's image processor does, as parameters of the two stages."""

    geometry: str  # "torch": stage 1 in torch; "processor": by the processor itself
    height: int | None  # an exact size …
    width: int | None
    shortest_edge: int | None  # … or the shortest edge, keeping the aspect ratio
    longest_edge: int | None
    mode: str  # nearest | bilinear | bicubic
    crop_height: int | None
    crop_width: int | None
    rescale: float | None
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None

    @property
    def fixed_shape(self) -> tuple[int, int] | None:
        """The output (H, W) when every image gets it (what a cache entry can stack)."""
        if self.crop_height and self.crop_width:
            return (self.crop_height, self.crop_width)
        if self.height and self.width:
            return (self.height, self.width)
        return None

    def key(self) -> str:
        """A stable name of the plan, for the tensor cache's key."""
        text = json.dumps({"preprocessing": PREPROCESSING, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _size(value: Any, name: str) -> Any:
    return getattr(value, name, None) if not isinstance(value, dict) else value.get(name)


def plan_of(processor: Any) -> Plan:
    """The plan of a transformers image processor: stage 1 in torch where it can mirror the
    processor, else by the processor itself (with its configuration in the plan's key)."""
    rescale = float(processor.rescale_factor) if getattr(processor, "do_rescale", False) else None
    normalize = getattr(processor, "do_normalize", False)
    mean = tuple(float(v) for v in np.ravel(processor.image_mean)) if normalize else None
    std = tuple(float(v) for v in np.ravel(processor.image_std)) if normalize else None
    try:
        return _torch_plan(processor, rescale, mean, std)
    except Unsupported:
        config = json.dumps(processor.to_dict(), sort_keys=True, default=str)
        return Plan(
            geometry="processor:" + hashlib.sha256(config.encode()).hexdigest()[:16],
            height=None, width=None, shortest_edge=None, longest_edge=None, mode="processor",
            crop_height=None, crop_width=None, rescale=rescale, mean=mean, std=std,
        )  # fmt: skip


def _torch_plan(
    processor: Any,
    rescale: float | None,
    mean: tuple[float, ...] | None,
    std: tuple[float, ...] | None,
) -> Plan:
    if getattr(processor, "do_pad", False) or getattr(processor, "crop_pct", None):
        raise Unsupported("padding or crop_pct")
    size = getattr(processor, "size", None) if getattr(processor, "do_resize", False) else None
    height = width = shortest = longest = None
    if size is not None:
        if _size(size, "max_height") or _size(size, "max_width") or _size(size, "max_pixels"):
            raise Unsupported("size bounds")
        height, width = _size(size, "height"), _size(size, "width")
        shortest, longest = _size(size, "shortest_edge"), _size(size, "longest_edge")
        if not ((height and width) or shortest):
            raise Unsupported(f"size {size!r}")
        if height and width:
            shortest = longest = None
    crop = (
        getattr(processor, "crop_size", None)
        if getattr(processor, "do_center_crop", False)
        else None
    )
    resample = getattr(processor, "resample", 2)
    mode = RESAMPLE_MODES.get(int(resample) if resample is not None else 2)
    if mode is None:
        raise Unsupported(f"resample {resample!r}")
    return Plan(
        geometry="torch",
        height=int(height) if height else None,
        width=int(width) if width else None,
        shortest_edge=int(shortest) if shortest else None,
        longest_edge=int(longest) if longest else None,
        mode=mode,
        crop_height=int(_size(crop, "height")) if crop is not None else None,
        crop_width=int(_size(crop, "width")) if crop is not None else None,
        rescale=rescale,
        mean=mean,
        std=std,
    )


def output_size(plan: Plan, height: int, width: int) -> tuple[int, int]:
    """The resized (H, W) of an image, as transformers computes it (before the crop); a side
    may come out 0 for an extreme aspect ratio under ``longest_edge``."""
    if plan.height and plan.width:
        return (plan.height, plan.width)
    if plan.shortest_edge:
        short, long = (height, width) if height <= width else (width, height)
        new_short = plan.shortest_edge
        new_long = int(new_short * long / short)
        if plan.longest_edge and new_long > plan.longest_edge:
            new_short, new_long = int(plan.longest_edge * new_short / new_long), plan.longest_edge
        return (new_short, new_long) if height <= width else (new_long, new_short)
    return (height, width)


def _processor_resize(processor: Any, size: Any, height: int, width: int) -> tuple[int, int]:
    """(H, W) of a transformers processor's resize: an exact size, or the aspect ratio kept
    with the shortest edge (over ``crop_pct`` first, as ConvNeXt's and PoolFormer's do), the
    longest edge, or bounds; for a size this does not know, its largest number on the short
    side with the aspect ratio kept (an upper bound)."""
    crop_pct = float(getattr(processor, "crop_pct", None) or 1.0)
    exact_height, exact_width = _size(size, "height"), _size(size, "width")
    shortest, longest = _size(size, "shortest_edge"), _size(size, "longest_edge")
    if exact_height and exact_width:
        return (math.ceil(exact_height / crop_pct), math.ceil(exact_width / crop_pct))
    if not shortest and not longest:
        bounds = (_size(size, "max_height"), _size(size, "max_width"))
        if all(bounds):
            scale = min(bounds[0] / height, bounds[1] / width)
            return (int(height * scale), int(width * scale))
        if _size(size, "max_pixels"):  # an area bound: at most that many pixels
            scale = math.sqrt(_size(size, "max_pixels") / (height * width))
            return (int(height * scale), int(width * scale))
        named = size.items() if isinstance(size, dict) else vars(size).items()
        known = [int(v) for k, v in named
                 if isinstance(v, int | float) and v and not k.endswith("pixels")]  # fmt: skip
        if not known:
            return (height, width)
        shortest = max(known)
    kept = Plan(
        geometry="torch", height=None, width=None,
        shortest_edge=int(shortest / crop_pct) if shortest else None,
        longest_edge=int(longest) if longest else None, mode="bilinear", crop_height=None,
        crop_width=None, rescale=None, mean=None, std=None,
    )  # fmt: skip
    if kept.shortest_edge:
        return output_size(kept, height, width)
    # The longest edge alone, the aspect ratio kept.
    scale = kept.longest_edge / max(height, width) if kept.longest_edge else 1.0
    return (int(height * scale), int(width * scale))


def geometry(plan: Plan, image: torch.Tensor) -> torch.Tensor:
    """Stage 1 on one uint8 ``[3, H, W]`` image (any device): resize, then center crop.

    On the CPU, torch resizes uint8 channels-last images directly (its antialiased uint8
    kernels follow PIL's: the same pixels but for ±1 on about 0.1-0.5% of them); elsewhere it
    resizes in float32 and rounds.
    """
    import torch
    import torch.nn.functional as functional

    height, width = int(image.shape[-2]), int(image.shape[-1])
    target = output_size(plan, height, width)
    if target != (height, width):
        antialias = plan.mode != "nearest"
        corners = False if antialias else None
        if image.device.type == "cpu" and antialias:
            batch = image[None].contiguous(memory_format=torch.channels_last)
            image = functional.interpolate(
                batch, size=target, mode=plan.mode, antialias=True, align_corners=corners
            )[0]
        else:
            resized = functional.interpolate(
                image[None].float(), size=target, mode=plan.mode, antialias=antialias,
                align_corners=corners,
            )[0]  # fmt: skip
            image = resized.round_().clamp_(0, 255).to(torch.uint8)
    if plan.crop_height and plan.crop_width:
        image = center_crop(image, plan.crop_height, plan.crop_width)
    return image.contiguous()


def center_crop(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """numpy's center crop as transformers does it (padding with zeros when too small)."""
    import torch

    _, h, w = image.shape
    if h < height or w < width:
        padded = torch.zeros((3, max(h, height), max(w, width)), dtype=image.dtype,
                             device=image.device)  # fmt: skip
        top, left = (padded.shape[1] - h) // 2, (padded.shape[2] - w) // 2
        padded[:, top : top + h, left : left + w] = image
        image, h, w = padded, padded.shape[1], padded.shape[2]
    top, left = (h - height) // 2, (w - width) // 2
    return image[:, top : top + height, left : left + width]


def values(plan: Plan, batch: torch.Tensor) -> torch.Tensor:
    """Stage 2 on a uint8 ``[B, 3, H, W]`` batch on its device: float32, rescaled, normalized."""
    import torch

    pixels = batch.to(torch.float32)
    if plan.rescale is not None:
        pixels = pixels * plan.rescale
    if plan.mean is not None and plan.std is not None:
        mean = torch.tensor(plan.mean, dtype=torch.float32, device=pixels.device)
        std = torch.tensor(plan.std, dtype=torch.float32, device=pixels.device)
        pixels = (pixels - mean[:, None, None]) / std[:, None, None]
    return pixels


def to_tensor(image: Any) -> torch.Tensor:
    """An RGB PIL image as a uint8 ``[3, H, W]`` tensor (no copy of the pixels' bytes twice)."""
    import torch

    array = np.asarray(image, dtype=np.uint8)
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


class ProcessorGeometry:
    """Stage 1 by the processor itself, for processors the plan cannot mirror: its output
    without rescaling and normalizing is the resized image's uint8 values."""

    def __init__(self, processor: Any) -> None:
        self.processor = processor

    def resized_size(self, height: int, width: int) -> tuple[int, int]:
        """The largest (H, W) the processor makes on its way from a ``height`` × ``width``
        image (its resize, ``crop_pct``'s larger first resize, padding), without running it."""
        processor = self.processor
        size = getattr(processor, "size", None) if getattr(processor, "do_resize", False) else None
        resized = (
            (height, width) if size is None else _processor_resize(processor, size, height, width)
        )
        pad = getattr(processor, "pad_size", None) if getattr(processor, "do_pad", False) else None
        if pad is not None and _size(pad, "height") and _size(pad, "width"):
            resized = (max(resized[0], int(_size(pad, "height"))),
                       max(resized[1], int(_size(pad, "width"))))  # fmt: skip
        return resized

    def __call__(self, image: Any) -> torch.Tensor:
        import torch

        pixels = self.processor(
            images=[image], do_rescale=False, do_normalize=False, return_tensors="np"
        )["pixel_values"][0]
        return torch.from_numpy(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))
