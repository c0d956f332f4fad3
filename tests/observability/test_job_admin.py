"""The jobs list in the admin: what each column shows, searching by input, a fixed number of queries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_celery_results.models import TaskResult

from queueprio.admin import columns
from queueprio.models import Job
from tests.support.ledger import make_aging_step, make_job

pytestmark = pytest.mark.django_db

JOBS = "/admin/queueprio/job/"
T = datetime(2026, 1, 5, 12, 0, 7, 250_000, tzinfo=UTC)


def converted(source: str, *, state: str = "succeeded", error: str = "", **fields: object) -> Job:
    return make_job(
        queued_at=T,
        task="converters.csv_to_json",
        args=[source, source.replace(".csv", ".json")],
        kwargs={"options": {}},
        state=state,
        error=error,
        **fields,
    )


def test_columns__input_is_the_file_or_the_arguments_in_short() -> None:
    assert columns.input_summary(["in/a.csv", "in/a.json"], {"options": {}}) == "in/a.csv"
    assert columns.input_summary([3, {"x": 1}], {"flag": True, "none": None}) == '3, {"x": 1}, flag=true'
    assert columns.input_summary([], {}) == "–"
    assert len(columns.input_summary(["x" * 500], {})) == columns.SUMMARY_LENGTH


def test_columns__where_a_waiting_job_stands() -> None:
    assert columns.standing("queued", position=3, eta=None, now=T) == "3 ahead"
    assert columns.standing("held", position=None, eta=None, now=T) == "held: its band is at its running limit"
    assert (
        columns.standing("held", position=2, eta=None, now=T) == "held: its band is at its running limit, 2 held ahead"
    )
    assert columns.standing("scheduled", position=None, eta=T + timedelta(seconds=90), now=T) == "due in 1m 30s"
    assert columns.standing("started", position=None, eta=None, now=T) == ""


def test_columns__durations_and_times_to_the_second() -> None:
    assert columns.to_the_second(T) == "2026-01-05 12:00:07"
    started, finished = T + timedelta(seconds=4.2), T + timedelta(seconds=5.0)
    assert columns.waited(T, None, started, "succeeded") == "4.2 s"
    # A countdown is not waiting: the wait counts from the ETA
    assert columns.waited(T, T + timedelta(seconds=4), started, "succeeded") == "200 ms"
    assert columns.ran(started, finished, "succeeded") == "800 ms"
    assert columns.ran(None, None, "queued") == "–"


def test_columns__the_errors_first_line_for_failed_jobs_only() -> None:
    error = "ConversionError: bad row 3\nTraceback (most recent call last):\n  ..."
    assert columns.error_line(error, "failed") == "ConversionError: bad row 3"
    assert columns.error_line(error, "succeeded") == ""


def test_job_list__columns_as_people_read_them(admin_client: Client) -> None:
    # Given a failed and a finished conversion, and a queued job raised in the admin
    failed = converted(
        "in/broken.csv",
        state="failed",
        error="ConversionError: row 3 has 4 fields, expected 3\nTraceback ...",
        started_at=T + timedelta(seconds=2),
        finished_at=T + timedelta(seconds=2.5),
    )
    converted("in/good.csv", started_at=T + timedelta(seconds=1), finished_at=T + timedelta(seconds=3))
    raised = make_job(queued_at=timezone.now(), priority=8, effective=2, admin_priority=2)
    make_aging_step(raised, at=timezone.now(), from_priority=8, to_priority=2, reason="admin")
    # When the list is shown
    page = admin_client.get(JOBS).content.decode()
    # Then: a compact task id (the whole one as its tooltip), the input file, times to the second,
    # waited and run durations, the error's first line only, and the admin's change marked
    assert f'<span title="{failed.task_id}">{failed.task_id[:8]}</span>' in page
    assert "in/broken.csv" in page
    assert "in/good.csv" in page
    assert "2026-01-05 12:00:07" in page
    assert ">2.0 s<" in page
    assert ">500 ms<" in page
    assert "ConversionError: row 3 has 4 fields, expected 3" in page
    assert "Traceback" not in page
    assert '2 <span title="set in the admin">(admin)</span>' in page


def test_job_list__search_finds_jobs_by_input_file(admin_client: Client) -> None:
    wanted = converted("in/orders-2026.csv")
    converted("in/customers.csv")
    page = admin_client.get(JOBS, {"q": "orders-2026"}).content.decode()
    assert wanted.task_id[:8] in page
    assert "in/customers.csv" not in page


def list_queries(client: Client) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(JOBS).status_code == 200
    return len(queries)


def test_job_list__the_same_number_of_queries_for_2_jobs_as_for_40(admin_client: Client) -> None:
    def add(n: int) -> None:
        for i in range(n):
            job = converted(f"in/{i}.csv", started_at=T, finished_at=T + timedelta(seconds=1))
            TaskResult.objects.create(task_id=job.task_id, status="SUCCESS")

    add(2)
    few = list_queries(admin_client)
    assert admin_client.get(JOBS).content.decode().count(">SUCCESS</a>") == 2  # each row links its result
    add(38)
    assert list_queries(admin_client) == few
