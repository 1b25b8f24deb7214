"""The data path: decode and resize images in threads while the model runs.

Stage 1 (``preprocess.geometry``) runs in a pool of threads, several batches ahead of the model
(PIL's decoders and torch's resize release the GIL, so threads scale on the CPU without the
processes a Celery prefork child may not start). On a CUDA worker with torchvision, JPEGs are
read in the threads and decoded by nvjpeg on the GPU, in batches, and resized there. Batches
for a GPU are pinned, so their copy overlaps the previous batch's forward pass.

Before stage 1 resizes an image, it computes the size the resize would give: an image that
would come out over ``EVALBOARD_MAX_RESIZED_PIXELS`` (a 1×200000 strip behind shortest_edge 32
is 6.4M×32), or under one pixel on a side, is a bad image by name, as a corrupt one is, and
the spec's bad-image policy skips it or fails the run.
"""

from __future__ import annotations

import io
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from worker.evaluation.preprocess import Plan, ProcessorGeometry, geometry, output_size, to_tensor
from worker.evaluation.sources import ROW_ID, BadImage, LoadedSplit, decode_image

if TYPE_CHECKING:
    import torch

Geometry = Callable[[Any], "torch.Tensor"]  # a PIL image → uint8 [3, H, W]


@dataclass
class Batch:
    """Stage-1 images of one batch, their labels, and the rows that could not be used."""

    images: list[Any]  # uint8 [3, H, W] tensors; None where a JPEG waits for the GPU
    labels: np.ndarray
    bad: list[dict[str, Any]] = field(default_factory=list)
    jpegs: list[tuple[int, bytes]] = field(default_factory=list)  # (position, bytes): nvjpeg
    # The images stacked by shape, (positions, uint8 [n, 3, H, W]); made in the decoding
    # thread (and pinned there for a GPU) unless JPEGs wait for the GPU.
    stacked: list[tuple[list[int], Any]] | None = None

    @property
    def size(self) -> int:
        return len(self.labels) + len(self.bad)


class Stage1:
    """Stage 1 on the CPU (the plan in torch, or the processor itself), refusing an image
    whose resized size is out of bounds before anything is allocated for it."""

    def __init__(
        self, plan: Plan, processor_geometry: ProcessorGeometry | None, max_resized_pixels: int
    ) -> None:
        self.plan = plan
        self.processor_geometry = processor_geometry
        self.max_resized_pixels = max_resized_pixels

    def resized_size(self, height: int, width: int) -> tuple[int, int]:
        """The largest (H, W) an image of this size becomes on the way through stage 1."""
        if self.processor_geometry is not None:
            return self.processor_geometry.resized_size(height, width)
        return output_size(self.plan, height, width)

    def refusal(self, height: int, width: int) -> str | None:
        """Why an image of this size is not resized (None: it may be)."""
        resized_height, resized_width = self.resized_size(height, width)
        if min(resized_height, resized_width) < 1:
            return (
                f"{width}x{height} pixels would be resized to {resized_width}x{resized_height}: "
                "its aspect ratio is too extreme for the model's image processor"
            )
        if resized_height * resized_width > self.max_resized_pixels:
            return (
                f"{width}x{height} pixels would be resized to {resized_width}x{resized_height}, "
                f"over the limit of {self.max_resized_pixels} pixels "
                "(EVALBOARD_MAX_RESIZED_PIXELS)"
            )
        return None

    def __call__(self, image: Any) -> torch.Tensor:
        reason = self.refusal(image.height, image.width)
        if reason is not None:
            raise BadImage(reason)
        if self.processor_geometry is not None:
            return self.processor_geometry(image)
        return geometry(self.plan, to_tensor(image))


def cpu_geometry(
    plan: Plan, processor_geometry: ProcessorGeometry | None, max_resized_pixels: int | None = None
) -> Stage1:
    """Stage 1 on the CPU, bounded by ``max_resized_pixels`` (default: the setting)."""
    if max_resized_pixels is None:
        from evalboard.settings import get_settings

        max_resized_pixels = get_settings().max_resized_pixels
    return Stage1(plan, processor_geometry, max_resized_pixels)


def _raw_jpeg(value: Any, max_pixels: int, stage1: Geometry | None = None) -> bytes | None:
    """The bytes of a JPEG small enough to decode, read without decoding; None otherwise."""
    from PIL import Image

    data = value.get("bytes") if isinstance(value, dict) else None
    path = value.get("path") if isinstance(value, dict) else None
    if data is None and path:
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError:
            return None
    if not data:
        return None
    try:
        with Image.open(io.BytesIO(data)) as header:
            if header.format != "JPEG" or header.width * header.height > max_pixels:
                return None
            if isinstance(stage1, Stage1) and stage1.refusal(header.height, header.width):
                return None  # refused by name on the CPU path
            if header.mode not in ("RGB", "L"):
                return None  # CMYK, YCCK …: PIL converts them as the processor would
    except Exception:  # noqa: BLE001 - PIL decides, on the CPU path, why it is unreadable
        return None
    return bytes(data)


def decoded_batches(
    loaded: LoadedSplit,
    stage1: Geometry,
    *,
    batch_size: int,
    threads: int,
    max_pixels: int,
    pin: bool = False,
    gpu_jpegs: bool = False,
) -> Iterator[Batch]:
    """Every row of the split in batches, prepared ``threads + 1`` batches ahead."""
    rows = loaded.dataset
    image_column, label_column = loaded.image_column, loaded.label_column

    def prepare(start: int) -> Batch:
        block = rows[start : start + batch_size]
        images: list[Any] = []
        labels: list[int] = []
        bad: list[dict[str, Any]] = []
        jpegs: list[tuple[int, bytes]] = []
        for value, label, row_id in zip(
            block[image_column], block[label_column], block[ROW_ID], strict=True
        ):
            raw = _raw_jpeg(value, max_pixels, stage1) if gpu_jpegs else None
            if raw is not None:
                jpegs.append((len(images), raw))
                images.append(None)
                labels.append(int(label))
                continue
            try:
                image = stage1(decode_image(value, max_pixels))
            except BadImage as error:
                bad.append({"row": int(row_id), "reason": str(error)})
                continue
            images.append(image)
            labels.append(int(label))
        batch = Batch(images, np.asarray(labels, dtype=np.int64), bad, jpegs)
        if not jpegs and images:
            batch.stacked = [
                (positions, stack.pin_memory() if pin else stack)
                for positions, stack in stacks(images)
            ]
        return batch

    starts = range(0, len(rows), batch_size)
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="decode") as pool:
        pending: deque[Future[Batch]] = deque()
        try:
            for start in starts:
                pending.append(pool.submit(prepare, start))
                if len(pending) > threads:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def decode_jpegs_on_gpu(batch: Batch, plan: Plan, device: torch.device) -> None:
    """nvjpeg decodes the batch's JPEGs on the GPU, and stage 1 resizes them there."""
    import torch
    from torchvision.io import ImageReadMode, decode_jpeg

    if not batch.jpegs:
        return
    data = [torch.frombuffer(bytearray(raw), dtype=torch.uint8) for _, raw in batch.jpegs]
    decoded = decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
    for (position, _), image in zip(batch.jpegs, decoded, strict=True):
        batch.images[position] = geometry(plan, image)
    batch.jpegs = []
    batch.stacked = stacks([image.to(device, non_blocking=True) for image in batch.images])


def stacks(images: list[torch.Tensor]) -> list[tuple[list[int], torch.Tensor]]:
    """The images stacked by shape: (their positions, a uint8 [n, 3, H, W] tensor) each; one
    stack when every image has the same shape, as a fixed-size processor gives."""
    import torch

    groups: dict[tuple[int, ...], list[int]] = {}
    for position, image in enumerate(images):
        groups.setdefault(tuple(image.shape), []).append(position)
    return [(positions, torch.stack([images[i] for i in positions]))
            for positions in groups.values()]  # fmt: skip
