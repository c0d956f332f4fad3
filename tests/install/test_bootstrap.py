"""`make demo` on a machine without RabbitMQ: .ci/bootstrap installs it, offers Docker, or says what to do —
before any pip install. Run with a PATH of stand-ins, so nothing is installed for real."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ("cat", "sha256sum", "cut", "seq", "sleep", "timeout", "rm", "touch", "dirname")


def stub(directory: Path, name: str, body: str) -> None:
    path = directory / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def bootstrap(tmp_path: Path, *, uid: int, docker_engine: bool | None) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run .ci/bootstrap where RabbitMQ neither answers nor is installed; returns the run and the calls log."""
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    for tool in TOOLS:
        (bin_dir / tool).symlink_to(shutil.which(tool) or f"/usr/bin/{tool}")
    (bin_dir / "python3").symlink_to(sys.executable)
    stub(bin_dir, "id", f"echo {uid}")
    # apt-get "fails" after being called: the run stops there, having installed nothing.
    stub(bin_dir, "apt-get", f'echo "apt-get $*" >> {calls}; [ "$1" = update ] || exit 100')
    if docker_engine is not None:
        stub(bin_dir, "docker", f'echo "docker $*" >> {calls}; exit {0 if docker_engine else 1}')
    env = {
        "PATH": str(bin_dir),
        "HOME": str(tmp_path),
        "CELERY_BROKER_URL": "amqp://guest:guest@127.0.0.1:1//",  # nothing listens on port 1
        "VENV": str(tmp_path / "venv"),
    }
    done = subprocess.run(
        ["/bin/bash", str(ROOT / ".ci" / "bootstrap")], env=env, capture_output=True, text=True, timeout=60
    )
    return done, calls


@pytest.mark.skipif(not Path("/etc/debian_version").exists(), reason="the apt path is for Debian/Ubuntu")
def test_bootstrap__as_root_on_debian_says_so_then_installs_rabbitmq_with_apt(tmp_path: Path) -> None:
    done, calls = bootstrap(tmp_path, uid=0, docker_engine=None)
    assert "installing Debian's rabbitmq-server with apt-get" in done.stdout
    assert "apt-get install -y -qq rabbitmq-server" in calls.read_text()
    assert "creating" not in done.stdout  # the pip install comes after the broker
    assert done.returncode != 0


def test_bootstrap__with_a_docker_engine_offers_the_compose_service(tmp_path: Path) -> None:
    done, calls = bootstrap(tmp_path, uid=1000, docker_engine=True)
    assert done.returncode == 1
    assert "docker compose -f docker/compose.yml" in done.stderr
    assert "-p 127.0.0.1:5672:5672 rabbitmq" in done.stderr
    assert "apt-get" not in calls.read_text()
    assert "creating" not in done.stdout


def test_bootstrap__otherwise_says_what_to_do_before_any_pip_install(tmp_path: Path) -> None:
    done, _ = bootstrap(tmp_path, uid=1000, docker_engine=False)
    assert done.returncode == 1
    assert "RabbitMQ is not running and not installed" in done.stderr
    assert "apt-get install rabbitmq-server" in done.stderr
    assert "creating" not in done.stdout
    assert not (tmp_path / "venv").exists()
