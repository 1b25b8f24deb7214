"""The production deployment holds together: docker-compose.yml, .env.example and the docs.

There is no Docker engine here. The compose file is checked against the code it runs: settings
fields, Celery queues, migrations, healthchecks, volumes (test_compose_spec.py checks it against
the Compose Specification, test_docker_images.py the images). Each check is a helper that returns
the problems it finds, and a test feeds it broken copies to show it can fail.
"""

from __future__ import annotations

import configparser
import copy
import importlib.util
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from evalboard.settings import PLACEHOLDER_SECRETS, Settings
from tests.deployment import (
    ENV_EXAMPLE,
    PRODUCTION_DOC,
    ROOT,
    Compose,
    Service,
    command_args,
    depends_on_of,
    env_assignments,
    environment_of,
    load_compose,
)
from worker.celery_app import TASK_ROUTES
from worker.celery_app import app as celery_app

DATABASE_SERVICES = ("redis", "postgres")
LONG_RUNNING = ("redis", "postgres", "dashboard", "worker-gpu", "worker-cpu", "beat")


@pytest.fixture(scope="module")
def compose() -> Compose:
    return load_compose()


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    return env_assignments(ENV_EXAMPLE.read_text())


# --------------------------------------------------------------------------------- the checks


def build_problems(compose: Compose, root: Path) -> list[str]:
    """Services that have neither an image nor a build whose context and Dockerfile exist."""
    problems = []
    for name, service in compose["services"].items():
        build = service.get("build")
        if build is None:
            if not service.get("image"):
                problems.append(f"{name}: neither image nor build")
            continue
        if isinstance(build, str):
            build = {"context": build}
        context = root / build.get("context", ".")
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        if not context.is_dir():
            problems.append(f"{name}: build context {context} does not exist")
        elif not dockerfile.is_file():
            problems.append(f"{name}: Dockerfile {dockerfile} does not exist")
    return problems


def settings_variable_names() -> set[str]:
    prefix = Settings.model_config.get("env_prefix", "")
    return {f"{prefix}{field}".upper() for field in Settings.model_fields}


def unknown_settings(names: set[str]) -> set[str]:
    """``EVALBOARD_*`` names that set no field of Settings (pydantic ignores them silently)."""
    return {name for name in names if name.startswith("EVALBOARD_")} - settings_variable_names()


def compose_evalboard_variables(compose: Compose) -> set[str]:
    return {
        name
        for service in compose["services"].values()
        for name in environment_of(service)
        if name.startswith("EVALBOARD_")
    }


def interpolated_variables(compose: Compose) -> set[str]:
    """Variables Compose takes from .env: ``${NAME…}`` and environment keys without a value."""
    names = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", yaml.safe_dump(compose)))
    for service in compose["services"].values():
        names |= {name for name, value in environment_of(service).items() if value is None}
    return names


def routed_queues() -> set[str]:
    return {route["queue"] for route in TASK_ROUTES.values()} | {celery_app.conf.task_default_queue}


def celery_role(args: list[str]) -> str | None:
    """The role, ``worker`` or ``beat``, of a ``celery -A … worker|beat`` command, else None."""
    if not args or Path(args[0]).name != "celery":
        return None
    return next((a for a in args[1:] if a in ("worker", "beat")), None)


def worker_queues(args: list[str]) -> list[str]:
    """The queues named with ``-Q``/``--queues`` (both ``-Q a,b`` and ``--queues=a,b``)."""
    queues: list[str] = []
    for index, arg in enumerate(args):
        if arg in ("-Q", "--queues") and index + 1 < len(args):
            queues += args[index + 1].split(",")
        elif arg.startswith("--queues="):
            queues += arg.removeprefix("--queues=").split(",")
        elif arg.startswith("-Q") and len(arg) > 2:
            queues += arg[2:].split(",")
    return [queue for queue in queues if queue]


def queue_problems(compose: Compose, routed: set[str]) -> list[str]:
    """Unknown or missing ``-Q``, routed queues no worker consumes, anything but one beat."""
    problems = []
    consumed: set[str] = set()
    beats = []
    for name, service in compose["services"].items():
        args = command_args(service)
        role = celery_role(args)
        if role == "worker":
            queues = worker_queues(args)
            if not queues:
                problems.append(f"{name}: worker without -Q consumes every queue")
            problems += [f"{name}: queue {q!r} is not routed" for q in queues if q not in routed]
            consumed |= set(queues)
            if "-B" in args or "--beat" in args:
                beats.append(name)
        elif role == "beat":
            beats.append(name)
    problems += [f"no worker consumes queue {q!r}" for q in sorted(routed - consumed)]
    if beats != ["beat"]:
        problems.append(f"exactly one beat, the service 'beat', must run beat; found {beats}")
    return problems


def has_gpu_reservation(service: Service) -> bool:
    devices = (
        ((service.get("deploy") or {}).get("resources") or {}).get("reservations") or {}
    ).get("devices") or []
    return any(
        device.get("driver") == "nvidia"
        and "gpu" in (device.get("capabilities") or [])
        and (device.get("count") in ("all", 1) or bool(device.get("device_ids")))
        for device in devices
    )


def dependency_problems(compose: Compose) -> list[str]:
    """Healthchecks, the one-off migration, and who waits for what."""
    services = compose["services"]
    problems = []
    for name, probe in (("redis", "redis-cli ping"), ("postgres", "pg_isready")):
        test = (services.get(name, {}).get("healthcheck") or {}).get("test") or []
        if probe not in (test if isinstance(test, str) else " ".join(map(str, test))):
            problems.append(f"{name}: healthcheck must run {probe!r}")
    migrate = services.get("migrate", {})
    if command_args(migrate) != ["alembic", "upgrade", "head"]:
        problems.append(f"migrate: command must be 'alembic upgrade head', not {migrate}")
    if migrate.get("restart") != "no":
        problems.append("migrate: runs once, restart must be 'no'")
    if depends_on_of(migrate).get("postgres", {}).get("condition") != "service_healthy":
        problems.append("migrate: must wait for postgres to be healthy")
    for name, service in services.items():
        depends_on = depends_on_of(service)
        for dependency in DATABASE_SERVICES:
            condition = depends_on.get(dependency, {}).get("condition", "service_healthy")
            if condition != "service_healthy":
                problems.append(f"{name}: waits for {dependency} with {condition}")
        if name != "migrate" and "EVALBOARD_DATABASE_URL" in environment_of(service):
            condition = depends_on.get("migrate", {}).get("condition")
            if condition != "service_completed_successfully":
                problems.append(f"{name}: must wait for migrate to complete, not {condition}")
    return problems


def restart_problems(compose: Compose) -> list[str]:
    return [
        f"{name}: restart must be unless-stopped"
        for name in LONG_RUNNING
        if compose["services"].get(name, {}).get("restart") != "unless-stopped"
    ]


# ------------------------------------------------------------------------------- compose tests


def test_every_service_has_an_image_or_a_build_that_exists(compose: Compose) -> None:
    assert set(compose["services"]) == {
        "redis", "postgres", "migrate", "dashboard", "worker-gpu", "worker-cpu", "beat"
    }  # fmt: skip
    assert build_problems(compose, ROOT) == []


def test_every_evalboard_variable_is_a_settings_field(
    compose: Compose, env_example: dict[str, str]
) -> None:
    assert compose_evalboard_variables(compose) >= {
        "EVALBOARD_ENVIRONMENT", "EVALBOARD_HOME", "EVALBOARD_DATABASE_URL",
        "EVALBOARD_BROKER_URL", "EVALBOARD_ADMIN_SECRET", "EVALBOARD_ALLOWED_PATHS",
    }  # fmt: skip
    assert unknown_settings(compose_evalboard_variables(compose)) == set()
    assert unknown_settings(set(env_example)) == set()


def test_workers_consume_exactly_the_routed_queues_and_one_beat_runs(compose: Compose) -> None:
    assert routed_queues() == {"eval", "train", "light"}
    assert queue_problems(compose, routed_queues()) == []
    assert worker_queues(command_args(compose["services"]["worker-gpu"])) == ["eval", "train"]
    assert "%h" in " ".join(command_args(compose["services"]["worker-gpu"]))


def test_gpu_worker_reserves_nvidia_gpus_and_the_others_do_not(compose: Compose) -> None:
    services = compose["services"]
    assert has_gpu_reservation(services["worker-gpu"])
    assert not any(has_gpu_reservation(s) for n, s in services.items() if n != "worker-gpu")


def test_migrations_run_first_and_dependants_wait_for_healthy_services(compose: Compose) -> None:
    assert dependency_problems(compose) == []
    assert restart_problems(compose) == []


def test_alembic_ini_names_the_packaged_migrations() -> None:
    config = configparser.ConfigParser()
    assert config.read(ROOT / "alembic.ini"), "alembic.ini is missing at the repository root"
    assert config["alembic"]["script_location"] == "db:migrations"
    spec = importlib.util.find_spec("db.migrations")
    assert spec is not None and spec.submodule_search_locations
    migrations = Path(next(iter(spec.submodule_search_locations)))
    assert (migrations / "env.py").is_file()
    assert any((migrations / "versions").glob("*.py"))


def default_of(value: str) -> str:
    """The value Compose uses when the variable is unset: ``${NAME:-default}`` -> default."""
    match = re.fullmatch(r"\$\{\w+(?::?-(.*))?\}", value)
    return (match[1] or "") if match else value


def mount_targets(service: Service) -> set[str]:
    """Container paths of the short-syntax volumes (``source:target[:mode]``)."""
    return {
        re.sub(r"\$\{[^}]*\}", "source", str(volume)).split(":")[1]
        for volume in service.get("volumes") or []
    }


def test_shared_data_volumes_are_mounted_where_the_settings_point(compose: Compose) -> None:
    services = compose["services"]
    for name in ("dashboard", "worker-gpu", "worker-cpu", "beat"):
        environment = environment_of(services[name])
        mounts = mount_targets(services[name])
        assert environment["EVALBOARD_HOME"] == "/data" and "/data" in mounts, name
        if name != "beat":
            allowed = default_of(environment["EVALBOARD_ALLOWED_PATHS"]).split(",")
            assert set(allowed) <= mounts, name
            assert environment["HF_HOME"] in mounts, name
    beat = command_args(services["beat"])
    assert beat[beat.index("--schedule") + 1].startswith("/data/")


# --------------------------------------------------------------------------- .env.example tests


def test_env_example_lists_every_variable_the_compose_file_reads(
    compose: Compose, env_example: dict[str, str]
) -> None:
    assert interpolated_variables(compose) - set(env_example) == set()


def test_env_example_values_make_valid_settings_once_secrets_are_set(
    compose: Compose, env_example: dict[str, str]
) -> None:
    # An unedited copy must not start: production refuses the placeholder.
    assert env_example["EVALBOARD_ADMIN_SECRET"] in PLACEHOLDER_SECRETS
    assert env_example["EVALBOARD_ENVIRONMENT"] == "production"
    values = {
        name: re.sub(r"\$\{(\w+)\}", lambda m: env_example.get(m[1]) or "x", value)
        for name, value in env_example.items()
    }
    settings = Settings(
        environment=values["EVALBOARD_ENVIRONMENT"],
        database_url=values["EVALBOARD_DATABASE_URL"],
        broker_url=values["EVALBOARD_BROKER_URL"],
        allowed_paths=values["EVALBOARD_ALLOWED_PATHS"],
        admin_secret="a-real-secret-for-this-test",
        home="/data",
    )
    assert settings.allowed_paths == [Path("/data"), Path("/datasets")]
    database, broker = urlsplit(str(settings.database_url)), urlsplit(str(settings.broker_url))
    assert (database.scheme, database.hostname) == ("postgresql+psycopg", "postgres")
    assert (broker.scheme, broker.hostname) == ("redis", "redis")
    assert database.hostname in compose["services"] and broker.hostname in compose["services"]


# ---------------------------------------------------------------------------------- docs tests


def test_production_docs_use_the_commands_of_the_compose_file(compose: Compose) -> None:
    doc = " ".join(PRODUCTION_DOC.read_text().split())
    steps = (
        "cp .env.example .env",
        "docker compose up -d",
        "docker compose up -d --scale worker-gpu=2",
        "evalboard worker -Q eval,train",
    )
    for step in steps:
        assert step in doc, step
    for name in ("dashboard", "worker-gpu", "worker-cpu", "beat", "migrate"):
        assert " ".join(command_args(compose["services"][name])) in doc, name
    for port in ("6379", "5432"):
        assert f"{port}/tcp" in doc


# ---------------------------------------------------------------- the checks can fail at all

Mutation = Callable[[Compose], None]
Check = Callable[[Compose], Any]


def _set(name: str, key: str, value: Any) -> Mutation:
    def mutate(compose: Compose) -> None:
        compose["services"][name] = {**compose["services"][name], key: value}

    return mutate


def _drop(name: str, key: str) -> Mutation:
    def mutate(compose: Compose) -> None:
        compose["services"][name] = {k: v for k, v in compose["services"][name].items() if k != key}

    return mutate


def _set_environment(name: str, key: str, value: str) -> Mutation:
    def mutate(compose: Compose) -> None:
        environment = {**environment_of(compose["services"][name]), key: value}
        _set(name, "environment", environment)(compose)

    return mutate


def _remove_service(name: str) -> Mutation:
    return lambda compose: compose["services"].pop(name)


def _add_second_beat(compose: Compose) -> None:
    compose["services"]["beat-2"] = copy.deepcopy(compose["services"]["beat"])


def _queues(compose: Compose) -> list[str]:
    return queue_problems(compose, routed_queues())


def _settings(compose: Compose) -> set[str]:
    return unknown_settings(compose_evalboard_variables(compose))


def _dependencies(compose: Compose) -> list[str]:
    return dependency_problems(compose)


def _restarts(compose: Compose) -> list[str]:
    return restart_problems(compose)


def _no_gpu(compose: Compose) -> bool:
    return not has_gpu_reservation(compose["services"]["worker-gpu"])


def _builds(compose: Compose) -> list[str]:
    return build_problems(compose, ROOT)


def _unlisted(compose: Compose) -> set[str]:
    return interpolated_variables(compose) - set(env_assignments(ENV_EXAMPLE.read_text()))


MUTATIONS: dict[str, tuple[Mutation, Check]] = {
    "bogus queue": (
        _set("worker-gpu", "command", "celery -A worker.celery_app worker -Q eval,gpu"),
        _queues,
    ),
    "routed queue unconsumed": (_remove_service("worker-cpu"), _queues),
    "worker without -Q": (
        _set("worker-cpu", "command", "celery -A worker.celery_app worker"),
        _queues,
    ),
    "two beats": (_add_second_beat, _queues),
    "beat embedded in a worker": (
        _set("worker-cpu", "command", "celery -A worker.celery_app worker -Q light -B"),
        _queues,
    ),
    "unknown setting": (_set_environment("worker-gpu", "EVALBOARD_BATCH_SIZE", "8"), _settings),
    "migrate only started": (
        _set("dashboard", "depends_on", {"migrate": {"condition": "service_started"}}),
        _dependencies,
    ),
    "redis only started": (_set("beat", "depends_on", ["redis", "migrate"]), _dependencies),
    "no redis healthcheck": (_drop("redis", "healthcheck"), _dependencies),
    "migrate runs something else": (_set("migrate", "command", "alembic current"), _dependencies),
    "migrate restarts": (_set("migrate", "restart", "on-failure"), _dependencies),
    "worker restarts always": (_set("worker-gpu", "restart", "always"), _restarts),
    "no gpu": (_drop("worker-gpu", "deploy"), _no_gpu),
    "missing Dockerfile": (
        _set("dashboard", "build", {"context": ".", "dockerfile": "Nope"}),
        _builds,
    ),
    "variable missing from .env.example": (
        _set_environment("dashboard", "HF_ENDPOINT", "${HF_ENDPOINT_NOT_IN_ENV_EXAMPLE}"),
        _unlisted,
    ),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_each_check_catches_a_broken_copy(compose: Compose, mutation: str) -> None:
    mutate, check = MUTATIONS[mutation]
    assert not check(compose), "the intact file must pass first"
    broken = copy.deepcopy(compose)
    mutate(broken)
    assert check(broken)
