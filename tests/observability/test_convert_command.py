"""``manage.py convert``: refusals as CommandError, submission, --wait with a real worker, Ctrl-C."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from kombu import Connection

from converters.management.commands import convert as convert_command
from queueprio.models import Job, JobState, Rejection
from tests.support.worker import ROOT, Worker, worker_env


@pytest.fixture
def root(root: Path) -> Path:
    shared_root = root  # the conftest's root, with this module's files in it
    (shared_root / "good1.csv").write_text("name,age\nAda,36\n")
    (shared_root / "good2.csv").write_text("name,age\nAlan,41\n")
    (shared_root / "empty.csv").write_text("")
    return shared_root


def convert(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("convert", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["no_such_converter", "good1.csv"], "rejected (unknown_task): unknown converter 'no_such_converter'"),
        (["csv_to_json", "good1.csv", "--priority", "11"], "rejected (invalid_priority): invalid priority 11"),
        (["csv_to_json", "good1.csv", "--priority", "0"], "rejected (invalid_priority): invalid priority 0"),
        (["csv_to_json", "../outside.csv"], "rejected (path_outside_root)"),
        (["csv_to_json", "good1.csv", "/etc/passwd"], "rejected (path_outside_root)"),
        (["csv_to_json", "missing.csv"], "rejected (invalid_input): source 'missing.csv' does not exist"),
        (["csv_to_json", "good1.csv", "--priority", "high"], "invalid int value: 'high'"),
    ],
)
def test_convert__bad_input_is_a_command_error_and_publishes_nothing(root: Path, args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        convert(*args)
    assert not Job.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_convert__exits_non_zero_from_the_command_line(root: Path) -> None:
    done = subprocess.run(
        [sys.executable, "manage.py", "convert", "no_such_converter", "good1.csv"],
        cwd=ROOT,
        env=worker_env(CONVERTERS_ROOT=str(root)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "unknown converter 'no_such_converter'; known converters: csv_to_json" in done.stderr
    assert Rejection.objects.filter(reason="unknown_task").exists()  # the refusal is stored, not silent


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
def test_convert__without_wait_prints_the_task_ids(root: Path, broker: Connection) -> None:
    out, _ = convert("csv_to_json", "good1.csv", "good2.csv", "--priority", "3")
    head, *ids = out.splitlines()
    assert head == "submitted 2 job(s) to converter csv_to_json"
    assert set(ids) == set(Job.objects.values_list("task_id", flat=True))
    assert set(Job.objects.values_list("requested_priority", flat=True)) == {3}


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
def test_convert__wait_shows_progress_then_a_summary_with_reasons(
    root: Path, broker: Connection, worker: Worker
) -> None:
    # Given two good files and an empty one, converted as a batch by a real worker
    out = io.StringIO()
    with pytest.raises(CommandError, match=r"1 of 3 conversion\(s\) did not succeed"):
        call_command("convert", "csv_to_json", "good1.csv", "empty.csv", "good2.csv", "--wait", stdout=out)
    text = out.getvalue()
    # Then the bar was redrawn in place and ended complete, and the summary names the failure and why
    assert "\r[" in text
    assert "3/3 done  2 ok  1 failed" in text
    assert "succeeded: 2\nfailed: 1\nrejected: 0" in text
    assert "failed empty.csv (" in text
    assert "ConversionError" in text
    assert (root / "good1.json").exists()


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
def test_convert__wait_for_one_file_uses_the_single_job_path(root: Path, broker: Connection, worker: Worker) -> None:
    out, _ = convert("csv_to_json", "good2.csv", "--wait", "--priority", "1")
    assert "1/1 done  1 ok" in out
    assert "succeeded: 1" in out
    assert Job.objects.get().requested_priority == 1


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
def test_convert__ctrl_c_stops_waiting_without_cancelling(root: Path, broker: Connection, monkeypatch) -> None:
    # Given a Ctrl-C during the first wait
    def interrupt(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(convert_command.time, "sleep", interrupt)
    err = io.StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("convert", "csv_to_json", "good1.csv", "good2.csv", "--wait", stdout=io.StringIO(), stderr=err)
    # Then the command exits 130, says how to check later, and the jobs go on (the module's
    # worker may already be running them if an earlier test started it)
    assert exited.value.code == 130
    assert "the jobs were not cancelled" in err.getvalue()
    for task_id in Job.objects.values_list("task_id", flat=True):
        assert task_id in err.getvalue()
    states = set(Job.objects.values_list("state", flat=True))
    assert states <= {JobState.QUEUED, JobState.STARTED, JobState.SUCCEEDED}
