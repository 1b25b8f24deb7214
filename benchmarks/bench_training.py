"""Fine-tuning speed: evalboard's training against a plain ``Trainer`` run, in one run.

The same base model, data, split, seed and hyperparameters, and the same work: a validation
and a checkpoint every epoch, the best model kept and saved. The plain run is the usual recipe:
the model's image processor in a ``set_transform`` (per sample, PIL). evalboard's decodes and
resizes every image once into tensors, then only transforms batches in torch (and on a GPU
adds bf16 and fused AdamW). Both print samples/s and the validation accuracy they reach.

    python benchmarks/bench_training.py [--model resnet|vit] [--epochs 3] [--image-size 32]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from tests import factories  # noqa: E402

HYPERPARAMETERS = {"learning_rate": 2e-3, "batch_size": 32, "seed": 42}


def plain_trainer(
    base: Path, data: Path, epochs: float, output: Path
) -> tuple[float, float, float]:
    """The usual recipe: processor in set_transform, Trainer defaults, same hyperparameters."""
    from transformers import AutoImageProcessor, AutoModelForImageClassification, Trainer
    from transformers import TrainingArguments as Arguments

    from evalboard.references import resolve_dataset
    from evalboard.settings import Settings
    from evalboard.training_params import TrainingParams
    from worker.training.data import load_training_data

    started = time.perf_counter()
    settings = Settings(home=output, allowed_paths=[data.parent, output])
    params = TrainingParams(epochs=epochs, **HYPERPARAMETERS)
    split = load_training_data(resolve_dataset(str(data), None, None, settings), params,
                               image_column="image", label_column="label")  # fmt: skip
    processor = AutoImageProcessor.from_pretrained(base)
    model = AutoModelForImageClassification.from_pretrained(
        base, num_labels=len(split.class_names), ignore_mismatched_sizes=True
    )

    def transform(batch: dict[str, Any]) -> dict[str, Any]:
        import io

        from PIL import Image

        images = [Image.open(io.BytesIO(v["bytes"]) if v.get("bytes") else v["path"]).convert("RGB")
                  for v in batch["image"]]  # fmt: skip
        pixels = processor(images=images, return_tensors="pt")["pixel_values"]
        return {"pixel_values": pixels, "labels": batch["label"]}

    split.train.set_transform(transform)
    split.validation.set_transform(transform)

    def accuracy(prediction: Any) -> dict[str, float]:
        logits = prediction.predictions
        return {"accuracy": float((logits.argmax(-1) == prediction.label_ids).mean())}

    trainer = Trainer(
        model=model,
        args=Arguments(
            output_dir=str(output / "plain"), num_train_epochs=epochs, learning_rate=2e-3,
            per_device_train_batch_size=32, per_device_eval_batch_size=32, seed=42,
            warmup_steps=0.1, report_to="none",
            # The same work as evalboard's: validate and checkpoint every epoch, keep the best.
            eval_strategy="epoch", save_strategy="epoch", load_best_model_at_end=True,
            metric_for_best_model="accuracy", save_total_limit=1,
            remove_unused_columns=False, use_cpu=not __import__("torch").cuda.is_available(),
            disable_tqdm=True, logging_strategy="no",
        ),
        train_dataset=split.train, eval_dataset=split.validation, compute_metrics=accuracy,
    )  # fmt: skip
    loop = trainer.train().metrics
    trainer.save_model(str(output / "plain" / "model"))
    seconds = time.perf_counter() - started  # like evalboard's: loading and saving included
    result = trainer.evaluate()
    return loop["train_samples_per_second"], seconds, float(result["eval_accuracy"])


def evalboard_training(
    base: Path, data: Path, epochs: float, output: Path
) -> tuple[float, float, float]:
    from evalboard.references import ResolvedModel, model_hash, resolve_dataset
    from evalboard.settings import Settings
    from evalboard.training_params import TrainingParams
    from worker.training.trainer import TrainingRequest, run_training

    settings = Settings(home=output, allowed_paths=[data.parent, output])
    request = TrainingRequest(
        base_model=ResolvedModel("local", str(base), None, model_hash(base)),
        dataset=resolve_dataset(str(data), None, None, settings),
        params=TrainingParams(epochs=epochs, early_stopping_patience=None, **HYPERPARAMETERS),
        output_dir=output / "evalboard",
    )
    started = time.perf_counter()
    outcome = run_training(request, callbacks=[], model_dir=output / "evalboard" / "model")
    seconds = time.perf_counter() - started  # includes decoding every image once, and saving
    epochs_logged = [e for e in outcome.history if "eval_accuracy" in e]
    loop = next(e for e in outcome.history if "train_runtime" in e)
    return loop["train_samples_per_second"], seconds, float(epochs_logged[-1]["eval_accuracy"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("resnet", "vit"), default="resnet")
    parser.add_argument("--epochs", type=float, default=3)
    parser.add_argument("--image-size", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="evalboard-train-bench-") as folder:
        root = Path(folder)
        data = factories.write_digits_imagefolder(root / "digits")
        build = factories.build_resnet if args.model == "resnet" else factories.build_vit
        base = build(root / "base", image_size=args.image_size)
        plain = plain_trainer(base, data, args.epochs, root)
        ours = evalboard_training(base, data, args.epochs, root)
    print(
        f"{args.model} at {args.image_size}², digits (1,150 training images), "
        f"{args.epochs:g} epochs, batch 32; training loop (Trainer's train_samples_per_second, "
        "validations and checkpoints included) and end to end (dataset folder to saved model)"
    )
    for label, (speed, seconds, accuracy) in (
        ("plain Trainer, processor per sample", plain),
        ("evalboard (tensors, batch transforms)", ours),
    ):
        print(f"  {label:38s} loop {speed:8.1f} samples/s {speed / plain[0]:5.2f}×  "
              f"end to end {seconds:6.1f} s {plain[1] / seconds:5.2f}×  "
              f"validation accuracy {accuracy:.4f}")  # fmt: skip


if __name__ == "__main__":
    main()
