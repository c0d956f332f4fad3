"""The convert command's progress bar and summary: plain text, pure functions."""

from __future__ import annotations

from collections import Counter

import pytest

from converters.progress import FINAL_STATES, JobView, all_final, progress_line, summary, tally
from queueprio.models import FINISHED_STATES


@pytest.mark.parametrize(
    ("counts", "total", "line"),
    [
        (Counter(), 4, "[----------]  0/4 done  0 ok"),
        (Counter(queued=4), 4, "[----------]  0/4 done  0 ok  4 queued"),
        (
            Counter(succeeded=1, failed=1, started=1, queued=1),
            4,
            "[#####-----]  2/4 done  1 ok  1 failed  1 running  1 queued",
        ),
        (Counter(succeeded=3, cancelled=1), 4, "[##########]  4/4 done  3 ok"),
        (Counter(), 0, "[##########]  0/0 done  0 ok"),
    ],
)
def test_progress_line__table(counts: Counter[str], total: int, line: str) -> None:
    assert progress_line(counts, total, width=10) == line


def test_job_view__reason_is_the_first_line_of_the_error() -> None:
    job = JobView("id", "a.csv", "failed", "ConversionError: a.csv is empty\n\nTraceback (most recent call last): …")
    assert job.reason == "ConversionError: a.csv is empty"
    assert JobView("id", "a.csv", "failed").reason == "no error recorded"


def test_summary__counts_then_each_output_failure_and_refusal() -> None:
    jobs = [
        JobView("1", "a.csv", "succeeded", target="out/a.json"),
        JobView("2", "b.csv", "failed", "ConversionError: b.csv is empty"),
        JobView("3", "c.csv", "publish_failed", "publish failed: connection refused"),
        JobView("4", "e.csv", "expired"),
    ]
    assert summary(jobs, refused=["d.csv: path outside the root"]) == [
        "succeeded: 1",
        "failed: 2",
        "expired: 1",
        "refused: 1",
        "  ok a.csv -> out/a.json",
        "  failed b.csv (2): ConversionError: b.csv is empty",
        "  failed c.csv (3): publish failed: connection refused",
        "  expired e.csv (4)",
        "  refused d.csv: path outside the root",
    ]


def test_all_final__only_when_nothing_is_queued_or_running() -> None:
    assert all_final([JobView("1", "a", "succeeded"), JobView("2", "b", "cancelled")])
    # Every ending of a job is final: an expired or ignored job doesn't keep --wait waiting
    assert all_final([JobView(str(i), "a", s) for i, s in enumerate(("expired", "ignored", "rejected", "replaced"))])
    assert not all_final([JobView("1", "a", "scheduled")])
    assert not all_final([JobView("1", "a", "succeeded"), JobView("2", "b", "started")])
    assert tally([JobView("1", "a", "queued")]) == Counter(queued=1)


def test_final_states__are_the_ledgers_finished_states() -> None:
    assert {str(state) for state in FINISHED_STATES} == FINAL_STATES
