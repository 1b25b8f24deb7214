"""Validate and resolve model and dataset references before anything is queued.

One place, used by the dashboard, the CLI and the worker: Hub ids by the Hub's naming rules,
local paths only under the allowed folders, no custom code, revisions resolved to a commit sha
(Hub) or a content hash (local). Light to import: no torch, no datasets.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from evalboard.errors import BadInputError, NotFoundError, RefusedError
from evalboard.settings import Settings

SHA_RE = re.compile(r"^[0-9a-f]{40}$")
WEIGHT_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
DATASET_SCRIPT_SUFFIXES = (".py",)
MODEL_HASH_IGNORES = frozenset({"README.md"})
LOCAL_DATASET_FORMATS = ("save_to_disk", "parquet", "imagefolder")


@dataclass(frozen=True)
class ResolvedModel:
    source: str  # hub | local | trained
    name: str  # Hub id, or absolute path of the folder
    requested_revision: str | None
    resolved_revision: str

    @property
    def load_path(self) -> str:
        return self.name


@dataclass(frozen=True)
class ResolvedDataset:
    source: str  # hub | local
    name: str  # Hub id, or absolute path of the file or folder
    config: str  # "default" when the dataset has none
    requested_revision: str | None
    fingerprint: str  # commit sha (Hub) or content hash (local)
    local_format: str | None = None  # save_to_disk | parquet | imagefolder

    @property
    def hub_config(self) -> str | None:
        return None if self.config == "default" else self.config


def looks_like_path(reference: str) -> bool:
    """A reference is a local path if it exists or is written like one."""
    return reference.startswith(("/", ".", "~")) or Path(reference).exists()


def resolve_local_path(reference: str, settings: Settings, *, what: str) -> Path:
    """The real path of ``reference``, required to exist under an allowed folder."""
    if "\x00" in reference:
        raise BadInputError(f"{what} path contains a NUL byte")
    candidate = Path(reference).expanduser()
    if ".." in candidate.parts:
        raise RefusedError(f"{what} path {reference!r} contains '..'; give a plain path")
    real = candidate.resolve()
    if not _is_allowed(real, settings):
        allowed = ", ".join(str(p) for p in settings.allowed_paths)
        raise RefusedError(
            f"{what} path {str(real)!r} is outside the allowed folders ({allowed}); "
            "set EVALBOARD_ALLOWED_PATHS to allow it"
        )
    if not real.exists():
        raise NotFoundError(f"{what} path {str(real)!r} does not exist")
    if real.is_dir():
        _refuse_links_outside(real, settings, what=what)
    return real


def _is_allowed(path: Path, settings: Settings) -> bool:
    return any(path == root or root in path.parents for root in settings.allowed_paths)


def _refuse_links_outside(folder: Path, settings: Settings, *, what: str) -> None:
    """A folder inside the allowed ones must not reach outside them through a symlink."""
    for directory, subdirectories, files in os.walk(folder, followlinks=False):
        for name in (*subdirectories, *files):
            entry = Path(directory) / name
            if entry.is_symlink() and not _is_allowed(entry.resolve(), settings):
                raise RefusedError(
                    f"{what} folder holds a link {str(entry.relative_to(folder))!r} that points "
                    "outside the allowed folders"
                )


def validate_hub_id(reference: str, *, what: str) -> None:
    """Check ``reference`` against the Hub's repository naming rules."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(reference)
    except HFValidationError as error:
        raise BadInputError(
            f"{what} {reference!r} is not a valid Hub id or local path: {error}"
        ) from None
    if reference.count("/") > 1:
        raise BadInputError(f"{what} {reference!r} is not a valid Hub id (namespace/name)")


def content_hash(path: Path, *, ignore: frozenset[str] = frozenset()) -> str:
    """sha256 over every file's relative path, size and bytes, in a stable order.

    ``ignore`` names top-level files that do not change what the content computes.
    """
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        relative = file.name if file == path else file.relative_to(path).as_posix()
        if relative in ignore:
            continue
        if file != path and any(part.startswith(".") for part in Path(relative).parts):
            continue  # caches and lock files (.cache/, .DS_Store) are not content
        # The size frames the bytes: one file can never hash like two.
        digest.update(f"{relative}\x00{file.stat().st_size}\x00".encode())
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\x00")
    return digest.hexdigest()


def model_hash(folder: Path) -> str:
    """The content hash of a model folder; its model card does not change predictions."""
    return content_hash(folder, ignore=MODEL_HASH_IGNORES)


def check_model_folder(folder: Path, *, allow_pickle: bool = False) -> None:
    """Refuse a model folder that needs custom code or carries only pickle weights."""
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise BadInputError(f"model folder {str(folder)!r} has no config.json")
    try:
        config = json.loads(config_path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise BadInputError(
            f"model config {str(config_path)!r} is not valid JSON: {error}"
        ) from None
    if not isinstance(config, dict):
        raise BadInputError(f"model config {str(config_path)!r} is not a JSON object")
    if config.get("auto_map"):
        raise RefusedError(
            "model config has 'auto_map': it needs custom code, which evalboard never runs"
        )
    names = [p.name for p in folder.iterdir() if p.is_file()]
    if not any(n.endswith(WEIGHT_SUFFIXES) for n in names):
        if any(n.endswith(PICKLE_SUFFIXES) for n in names) and not allow_pickle:
            raise RefusedError(
                "model has only pickle weights (.bin/.pt); evalboard loads safetensors only"
            )
        if not allow_pickle:
            raise BadInputError(f"model folder {str(folder)!r} has no .safetensors weights")


def resolve_model(
    reference: str, revision: str | None, settings: Settings, *, source: str | None = None
) -> ResolvedModel:
    """Validate a model reference and pin it to an exact revision."""
    reference = reference.strip()
    if not reference:
        raise BadInputError("model is empty: give a Hub id or a local folder")
    if looks_like_path(reference):
        folder = resolve_local_path(reference, settings, what="model")
        if not folder.is_dir():
            raise BadInputError(f"model path {str(folder)!r} is not a folder")
        check_model_folder(folder, allow_pickle=settings.allow_pickle_weights)
        return ResolvedModel(source or "local", str(folder), revision, model_hash(folder))
    validate_hub_id(reference, what="model")
    sha = _resolve_hub_revision(reference, revision, repo_type="model")
    return ResolvedModel("hub", reference, revision, sha)


def detect_local_dataset_format(path: Path) -> str:
    """save_to_disk, parquet or imagefolder, from what lies at ``path``."""
    if path.is_file():
        if path.suffix == ".parquet":
            return "parquet"
        raise BadInputError(
            f"dataset file {str(path)!r} is not parquet; give a parquet file, an imagefolder "
            "or a save_to_disk folder"
        )
    if any(path.glob("*.py")):
        raise RefusedError("dataset folder holds a Python script; dataset scripts are not run")
    if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
        return "save_to_disk"
    if any(path.rglob("*.parquet")):
        return "parquet"
    return "imagefolder"


def resolve_dataset(
    reference: str, config: str | None, revision: str | None, settings: Settings
) -> ResolvedDataset:
    """Validate a dataset reference and pin it to a revision or content fingerprint."""
    reference = reference.strip()
    if not reference:
        raise BadInputError("dataset is empty: give a Hub id or a local path")
    config_name = (config or "").strip() or "default"
    if looks_like_path(reference):
        path = resolve_local_path(reference, settings, what="dataset")
        local_format = detect_local_dataset_format(path)
        return ResolvedDataset(
            "local", str(path), config_name, revision, content_hash(path), local_format
        )
    validate_hub_id(reference, what="dataset")
    sha = _resolve_hub_revision(reference, revision, repo_type="dataset")
    return ResolvedDataset("hub", reference, config_name, revision, sha)


def _resolve_hub_revision(repo_id: str, revision: str | None, *, repo_type: str) -> str:
    """The commit sha of ``revision`` on the Hub, or in the local cache when offline."""
    if revision and SHA_RE.match(revision):
        return revision
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        if os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0", "false", "False"):
            snapshot = snapshot_download(
                repo_id, repo_type=repo_type, revision=revision, local_files_only=True
            )
            return Path(str(snapshot)).name
        info = (
            HfApi().model_info(repo_id, revision=revision)
            if repo_type == "model"
            else HfApi().dataset_info(repo_id, revision=revision)
        )
        return str(info.sha)
    except RevisionNotFoundError:
        raise NotFoundError(
            f"revision {revision!r} of {repo_type} {repo_id!r} does not exist"
        ) from None
    except (RepositoryNotFoundError, GatedRepoError):
        raise NotFoundError(
            f"{repo_type} {repo_id!r} was not found on the Hub (or is gated)"
        ) from None
    except LocalEntryNotFoundError:
        raise NotFoundError(
            f"{repo_type} {repo_id!r} is not in the local cache and the Hub is offline "
            "(HF_HUB_OFFLINE=1)"
        ) from None
    except OSError as error:
        raise NotFoundError(
            f"could not reach the Hub for {repo_type} {repo_id!r}: {error}"
        ) from None
