"""A Hub dataset names only files inside itself: every ``data_files`` pattern and
``data_dir`` its card's ``configs`` declare is checked on the text, before ``datasets`` globs
anything; a cached snapshot's links lead only into its repository's blobs, and its imagefolder
metadata names files inside it. Light: huggingface_hub and pyyaml, imported when checked."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any

from evalboard.contents import check_links, printable, read_text, real_path, shown
from evalboard.dataset_files import METADATA_FILES, check_metadata_file
from evalboard.errors import BadInputError, NotFoundError, RefusedError

# Where ``datasets`` reads a Hub dataset's ``configs`` from (the second one updates the first).
CARD_FILES = ("README.md", ".huggingface.yaml")
# A URL scheme as ``urllib`` reads one (``datasets`` treats such a pattern as a URL, not a path).
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def check_hub_dataset(repo_id: str, commit: str, *, offline: bool) -> None:
    """Every file a Hub dataset's own files name lies inside it, checked before ``datasets``
    reads anything: offline, its snapshot in the local Hub cache (what the worker loads);
    online, the card files the Hub serves at ``commit`` (what ``datasets`` reads)."""
    if offline:
        snapshot = hub_snapshot(repo_id, commit)
        if snapshot is not None:
            check_hub_snapshot(snapshot, what=f"dataset {repo_id!r}")
        return
    for file in _hub_card_files(repo_id, commit):
        check_card_configs(file, what=f"dataset {repo_id!r} {file.name}")


def hub_snapshot(repo_id: str, commit: str) -> Path | None:
    """The folder of ``commit`` in the local Hub cache, or None when it is not there."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        folder = snapshot_download(
            repo_id, repo_type="dataset", revision=commit, local_files_only=True
        )
    except LocalEntryNotFoundError:
        return None
    return Path(folder)


def snapshot_roots(snapshot: Path) -> list[Path]:
    """Where a snapshot's files may really lie: in it, or (its links) in its repository's
    blobs, as huggingface_hub lays a cache out; never in another repository or commit."""
    return [real_path(snapshot), real_path(snapshot.parent.parent / "blobs")]


def check_hub_snapshot(snapshot: Path, *, what: str = "dataset", metadata: bool = True) -> None:
    """A cached Hub dataset names only files inside its snapshot: its links lead into its
    own blobs, its card's ``configs`` name plain relative paths, and (``metadata``) its
    imagefolder metadata names files inside it."""
    roots = snapshot_roots(snapshot)
    check_links(snapshot, [snapshot, snapshot.parent.parent / "blobs", *roots], what=what)
    for name in CARD_FILES:
        if (snapshot / name).is_file():
            check_card_configs(snapshot / name, what=f"{what} {name}")
    if metadata:
        for name in METADATA_FILES:
            for file in sorted(p for p in snapshot.rglob(name) if p.is_file()):
                check_metadata_file(file, snapshot, link_roots=roots[1:])


def _hub_card_files(repo_id: str, commit: str) -> list[Path]:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError

    files = []
    for name in CARD_FILES:
        try:
            files.append(Path(hf_hub_download(repo_id, name, repo_type="dataset", revision=commit)))
        except LocalEntryNotFoundError as error:  # the Hub did not answer: nothing is checked
            raise NotFoundError(
                f"could not fetch {name} of dataset {repo_id!r} at {commit[:12]}: "
                f"{printable(error)}"
            ) from None
        except EntryNotFoundError:  # the repository has no such file
            continue
        except (HfHubHTTPError, OSError) as error:
            raise NotFoundError(
                f"could not fetch {name} of dataset {repo_id!r} at {commit[:12]}: "
                f"{printable(error)}"
            ) from None
    return files


def check_card_configs(file: Path, *, what: str) -> None:
    """Every ``data_files`` pattern and ``data_dir`` of every config a card declares (a
    README's front matter, read by huggingface_hub as ``datasets`` reads it, or a
    ``.huggingface.yaml``) is a plain relative path: no URL, no absolute path, no ``..``."""
    configs = _card_data(file, what=what).get("configs")
    if configs is None:
        return
    if not isinstance(configs, list):
        raise BadInputError(f"{what} 'configs' is not a list of configs")
    for index, config in enumerate(configs):
        if not isinstance(config, dict):
            raise BadInputError(f"{what} config {index} is not a mapping")
        where = f"{what} config {shown(printable(config.get('config_name', index)))}"
        if config.get("data_dir") is not None:
            check_data_pattern(config["data_dir"], what=f"{where} data_dir")
        for pattern in _patterns(config.get("data_files"), what=f"{where} data_files"):
            check_data_pattern(pattern, what=f"{where} data_files")


def _card_data(file: Path, *, what: str) -> dict[str, Any]:
    import yaml

    text = read_text(file, what=what, encoding="utf-8-sig")
    try:
        if file.name == "README.md":
            from huggingface_hub import DatasetCard

            data: object = DatasetCard(text).data.to_dict()
        else:
            data = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError, TypeError, RecursionError) as error:
        raise BadInputError(
            f"{what} has metadata that is not valid YAML: {printable(error)}"
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BadInputError(f"{what} metadata is not a mapping")
    return data


def _patterns(data_files: object, *, what: str) -> list[object]:
    """The patterns of a config's ``data_files`` in every shape ``datasets`` takes: a path,
    a list of paths, a list of {split, path} (a path or a list), or a mapping split: paths."""
    if data_files is None:
        return []
    if isinstance(data_files, str):
        return [data_files]
    entries = list(data_files.values()) if isinstance(data_files, dict) else data_files
    if not isinstance(entries, list):
        raise BadInputError(f"{what} is not a path, a list of paths, or a list of splits")
    patterns: list[object] = []
    for entry in entries:
        if isinstance(entry, dict) and not isinstance(data_files, dict):
            entry = entry.get("path")
        patterns.extend(entry if isinstance(entry, list) else [entry])
    return patterns


def check_data_pattern(pattern: object, *, what: str) -> None:
    """A data file pattern (or ``data_dir``) that can only match files inside the dataset's
    own folder: relative, without ``..``, and no URL or chained (``::``) fsspec path, no
    ``~`` or ``$`` (``datasets`` expands users and variables in local paths)."""
    if not isinstance(pattern, str) or not pattern.strip() or "\x00" in pattern:
        raise BadInputError(f"{what} holds something that is not a file pattern")
    written = PurePosixPath(pattern)
    if "::" in pattern or "://" in pattern or _SCHEME_RE.match(pattern):
        reason = "a URL"
    elif written.is_absolute() or ".." in written.parts or "\\" in pattern:
        reason = "a path that is not relative to the dataset's own folder"
    elif pattern.startswith("~") or "$" in pattern:
        reason = "a home folder or an environment variable"
    else:
        return
    raise RefusedError(
        f"{what} names {shown(pattern)}, {reason}; a dataset's data files are named by "
        "relative paths inside its own folder, and nothing outside it is read"
    )
