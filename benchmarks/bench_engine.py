"""Evaluation throughput: the engine against a naive per-image loop, measured in one run.

    python benchmarks/bench_engine.py [--model resnet|vit] [--image-size 224] [--repeat 3]

Builds digits as a local parquet dataset and a small model (no network), warms up, then
prints images/s for the baseline (one image at a time through processor and model, as a
first script would do it) and for ``run_evaluation`` at several batch sizes, with ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests import factories  # noqa: E402


def naive_images_per_s(model_path: Path, images: list) -> float:
    import torch
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    model = AutoModelForImageClassification.from_pretrained(model_path).eval()
    processor = AutoImageProcessor.from_pretrained(model_path)
    started = time.perf_counter()
    with torch.no_grad():
        for image in images:
            pixels = processor(images=image.convert("RGB"), return_tensors="pt")["pixel_values"]
            model(pixel_values=pixels).logits.argmax(-1)
    return len(images) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", choices=("resnet", "vit"), default="resnet")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-sizes", default="4,16,64")
    args = parser.parse_args()

    from evalboard.references import resolve_dataset, resolve_model
    from evalboard.settings import Settings
    from worker.evaluation.engine import EvaluationRequest, run_evaluation

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = factories.write_digits_parquet(root / "digits")
        make = factories.make_resnet if args.model == "resnet" else factories.make_vit
        model_path = make(root / "model", image_size=args.image_size)
        settings = Settings(home=root, allowed_paths=[root])
        model, dataset = (
            resolve_model(str(model_path), None, settings),
            resolve_dataset(str(data), None, None, settings),
        )
        split = factories.digits_dataset_dict()["test"]
        images = [row["image"] for row in split]

        def engine(batch: int) -> float:
            outcome = run_evaluation(EvaluationRequest(model, dataset, batch_size=batch))
            return float(outcome.provenance["images_per_s"])

        engine(16)  # warm-up: dataset cache, module imports, metric modules
        naive_images_per_s(model_path, images[:32])
        baseline = statistics.median(
            naive_images_per_s(model_path, images) for _ in range(args.repeat)
        )
        print(f"model={args.model} image_size={args.image_size} images={len(images)} "
              f"threads={__import__('torch').get_num_threads()}")  # fmt: skip
        print(f"{'baseline: per-image loop':32s} {baseline:9.1f} images/s  1.00x")
        for batch in (int(b) for b in args.batch_sizes.split(",")):
            value = statistics.median(engine(batch) for _ in range(args.repeat))
            print(f"{f'engine, batch {batch}':32s} {value:9.1f} images/s  {value / baseline:.2f}x")


if __name__ == "__main__":
    main()
