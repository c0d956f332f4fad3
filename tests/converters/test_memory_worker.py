"""The memory limit in a real worker: set in each pool child, a job over it fails readably, the child goes on.

The worker runs with ``CONVERTERS_MAX_MEMORY_MB=512``. The bomb is one no check estimates (an
XLSX row of 1.5 million cells, which openpyxl builds whole; ``test_memory_bombs`` shows the same
file take about 870 MiB without the limit), so only the limit stops it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from kombu import Connection

from converters import convert
from queueprio.models import Job, JobState
from tests.converters import bombs
from tests.support.ledger import finished, stored_result
from tests.support.polling import wait_for
from tests.support.worker import Worker, running_worker

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]

MiB = 1024 * 1024
LIMIT_MB = 512


@pytest.fixture(scope="module")
def limited_worker(shared_root: Path, broker_vhost: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    env = {
        "CONVERTERS_ROOT": str(shared_root),
        "DJANGO_SETTINGS_MODULE": "tests.converters.worker_settings",
        "CONVERTERS_MAX_MEMORY_MB": str(LIMIT_MB),
    }
    with running_worker(tmp_path_factory.mktemp("logs"), env=env) as started:
        yield started


def pool_children(worker: Worker) -> list[int]:
    """The worker's pool processes: those whose parent is the worker's main process."""
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
            if parent == worker.proc.pid:
                children.append(int(entry))
    return children


def the_child(worker: Worker) -> int:
    children = wait_for(lambda: pool_children(worker), timeout=30, message="the pool child")
    assert len(children) == 1, children  # concurrency 1
    return children[0]


def data_limit(pid: int) -> int | None:
    """The soft ``RLIMIT_DATA`` of process ``pid`` in bytes (``None``: unlimited), from /proc."""
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max data size"):
                soft = line.split()[3]
                return None if soft == "unlimited" else int(soft)
    raise AssertionError("no data size line")


def peak_rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))


def run(name: str, source: str, target: str) -> Job:
    result = convert(name, source, target)
    return wait_for(lambda: finished(result.id), timeout=120, message=f"{name} on {source}")


def test_limit__set_in_the_pool_child_not_in_the_main_process(limited_worker: Worker) -> None:
    assert data_limit(the_child(limited_worker)) == LIMIT_MB * MiB
    # Control: the main process (broker connection, consumer) has none: the limit is not inherited
    # from the environment but set by the worker_process_init receiver, in the child only.
    assert data_limit(limited_worker.proc.pid) is None


def test_limit__a_job_over_it_fails_readably_and_the_same_child_runs_the_next(
    limited_worker: Worker, root: Path, broker: Connection
) -> None:
    child = the_child(limited_worker)
    (root / "wide.xlsx").write_bytes(bombs.xlsx_wide_row())
    job = run("xlsx_to_csv", "wide.xlsx", "out/wide.csv")
    assert job.state == JobState.FAILED
    assert job.error.splitlines()[0] == (
        f"ConversionError: wide.xlsx: converting it needs more memory than the {LIMIT_MB} MiB limit per worker "
        "process (CONVERTERS_MAX_MEMORY_MB); the input is too large or expands too much"
    )
    assert wait_for(lambda: stored_result(job.task_id), timeout=30).status == "FAILURE"
    assert not (root / "out" / "wide.csv").exists()
    assert not [p.name for p in (root / "out").iterdir() if p.name.endswith(".part")]
    # The child held no more than the limit (plus the libraries' code, which RSS counts and the limit doesn't).
    assert peak_rss(child) < (LIMIT_MB + 48) * MiB, f"{peak_rss(child) / MiB:.0f} MiB"
    # It lives, and converts the next file.
    (root / "after.csv").write_text("a,b\n1,2\n")
    after = run("csv_to_json", "after.csv", "out/after.json")
    assert after.state == JobState.SUCCEEDED, after.error
    assert the_child(limited_worker) == child
    assert limited_worker.proc.poll() is None


def test_output__readable_by_other_users_under_the_usual_umask(
    limited_worker: Worker, root: Path, broker: Connection
) -> None:
    with open("/proc/self/status") as status:  # the worker inherited this process's umask
        umask = next(int(line.split()[1], 8) for line in status if line.startswith("Umask:"))
    (root / "mode.csv").write_text("a\n1\n")
    job = run("csv_to_json", "mode.csv", "out/mode.json")
    assert job.state == JobState.SUCCEEDED, job.error
    assert stat.S_IMODE((root / "out" / "mode.json").stat().st_mode) == 0o666 & ~umask
