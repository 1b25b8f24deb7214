"""Before a job loads its model or dataset, what it recorded at submit is checked again.

What was validated is what runs: a local (or trained) model or dataset is checked again
against the path rules, its content hash is compared with the one the submission recorded, and
a mismatch fails the submission as ``refused`` ("changed since it was submitted"). A Hub
dataset's card, links and metadata are checked again as at submit: every file they name must
lie inside its snapshot (its card can change in the cache after submit). We re-check
rather than evaluate an immutable snapshot taken at submit: a snapshot would double the disk of
every large dataset, once per submission, where a re-check costs one more read.

Then the bounds are checked again before anything allocates: configs and weight headers (a Hub
model's too, on its cached files), and, for an image classifier, the model its config describes,
built on the meta device (no memory): its size, and its shapes against those of its weights.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from db.models import DatasetRef, ModelRef
from db.session import session_scope
from db.submissions import get_submission
from evalboard import catalog
from evalboard.contents import check_folder, is_inside, printable, real_path
from evalboard.dataset_files import check_dataset_files
from evalboard.errors import BadInputError, NotFoundError, RefusedError
from evalboard.hub_dataset_files import check_hub_dataset
from evalboard.model_files import check_weight_bytes, read_safetensors_header
from evalboard.references import (
    check_model_folder,
    content_hash,
    detect_local_dataset_format,
    hub_offline,
    model_hash,
    resolve_local_path,
)
from evalboard.settings import Settings, get_settings


@dataclass(frozen=True)
class _Recorded:
    """What the submission recorded, read in a short session (hashing takes a while)."""

    task: str
    model: ModelRef
    dataset: DatasetRef
    columns: dict[str, str]


def check_before_loading(submission_id: int, *, training: bool = False) -> None:
    """Re-check the submission's model and dataset; raises an EvalboardError with a reason.
    Called under the job's heartbeat: hashing a large dataset again takes a while.

    ``training``: the model is a base whose head will be replaced, so its head may differ.
    """
    settings = get_settings()
    with session_scope() as session:
        submission = get_submission(session, submission_id)
        if submission is None:
            raise NotFoundError(f"submission {submission_id} does not exist")
        recorded = _Recorded(
            submission.task,
            submission.model,
            submission.dataset,
            dict(submission.column_mapping or {}),
        )
        session.expunge_all()
    model_folder = check_model(recorded.model, settings)
    check_dataset(recorded.dataset, recorded.columns, settings)
    # The image-classification adapter loads with AutoModelForImageClassification; other
    # tasks load their models their own way.
    if recorded.task == catalog.IMAGE_CLASSIFICATION:
        check_model_build(model_folder, settings, weights_must_fit=not training)


def check_model(model: ModelRef, settings: Settings) -> Path:
    """The folder the model loads from, after the path rules, its hash and its files."""
    if model.source == "hub":
        folder = _hub_model_files(model.name, model.resolved_revision)
        # A snapshot's files are links into the repository's blobs: they may lead there.
        check_model_folder(folder, settings, root=folder.parent.parent)
        return folder
    folder = _local_folder(model.name, settings, what="model", trained=model.source == "trained")
    if model_hash(folder, settings) != model.resolved_revision:
        raise RefusedError(
            f"model {model.name!r} changed since it was submitted (its content hash differs); "
            "submit it again to evaluate what it holds now"
        )
    check_model_folder(folder, settings)
    return folder


def check_dataset(dataset: DatasetRef, columns: dict[str, str], settings: Settings) -> None:
    """A local dataset: the path rules, its hash, and every file its files name. A Hub
    dataset (pinned to a commit): every file its card, links and metadata name, as at submit
    (its image paths are checked when the split is loaded, before any image is read)."""
    if dataset.source == "hub":
        check_hub_dataset(dataset.name, dataset.fingerprint, offline=hub_offline())
        return
    if dataset.source != "local":
        return
    path = _local_folder(dataset.name, settings, what="dataset", trained=False)
    if content_hash(path, settings=settings) != dataset.fingerprint:
        raise RefusedError(
            f"dataset {dataset.name!r} changed since it was submitted (its content hash "
            "differs); submit it again to evaluate what it holds now"
        )
    image_columns = [columns["image"]] if "image" in columns else []
    check_dataset_files(path, detect_local_dataset_format(path), image_columns=image_columns)


def _local_folder(name: str, settings: Settings, *, what: str, trained: bool) -> Path:
    if trained:
        # Written by a training under the artifacts folder, wherever the allowed folders are.
        real = real_path(name)
        if not is_inside(real, real_path(settings.artifacts_dir)):
            raise RefusedError(f"trained {what} {name!r} is not in the artifacts folder")
        if not real.is_dir():
            raise NotFoundError(f"trained {what} {name!r} does not exist any more")
        check_folder(real, settings, what=what)
    else:
        real = resolve_local_path(name, settings, what=what)
    if str(real) != name:
        raise RefusedError(
            f"{what} {name!r} changed since it was submitted: the path now leads elsewhere"
        )
    return real


def _hub_model_files(repo_id: str, revision: str) -> Path:
    """The model's configs and safetensors weights in the local Hub cache, at its commit."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        folder = Path(snapshot_download(repo_id, revision=revision, allow_patterns=["*.json"]))
        index = folder / "model.safetensors.index.json"
        weights = ["model.safetensors"]
        if index.is_file():
            from evalboard.contents import load_json

            weight_map = load_json(index, what=f"model {index.name}")
            if isinstance(weight_map, dict) and isinstance(weight_map.get("weight_map"), dict):
                weights = sorted({str(v) for v in weight_map["weight_map"].values()})
        snapshot_download(repo_id, revision=revision, allow_patterns=weights)
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as error:
        raise NotFoundError(
            f"could not fetch model {repo_id!r} at {revision}: {printable(error)}"
        ) from None
    return folder


def check_model_build(folder: Path, settings: Settings, *, weights_must_fit: bool) -> None:
    """Build the model the config describes on the meta device (no memory is allocated):
    bound its size, and (``weights_must_fit``) require the shapes its weights declare to be
    the shapes it has, so a loader never reinitialises, or fails on, a head of another size."""
    import torch
    from transformers import AutoConfig, AutoModelForImageClassification

    try:
        config = AutoConfig.from_pretrained(str(folder), trust_remote_code=False)
        with torch.device("meta"):
            model = AutoModelForImageClassification.from_config(config, trust_remote_code=False)
    except Exception as error:  # noqa: BLE001 - whatever fails here fails on the config
        raise BadInputError(
            f"model config.json does not describe an image classifier transformers can build "
            f"without custom code: {type(error).__name__}: {printable(error)}"
        ) from None
    tensors = list(itertools.chain(model.parameters(), model.buffers()))
    check_weight_bytes(
        sum(t.numel() * t.element_size() for t in tensors),
        settings,
        what="the model its config.json describes",
    )
    if weights_must_fit:
        _check_shapes(model, folder)


def _check_shapes(model: Any, folder: Path) -> None:
    expected = {name: list(tensor.shape) for name, tensor in model.state_dict().items()}
    for file in sorted(folder.glob("*.safetensors")):
        header = read_safetensors_header(file, what=f"model weights {printable(file.name)}")
        for name, shape in header.shapes.items():
            if name in expected and expected[name] != shape:
                labels = getattr(model.config, "num_labels", None)
                raise BadInputError(
                    f"model weights do not fit its config.json: {printable(name)} is {shape} in "
                    f"{printable(file.name)}, the config (with {labels} labels) describes "
                    f"{expected[name]}"
                )
