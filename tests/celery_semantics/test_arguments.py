"""Arguments reach the task as Celery's serializer carries them: the job runs from the message the
caller's ``apply_async`` built (kombu's JSON keeps datetimes, dates, decimals, UUIDs and bytes),
also after a republish; the ledger's ``args`` column is a display copy and never what runs."""

from __future__ import annotations

import datetime
import decimal
import uuid
from pathlib import Path

import pytest
from kombu import Connection

from queueprio.models import Job
from tests.celery_semantics.conftest import age_now
from tests.support.polling import lines, wait_for
from tests.support.semantics_tasks import note
from tests.support.worker import running_worker

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]

VALUE = {
    "when": datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
    "day": datetime.date(2026, 1, 2),
    "amount": decimal.Decimal("1.10"),
    "id": uuid.UUID(int=5),
    "raw": b"\x00\xff",
}


def test_arguments__the_task_gets_the_types_the_caller_sent_after_a_republish(
    tmp_path: Path, broker: Connection, aged, out: str
) -> None:
    result = note.apply_async((VALUE, out, "got"), priority=9)
    # The ledger shows them (a display copy: JSON can't hold bytes or decimals as such)
    assert Job.objects.get(task_id=result.id).args[0]["amount"] == "Decimal('1.10')"
    assert age_now([result.id]) == 1  # the copy that runs is a republish
    with running_worker(tmp_path):
        wait_for(lambda: lines(out), timeout=60, message="the job")
    # The task saw the same types and values (their repr), not the ledger's strings
    assert lines(out) == [f"got {VALUE!r}"]
