"""Small real models and datasets, built locally: scikit-learn's digits and tiny transformers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

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


# ---- hand-made files for the hardening tests: what no well-behaved writer produces -----------


def write_image_paths_parquet(
    root: Path, paths: list[str | None], labels: list[int], *, split: str = "test"
) -> Path:
    """``root/<split>.parquet`` whose images are read from ``paths`` (no bytes embedded), with
    the schema metadata ``datasets`` writes for an Image column. Written with pyarrow, so
    nothing is read from the paths while writing."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    images = pa.array([{"bytes": None, "path": path} for path in paths], type=image_type)
    features = {"image": {"_type": "Image"}, "label": {"dtype": "int64", "_type": "Value"}}
    schema = pa.schema(
        [("image", image_type), ("label", pa.int64())],
        metadata={"huggingface": json.dumps({"info": {"features": features}})},
    )
    root.mkdir(parents=True, exist_ok=True)
    table = pa.table({"image": images, "label": pa.array(labels, pa.int64())}, schema=schema)
    pq.write_table(table, root / f"{split}.parquet")
    return root


def write_raw_safetensors(path: Path, header: object, data: bytes = b"") -> Path:
    """A safetensors file with exactly this header (any JSON value) and data bytes."""
    import json

    encoded = json.dumps(header).encode()
    path.write_bytes(len(encoded).to_bytes(8, "little") + encoded + data)
    return path


def edit_json(path: Path, change: Callable[[Any], object]) -> Path:
    """Load a JSON file, let ``change`` edit the object in place, write it back."""
    import json

    value = json.loads(path.read_text())
    change(value)
    path.write_text(json.dumps(value))
    return path


def sparse_file(path: Path, size: int, *, prefix: bytes = b"") -> Path:
    """A file of ``size`` bytes that takes no disk (a hole after ``prefix``)."""
    with path.open("wb") as handle:
        handle.write(prefix)
        handle.truncate(size)
    return path


def cached_hub_model(name: str, change: Callable[[Path], object] | None = None) -> str:
    """``evalboard-tests/<name>``: a tiny ResNet in the local Hub cache (``HF_HOME``, which the
    workers share), as an offline Hub resolves and loads it; ``change`` edits its files."""
    import hashlib

    from huggingface_hub import constants

    repo = Path(constants.HF_HUB_CACHE) / f"models--evalboard-tests--{name}"
    if not repo.exists():
        commit = hashlib.sha1(name.encode()).hexdigest()
        snapshot = make_resnet(repo / "snapshots" / commit)
        if change is not None:
            change(snapshot)
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text(commit)
    return f"evalboard-tests/{name}"


def cached_hub_dataset(
    name: str, configs: dict[str, int] | None = None, files: dict[str, str] | None = None
) -> tuple[str, str]:
    """``evalboard-tests/<name>``: digits as a Hub dataset repository in the local Hub cache,
    laid out as the Hub serves one (``data/<split>-00000-of-00001.parquet``), or, given
    ``configs`` (name: rows per split), one folder per config declared in its README's YAML
    as on the Hub; ``files`` (name: text) are added to it. Returns the id and its commit."""
    import hashlib

    from huggingface_hub import constants

    repo = Path(constants.HF_HUB_CACHE) / f"datasets--evalboard-tests--{name}"
    commit = hashlib.sha1(f"dataset {name}".encode()).hexdigest()
    if not repo.exists():
        snapshot = repo / "snapshots" / commit
        layouts = {"data": None} if configs is None else dict(configs)
        for folder, limit in layouts.items():
            for split, dataset in digits_dataset_dict(limit=limit).items():
                (snapshot / folder).mkdir(parents=True, exist_ok=True)
                dataset.to_parquet(str(snapshot / folder / f"{split}-00000-of-00001.parquet"))
        if configs is not None:
            yaml = ["---", "configs:"]
            for config in configs:
                yaml += [f"- config_name: {config}", "  data_files:"]
                for split in ("train", "test"):
                    yaml += [f"  - split: {split}", f"    path: {config}/{split}-*.parquet"]
            (snapshot / "README.md").write_text("\n".join([*yaml, "---", ""]))
        for file_name, text in (files or {}).items():
            (snapshot / file_name).write_text(text)
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text(commit)
    return f"evalboard-tests/{name}", commit
