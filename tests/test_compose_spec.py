"""docker-compose.yml and the README's override files follow the Compose Specification.

The schema is the one check-jsonschema ships (``vendor.compose-spec``, vendored from
compose-spec/compose-spec), at the version pinned in pyproject.toml's test extra, so a fresh
clone validates against the same schema everywhere and reads nothing outside the repository.
Debian's docker-compose 1.29.2 was not chosen: its 2021 schema refuses the top-level ``name``.
"""

from __future__ import annotations

import copy
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from check_jsonschema.builtin_schemas import get_builtin_schema
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import validators

from tests.deployment import COMPOSE_FILE, ROOT, Compose, load_compose, readme_compose_blocks

SCHEMA_NAME = "vendor.compose-spec"
SCHEMA_PACKAGE = "check-jsonschema"


def pinned_version(distribution: str) -> str:
    """The exact version pyproject.toml's test extra pins ``distribution`` to."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    for requirement in extras["test"]:
        match = re.fullmatch(rf"{re.escape(distribution)}\s*==\s*([\w.]+)", requirement)
        if match:
            return match[1]
    pytest.fail(f"pyproject.toml's test extra does not pin {distribution} with ==")


def compose_schema() -> dict[str, Any]:
    """The Compose Specification schema of the pinned check-jsonschema."""
    installed = importlib.metadata.version(SCHEMA_PACKAGE)
    pinned = pinned_version(SCHEMA_PACKAGE)
    if installed != pinned:
        pytest.fail(
            f"{SCHEMA_PACKAGE} {installed} is installed but pyproject.toml pins {pinned}: "
            "run scripts/setup test"
        )
    return get_builtin_schema(SCHEMA_NAME)


def validator_class_for(schema: dict[str, Any]) -> Any:
    """The validator of the draft the schema's ``$schema`` names, never a silent default."""
    found = validators.validator_for(schema, default=None)
    if found is None:
        pytest.fail(f"unknown JSON Schema draft {schema.get('$schema')!r}")
    return found


@pytest.fixture(scope="module")
def compose() -> Compose:
    return load_compose()


@pytest.fixture(scope="module")
def compose_validator() -> Any:
    schema = compose_schema()
    validator_class = validator_class_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)


def schema_problems(compose: Compose, validator: Any) -> list[str]:
    """Where and how ``compose`` breaks the schema; empty when it follows it."""
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
        for error in validator.iter_errors(compose)
    ]


def check_jsonschema_cli(path: Path) -> subprocess.CompletedProcess[str]:
    """check-jsonschema's own command line on ``path``, with the same builtin schema."""
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", SCHEMA_NAME, str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def service_attributes(schema: dict[str, Any]) -> set[str]:
    """Every key the schema lets a service have (its own and those of the specs it combines)."""
    definitions = schema["$defs"]
    names: set[str] = set()
    pending = [definitions["service"]]
    while pending:
        node = pending.pop()
        names |= set(node.get("properties", {}))
        for part in node.get("allOf", []):
            if "$ref" in part:
                pending.append(definitions[part["$ref"].removeprefix("#/$defs/")])
            else:
                pending.append(part)
    return names


# ------------------------------------------------------------------------------------ the file


def test_the_schema_is_the_pinned_compose_specification() -> None:
    schema = compose_schema()
    assert schema["title"] == "Compose Specification"
    # The package's own copy: nothing beside the repository is read.
    package = Path(sys.modules["check_jsonschema.builtin_schemas"].__file__ or "").parent
    assert (package / "vendor" / "compose-spec.json").is_file()
    assert validator_class_for(schema).__name__ == "Draft202012Validator"


def test_compose_file_follows_the_compose_specification(
    compose: Compose, compose_validator: Any
) -> None:
    assert schema_problems(compose, compose_validator) == []


def test_check_jsonschema_command_line_accepts_the_compose_file() -> None:
    result = check_jsonschema_cli(COMPOSE_FILE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok -- validation done" in result.stdout


def test_readme_override_files_follow_the_compose_specification(compose_validator: Any) -> None:
    blocks = readme_compose_blocks()
    assert len(blocks) >= 3
    for block in blocks:
        assert schema_problems(load_compose(block), compose_validator) == [], block


# ------------------------------------------------------------------ the schema can fail at all

Mutation = Callable[[Compose], None]


def _in_service(name: str, key: str, value: Any) -> Mutation:
    def mutate(compose: Compose) -> None:
        compose["services"][name][key] = value

    return mutate


def _top_level(key: str, value: Any) -> Mutation:
    def mutate(compose: Compose) -> None:
        compose[key] = value

    return mutate


def _gpu_device(key: str, value: Any) -> Mutation:
    def mutate(compose: Compose) -> None:
        compose["services"]["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"][0][
            key
        ] = value

    return mutate


def _healthcheck(name: str, key: str, value: Any) -> Mutation:
    def mutate(compose: Compose) -> None:
        compose["services"][name]["healthcheck"][key] = value

    return mutate


SCHEMA_MUTATIONS: dict[str, Mutation] = {
    "misspelt service key": _in_service("redis", "healthcheck_", {}),
    "unknown top-level key": _top_level("servicez", {}),
    "unknown depends_on condition": _in_service(
        "dashboard", "depends_on", {"migrate": {"condition": "service_ready"}}
    ),
    "depends_on without a condition": _in_service(
        "beat", "depends_on", {"redis": {"required": True}}
    ),
    "ports as a mapping": _in_service("postgres", "ports", {"5432": 5432}),
    "init as a list": _in_service("worker-cpu", "init", ["true"]),
    "command as a number": _in_service("migrate", "command", 7),
    "environment as a number": _in_service("dashboard", "environment", 3),
    "capabilities as a string": _gpu_device("capabilities", "gpu"),
    "unknown device key": _gpu_device("gpus", 1),
    "healthcheck test as a mapping": _healthcheck("postgres", "test", {"cmd": "pg_isready"}),
    "healthcheck interval as a list": _healthcheck("redis", "interval", ["5s"]),
    "unknown volume key": _top_level("volumes", {"evalboard-data": {"drivr": "local"}}),
    "services as a list": _top_level("services", ["redis"]),
    "name as a mapping": _top_level("name", {"evalboard": True}),
}


@pytest.mark.parametrize("mutation", sorted(SCHEMA_MUTATIONS))
def test_the_schema_refuses_a_broken_copy(
    compose: Compose, compose_validator: Any, mutation: str
) -> None:
    broken = copy.deepcopy(compose)
    SCHEMA_MUTATIONS[mutation](broken)
    assert schema_problems(broken, compose_validator), mutation


def test_check_jsonschema_command_line_refuses_a_broken_copy(
    compose: Compose, tmp_path: Path
) -> None:
    broken = copy.deepcopy(compose)
    SCHEMA_MUTATIONS["unknown depends_on condition"](broken)
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(broken))
    result = check_jsonschema_cli(path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Schema validation errors" in result.stdout + result.stderr


_attribute = st.from_regex(r"[a-z][a-z0-9_.-]{0,20}", fullmatch=True)


@settings(max_examples=60, deadline=None)
@given(key=_attribute)
def test_any_key_that_is_not_a_service_attribute_is_refused(
    compose: Compose, compose_validator: Any, key: str
) -> None:
    # A validator of another draft ignores unevaluatedProperties and would let every key pass.
    known = service_attributes(compose_validator.schema)
    broken = copy.deepcopy(compose)
    broken["services"]["redis"][key] = {}
    problems = schema_problems(broken, compose_validator)
    if key in known or key.startswith("x-"):
        return  # a real attribute: its value may or may not fit, either way not this class
    assert any("redis" in problem and key in problem for problem in problems), problems
