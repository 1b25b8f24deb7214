"""Small real models and datasets, built locally: scikit-learn's digits and tiny transformers."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from evalboard import catalog
from worker.demo import (  # noqa: F401 - re-exported for the tests
    DIGIT_NAMES,
    build_resnet,
    build_vit,
    digits_splits,
    write_digits_imagefolder,
)

# The spec every test submission records: the current one, so results are ranked.
SPEC = catalog.default_spec(catalog.IMAGE_CLASSIFICATION)


def make_vit(
    path: Path, labels: list[str] = DIGIT_NAMES, *, seed: int = 0, image_size: int = 32
) -> Path:
    """A tiny ViT classifier (about 24k parameters), saved with save_pretrained."""
    return build_vit(path, labels, seed=seed, image_size=image_size)


def make_resnet(
    path: Path, labels: list[str] = DIGIT_NAMES, *, seed: int = 0, image_size: int = 32
) -> Path:
    """A tiny ResNet classifier (about 22k parameters), saved with save_pretrained."""
    return build_resnet(path, labels, seed=seed, image_size=image_size)


def digits_dataset_dict(*, limit: int | None = None, string_labels: bool = False):
    """A datasets.DatasetDict with an Image column and ClassLabel (or string) labels."""
    import datasets

    label_feature = (
        datasets.Value("string") if string_labels else datasets.ClassLabel(names=DIGIT_NAMES)
    )
    features = datasets.Features({"image": datasets.Image(), "label": label_feature})
    splits = {}
    for split, (images, labels) in digits_splits().items():
        rows = {
            "image": [Image.fromarray(image, mode="L") for image in images[:limit]],
            "label": [DIGIT_NAMES[y] if string_labels else int(y) for y in labels[:limit]],
        }
        splits[split] = datasets.Dataset.from_dict(rows, features=features)
    return datasets.DatasetDict(splits)


def write_digits_parquet(
    root: Path, *, limit: int | None = None, string_labels: bool = False
) -> Path:
    """``root/train.parquet`` and ``root/test.parquet``."""
    root.mkdir(parents=True, exist_ok=True)
    for split, dataset in digits_dataset_dict(limit=limit, string_labels=string_labels).items():
        dataset.to_parquet(str(root / f"{split}.parquet"))
    return root


def write_digits_saved(root: Path, *, limit: int | None = None) -> Path:
    """A ``save_to_disk`` folder of the digits DatasetDict."""
    digits_dataset_dict(limit=limit).save_to_disk(str(root))
    return root


def permute_labels(source: Path, target: Path, permutation: list[int]) -> Path:
    """The same classifier with its output rows and id2label reordered by ``permutation``.

    Output ``j`` of the new model is output ``permutation[j]`` of the old one, so predictions
    are identical once labels are matched by name.
    """
    import torch
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    model = AutoModelForImageClassification.from_pretrained(source)
    head = model.classifier if hasattr(model, "classifier") else None
    linear = head[-1] if isinstance(head, torch.nn.Sequential) else head
    index = torch.tensor(permutation)
    with torch.no_grad():
        linear.weight.copy_(linear.weight[index].clone())
        linear.bias.copy_(linear.bias[index].clone())
    old = model.config.id2label
    model.config.id2label = {j: old[p] for j, p in enumerate(permutation)}
    model.config.label2id = {name: j for j, name in model.config.id2label.items()}
    model.save_pretrained(target)
    AutoImageProcessor.from_pretrained(source).save_pretrained(target)
    return target


def train_tiny_resnet(path: Path, *, epochs: int = 6, seed: int = 0) -> Path:
    """A tiny ResNet fitted on the digits train split with a plain loop (a few seconds).

    Tests need a model that is clearly better than chance, so that a wrong label alignment
    shows up as a wrong accuracy.
    """
    import torch

    make_resnet(path, seed=seed)
    from transformers import AutoImageProcessor, ResNetForImageClassification

    model = ResNetForImageClassification.from_pretrained(path)
    processor = AutoImageProcessor.from_pretrained(path)
    images, labels = digits_splits()["train"]
    pixels = processor(
        images=[Image.fromarray(image, mode="L").convert("RGB") for image in images],
        return_tensors="pt",
    )["pixel_values"]
    targets = torch.as_tensor(labels, dtype=torch.long)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(targets), generator=generator).split(64):
            loss = model(pixel_values=pixels[batch], labels=targets[batch]).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    model.save_pretrained(path)
    return path


def digits_images(
    split: str = "test", *, mode: str = "L", limit: int | None = None
) -> tuple[list[Image.Image], list[int]]:
    """One digits split as PIL images converted to ``mode`` (L, RGBA, P, ...) and int labels."""
    images, labels = digits_splits()[split]
    return (
        [Image.fromarray(image, mode="L").convert(mode) for image in images[:limit]],
        [int(label) for label in labels[:limit]],
    )


def write_image_parquet(
    root: Path,
    splits: dict[str, tuple[list[Image.Image], list]],
    *,
    label_feature=None,
    image_column: str = "image",
    label_column: str = "label",
) -> Path:
    """``root/<split>.parquet`` from images and labels; labels default to the digit ClassLabel."""
    import datasets

    if label_feature is None:
        label_feature = datasets.ClassLabel(names=DIGIT_NAMES)
    features = datasets.Features({image_column: datasets.Image(), label_column: label_feature})
    root.mkdir(parents=True, exist_ok=True)
    for split, (images, labels) in splits.items():
        rows = {image_column: images, label_column: labels}
        dataset = datasets.Dataset.from_dict(rows, features=features)
        dataset.to_parquet(str(root / f"{split}.parquet"))
    return root


def write_image_folder(root: Path, splits: dict[str, tuple[list[Image.Image], list[int]]]) -> Path:
    """``root/<split>/<digit name>/<n>.png``, each image saved in its own mode."""
    for split, (images, labels) in splits.items():
        for index, (image, label) in enumerate(zip(images, labels, strict=True)):
            folder = root / split / DIGIT_NAMES[label]
            folder.mkdir(parents=True, exist_ok=True)
            image.save(folder / f"{index}.png")
    return root


def make_pickle_only_model(path: Path) -> Path:
    """A tiny classifier folder whose weights are only ``pytorch_model.bin`` (a pickle)."""
    import torch
    from safetensors.torch import load_file

    make_resnet(path)
    weights = path / "model.safetensors"
    torch.save(load_file(str(weights)), path / "pytorch_model.bin")
    weights.unlink()
    return path


def make_remote_code_model(path: Path) -> Path:
    """A tiny classifier folder whose config.json asks for custom code through ``auto_map``."""
    import json

    make_resnet(path)
    config_path = path / "config.json"
    config = json.loads(config_path.read_text())
    config["auto_map"] = {"AutoModelForImageClassification": "modeling_evil.EvilModel"}
    config_path.write_text(json.dumps(config))
    return path
