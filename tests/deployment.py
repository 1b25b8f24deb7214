"""The production deployment's files, read the way Compose and Docker read them.

Shared by the tests of the Compose file (``test_compose.py``), of its schema
(``test_compose_spec.py``) and of the images (``test_docker_images.py``). Everything here lies
inside the repository: a fresh clone has nothing beside it.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
PRODUCTION_DOC = ROOT / "README.md"
WORKER_DOCKERFILE = ROOT / "Dockerfile"
DASHBOARD_DOCKERFILE = ROOT / "Dockerfile.dashboard"

Compose = dict[str, Any]
Service = dict[str, Any]


class ComposeLoader(yaml.SafeLoader):
    """Safe loading plus Compose's merge tags (`!reset`, `!override`), used in the docs."""


def _tagged_value(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return yaml.safe_load(str(node.value))  # `!reset null` means null


for _tag in ("!reset", "!override"):
    ComposeLoader.add_constructor(_tag, _tagged_value)


def load_compose(text: str | None = None) -> Compose:
    """The Compose file (or ``text``) as a mapping, anchors and merge keys resolved."""
    loaded = yaml.load(COMPOSE_FILE.read_text() if text is None else text, Loader=ComposeLoader)
    assert isinstance(loaded, dict), "a Compose file is a mapping"
    return loaded


def readme_compose_blocks() -> list[str]:
    """The ```yaml blocks of the README: the override files the production docs show."""
    return re.findall(r"```yaml\n(.*?)```", PRODUCTION_DOC.read_text(), re.DOTALL)


def env_assignments(text: str) -> dict[str, str]:
    """``NAME=value`` lines of an env file, commented-out ones (``# NAME=value``) included."""
    assignments = {}
    for line in text.splitlines():
        match = re.match(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$", line.strip())
        if match:
            assignments[match[1]] = match[2].strip()
    return assignments


def command_args(service: Service) -> list[str]:
    """The service's command as an argument list (a string command is split like a shell)."""
    command = service.get("command") or []
    return shlex.split(command) if isinstance(command, str) else [str(a) for a in command]


def environment_of(service: Service) -> dict[str, Any]:
    """The service's environment as a mapping; a name without a value maps to None."""
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        # Entries are "NAME=value", or "NAME" alone: the value comes from .env.
        return dict((entry.split("=", 1) + [None])[:2] for entry in environment)
    return dict(environment)


def depends_on_of(service: Service) -> dict[str, dict[str, Any]]:
    """The long form of ``depends_on``, whichever form the file uses."""
    depends_on = service.get("depends_on") or {}
    if isinstance(depends_on, list):  # the short form means condition: service_started
        return {name: {"condition": "service_started"} for name in depends_on}
    return {name: dict(spec or {}) for name, spec in depends_on.items()}
