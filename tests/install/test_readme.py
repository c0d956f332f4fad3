"""The wheel installs into a new project and the README's integration steps work as written.

Builds the wheel from this checkout, makes a fresh virtualenv and a `django-admin startproject`
project with it, follows "Add queueprio to your project" step by step (``readme_steps``), then
starts the README's worker and checks that the jobs ran in the order the README says. Real
RabbitMQ (this run's vhost), a real worker; nothing of this repository is importable there.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from kombu import Connection

from tests.install.readme_steps import ROOT, new_project, steps
from tests.support.polling import wait_for

pytestmark = [pytest.mark.broker, pytest.mark.install]

#: The order the README promises: by priority, first come first served within one.
EXPECTED = ["urgent", "digest-urgent", "bulk-0", "bulk-1", "bulk-2", "digest-later"]
SUCCEEDED = re.compile(r"\] succeeded in [\d.e-]+s: '([^']*)'")


def clean_env() -> dict[str, str]:
    """The developer's shell, minus anything that would point at this repository or its tests."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTHONPATH", "DJANGO_SETTINGS_MODULE", "VIRTUAL_ENV") and not key.startswith("QUEUEPRIO_")
    }
    # The README's broker URL, pointed at this run's vhost (Celery reads the variable first).
    env["CELERY_BROKER_URL"] = django_settings.CELERY_BROKER_URL
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from this checkout, as `pip wheel .` builds it."""
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--quiet", "-w", str(dist)],
        check=True,
        timeout=300,
    )
    [built] = dist.glob("queueprio-*.whl")
    return built


def test_wheel__ships_the_app_only(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert tops == {"queueprio", wheel.name.split("-py3")[0] + ".dist-info"}
    assert "queueprio/py.typed" in names
    assert "queueprio/migrations/0001_initial.py" in names
    assert any(name.startswith("queueprio/templates/admin/queueprio/") for name in names)
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
    metadata = zipfile.ZipFile(wheel).read(f"{wheel.name.split('-py3')[0]}.dist-info/METADATA").decode()
    [celery_requirement] = [line for line in metadata.splitlines() if line.startswith("Requires-Dist: celery")]
    assert ">=5.5.0" in celery_requirement
    assert "<5.8" in celery_requirement
    assert "Provides-Extra: tasks" in metadata


def test_readme_integration__from_the_wheel_to_priority_jobs(tmp_path: Path, wheel: Path, broker: Connection) -> None:
    timings: list[tuple[str, float]] = []
    # And a fresh virtualenv with a new `django-admin startproject mysite`
    began = time.monotonic()
    project = new_project(tmp_path, sys.executable, clean_env())
    project.install = f"queueprio[tasks] @ {wheel.as_uri()}"
    timings.append(("venv + startproject", time.monotonic() - began))

    # When every step of the README section is applied as written
    outputs = []
    worker_step = None
    for number, step in enumerate(steps((ROOT / "README.md").read_text()), 1):
        if step.action == "worker":
            worker_step = step
            continue
        began = time.monotonic()
        outputs.append(project.apply(step))
        timings.append((f"step {number}: {step.action} {step.target or ''}".strip(), time.monotonic() - began))
    print("\n".join(f"{name}: {seconds:.1f}s" for name, seconds in timings))

    # Then queueprio came from the wheel, and `manage.py check` found nothing missing
    where = project.run('python -c "import queueprio; print(queueprio.__file__)"').stdout
    assert str(project.venv) in where
    assert "System check identified no issues" in "".join(outputs)

    # And the README's worker runs the backlog in the order the README says
    assert worker_step is not None
    log = tmp_path / "worker.log"
    worker = project.start_worker(worker_step, log)
    try:
        wait_for(
            lambda: len(SUCCEEDED.findall(log.read_text(errors="replace"))) >= len(EXPECTED),
            timeout=120,
            message=f"{len(EXPECTED)} jobs to succeed in the new project's worker",
        )
    except AssertionError:
        pytest.fail("worker log:\n" + log.read_text(errors="replace")[-6000:])
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
    assert SUCCEEDED.findall(log.read_text(errors="replace")) == EXPECTED
