"""Validate and resolve model and dataset references before anything is queued.

One place, used by the dashboard, the CLI and the worker: Hub ids by the Hub's naming rules,
local paths only under the allowed folders, no custom code, revisions resolved to a commit sha
(Hub) or a content hash (local). Light to import: no torch, no datasets.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from evalboard import contents, dataset_files, hub_dataset_files, model_files
from evalboard.errors import BadInputError, NotFoundError, RefusedError
from evalboard.settings import Settings

SHA_RE = re.compile(r"^[0-9a-f]{40}$")
REF_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/-]{0,254}")
WEIGHT_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
DATASET_SCRIPT_SUFFIXES = (".py",)
MODEL_HASH_IGNORES = frozenset({"README.md"})
LOCAL_DATASET_FORMATS = ("save_to_disk", "parquet", "imagefolder")
# The database stores a reference (a Hub id or an absolute path) in 1,024 characters.
MAX_REFERENCE_LENGTH = 1024


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


def check_reference_text(reference: str, *, what: str, limit: int = MAX_REFERENCE_LENGTH) -> str:
    """Text as typed: stripped, UTF-8, no NUL byte, short enough to be stored (what the
    database would refuse; lone surrogates come from a command line in another encoding)."""
    if "\x00" in reference:
        raise BadInputError(f"{what} contains a NUL byte")
    try:
        reference.encode("utf-8")
    except UnicodeEncodeError:
        raise BadInputError(f"{what} is not valid UTF-8 text") from None
    reference = reference.strip()
    if len(reference) > limit:
        raise BadInputError(f"{what} is longer than {limit} characters")
    return reference


def looks_like_path(reference: str) -> bool:
    """A reference is a local path if it exists or is written like one."""
    if reference.startswith(("/", ".", "~")):
        return True
    try:
        return Path(reference).exists()
    except (OSError, ValueError):  # a name too long for the file system is no local path
        return False


def resolve_local_path(reference: str, settings: Settings, *, what: str) -> Path:
    """The real path of ``reference``, required to exist under an allowed folder.

    Outside the allowed folders nothing is said but that: not whether the path exists."""
    reference = check_reference_text(reference, what=f"{what} path")
    try:
        candidate = Path(reference).expanduser()
    except RuntimeError:  # ~user of an unknown user
        raise BadInputError(f"{what} path {reference!r} names an unknown home folder") from None
    if ".." in candidate.parts:
        raise RefusedError(f"{what} path {reference!r} contains '..'; give a plain path")
    real = contents.real_path(candidate)
    if not _is_allowed(real, settings):
        allowed = ", ".join(str(p) for p in settings.allowed_paths)
        raise RefusedError(
            f"{what} path {reference!r} is outside the allowed folders ({allowed}); "
            "set EVALBOARD_ALLOWED_PATHS to allow it"
        )
    if len(str(real)) > MAX_REFERENCE_LENGTH:
        raise BadInputError(f"{what} path is longer than {MAX_REFERENCE_LENGTH} characters")
    try:
        real.stat()
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise BadInputError(f"{what} path {reference!r} is a symlink loop") from None
        if error.errno in (errno.ENOENT, errno.ENOTDIR):
            raise NotFoundError(f"{what} path {str(real)!r} does not exist") from None
        raise BadInputError(f"{what} path {reference!r} cannot be read: {error.strerror}") from None
    if real.is_dir():
        contents.check_folder(real, settings, what=what)
    else:
        contents.check_file(real, settings, what=what)
    return real


def _is_allowed(path: Path, settings: Settings) -> bool:
    return any(contents.is_inside(path, root) for root in settings.allowed_paths)


def validate_hub_id(reference: str, *, what: str) -> None:
    """Check ``reference`` against the Hub's repository naming rules."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    shown = contents.shown(reference)
    if reference.count("/") > 1:
        raise BadInputError(f"{what} {shown} is not a valid Hub id (namespace/name)")
    try:
        validate_repo_id(reference)
    except HFValidationError as error:
        reason = str(error) if len(reference) <= 96 else "longer than 96 characters"
        raise BadInputError(
            f"{what} {shown} is not a valid Hub id or local path: {reason}"
        ) from None


def content_hash(
    path: Path, *, ignore: frozenset[str] = frozenset(), settings: Settings | None = None
) -> str:
    """sha256 over every file's relative path, size and bytes, in a stable order.

    ``ignore`` names top-level files that do not change what the content computes. With
    ``settings``, content over ``max_hash_bytes`` is refused by its size, before any byte is
    read.
    """
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    if settings is not None:
        sizes = (f.stat().st_size for f in files if not contents.is_hidden(f.relative_to(path)))
        contents.check_hash_bytes(sum(sizes), settings, what=str(path.name))
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


def model_hash(folder: Path, settings: Settings | None = None) -> str:
    """The content hash of a model folder; its model card does not change predictions."""
    return content_hash(folder, ignore=MODEL_HASH_IGNORES, settings=settings)


def check_model_folder(folder: Path, settings: Settings, *, root: Path | None = None) -> None:
    """Refuse a model folder that needs custom code, carries only pickle weights, or whose
    configs and weight headers are malformed or over the settings' bounds."""
    names = [p.name for p in folder.iterdir() if p.is_file()]
    allow_pickle = settings.allow_pickle_weights
    if (folder / "config.json").is_file() and not any(n.endswith(WEIGHT_SUFFIXES) for n in names):
        if any(n.endswith(PICKLE_SUFFIXES) for n in names) and not allow_pickle:
            raise RefusedError(
                "model has only pickle weights (.bin/.pt); evalboard loads safetensors only"
            )
        if not allow_pickle:
            raise BadInputError(f"model folder {str(folder)!r} has no .safetensors weights")
    model_files.check_model_files(folder, settings, root=root)


def resolve_model(
    reference: str, revision: str | None, settings: Settings, *, source: str | None = None
) -> ResolvedModel:
    """Validate a model reference and pin it to an exact revision."""
    reference = check_reference_text(reference, what="model")
    if not reference:
        raise BadInputError("model is empty: give a Hub id or a local folder")
    if looks_like_path(reference):
        folder = resolve_local_path(reference, settings, what="model")
        if not folder.is_dir():
            raise BadInputError(f"model path {str(folder)!r} is not a folder")
        check_model_folder(folder, settings)
        return ResolvedModel(source or "local", str(folder), revision, model_hash(folder))
    validate_hub_id(reference, what="model")
    sha = _resolve_hub_revision(reference, revision, repo_type="model")
    model_files.check_hub_model_labels(reference, sha, settings)
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
    reference = check_reference_text(reference, what="dataset")
    if not reference:
        raise BadInputError("dataset is empty: give a Hub id or a local path")
    config_name = (config or "").strip() or "default"
    if looks_like_path(reference):
        path = resolve_local_path(reference, settings, what="dataset")
        local_format = detect_local_dataset_format(path)
        dataset_files.check_dataset_files(path, local_format)
        return ResolvedDataset(
            "local", str(path), config_name, revision, content_hash(path), local_format
        )
    validate_hub_id(reference, what="dataset")
    sha = _resolve_hub_revision(reference, revision, repo_type="dataset")
    hub_dataset_files.check_hub_dataset(reference, sha, offline=hub_offline())
    return ResolvedDataset("hub", reference, config_name, revision, sha)


def hub_offline() -> bool:
    """Whether the Hub is off limits (``HF_HUB_OFFLINE``, read as huggingface_hub reads it):
    only the local cache answers."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


def _resolve_hub_revision(repo_id: str, revision: str | None, *, repo_type: str) -> str:
    """The commit sha of ``revision`` on the Hub, or in the local cache when offline (a
    commit given offline must be in the cache too: the worker could not load it otherwise)."""
    is_sha = bool(revision and SHA_RE.match(revision))
    if is_sha and not hub_offline():
        return str(revision)
    if revision is not None and not is_sha and not _is_ref_name(revision):
        raise BadInputError(
            f"revision {contents.shown(revision)} is not a branch, tag or commit name"
        )
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        if hub_offline():
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
        at = f" at {contents.shown(revision)}" if revision else ""
        raise NotFoundError(
            f"{repo_type} {repo_id!r}{at} is not in the local cache and the Hub is offline "
            "(HF_HUB_OFFLINE=1)"
        ) from None
    except OSError as error:
        raise NotFoundError(
            f"could not reach the Hub for {repo_type} {repo_id!r}: {error}"
        ) from None
    except ValueError as error:  # the Hub client's own validation of an id or a revision
        raise BadInputError(f"{repo_type} {repo_id!r} at {revision!r}: {error}") from None


def _is_ref_name(revision: str) -> bool:
    """Git's rules for a branch or tag name, as far as a revision on the Hub can be one (a
    ref name is also a path in the local cache: it must not lead out of it)."""
    return (
        REF_RE.fullmatch(revision) is not None
        and ".." not in revision
        and "//" not in revision
        and not revision.endswith(("/", ".lock", "."))
    )
