"""Evaluation throughput, four ways in one run, as ratios:

(a) the baseline: evaluate's evaluator over a transformers pipeline, batch 32;
(b) evalboard end to end through a real Celery worker process (submit → result), counting only
    the evaluation: provenance's ``images_per_s``, every image over the whole pass (decoding,
    resizing and the model), first model on a fresh cache;
(c) the bound: the model's forward pass alone on ready tensors, at the batch size and memory
    format the probe picks;
(d) a second model with the same processor: its images come from the tensor cache.

Models are built from configs (random weights): a tiny ViT, ViT-base and ResNet-50, on an
imagefolder of PNGs (``--format jpeg`` for JPEGs, e.g. for the GPU path) with 10 classes.

    python benchmarks/bench_throughput.py [--models tiny-vit,vit-base,resnet-50]
        [--images 512] [--size 224] [--format png|jpeg] [--small]

``--small`` is what CI runs on its CPU: the tiny ViT on 256 images.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")

MEAN, STD = [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]
CLASSES = [f"class-{i}" for i in range(10)]


def write_images(root: Path, count: int, size: int, fmt: str) -> Path:
    """``root/test/<class>/<n>.<fmt>``: smooth random images of ``size`` × ``size``."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    suffix = "jpg" if fmt == "jpeg" else "png"
    source = (size * 3 // 2, size * 2) if fmt == "jpeg" else (size, size)  # JPEGs get resized
    for index in range(count):
        folder = root / "test" / CLASSES[index % len(CLASSES)]
        folder.mkdir(parents=True, exist_ok=True)
        coarse = rng.integers(0, 256, (source[0] // 8, source[1] // 8, 3), dtype=np.uint8)
        image = Image.fromarray(coarse).resize((source[1], source[0]), Image.BILINEAR)
        image.save(folder / f"{index}.{suffix}", **({"quality": 90} if fmt == "jpeg" else {}))
    return root


def build_model(kind: str, path: Path, size: int, seed: int) -> Path:
    import torch
    from transformers import (
        ResNetConfig,
        ResNetForImageClassification,
        ViTConfig,
        ViTForImageClassification,
        ViTImageProcessor,
    )

    torch.manual_seed(seed)
    labels = {"num_labels": 10, "id2label": dict(enumerate(CLASSES)),
              "label2id": {name: i for i, name in enumerate(CLASSES)}}  # fmt: skip
    if kind == "tiny-vit":
        model: Any = ViTForImageClassification(ViTConfig(
            image_size=size, patch_size=16, hidden_size=64, num_hidden_layers=2,
            num_attention_heads=2, intermediate_size=128, **labels))  # fmt: skip
    elif kind == "vit-base":
        model = ViTForImageClassification(ViTConfig(image_size=size, **labels))
    elif kind == "resnet-50":
        model = ResNetForImageClassification(ResNetConfig(
            embedding_size=64, hidden_sizes=[256, 512, 1024, 2048], depths=[3, 4, 6, 3],
            layer_type="bottleneck", **labels))  # fmt: skip
    else:
        raise SystemExit(f"unknown model {kind!r}")
    model.eval().save_pretrained(path)
    ViTImageProcessor(size={"height": size, "width": size}, image_mean=MEAN,
                      image_std=STD).save_pretrained(path)  # fmt: skip
    return path


def evaluator_baseline(model_dir: Path, data: Path) -> float:
    """(a) evaluate's evaluator over a pipeline at batch 32: images per second."""
    import datasets
    import evaluate
    import transformers
    from transformers import pipeline

    if not hasattr(transformers, "TFPreTrainedModel"):  # evaluate 0.4.6 checks for it
        transformers.TFPreTrainedModel = type("TFPreTrainedModel", (), {})
    split = datasets.load_dataset("imagefolder", data_dir=str(data), split="test")
    classifier = pipeline("image-classification", model=str(model_dir), batch_size=32,
                          device=-1)  # fmt: skip
    metric = evaluate.load(str(ROOT / "worker" / "evaluation" / "metric_modules" / "accuracy"))
    task = evaluate.evaluator("image-classification")
    names = split.features["label"].names
    started = time.perf_counter()
    task.compute(
        model_or_pipeline=classifier, data=split, metric=metric,
        label_mapping={name: i for i, name in enumerate(names)},
    )  # fmt: skip
    return len(split) / (time.perf_counter() - started)


class Worker:
    """A real Celery worker (embedded SQLite broker) on a fresh EVALBOARD_HOME."""

    def __init__(self, home: Path, allowed: Path) -> None:
        self.env = {**os.environ, "EVALBOARD_HOME": str(home),
                    "EVALBOARD_ALLOWED_PATHS": f"{home},{allowed}"}  # fmt: skip
        subprocess.run([sys.executable, "-m", "evalboard.cli", "migrate"], env=self.env,
                       cwd=ROOT, check=True, capture_output=True)  # fmt: skip
        self.log = (home / "worker.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker", "-Q",
             "eval,light", "--concurrency", "1", "--without-gossip", "--without-mingle"],
            env=self.env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def evaluate(self, model: Path, data: Path) -> dict[str, Any]:
        completed = subprocess.run(
            [sys.executable, "-m", "evalboard.cli", "submit", "--model", str(model),
             "--dataset", str(data), "--wait", "--json", "--timeout", "3600"],
            env=self.env, cwd=ROOT, capture_output=True, text=True,
        )  # fmt: skip
        report: dict[str, Any] = json.loads(completed.stdout)
        if report["state"] != "succeeded":
            raise SystemExit(f"the worker's evaluation failed: {report['error']}")
        return report

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)
        self.log.close()


def forward_bound(model_dir: Path, size: int) -> tuple[float, int, bool]:
    """(c) the forward pass alone at the probe's best batch and memory format."""
    import torch

    from worker.evaluation.adapter import ImageClassifier
    from worker.evaluation.probe import _time, probe

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    classifier = ImageClassifier.load(str(model_dir), None, device)
    choice = probe(classifier, (3, size, size))
    speed = max(_time(classifier, choice.batch_size, (3, size, size)) for _ in range(3))
    return speed, choice.batch_size, choice.channels_last


def run(kind: str, count: int, size: int, fmt: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="evalboard-bench-") as folder:
        root = Path(folder)
        data = write_images(root / "images", count, size, fmt)
        first = build_model(kind, root / f"{kind}-a", size, seed=0)
        second = build_model(kind, root / f"{kind}-b", size, seed=1)
        baseline = evaluator_baseline(first, data)
        worker = Worker(root / "home", root)
        try:
            cold = worker.evaluate(first, data)["provenance"]
            warm = worker.evaluate(second, data)["provenance"]
        finally:
            worker.stop()
        bound, batch, channels_last = forward_bound(first, size)
    figures = {
        "baseline": baseline,
        # What a user waits for, decoding included (model_images_per_s is the model alone).
        "first": cold["images_per_s"],
        "second": warm["images_per_s"],
        "bound": bound,
    }
    device, precision = cold["device"], cold["precision"]
    print(f"\n{kind} on {device} ({precision}), {count} {fmt.upper()} images at {size}², "
          f"worker batch {cold['batch_size']} (probed), bound batch {batch}"
          f"{' channels-last' if channels_last else ''}; cache: {cold['tensor_cache']} then "
          f"{warm['tensor_cache']}")  # fmt: skip
    for label, key in (("(a) evaluate's evaluator, batch 32", "baseline"),
                       ("(b) evalboard through a worker, 1st model", "first"),
                       ("(d) evalboard, 2nd model, same processor", "second"),
                       ("(c) forward pass alone (the bound)", "bound")):  # fmt: skip
        value = figures[key]
        print(f"  {label:44s} {value:9.1f} img/s  {value / figures['baseline']:5.2f}× (a)  "
              f"{value / figures['bound']:5.2f}× (c)")  # fmt: skip
    print(f"  2nd model / 1st model: {figures['second'] / figures['first']:.2f}×; the model "
          f"alone in the worker: {cold['model_images_per_s']} then "
          f"{warm['model_images_per_s']} img/s (model_images_per_s)")  # fmt: skip
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="tiny-vit,vit-base,resnet-50")
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--format", choices=("png", "jpeg"), default="png")
    parser.add_argument("--small", action="store_true", help="CI: the tiny ViT, 256 images")
    args = parser.parse_args()
    import torch

    models = ["tiny-vit"] if args.small else args.models.split(",")
    count = 256 if args.small else args.images
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs, GPU: {gpu}")  # fmt: skip
    for kind in models:
        run(kind, count, args.size, args.format)


if __name__ == "__main__":
    main()
