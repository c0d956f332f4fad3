"""``queueprio migrate-queue``: moving a plain FIFO queue into the priority queue, against RabbitMQ."""

from __future__ import annotations

import io
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from kombu import Connection
from kombu.serialization import loads

from queueprio.broker.protocol import HEADER_GENERATION, HEADER_PRIORITY, HEADER_TOKEN
from queueprio.broker.publish import message_of
from queueprio.models import Job, JobState, PrioritySource, TaskPriority
from queueprio.operations import fifo_messages as legacy
from queueprio.operations.queue_move import Interrupted, Refused, migrate
from tests.support.ledger import make_job
from tests.support.messages import declare_plain, depth, drain, publish_celery
from tests.support.polling import lines, wait_for
from tests.support.worker import ROOT, running_worker, worker_env

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]

OLD = "legacy"
QUEUE = django_settings.QUEUEPRIO_QUEUE
LANE = django_settings.QUEUEPRIO_LANE_QUEUE


@pytest.fixture
def old_queue(broker: Connection) -> Iterator[str]:
    """The user's existing plain queue, empty; deleted afterwards."""
    declare_plain(broker, OLD)
    broker.default_channel.queue_purge(OLD)
    yield OLD
    broker.default_channel.queue_delete(OLD)


def fill(conn: Connection, count: int, path: str, *, task: str = "tests.record", prefix: str = "job") -> list[str]:
    before = depth(conn, OLD)
    ids = [publish_celery(conn, OLD, task, [f"{prefix}{i}", path]) for i in range(count)]
    wait_for(lambda: depth(conn, OLD) == before + count, message="the old queue to hold every message")
    return ids


class Crash(Exception):
    pass


def test_migrate__moves_every_message_at_the_task_default_into_queue_or_lane(
    broker: Connection, old_queue: str, tmp_path: Path, settings
) -> None:
    # Given a plain queue with 3,000 jobs of two queueprio tasks and a few of an unknown one
    settings.QUEUEPRIO_LANE_MAX_PRIORITY = 2
    out = str(tmp_path / "out.txt")
    normal = fill(broker, 2_500, out)  # tests.record: global default 5 -> AMQP 6
    urgent = fill(broker, 497, out, task="tests.defaulted", prefix="u")  # code default 2 -> the lane, AMQP 9
    unknown = [publish_celery(broker, OLD, "legacy.gone", [i]) for i in range(3)]
    TaskPriority.objects.update_or_create(task_name="tests.record", defaults={"priority": 6})  # admin override

    # When it is migrated
    report = migrate(old_queue, batch_size=250)

    # Then every message moved, each queueprio job with one ledger row at its default priority
    assert (report.found, report.moved, report.new_rows, report.in_ledger, report.left) == (3_000, 3_000, 2_997, 0, 0)
    assert report.unknown == {"legacy.gone": 3}
    assert report.targets == {QUEUE: True, LANE: True}
    rows = {job.task_id: job for job in Job.objects.all()}
    assert set(rows) == set(normal) | set(urgent)
    assert {(j.state, j.priority_source, j.generation, j.band_name) for j in rows.values()} == {
        ("queued", PrioritySource.MIGRATED, 1, "")
    }
    assert {rows[i].requested_priority for i in normal} == {6}
    assert rows[normal[7]].args == ["job7", out]
    # And the copies carry our headers and AMQP priority, original headers kept, FIFO within a level
    moved, lane = drain(broker), drain(broker, LANE)
    assert [m["id"] for m in moved] == unknown + normal  # unknown at the global 5 (AMQP 6) beats 6 (AMQP 5)
    assert [m["id"] for m in lane] == urgent
    assert [{m["priority"] for m in part} for part in (moved[:3], moved[3:], lane)] == [{6}, {5}, {9}]
    first = moved[3]["headers"]
    assert (first[HEADER_PRIORITY], first[HEADER_GENERATION]) == (6, 1)
    assert first[HEADER_TOKEN] == Job.objects.get(task_id=first["id"]).token  # band, state: from the ledger
    assert (first["task"], first["root_id"], first["argsrepr"]) == ("tests.record", normal[0], repr(["job0", out]))
    assert HEADER_GENERATION not in moved[0]["headers"]  # no ledger row: adopted as external if it ever runs
    assert depth(broker, OLD) == 0


def test_migrate__crash_between_confirm_and_ack_then_rerun__each_job_runs_exactly_once(
    broker: Connection, old_queue: str, tmp_path: Path
) -> None:
    out = str(tmp_path / "runs.txt")
    ids = fill(broker, 300, out)
    batches = []

    def crash_on_third(report: object) -> None:
        batches.append(report)
        if len(batches) == 3:
            raise Crash

    # Given a run that died after its third batch was confirmed in the priority queue but not acked
    with pytest.raises(Crash):
        migrate(old_queue, batch_size=50, before_ack=crash_on_third)
    wait_for(lambda: depth(broker, OLD) == 200, message="the unacked batch to go back to the old queue")
    assert (Job.objects.count(), depth(broker, QUEUE)) == (150, 150)

    # When it runs again
    report = migrate(old_queue, batch_size=50)

    # Then the 50 jobs moved twice got superseding copies, not second rows
    assert (report.moved, report.new_rows, report.in_ledger, report.left) == (200, 150, 50, 0)
    assert Job.objects.count() == 300
    assert depth(broker, QUEUE) == 350
    # And a real worker runs each job exactly once, dropping the 50 stale copies
    with running_worker(tmp_path, concurrency=2):
        wait_for(
            lambda: Job.objects.filter(state=JobState.SUCCEEDED).count() == 300,
            timeout=120,
            interval=0.5,
            message="every migrated job to succeed",
        )
        wait_for(lambda: depth(broker, QUEUE) == 0, timeout=60, message="the stale copies to be dropped")
    runs = lines(out)
    assert sorted(runs) == sorted(f"job{i}" for i in range(300))
    assert set(Job.objects.filter(task_id__in=ids[100:150]).values_list("generation", flat=True)) == {2}


def test_migrate__killed_mid_run_by_sigkill_then_rerun__nothing_lost_no_second_row(
    broker: Connection, old_queue: str, tmp_path: Path
) -> None:
    ids = fill(broker, 3_000, str(tmp_path / "unused.txt"))
    command = [sys.executable, "manage.py", "queueprio", "migrate-queue", "--from", OLD, "--batch", "20"]
    with open(tmp_path / "migrate.log", "wb") as log:
        proc = subprocess.Popen(command, cwd=ROOT, env=worker_env(), stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: Job.objects.count() >= 300 or proc.poll() is not None, timeout=60, interval=0.01)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL, (tmp_path / "migrate.log").read_text()
    assert depth(broker, OLD) > 0  # really interrupted

    report = migrate(old_queue, batch_size=200)

    assert report.left == 0
    assert sorted(Job.objects.values_list("task_id", flat=True)) == sorted(ids)  # one row each
    assert {m["id"] for m in drain(broker)} == set(ids)  # every job has a copy in the priority queue


def test_migrate__rows_already_there_decide_supersede_drop_or_rerun(
    broker: Connection, old_queue: str, tmp_path
) -> None:
    from django.utils import timezone

    now = timezone.now()
    queued = make_job(queued_at=now, priority=3, generation=2)
    finished = make_job(queued_at=now, state="succeeded", claimed_generation=1)
    adopted = make_job(queued_at=now, state="started", generation=0, claimed_generation=0)  # its worker died
    for job in (queued, finished, adopted):
        publish_celery(broker, OLD, "tests.record", ["again", "x"], task_id=job.task_id)
    chained = publish_celery(broker, OLD, "tests.record", ["c", "x"], chain=[{"task": "tests.record"}])
    linked = publish_celery(broker, OLD, "tests.record", ["l", "x"], callbacks=[{"task": "tests.record"}])

    report = migrate(old_queue)

    assert (report.moved, report.new_rows, report.in_ledger, report.dropped) == (4, 2, 3, 1)
    copies = {m["id"]: m for m in drain(broker)}
    assert set(copies) == {queued.task_id, adopted.task_id, chained, linked}
    assert copies[queued.task_id]["headers"][HEADER_GENERATION] == 3  # supersedes generation 2
    assert (copies[queued.task_id]["priority"], copies[adopted.task_id]["priority"]) == (8, 6)
    assert HEADER_GENERATION not in copies[adopted.task_id]["headers"]  # adopted again, as before
    queued.refresh_from_db()
    assert (queued.generation, queued.state) == (3, "queued")
    # The rows keep the moved messages whole, so aging republishes a chain or a link unchanged
    assert body_of(Job.objects.get(task_id=chained))[2]["chain"] == [{"task": "tests.record"}]
    assert body_of(Job.objects.get(task_id=linked))[2]["callbacks"] == [{"task": "tests.record"}]
    assert Job.objects.get(task_id=chained).next_aging_at is not None


def test_migrate__an_unroutable_copy_stops_the_run_before_the_ack(
    broker: Connection, old_queue: str, tmp_path, monkeypatch
) -> None:
    ids = fill(broker, 30, str(tmp_path / "x"))
    # Given copies that reach no queue: RabbitMQ returns them (mandatory), then confirms them
    monkeypatch.setattr(legacy, "target", lambda priority: "amq.direct")

    with pytest.raises(Interrupted, match="did not confirm a batch of 10") as failed:
        migrate(old_queue, batch_size=10)

    assert failed.value.report.moved == 0
    wait_for(lambda: depth(broker, OLD) == 30, message="the unacked batch to go back")
    monkeypatch.undo()
    report = migrate(old_queue, batch_size=10)
    assert (report.moved, report.in_ledger, report.left) == (30, 10, 0)
    assert sorted(Job.objects.values_list("task_id", flat=True)) == sorted(ids)


def test_dry_run__checks_and_counts_and_changes_nothing(broker: Connection, old_queue: str, tmp_path, settings) -> None:
    fill(broker, 40, str(tmp_path / "x"))
    settings.QUEUEPRIO_QUEUE = "queueprio.fresh"
    stdout = io.StringIO()

    call_command("queueprio", "migrate-queue", "--from", OLD, "--dry-run", stdout=stdout)

    assert "legacy: 40 messages, 0 consumers" in stdout.getvalue()
    assert "queueprio.fresh (would be created)" in stdout.getvalue()
    assert depth(broker, OLD) == 40
    assert not Job.objects.exists()
    with pytest.raises(Exception, match="NOT_FOUND"):
        depth(broker, "queueprio.fresh")
    message = broker.default_channel.basic_get(OLD, no_ack=True)
    assert message.delivery_info["redelivered"] is False  # not even taken and put back


def test_refusals__same_queue_missing_queue_and_target_without_priority(
    broker: Connection, old_queue: str, tmp_path, settings
) -> None:
    fill(broker, 5, str(tmp_path / "x"))
    with pytest.raises(CommandError, match="is a queueprio queue itself"):
        call_command("queueprio", "migrate-queue", "--from", QUEUE)
    with pytest.raises(Refused, match="'nope' does not exist"):
        migrate("nope")
    declare_plain(broker, "plain.target")
    settings.QUEUEPRIO_QUEUE = "plain.target"
    try:
        with pytest.raises(Refused, match="exists without x-max-priority 10"):
            migrate(OLD)
    finally:
        broker.default_channel.queue_delete("plain.target")
    assert depth(broker, OLD) == 5
    assert not Job.objects.exists()


def body_of(job: Job) -> Any:
    """``(args, kwargs, embed)`` of the message the row republishes from."""
    message = message_of(job)
    return loads(message.body, message.content_type, message.content_encoding)
