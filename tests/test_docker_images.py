"""The production images hold together: both Dockerfiles and .dockerignore.

There is no Docker engine here. The Dockerfiles are read as Docker's parser reads them, and
the ``python -c`` that writes each image's requirements is run against pyproject.toml.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deployment import (
    DASHBOARD_DOCKERFILE,
    ROOT,
    WORKER_DOCKERFILE,
    Compose,
    load_compose,
)

# Modules the slim image runs: the dashboard, migrations, settings, CLI and enqueueing.
LIGHT_CODE = ("dashboard", "db", "evalboard", "worker/celery_app.py")
PROJECT_PACKAGES = {"dashboard", "db", "evalboard", "worker", "tests"}
HEAVY_DISTRIBUTIONS = {"torch", "transformers", "datasets", "evaluate", "accelerate"}
IMPORT_TO_DISTRIBUTION = {"PIL": "pillow", "yaml": "pyyaml", "sklearn": "scikit-learn"}


@pytest.fixture(scope="module")
def compose() -> Compose:
    return load_compose()


def dockerfile_text(path: Path) -> str:
    """The Dockerfile with line continuations joined, as Docker's parser reads it."""
    return path.read_text().replace("\\\n", "")


def dockerfile_arg(path: Path, name: str) -> str:
    match = re.search(rf"^ARG {name}=(\"?)(.*)\1$", dockerfile_text(path), re.MULTILINE)
    assert match, f"{path.name} has no ARG {name} with a default"
    return match[2]


def requirements_from(path: Path, env: dict[str, str] | None = None) -> list[str]:
    """Run the Dockerfile's ``python -c`` that writes requirements.txt; return its lines."""
    match = re.search(r'python -c "(.*?)" > /tmp/requirements.txt', dockerfile_text(path))
    assert match, f"{path.name} does not write /tmp/requirements.txt with python -c"
    result = subprocess.run(
        [sys.executable, "-c", match[1]],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def distribution(requirement: str) -> str:
    name = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert name is not None
    return re.sub(r"[-_.]+", "-", name[0]).lower()


def third_party_imports(paths: list[Path]) -> set[str]:
    """Top-level names of the non-standard, non-project modules that ``paths`` import."""
    modules = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return modules - set(sys.stdlib_module_names) - PROJECT_PACKAGES - {"__future__"}


def light_code_files() -> list[Path]:
    files: list[Path] = []
    for entry in LIGHT_CODE:
        path = ROOT / entry
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return files


def test_worker_image_installs_torch_first_then_the_project(compose: Compose) -> None:
    text = dockerfile_text(WORKER_DOCKERFILE)
    assert text.startswith("#") and "FROM python:3.11-slim" in text
    default = dockerfile_arg(WORKER_DOCKERFILE, "TORCH_INDEX_URL")
    assert re.fullmatch(r"https://download\.pytorch\.org/whl/cu12\d", default)
    build_arg = compose["services"]["worker-gpu"]["build"]["args"]["TORCH_INDEX_URL"]
    assert build_arg == f"${{TORCH_INDEX_URL:-{default}}}"
    assert text.index('--index-url "$TORCH_INDEX_URL"') < text.index("RUN pip install .")
    pyproject_deps = requirements_from(WORKER_DOCKERFILE)
    assert "torch>=2.4" in pyproject_deps and "streamlit>=1.40" in pyproject_deps


def test_dashboard_image_installs_what_the_light_code_imports_and_no_torch() -> None:
    names = dockerfile_arg(DASHBOARD_DOCKERFILE, "LIGHT_DEPENDENCIES").split()
    chosen = requirements_from(DASHBOARD_DOCKERFILE, {"LIGHT_DEPENDENCIES": " ".join(names)})
    assert {distribution(r) for r in chosen} == {distribution(n) for n in names}
    imported = {
        distribution(IMPORT_TO_DISTRIBUTION.get(module, module))
        for module in third_party_imports(light_code_files())
    }
    assert imported - set(names) == set(), "add these to LIGHT_DEPENDENCIES"
    # Named by URL, not imported: the PostgreSQL driver and the Redis broker client.
    assert {"psycopg", "redis"} <= set(names)
    assert HEAVY_DISTRIBUTIONS.isdisjoint(names)
    assert "pip install --no-deps ." in dockerfile_text(DASHBOARD_DOCKERFILE)


def test_dashboard_image_build_fails_on_a_dependency_missing_from_pyproject() -> None:
    with pytest.raises(AssertionError, match="not in pyproject.toml"):
        requirements_from(DASHBOARD_DOCKERFILE, {"LIGHT_DEPENDENCIES": "streamlit no-such-dist"})


def test_both_images_run_as_the_same_unprivileged_user_in_app() -> None:
    users = []
    for path in (WORKER_DOCKERFILE, DASHBOARD_DOCKERFILE):
        text = dockerfile_text(path)
        assert "WORKDIR /app" in text, path.name
        assert re.search(r"^USER evalboard$", text, re.MULTILINE), path.name
        users.append(re.search(r"useradd .*--uid (\d+)", text)[1])  # type: ignore[index]
    assert users[0] == users[1] != "0"


def test_dockerignore_keeps_local_state_and_secrets_out_of_the_images() -> None:
    patterns = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", ".git", ".evalboard", ".env", ".pytest_cache", ".mypy_cache"} <= patterns
    needed = {
        "pyproject.toml",
        "alembic.ini",
        "README.md",
        "db",
        "dashboard",
        "evalboard",
        "worker",
    }
    assert needed.isdisjoint(patterns)
