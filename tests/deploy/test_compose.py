"""Static checks of the compose stack and the image: no Docker engine needed.

The commands in docker/compose.yml must agree with the Celery settings the code relies on
(queues, prefetch, scheduler); a drift there silently breaks priority in production only.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.conf import settings

from project.celery import app as celery_app

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKER_DIR = REPO_ROOT / "docker"
COMPOSE = DOCKER_DIR / "compose.yml"
ENV_EXAMPLE = DOCKER_DIR / ".env.example"
DOCKERFILE = DOCKER_DIR / "Dockerfile"

INFRA_SERVICES = {"rabbitmq", "postgres"}
APP_SERVICES = {"web", "worker", "beat", "flower"}
# $$ is compose's escape for a literal $, left to the container's shell.
VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)|\$([A-Za-z_][A-Za-z0-9_]*)")
ENV_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def service(compose: dict[str, Any], name: str) -> dict[str, Any]:
    return compose["services"][name]


def argv(compose: dict[str, Any], name: str) -> list[str]:
    command = service(compose, name)["command"]
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def option(args: list[str], *names: str) -> str | None:
    """The value of ``--name value`` or ``--name=value`` in ``args``."""
    for i, arg in enumerate(args):
        for name in names:
            if arg == name and i + 1 < len(args):
                return args[i + 1]
            if arg.startswith(f"{name}="):
                return arg.split("=", 1)[1]
    return None


def strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)


def referenced_variables(compose: dict[str, Any]) -> set[str]:
    # From the parsed file, so that ${...} in comments doesn't count.
    names = set()
    for text in strings(compose):
        for match in VARIABLE.finditer(text):
            if match.group(0) != "$$":
                names.add(match.group(1) or match.group(2))
    return names


def env_example() -> dict[str, str]:
    return {m.group(1): m.group(2) for line in ENV_EXAMPLE.read_text().splitlines() if (m := ENV_LINE.match(line))}


def depends_on(compose: dict[str, Any], name: str) -> dict[str, str]:
    deps = service(compose, name).get("depends_on") or {}
    if isinstance(deps, list):  # the short form has no condition
        return dict.fromkeys(deps, "service_started")
    return {dep: (spec or {}).get("condition", "service_started") for dep, spec in deps.items()}


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions, pending = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, rest = (pending + line).partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        pending = ""
    return instructions


# --- services ----------------------------------------------------------------------------


def test_every_service_is_there(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) >= INFRA_SERVICES | APP_SERVICES


def test_infrastructure_images_healthchecks_and_volumes(compose: dict[str, Any]) -> None:
    rabbitmq, postgres = service(compose, "rabbitmq"), service(compose, "postgres")
    assert rabbitmq["image"] == "rabbitmq:3.13-management"
    assert "rabbitmq-diagnostics -q ping" in " ".join(rabbitmq["healthcheck"]["test"])
    assert postgres["image"] == "postgres:16"
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    named_volumes = set(compose["volumes"])
    assert any(v.split(":")[0] in named_volumes and v.endswith("/var/lib/postgresql/data") for v in postgres["volumes"])
    assert any(v.split(":")[0] in named_volumes for v in rabbitmq["volumes"])
    # RabbitMQ's data directory is per node name, which follows the hostname.
    assert rabbitmq["hostname"] == "rabbitmq"


def test_app_services_build_from_the_repo_root(compose: dict[str, Any]) -> None:
    for name in APP_SERVICES:
        build = service(compose, name)["build"]
        assert build == {"context": "..", "dockerfile": "docker/Dockerfile"}, name
        assert (COMPOSE.parent / build["context"]).resolve() == REPO_ROOT
        assert (REPO_ROOT / build["dockerfile"]).is_file()


def test_app_services_wait_for_healthy_dependencies(compose: dict[str, Any]) -> None:
    needs = {"web": {"postgres", "rabbitmq"}, "worker": {"postgres", "rabbitmq", "web"}}
    needs |= {"beat": needs["worker"], "flower": {"rabbitmq"}}
    for name, required in needs.items():
        deps = depends_on(compose, name)
        assert set(deps) >= required, name
        for dep in deps:
            assert deps[dep] == "service_healthy", (name, dep)
            assert "healthcheck" in service(compose, dep), f"{name} waits for {dep}, which has no healthcheck"


def test_web_migrates_then_serves_gunicorn_on_8000(compose: dict[str, Any]) -> None:
    command = " ".join(argv(compose, "web"))
    assert "python manage.py migrate --noinput" in command
    assert command.index("migrate") < command.index("gunicorn project.wsgi")
    assert "--bind 0.0.0.0:8000" in command
    assert any(str(port).endswith(":8000:8000") for port in service(compose, "web")["ports"])


def test_worker_consumes_exactly_the_declared_priority_queues(compose: dict[str, Any]) -> None:
    args = argv(compose, "worker")
    assert args[:4] == ["celery", "-A", "project", "worker"]
    queues = option(args, "-Q", "--queues")
    assert queues is not None
    assert queues.split(",") == [queue.name for queue in celery_app.conf.task_queues]


def test_worker_holds_one_message_at_a_time(compose: dict[str, Any]) -> None:
    # Prefetch 1 and late acks together are what lets an urgent job overtake queued ones.
    args = argv(compose, "worker")
    assert option(args, "--prefetch-multiplier") == "1"
    # The app's effective settings: queueprio.celery.configure() sets these for the project.
    assert celery_app.conf.worker_prefetch_multiplier == 1
    assert celery_app.conf.task_acks_late is True
    assert celery_app.conf.task_reject_on_worker_lost is True


def test_beat_is_one_database_scheduler(compose: dict[str, Any]) -> None:
    beat = service(compose, "beat")
    args = argv(compose, "beat")
    assert args[:4] == ["celery", "-A", "project", "beat"]
    assert option(args, "--scheduler", "-S") == celery_app.conf.beat_scheduler
    assert (beat.get("deploy") or {}).get("replicas", 1) == 1
    assert beat.get("scale", 1) == 1


def test_flower_requires_basic_auth_from_the_environment(compose: dict[str, Any]) -> None:
    args = argv(compose, "flower")
    assert args[:4] == ["celery", "-A", "project", "flower"]
    # From the environment, not the command line (where `ps` would show the password).
    assert option(args, "--basic-auth", "--basic_auth") is None
    basic_auth = service(compose, "flower")["environment"]["FLOWER_BASIC_AUTH"]
    assert re.fullmatch(r"\$\{FLOWER_USER:\?[^}]+\}:\$\{FLOWER_PASSWORD:\?[^}]+\}", basic_auth)
    assert "kwargs" in service(compose, "flower")["environment"]["FLOWER_TASKS_COLUMNS"].split(",")
    # Its persistent state lives on a volume, not in the container's writable layer.
    db = option(args, "--db")
    assert option(args, "--persistent") == "True"
    assert db is not None
    mounts = [v.split(":")[1] for v in service(compose, "flower")["volumes"]]
    assert any(db.startswith(mount.rstrip("/") + "/") for mount in mounts)


def test_converters_root_is_one_volume_shared_by_web_and_worker(compose: dict[str, Any]) -> None:
    root = compose["x-app"]["environment"]["CONVERTERS_ROOT"]
    mounts = {}
    for name in ("web", "worker"):
        assert service(compose, name)["environment"]["CONVERTERS_ROOT"] == root
        mounts[name] = {v.split(":")[0] for v in service(compose, name)["volumes"] if v.split(":")[1] == root}
    assert mounts["web"] == mounts["worker"]
    assert mounts["web"] <= set(compose["volumes"])
    assert len(mounts["web"]) == 1


# --- the env file --------------------------------------------------------------------------


def test_every_variable_is_documented_in_env_example(compose: dict[str, Any]) -> None:
    documented = set(env_example())
    referenced = referenced_variables(compose)
    assert referenced - documented == set(), "used in compose.yml, missing from .env.example"
    assert documented - referenced == set(), "in .env.example, but compose.yml never reads it"


def test_each_env_example_variable_has_a_comment() -> None:
    lines = ENV_EXAMPLE.read_text().splitlines()
    for previous, line in zip(["", *lines], lines, strict=False):
        if ENV_LINE.match(line):
            assert previous.startswith("#"), f"no comment above {line!r}"


def test_env_example_holds_only_placeholder_secrets() -> None:
    for name, value in env_example().items():
        if name.endswith(("PASSWORD", "SECRET_KEY")):
            assert value.startswith("change-me"), name


# --- the image ------------------------------------------------------------------------------


def test_dockerfile_runs_as_non_root_and_installs_pinned_requirements() -> None:
    instructions = dockerfile_instructions()
    keywords = [keyword for keyword, _ in instructions]
    assert instructions[0] == ("FROM", "python:3.11-slim")
    users = [args for keyword, args in instructions if keyword == "USER"]
    assert users, "no USER line"
    assert users[-1].split(":")[0] not in {"root", "0"}
    runs = [args for keyword, args in instructions if keyword == "RUN"]
    install = next(i for i, (k, a) in enumerate(instructions) if k == "RUN" and "-r requirements/base.txt" in a)
    assert "pip install" in instructions[install][1]
    # Requirements are copied on their own first, so code changes reuse the install layer.
    copies = [i for i, (k, a) in enumerate(instructions) if k == "COPY"]
    assert instructions[copies[0]][1].startswith("requirements/base.txt")
    assert copies[0] < install < copies[1]
    assert any("collectstatic" in args for args in runs)
    assert ("EXPOSE", "8000") in instructions
    assert keywords.index("USER") < keywords.index("CMD")


def test_dockerfile_bakes_in_no_secrets() -> None:
    for keyword, args in dockerfile_instructions():
        if keyword in {"ENV", "ARG"}:
            assert not re.search(r"SECRET|PASSWORD|TOKEN|_KEY", args, re.IGNORECASE), args


def test_dockerfile_copies_every_local_app() -> None:
    copied = {args.split()[0] for keyword, args in dockerfile_instructions() if keyword == "COPY"}
    local = {app.split(".")[0] for app in settings.INSTALLED_APPS if (REPO_ROOT / app.split(".")[0]).is_dir()}
    assert local | {"project", "manage.py"} <= copied


# --- tools, when installed ----------------------------------------------------------------


def docker_compose_available() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.skipif(not docker_compose_available(), reason="the docker compose CLI plugin is not installed")
def test_docker_compose_accepts_the_file_with_the_example_env() -> None:
    result = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE), "--env-file", str(ENV_EXAMPLE), "config", "-q"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def hadolint() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    return str(beside_python) if beside_python.is_file() else shutil.which("hadolint")


@pytest.mark.skipif(hadolint() is None, reason="hadolint is not installed (pip install -r requirements/test.txt)")
def test_hadolint_finds_nothing() -> None:
    result = subprocess.run(
        [hadolint(), "--no-color", str(DOCKERFILE)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
