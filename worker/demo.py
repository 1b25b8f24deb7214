"""A demo that needs no network: scikit-learn's digits and small models built from configs.

``evalboard demo`` (and ``evalboard up --demo``) writes digits as a local imagefolder, builds
small base models of different sizes, and fine-tunes each through the queue, so a new user
sees a real leaderboard.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

DIGIT_NAMES = [str(i) for i in range(10)]
DEMO_HYPERPARAMETERS = {"epochs": 5, "learning_rate": 2e-3, "batch_size": 32}


def digits_splits(test_fraction: float = 0.2, seed: int = 0) -> dict[str, tuple[Any, Any]]:
    """Digits as 8x8 uint8 grayscale images, split into train and test with a fixed seed."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images * (255.0 / 16.0)).round().astype(np.uint8)
    order = np.random.default_rng(seed).permutation(len(images))
    n_test = int(len(images) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    return {
        "train": (images[train], digits.target[train]),
        "test": (images[test], digits.target[test]),
    }


def write_digits_imagefolder(root: Path, *, limit: int | None = None) -> Path:
    """``root/<split>/<class name>/<n>.png``: the layout datasets' imagefolder reads."""
    from PIL import Image

    for split, (images, labels) in digits_splits().items():
        for index, (image, label) in enumerate(zip(images[:limit], labels[:limit], strict=True)):
            folder = root / split / DIGIT_NAMES[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image, mode="L").save(folder / f"{index}.png")
    return root


def image_processor(image_size: int) -> Any:
    from transformers import ViTImageProcessor

    return ViTImageProcessor(
        do_resize=True,
        size={"height": image_size, "width": image_size},
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )


def _label_maps(labels: list[str]) -> dict[str, Any]:
    return {
        "num_labels": len(labels),
        "id2label": dict(enumerate(labels)),
        "label2id": {label: i for i, label in enumerate(labels)},
    }


def build_resnet(
    path: Path,
    labels: list[str] = DIGIT_NAMES,
    *,
    embedding_size: int = 16,
    hidden_sizes: tuple[int, ...] = (16, 32),
    seed: int = 0,
    image_size: int = 32,
) -> Path:
    """A small ResNet classifier from a config, saved with save_pretrained (safetensors)."""
    import torch
    from transformers import ResNetConfig, ResNetForImageClassification

    torch.manual_seed(seed)
    config = ResNetConfig(
        embedding_size=embedding_size,
        hidden_sizes=list(hidden_sizes),
        depths=[1] * len(hidden_sizes),
        layer_type="basic",
        **_label_maps(labels),
    )
    ResNetForImageClassification(config).save_pretrained(path)
    image_processor(image_size).save_pretrained(path)
    return path


def build_vit(
    path: Path, labels: list[str] = DIGIT_NAMES, *, seed: int = 0, image_size: int = 32
) -> Path:
    """A tiny ViT classifier from a config, saved with save_pretrained (safetensors)."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(seed)
    config = ViTConfig(
        image_size=image_size,
        patch_size=8,
        num_channels=3,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        **_label_maps(labels),
    )
    ViTForImageClassification(config).save_pretrained(path)
    image_processor(image_size).save_pretrained(path)
    return path


@dataclass(frozen=True)
class DemoSetup:
    dataset: Path
    base_models: dict[str, Path]


def build_demo(root: Path) -> DemoSetup:
    """Write the digits dataset and three base models of different sizes under ``root``."""
    dataset = root / "digits"
    if not (dataset / "test").is_dir():
        write_digits_imagefolder(dataset)
    builders = {
        "resnet-82k": lambda p: build_resnet(p, embedding_size=32, hidden_sizes=(32, 64)),
        "resnet-22k": lambda p: build_resnet(p),
        "vit-24k": lambda p: build_vit(p),
    }
    models = {}
    for name, build in builders.items():
        path = root / "base-models" / name
        if not (path / "config.json").is_file():
            build(path)
        models[name] = path
    return DemoSetup(dataset, models)


def submit_demo(home: Path) -> list[Any]:
    """Build the demo and enqueue one fine-tuning per base model (a run that was queued or
    done before is returned, not queued again); returns what ``submit`` answered for each."""
    from evalboard.submit import EvaluationInput, submit

    setup = build_demo(home / "demo")
    return [
        submit(
            EvaluationInput(model=str(path), dataset=str(setup.dataset), submitter="demo"),
            dict(DEMO_HYPERPARAMETERS),
        )
        for path in setup.base_models.values()
    ]


def demo_text(home: Path, submitted: list[Any]) -> str:
    """What the demo queued, what it found already there, and where its files are."""
    new = [s.submission_id for s in submitted if not s.duplicate]
    old = [s.submission_id for s in submitted if s.duplicate]
    parts = []
    if new:
        parts.append(f"queued demo trainings {new}")
    if old:
        parts.append(f"demo trainings {old} were already queued or done (not queued again)")
    return (
        "; ".join(parts) + f". Demo data in {home / 'demo' / 'digits'}, base models in "
        f"{home / 'demo' / 'base-models'}, trained models in {home / 'artifacts'}"
    )


def run_demo(settings: Any, *, start_worker: bool = True, as_json: bool = False) -> int:
    """Queue the demo trainings, run a worker until they end, print the leaderboard."""
    import subprocess
    import sys
    import time

    from db.board_rows import leaderboard_rows
    from db.session import session_scope
    from db.submissions import get_submission
    from evalboard.output import leaderboard_text
    from evalboard.processes import terminate, worker_command
    from evalboard.settings import subprocess_env

    submitted = submit_demo(settings.home)
    ids = [s.submission_id for s in submitted]
    log_path = settings.home / "demo-worker.log"
    # Progress talk goes to stderr so that stdout stays the leaderboard (JSON with --json).
    print(f"{demo_text(settings.home, submitted)}; worker log: {log_path}", file=sys.stderr,
          flush=True)  # fmt: skip
    worker = None
    if start_worker:
        with log_path.open("ab") as log:
            worker = subprocess.Popen(
                worker_command(settings, beat=False),
                env=subprocess_env(settings),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
    try:
        while True:
            with session_scope() as session:
                states = [get_submission(session, i).state for i in ids]  # type: ignore[union-attr]
            if all(state in ("succeeded", "failed", "cancelled") for state in states):
                break
            if worker is not None and worker.poll() is not None:
                print("the demo worker stopped unexpectedly", flush=True)
                return 1
            time.sleep(1.0)
    finally:
        if worker is not None:
            terminate([worker])
    with session_scope() as session:
        rows = leaderboard_rows(
            session, dataset=str((settings.home / "demo" / "digits").resolve()), split="test"
        )
    print(leaderboard_text(rows, "json" if as_json else "table"), flush=True)
    return 0 if all(state == "succeeded" for state in states) else 1
