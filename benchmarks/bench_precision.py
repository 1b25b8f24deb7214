"""How often bf16 autocast changes a trained model's predictions against fp32 on the CPU.

The spec decides whether a GPU may evaluate under bf16 (``Spec.gpu_precision``): only if at
least 99.5% of the top-1 predictions equal the fp32 ones. This script trains the small digits
ResNet (as the demo does), then predicts the test split three ways: fp32 on the CPU (the
reference), fp32 on the accelerator, and bf16 autocast on the accelerator. Without a GPU the
"accelerator" is the CPU itself (bf16 autocast on CPU), which shows bf16's rounding but not the
GPU's kernels; the output says which it measured.

    python benchmarks/bench_precision.py [--epochs 6] [--image-size 32]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests import factories  # noqa: E402

THRESHOLD = 0.995


def predict(model_dir: Path, images: list, device: str, bf16: bool) -> np.ndarray:
    import torch

    from worker.evaluation.adapter import ImageClassifier

    classifier = ImageClassifier.load(
        str(model_dir), None, torch.device(device), precision="bf16" if bf16 else "fp32"
    )
    logits = []
    for start in range(0, len(images), 64):
        pixels = classifier.preprocess(images[start : start + 64])
        if bf16 and device == "cpu":  # the adapter autocasts on CUDA only
            with torch.autocast("cpu", dtype=torch.bfloat16):
                logits.append(classifier.predict(pixels))
        else:
            logits.append(classifier.predict(pixels))
    return np.concatenate(logits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    import torch

    accelerator = "cuda" if torch.cuda.is_available() else "cpu"
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = factories.train_tiny_resnet(Path(tmp) / "model", epochs=args.epochs)
        images, labels = factories.digits_images("test", mode="RGB")
        reference = predict(model_dir, images, "cpu", bf16=False)
        runs = {
            f"fp32 on {accelerator}": predict(model_dir, images, accelerator, bf16=False),
            f"bf16 autocast on {accelerator}": predict(model_dir, images, accelerator, bf16=True),
        }
    top1 = reference.argmax(axis=1)
    accuracy = float((top1 == np.asarray(labels)).mean())
    print(f"model: digits ResNet trained {args.epochs} epochs; {len(images)} test images; "
          f"reference fp32 on cpu accuracy {accuracy:.4f}")  # fmt: skip
    if accelerator == "cpu":
        print("no GPU here: the bf16 row is CPU autocast, a proxy for the GPU path")
    for name, logits in runs.items():
        agreement = float((logits.argmax(axis=1) == top1).mean())
        drift = float(np.abs(logits - reference).max())
        verdict = "allowed" if agreement >= THRESHOLD else "forbidden"
        print(f"{name:28s} top-1 agreement {agreement:.4%}  max |Δlogit| {drift:.3g}  "
              f"(bf16 would be {verdict} at ≥ {THRESHOLD:.1%})")  # fmt: skip


if __name__ == "__main__":
    main()
