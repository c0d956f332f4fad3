"""Admission control against the real broker: band limits, races, batches, quotas, deduplication."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from kombu import Connection

from converters import convert, convert_batch
from queueprio import InvalidPriority, PathOutsideRoot, QueueFull, QuotaExceeded, UnknownTask, enqueue
from queueprio.models import AgingStep, Band, Job, PrioritySource, Rejection, UrgentQuota
from queueprio.submission.batch import submit_batch
from tests.conftest import queue_depth
from tests.support.concurrency import run_concurrently
from tests.support.messages import drain
from tests.support.tasks import record
from tests.support.worker import ROOT, worker_env

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


def limit(name: str, max_queued: int | None) -> None:
    Band.objects.filter(name=name).update(max_queued=max_queued)


def test_band_limit__refuses_past_the_limit_and_names_band_limit_and_depth(broker: Connection, tmp_path) -> None:
    limit("urgent", 3)
    out = str(tmp_path / "o")
    for _ in range(3):
        record.apply_async(args=["x", out], priority=1)
    with pytest.raises(QueueFull, match=r"band 'urgent' .* 3 queued, limit 3"):
        record.apply_async(args=["x", out], priority=2)
    assert queue_depth(broker) == 3
    record.apply_async(args=["x", out], priority=3)  # another band is not affected
    rejection = Rejection.objects.get()
    assert (rejection.reason, rejection.band) == ("queue_full", "urgent")
    assert Band.objects.get(name="urgent").queued == 3


def test_band_limit__an_admin_change_applies_at_once(broker: Connection, tmp_path) -> None:
    limit("normal", 0)
    with pytest.raises(QueueFull):
        record.apply_async(args=["x", str(tmp_path / "o")], priority=5)
    limit("normal", None)  # unlimited
    record.apply_async(args=["x", str(tmp_path / "o")], priority=5)


def test_band_limit__concurrent_threads_never_overshoot(broker: Connection, tmp_path) -> None:
    limit("background", 25)
    admitted, refused = [], []

    def submit_many() -> None:
        for _ in range(15):
            try:
                admitted.append(record.apply_async(args=["x", str(tmp_path / "o")], priority=9).id)
            except QueueFull:
                refused.append(1)

    run_concurrently(submit_many, 4)
    assert (len(admitted), len(refused)) == (25, 35)
    assert Job.objects.count() == 25 == queue_depth(broker)
    assert Band.objects.get(name="background").queued == 25


SUBMITTER = """
import django, sys
django.setup()
from queueprio import QueueFull
from tests.support.tasks import record
ok = 0
for _ in range(int(sys.argv[1])):
    try:
        record.apply_async(args=["x", sys.argv[2]], priority=9)
        ok += 1
    except QueueFull:
        pass
print(ok)
"""


def test_band_limit__concurrent_processes_never_overshoot(broker: Connection, tmp_path) -> None:
    limit("background", 30)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SUBMITTER, "25", str(tmp_path / "o")],
            cwd=ROOT,
            env=worker_env(),
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    counts = [int(proc.communicate(timeout=120)[0].strip().splitlines()[-1]) for proc in procs]
    assert sum(counts) == 30
    assert Job.objects.count() == 30 == queue_depth(broker)


def test_batch__over_the_limit_is_all_or_nothing_by_default(broker: Connection, files_root: Path) -> None:
    limit("normal", 5)
    for i in range(8):
        (files_root / f"{i}.csv").write_text("a\n1\n")
    with pytest.raises(QueueFull, match="8 more asked"):
        convert_batch("csv_to_json", [f"{i}.csv" for i in range(8)], priority=5)
    assert queue_depth(broker) == 0
    assert not Job.objects.exists()

    batch = convert_batch("csv_to_json", [f"{i}.csv" for i in range(8)], priority=5, partial=True)
    assert (len(batch), [index for index, _ in batch.rejected]) == (5, [5, 6, 7])
    assert queue_depth(broker) == 5
    assert Rejection.objects.filter(reason="queue_full").count() == 1 + 3


def test_rejections__every_reason_is_stored(broker: Connection, files_root: Path, settings) -> None:
    (files_root / "in.csv").write_text("a\n1\n")
    UrgentQuota.objects.update(limit=0)
    limit("background", 0)
    attempts = [
        (InvalidPriority, lambda: convert("csv_to_json", "in.csv", priority=0)),
        (UnknownTask, lambda: enqueue("no.such.task")),
        (PathOutsideRoot, lambda: convert("csv_to_json", "../x.csv")),
        (QuotaExceeded, lambda: convert("csv_to_json", "in.csv", priority=1, caller_key="user:7")),
        (QueueFull, lambda: convert("csv_to_json", "in.csv", priority=10)),
    ]
    for error, attempt in attempts:
        with pytest.raises(error):
            attempt()
    with pytest.raises(Exception, match="does not exist"):
        convert("csv_to_json", "missing.csv")
    assert sorted(Rejection.objects.values_list("reason", flat=True)) == sorted(
        ["invalid_priority", "unknown_task", "path_outside_root", "quota_exceeded", "queue_full", "invalid_input"]
    )
    assert Rejection.objects.get(reason="quota_exceeded").caller_key == "user:7"
    assert queue_depth(broker) == 0


def test_quota__rejects_urgent_submissions_past_the_limit_per_caller(broker: Connection, tmp_path) -> None:
    UrgentQuota.objects.update(limit=3, max_priority=2, window_seconds=60)
    out = str(tmp_path / "o")
    for _ in range(3):
        record.apply_async(args=["x", out], priority=1, caller_key="alice")
    with pytest.raises(QuotaExceeded, match="'alice' used 3 of 3"):
        record.apply_async(args=["x", out], priority=2, caller_key="alice")
    record.apply_async(args=["x", out], priority=1, caller_key="bob")  # per caller
    record.apply_async(args=["x", out], priority=3, caller_key="alice")  # not urgent: not counted
    assert queue_depth(broker) == 5


def test_quota__concurrent_submitters_of_one_caller_never_pass_the_limit(broker: Connection, tmp_path) -> None:
    UrgentQuota.objects.update(limit=3, max_priority=2, window_seconds=60)
    out = str(tmp_path / "o")

    def submit() -> str:
        try:
            return record.apply_async(args=["x", out], priority=1, caller_key="racer").id
        except QuotaExceeded:
            return "rejected"

    outcomes = run_concurrently(submit, 8)
    assert sorted(o == "rejected" for o in outcomes) == [False] * 3 + [True] * 5
    assert Job.objects.filter(caller_key="racer").count() == 3 == queue_depth(broker)
    assert Rejection.objects.filter(reason="quota_exceeded").count() == 5


def test_quota__concurrent_batches_of_one_caller_never_pass_the_limit(broker: Connection, tmp_path) -> None:
    UrgentQuota.objects.update(limit=6, max_priority=2, window_seconds=60)
    out = str(tmp_path / "o")
    calls = [(["x", out], {}), (["y", out], {})]

    def submit() -> str:
        try:
            return str(len(submit_batch(record, calls, priority=1, caller_key="racer")))
        except QuotaExceeded:
            return "rejected"

    outcomes = run_concurrently(submit, 8)
    # Batches of 2 against a limit of 6: three fit, the other five are refused whole
    assert sorted(outcomes) == ["2"] * 3 + ["rejected"] * 5
    assert Job.objects.filter(caller_key="racer").count() == 6 == queue_depth(broker)
    assert Rejection.objects.filter(reason="quota_exceeded").count() == 5


def test_quota__a_batch_over_the_quota_is_demoted_whole(broker: Connection, tmp_path) -> None:
    UrgentQuota.objects.update(limit=1, policy="demote", demote_to=6)
    out = str(tmp_path / "o")
    record.apply_async(args=["x", out], priority=1, caller_key="alice")
    batch = submit_batch(record, [(["a", out], {}), (["b", out], {})], priority=1, caller_key="alice")
    jobs = Job.objects.filter(task_id__in=batch.ids)
    assert {(job.effective_priority, job.priority_source, job.band_name) for job in jobs} == {
        (6, "demoted", "background")
    }


def test_quota__demote_policy_submits_at_the_configured_priority_and_records_it(broker: Connection, tmp_path) -> None:
    UrgentQuota.objects.update(limit=1, policy="demote", demote_to=6)
    out = str(tmp_path / "o")
    record.apply_async(args=["x", out], priority=1, caller_key="alice")
    demoted = record.apply_async(args=["x", out], priority=1, caller_key="alice")
    job = Job.objects.get(task_id=demoted.id)
    assert (job.effective_priority, job.priority_source) == (6, PrioritySource.DEMOTED)
    assert {m["id"]: m["priority"] for m in drain(broker)}[demoted.id] == 5
    assert "demoted from 1 to 6" in Rejection.objects.get(reason="quota_exceeded").detail


def test_idempotency__a_duplicate_returns_the_existing_job_and_only_raises_it(broker: Connection, tmp_path) -> None:
    out = str(tmp_path / "o")
    first = record.apply_async(args=["x", out], priority=7, idempotency_key="report-42")
    lower = record.apply_async(args=["x", out], priority=9, idempotency_key="report-42")
    higher = record.apply_async(args=["x", out], priority=2, idempotency_key="report-42")
    assert first.id == lower.id == higher.id
    assert Job.objects.count() == 1
    job = Job.objects.get()
    assert (job.effective_priority, job.generation) == (2, 2)
    assert [(m["id"], m["priority"]) for m in drain(broker)] == [(first.id, 9), (first.id, 4)]
    assert AgingStep.objects.get().reason == "dedup"


def test_idempotency__concurrent_submitters_make_exactly_one_job(broker: Connection, tmp_path) -> None:
    ids = run_concurrently(
        lambda: record.apply_async(args=["x", str(tmp_path / "o")], priority=5, idempotency_key="k").id, 6
    )
    assert len(ids) == 6
    assert len(set(ids)) == 1
    assert Job.objects.count() == 1 == queue_depth(broker)


def test_dedupe__derives_the_key_from_content(broker: Connection, files_root: Path) -> None:
    (files_root / "a.csv").write_text("a\n1\n")
    (files_root / "b.csv").write_text("a\n1\n")  # same bytes, different file: same key only with same target
    one = convert("csv_to_json", "a.csv", target="out.json", dedupe=True)
    again = convert("csv_to_json", "a.csv", target="out.json", dedupe=True)
    (files_root / "a.csv").write_text("a\n2\n")
    changed = convert("csv_to_json", "a.csv", target="out.json", dedupe=True)
    assert one.id == again.id != changed.id
    assert queue_depth(broker) == 2
