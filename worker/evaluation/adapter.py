"""The narrow model adapter: images in, logits out. The engine never imports transformers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from evalboard.errors import BadInputError, NotFoundError, RefusedError


def safetensors_only() -> bool | None:
    """True unless the operator allows pickle checkpoints; then None: safetensors first, else
    a .bin that transformers loads with ``torch.load(weights_only=True)``."""
    from evalboard.settings import get_settings

    return None if get_settings().allow_pickle_weights else True


class ImageClassifier:
    """A transformers image classifier and its own image processor, on one device."""

    def __init__(
        self, model: Any, processor: Any, device: torch.device, precision: str = "fp32"
    ) -> None:
        self.model = model
        self.processor = processor
        self.device = device
        self.precision = precision
        config = model.config
        self.labels: list[str] = [str(config.id2label[i]) for i in range(config.num_labels)]
        self.architecture = type(model).__name__
        self.num_parameters = int(sum(p.numel() for p in model.parameters()))
        self.channels_last = True

    @classmethod
    def load(
        cls,
        name_or_path: str,
        revision: str | None,
        device: torch.device,
        *,
        precision: str = "fp32",
    ) -> ImageClassifier:
        """Load from a Hub id (pinned revision) or a folder: safetensors only, no remote code.

        ``precision`` is the spec's: "bf16" runs under autocast on a GPU; "fp32" is full
        precision, TF32 convolutions and matmuls included off.
        """
        from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification

        kwargs: dict[str, Any] = {"revision": revision, "trust_remote_code": False}
        try:
            config = AutoConfig.from_pretrained(name_or_path, **kwargs)
            if getattr(config, "auto_map", None):
                raise RefusedError("model config has 'auto_map': custom code is never run")
            model = AutoModelForImageClassification.from_pretrained(
                name_or_path, use_safetensors=safetensors_only(), **kwargs
            )
            processor = AutoImageProcessor.from_pretrained(name_or_path, **kwargs)
        except RefusedError:
            raise
        except OSError as error:
            raise NotFoundError(f"could not load model {name_or_path!r}: {error}") from error
        except ValueError as error:
            raise BadInputError(
                f"model {name_or_path!r} is not an image classifier transformers can load "
                f"without custom code: {error}"
            ) from error
        model.eval().to(device)
        model.to(memory_format=torch.channels_last)  # the probe may switch it back
        if device.type == "cuda" and precision == "fp32":
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        return cls(model, processor, device, precision)

    def preprocess(self, images: Sequence[Any]) -> torch.Tensor:
        """The model's own processor on RGB images (the reference the tensor path is held to)."""
        return self.processor(images=list(images), return_tensors="pt")["pixel_values"]

    def set_channels_last(self, channels_last: bool) -> None:
        """Switch the model's memory format (channels-last speeds up most convolutions)."""
        if channels_last != self.channels_last:
            memory_format = torch.channels_last if channels_last else torch.contiguous_format
            self.model.to(memory_format=memory_format)
            self.channels_last = channels_last

    @torch.inference_mode()
    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Logits of a float32 batch already on the device, at the spec's precision."""
        if self.channels_last:
            pixel_values = pixel_values.contiguous(memory_format=torch.channels_last)
        if self.device.type == "cuda" and self.precision == "bf16":
            with torch.autocast("cuda", dtype=torch.bfloat16):
                return self.model(pixel_values=pixel_values).logits
        return self.model(pixel_values=pixel_values).logits

    def predict(self, pixel_values: torch.Tensor) -> np.ndarray:
        """Logits for one batch (moved to the device), as float32 numpy on the CPU."""
        logits = self.forward(pixel_values.to(self.device, non_blocking=True))
        return logits.float().cpu().numpy()
