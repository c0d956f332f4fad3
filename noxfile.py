"""The compatibility matrix: queueprio installed from this checkout against each supported pair.

    nox -s matrix           # Django 5.2 x Celery 5.5, 5.6, 5.7 (each with its own kombu and py-amqp)
    nox -s lowest           # every dependency at the lowest version pyproject.toml admits
    nox -s django60         # Django 6.0 on Python 3.12, when a 3.12 interpreter is found
    nox -s matrix lowest django60 -- -x   # extra arguments go to pytest

Each session installs the package from this checkout with its extras, so that pip resolves the
ranges in pyproject.toml against the session's pins (the tests import the same files from the
checkout, as the worker subprocesses do), then runs SUBSET: the unit tests and a few
real-worker ordering and aging tests (real RabbitMQ, as everywhere in this suite). The full
suite runs on the pinned set in requirements/ (`make test`).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess

import nox

nox.options.sessions = ["matrix", "lowest", "django60"]
nox.options.reuse_existing_virtualenvs = True

#: Fast, and still proof that priority works: pure unit tests, the checks and configure(), the
#: Prometheus exposition (the extra's lower bound), submission against the broker, and real
#: workers ordering a backlog, aging a starving job, and running Django Tasks in priority order.
SUBSET = [
    "tests/queueprio/test_priority.py",
    "tests/queueprio/test_task_mapping.py",
    "tests/queueprio/test_checks.py",
    "tests/queueprio/test_submit.py",
    "tests/queueprio/test_tasks_backend.py",
    "tests/observability/test_prometheus.py",
    "tests/queueprio/test_ordering.py::test_backlog__runs_exactly_in_priority_then_submission_order",
    "tests/queueprio/test_ordering.py::test_urgent_job__overtakes_a_bulk_backlog",
    "tests/queueprio/test_aging_worker.py::test_aging__a_priority_10_job_starts_within_the_bound_under_a_stream",
    "tests/queueprio/test_aging_worker.py::test_aged_job__runs_exactly_once_and_stale_copies_are_dropped",
]

#: What the repository's project and the test suite need besides queueprio (from requirements/).
HARNESS = [
    "pytest==9.2.0",
    "pytest-django==4.14.0",
    "pytest-timeout==2.4.0",
    "hypothesis==6.170.15",
    "dj-database-url==3.1.2",
    "whitenoise==6.12.0",
    "defusedxml==0.7.1",
    "openpyxl==3.1.5",
    "pillow==13.0.0",
    "PyYAML==6.0.3",
    "psycopg[binary]==3.3.9",
]

CELERY = {"5.5": "5.5.*", "5.6": "5.6.*", "5.7": "5.7.*"}

#: The lower bounds of pyproject.toml's ranges, exactly.
LOWEST = [
    "Django==5.2",
    "celery==5.5.0",
    "kombu==5.5.2",
    "amqp==5.1.1",
    "django-celery-beat==2.8.0",
    "django-celery-results==2.5.1",
    "django-tasks==0.12.0",
    "prometheus-client==0.20.0",
]


def python312() -> str | None:
    """A Python 3.12 that runs: on PATH, else one pyenv installed but did not put there."""
    pyenv = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python3.12")))
    candidates = [shutil.which("python3.12"), *pyenv]
    for candidate in filter(None, candidates):
        if subprocess.run([candidate, "-c", "pass"], capture_output=True).returncode == 0:
            return candidate
    return None


def run_subset(session: nox.Session, *pins: str, extras: str = "tasks,prometheus") -> None:
    # Pins are installed together with the package so pip resolves one consistent set.
    session.install(f".[{extras}]", *pins, *HARNESS)
    session.run("python", "-m", "pip", "freeze", "--quiet", silent=False)
    session.run("python", "-m", "pytest", "-p", "no:cacheprovider", *(session.posargs or SUBSET))


@nox.session(python="3.11")
@nox.parametrize("celery", list(CELERY), ids=[f"django5.2-celery{v}" for v in CELERY])
def matrix(session: nox.Session, celery: str) -> None:
    """Django 5.2 with one Celery minor and the kombu (and py-amqp) it takes."""
    version = CELERY[celery]
    run_subset(session, "Django==5.2.*", f"celery=={version}", f"kombu=={version}")


@nox.session(python="3.11")
def lowest(session: nox.Session) -> None:
    """Every direct dependency at the lowest version pyproject.toml admits."""
    run_subset(session, *LOWEST)


PY312 = python312()


@nox.session(python=PY312 or "3.11")
def django60(session: nox.Session) -> None:
    """Django 6.0 (Python 3.12+): its built-in django.tasks, no backport."""
    if PY312 is None:
        session.skip("Django 6.0 needs Python 3.12 or newer, and this machine has none")
    run_subset(session, "Django==6.0.*", "celery==5.7.*", "kombu==5.7.*", extras="prometheus")
