"""A single submission's database round trips on PostgreSQL, counted on the wire (libpq's trace)."""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.db import connection
from kombu import Connection

from queueprio.models import Job, JobState
from queueprio.submission import roundtrips
from tests.support.messages import drain
from tests.support.tasks import record

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


@contextmanager
def wire_trace() -> Iterator[list[str]]:
    """The protocol messages libpq sends (``F``) and receives (``B``) in the block, in order."""
    connection.ensure_connection()
    pgconn = connection.connection.pgconn
    lines: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trace"
        with path.open("w") as out:
            pgconn.trace(out.fileno())
            pgconn.set_trace_flags(1)  # PQTRACE_SUPPRESS_TIMESTAMPS
            try:
                yield lines
            finally:
                pgconn.untrace()
        lines += [line.split("\t")[0] for line in path.read_text().splitlines() if line]


def round_trips(directions: list[str]) -> int:
    """How many times the client sent and then waited: each run of ``F`` lines followed by a ``B``."""
    return sum(1 for before, after in itertools.pairwise(directions) if (before, after) == ("F", "B"))


def submit_traced(tmp_path: Path) -> tuple[int, str]:
    record.delay("warm", str(tmp_path / "o"))  # connections, producer pool, the task's priority row
    with wire_trace() as lines:
        result = record.apply_async(args=["x", str(tmp_path / "o")], priority=5)
    return round_trips(lines), result.id


@pytest.fixture
def postgres_only() -> None:
    if not roundtrips.available():
        pytest.skip("PostgreSQL with psycopg 3 only")


@pytest.fixture
def without_pipeline() -> Iterator[None]:
    roundtrips.ENABLED = False  # atomic() as before
    try:
        yield
    finally:
        roundtrips.ENABLED = True


def test_single_submission__two_round_trips_in_pipeline_mode(postgres_only: None, broker: Connection, tmp_path) -> None:
    trips, task_id = submit_traced(tmp_path)

    assert trips == 2  # BEGIN + admission, then INSERT + COMMIT (the priority is explicit: no look-up)
    assert Job.objects.get(task_id=task_id).state == JobState.QUEUED
    assert task_id in {m["id"] for m in drain(broker)}


def test_control__without_pipeline_mode_each_statement_waits(
    postgres_only: None, without_pipeline: None, broker: Connection, tmp_path
) -> None:
    trips, task_id = submit_traced(tmp_path)

    assert trips == 4  # BEGIN, admission, INSERT, COMMIT
    assert Job.objects.get(task_id=task_id).state == JobState.QUEUED
