"""Helpers shared by the benchmarks: an isolated broker vhost and database, timing, reporting.

Every benchmark runs against its own throwaway RabbitMQ vhost and (by default) its own SQLite
file in a temporary directory, so it can run next to a developer's worker or the test suite
without touching their queues or ledger, and so queue depth and table size start at zero.

Nothing here imports Django or Celery at module level: the environment that selects the vhost
and the database has to be in place before ``django.setup()`` reads the settings.
"""

from __future__ import annotations

import cProfile
import os
import platform
import pstats
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The repository root, so a benchmark can be started as ``python bench/<name>.py`` from anywhere.
ROOT = Path(__file__).resolve().parent.parent

BROKER_HOST = "amqp://guest:guest@127.0.0.1:5672"


# --- RabbitMQ ----------------------------------------------------------------------


def rabbitmqctl(*args: str, timeout: float = 60) -> str:
    """Run ``rabbitmqctl`` and return its output; raise with its message when it fails."""
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        raise RuntimeError("rabbitmqctl not found: the benchmarks need a local RabbitMQ (see README).")
    result = subprocess.run([ctl, *args], capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {result.stderr or result.stdout}")
    return result.stdout


def rabbitmq_version() -> str:
    try:
        return rabbitmqctl("version", timeout=30).strip() or "unknown"
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"


@contextmanager
def throwaway_vhost(prefix: str = "queueprio-bench") -> Iterator[str]:
    """A vhost of our own (``<prefix>-<pid>``), deleted with everything in it on the way out."""
    vhost = f"{prefix}-{os.getpid()}"
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield vhost
    finally:
        rabbitmqctl("delete_vhost", vhost)


# --- Django ------------------------------------------------------------------------


def production_env(*, log_level: str = "WARNING", debug: bool = False, **extra: str) -> dict[str, str]:
    """The environment a bench's Django runs under: production-like unless asked otherwise.

    DEBUG off (with it on, Django records and keeps every query), queueprio's log at
    ``log_level``, and a secret key, required with DEBUG off: the caller's, or a throwaway one
    (nothing signed outlives the run).
    """
    return {
        "QUEUEPRIO_LOG_LEVEL": log_level,
        "DJANGO_DEBUG": "1" if debug else "0",
        "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY") or secrets.token_urlsafe(50),
        **extra,
    }


@contextmanager
def isolated_django(
    vhost: str, *, database_url: str | None = None, env: dict[str, str] | None = None
) -> Iterator[Path]:
    """Configure, set up and migrate Django against ``vhost`` and a fresh database; yield the temp dir.

    The environment must be set before ``django.setup()``: ``project.settings`` reads it once,
    at import. Without ``database_url`` the SQLite file lives in the temp dir (removed on exit).
    With it, the benchmark writes to that database: point it at a throwaway one.
    """
    if "django.conf" in sys.modules and _settings_configured():
        raise RuntimeError("Django settings were loaded before the benchmark could isolate them")
    tmp = Path(tempfile.mkdtemp(prefix="queueprio-bench-"))
    try:
        os.environ["DJANGO_SETTINGS_MODULE"] = "project.settings"
        os.environ["QUEUEPRIO_VAR_DIR"] = str(tmp)
        os.environ["CELERY_BROKER_URL"] = f"{BROKER_HOST}/{vhost}"
        os.environ["CONVERTERS_ROOT"] = str(tmp / "files")
        if database_url:
            os.environ["DATABASE_URL"] = database_url
        else:
            os.environ.pop("DATABASE_URL", None)
        os.environ.update(env or {})
        (tmp / "files").mkdir()
        if str(ROOT) not in sys.path:
            sys.path.insert(0, str(ROOT))

        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)
        yield tmp
    finally:
        _close_db_connections()
        shutil.rmtree(tmp, ignore_errors=True)


def _settings_configured() -> bool:
    from django.conf import settings

    return settings.configured


def _close_db_connections() -> None:
    if "django.db" in sys.modules:
        from django.db import connections

        connections.close_all()


def load_average() -> str:
    """The 1/5/15-minute load averages: figures taken on a busy machine are worth less."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:  # not available on this platform
        return "n/a"


def environment() -> list[tuple[str, str]]:
    """What the figures depend on: interpreter, library versions, database, broker, CPUs."""
    from importlib.metadata import version

    from django.conf import settings
    from django.db import connection

    db = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    with connection.cursor():
        if db == "sqlite3":
            server = connection.Database.sqlite_version
        else:  # PostgreSQL reports e.g. 150020 for 15.20
            number = getattr(connection, "pg_version", 0)
            server = f"{number // 10000}.{number % 10000}" if number else ""
    return [
        ("Python", f"{platform.python_version()} ({platform.python_implementation()})"),
        ("Celery", version("celery")),
        ("kombu", version("kombu")),
        ("py-amqp", version("amqp")),
        ("Django", version("django")),
        ("DB engine", f"{db} {server}"),
        ("RabbitMQ", rabbitmq_version()),
        ("CPUs", str(os.cpu_count())),
        ("Platform", platform.platform()),
    ]


# --- queues --------------------------------------------------------------------------


def queue_depth(name: str) -> int:
    """Messages ready in queue ``name`` (a passive declare: fails if the queue doesn't exist)."""
    from django.conf import settings
    from kombu import Connection

    from queueprio.celery import priority_queue

    with Connection(settings.CELERY_BROKER_URL) as conn:
        bound = priority_queue(name).bind(conn.default_channel)
        _, count, _ = bound.queue_declare(passive=True)
        return count


def purge_queue(name: str) -> None:
    """Declare queue ``name`` as the project does and empty it."""
    from django.conf import settings
    from kombu import Connection

    from queueprio.celery import priority_queue

    with Connection(settings.CELERY_BROKER_URL) as conn:
        bound = priority_queue(name).bind(conn.default_channel)
        bound.declare()
        bound.purge()


# --- timing and reporting ------------------------------------------------------------


@dataclass
class Phase:
    """One measured phase: its label, the jobs per repetition and each repetition's seconds."""

    name: str
    label: str
    jobs: int
    seconds: list[float] = field(default_factory=list)

    @property
    def median_seconds(self) -> float:
        return statistics.median(self.seconds)

    @property
    def rates(self) -> list[float]:
        return [self.jobs / s for s in self.seconds]

    @property
    def rate(self) -> float:
        """Median jobs/s over the repetitions (the median resists one slow outlier, e.g. a GC pause)."""
        return statistics.median(self.rates)


def timed(fn: Callable[[], Any]) -> float:
    """Seconds ``fn()`` took, by the monotonic high-resolution clock."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def profiled(fn: Callable[[], Any], out: Path) -> pstats.Stats:
    """Run ``fn`` under cProfile, save the raw stats to ``out`` and return them."""
    profiler = cProfile.Profile()
    profiler.runcall(fn)
    profiler.dump_stats(str(out))
    return pstats.Stats(str(out))


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, file: Any = None) -> None:
    """A plain-text table (first column left-aligned, the rest right-aligned), Markdown-compatible."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        parts = [row[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True))]
        return "| " + " | ".join(parts) + " |"

    out = file or sys.stdout
    print(line(cells[0]), file=out)
    print("|" + "|".join([":" + "-" * (widths[0] + 1), *("-" * (w + 1) + ":" for w in widths[1:])]) + "|", file=out)
    for row in cells[1:]:
        print(line(row), file=out)


def verdict(value: float, target: float) -> str:
    return "PASS" if value >= target else "MISS"
