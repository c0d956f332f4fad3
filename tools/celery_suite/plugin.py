"""pytest plugin for Celery's integration suite: configures the suite's app and records outcomes.

Loaded with ``-p tools.celery_suite.plugin`` after ``-p celery.contrib.pytest``, so its
``celery_parameters`` fixture replaces Celery's (the suite's conftest does not define one). The
suite's conftest defines ``celery_config``; Celery applies the ``changes`` given here on top of it.

``CELERY_SUITE_MODE``:

* ``plain``: the suite's configuration plus the worker settings queueprio's project relies on
  (acks late, prefetch 1, reject on worker lost): ``CELERY_SUITE_PLAIN_SETTINGS``, JSON the
  runner reads from ``project/settings.py`` (importing that here would set up the project's own
  Celery app and Django).
* ``queueprio``: every task of the suite's apps is a ``queueprio.PriorityTask`` (``task_cls``),
  with the project's queueprio-related Celery settings, read from the Django settings
  (``tools.celery_suite.settings``); Django is set up and migrated before the session worker starts.

The suite's ``get_redis_connection()`` (its scratch keys, and reading the result backend's
keys) always uses Redis DB 0; it is pointed at ``TEST_BACKEND``'s DB, the one the runner flushes.

Every test's outcome goes to the JSON file named by ``CELERY_SUITE_RESULTS``.

Time limits: ``--timeout`` (pytest-timeout) caps every test, also those the suite marks with a
longer ``timeout``; ``--max-reruns`` caps the suite's ``flaky(reruns=5)`` (whose ``cause=`` this
pytest-rerunfailures ignores: every failure is rerun), and a test that hit the timeout is not
rerun. Without these, one test that hangs costs 6 x 300 s.
"""

from __future__ import annotations

import json
import os
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

MODE = os.environ.get("CELERY_SUITE_MODE", "plain")

#: Worker settings that change delivery semantics; both modes use queueprio's values.
WORKER_SEMANTICS = ("task_acks_late", "worker_prefetch_multiplier", "task_reject_on_worker_lost")
#: What ``queueprio.celery.configure(app)`` sets that the queueprio mode keeps: all of it but the
#: result backend (the suite's own, Redis, for both modes) and the beat scheduler (no beat here).
NOT_TAKEN = ("result_backend", "beat_scheduler")

BAD = ("failed", "error")
_results: dict[str, dict[str, Any]] = {}
_app: dict[str, Any] = {}
_started = time.time()


#: pytest-timeout's failure, matched by pytest-rerunfailures' ``rerun_except``.
TIMED_OUT = r"Timeout \(>[0-9.]+s\) from pytest-timeout"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--max-reruns", type=int, default=1, help="at most this many reruns of a flaky-marked test")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Cap the suite's own timeouts at ``--timeout`` and its reruns at ``--max-reruns``."""
    cap = float(config.getoption("timeout") or 0)
    max_reruns = int(config.getoption("max_reruns"))
    for item in items:
        # Added first, so they are the closest markers: the ones both plugins read.
        timeout = item.get_closest_marker("timeout")
        if cap and timeout is not None and float(marker_value(timeout, "timeout", 0)) > cap:
            item.add_marker(pytest.mark.timeout(cap), append=False)
        flaky = item.get_closest_marker("flaky")
        if flaky is not None:
            reruns = min(int(marker_value(flaky, "reruns", 1)), max_reruns)
            kwargs = {**flaky.kwargs, "reruns": reruns, "rerun_except": TIMED_OUT}
            if len(flaky.args) > 1:
                kwargs.setdefault("reruns_delay", flaky.args[1])
            item.add_marker(pytest.mark.flaky(**kwargs), append=False)


def marker_value(marker: pytest.Mark, name: str, default: Any) -> Any:
    """A marker's first argument, given by keyword or position."""
    return marker.kwargs.get(name, marker.args[0] if marker.args else default)


def queueprio_settings() -> dict[str, Any]:
    """What ``configure(app)`` would set (``queueprio.wiring.defaults``), with ``task_track_started``
    on as the project runs it."""
    from queueprio.conf import settings
    from queueprio.wiring import defaults

    values = {k: v for k, v in defaults().items() if k not in NOT_TAKEN}
    # Only the main queue (named "celery" here: see settings.py); the lane is off.
    values["task_queues"] = tuple(q for q in values["task_queues"] if q.name == settings.QUEUE)
    return {**values, "task_track_started": True}


def results_redis() -> Any:
    """The suite's ``get_redis_connection()``, on the result backend's DB instead of DB 0."""
    from redis import StrictRedis

    # Its blocking reads wait longer than redis-py's default socket timeout, as in the original.
    return StrictRedis.from_url(os.environ.get("TEST_BACKEND", "redis://"), socket_timeout=None)


def pytest_configure(config: pytest.Config) -> None:
    import celery

    if "site-packages" not in (celery.__file__ or ""):
        raise pytest.UsageError(f"celery imported from {celery.__file__}, not the installed package")
    # The conftest (loaded before this hook) imported it from tasks; the test modules import it
    # from the conftest later, and the worker's pool processes fork with the patched modules.
    for module in ("t.integration.tasks", "t.integration.conftest"):
        if module not in sys.modules:
            raise pytest.UsageError(f"{module} is not loaded: run the suite's t/integration files")
        sys.modules[module].get_redis_connection = results_redis  # type: ignore[attr-defined]
    if MODE == "queueprio":
        import django
        from django.core.management import call_command

        if not os.environ.get("DJANGO_SETTINGS_MODULE"):
            raise pytest.UsageError("the queueprio mode needs DJANGO_SETTINGS_MODULE in the environment")
        django.setup()
        call_command("migrate", interactive=False, verbosity=0)
    elif MODE == "plain":
        if "CELERY_SUITE_PLAIN_SETTINGS" not in os.environ:
            raise pytest.UsageError("the plain mode needs CELERY_SUITE_PLAIN_SETTINGS (see tools/celery_suite)")
    else:
        raise pytest.UsageError(f"CELERY_SUITE_MODE must be plain or queueprio, not {MODE!r}")


@pytest.fixture(scope="session")
def celery_parameters() -> dict[str, Any]:
    """Parameters of ``Celery(...)`` for the suite's session and per-test apps."""
    if MODE == "plain":
        return {"changes": json.loads(os.environ["CELERY_SUITE_PLAIN_SETTINGS"])}
    from queueprio import PriorityTask

    return {"task_cls": PriorityTask, "changes": queueprio_settings()}


@pytest.fixture(scope="session", autouse=True)
def _record_app(celery_session_app: Any) -> None:
    """What the session app really runs with, for the results file."""
    conf = celery_session_app.conf
    keys = ("task_default_queue", "task_routes", "broker_transport_options", "task_track_started")
    _app.update(
        task_base=[f"{cls.__module__}.{cls.__qualname__}" for cls in celery_session_app.Task.__mro__[1:3]],
        queues={name: queue.queue_arguments for name, queue in celery_session_app.amqp.queues.items()},
        **{key.lower(): conf[key.lower()] for key in WORKER_SEMANTICS},
        **({key: repr(conf[key]) for key in keys} if MODE == "queueprio" else {}),
    )


def ledger() -> dict[str, int]:
    """queueprio's ledger rows by state, at the end of the session."""
    from django.db.models import Count

    from queueprio.models import Job

    return dict(Job.objects.values_list("state").annotate(n=Count("id")).values_list("state", "n"))


def first_line(report: pytest.TestReport) -> str:
    """The error's (or skip reason's) first non-empty line."""
    longrepr = report.longrepr
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None:
        text = str(crash.message)
    elif isinstance(longrepr, tuple):
        text = str(longrepr[2])
    else:
        text = str(longrepr or "")
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.outcome == "rerun":  # pytest-rerunfailures: an attempt that will be tried again
        entry = _results.setdefault(report.nodeid, {})
        entry["reruns"] = entry.get("reruns", 0) + 1
        return
    if report.when == "setup":
        reruns = _results.get(report.nodeid, {}).get("reruns", 0)
        _results[report.nodeid] = {"outcome": "passed", "message": "", "duration": 0.0, "reruns": reruns}
    entry = _results.setdefault(report.nodeid, {"outcome": "passed", "message": "", "duration": 0.0, "reruns": 0})
    subtest = getattr(report, "context", None)  # pytest's subtests fixture: only a failure counts
    if subtest is not None:
        if report.failed and entry["outcome"] not in BAD:
            entry.update(outcome="failed", message=f"subtest {subtest.msg!r}: {first_line(report)}")
        return
    entry["duration"] = round(entry["duration"] + report.duration, 3)
    if report.when == "call" and hasattr(report, "wasxfail"):
        entry["outcome"] = "xfailed" if report.skipped else "xpassed"
    elif report.skipped:
        entry.update(outcome="skipped", message=first_line(report))
    elif report.failed and entry["outcome"] not in BAD:  # else keep the first error's message
        entry["outcome"] = "failed" if report.when == "call" else "error"  # setup, or teardown
        entry["message"] = first_line(report) + ("" if report.when == "call" else f" [{report.when}]")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    path = os.environ.get("CELERY_SUITE_RESULTS")
    if not path:
        return
    data = {
        "mode": MODE,
        "celery": metadata.version("celery"),
        "exit_status": int(exitstatus),
        "duration_s": round(time.time() - _started, 1),
        "app": _app,
        "ledger": ledger() if MODE == "queueprio" else None,
        "tests": dict(sorted(_results.items())),
    }
    Path(path).write_text(json.dumps(data, indent=1) + "\n")
