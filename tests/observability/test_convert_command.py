"""``manage.py convert``: paths from the current directory, one line per refusal, --target-dir,
--partial, --json, --wait with a real worker, Ctrl-C."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from kombu import Connection

from converters.management.commands import convert as convert_command
from converters.progress import JobView, detail_lines, progress_line, running_share
from queueprio.models import Job, JobState, Rejection
from tests.support.worker import ROOT, Worker, worker_env


@pytest.fixture
def root(root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shared_root = root  # the conftest's root, with this module's files in it, and the current directory
    (shared_root / "good1.csv").write_text("name,age\nAda,36\n")
    (shared_root / "good2.csv").write_text("name,age\nAlan,41\n")
    (shared_root / "empty.csv").write_text("")
    (shared_root / "sub").mkdir(exist_ok=True)
    (shared_root / "sub" / "deep.csv").write_text("name,age\nGrace,45\n")
    monkeypatch.chdir(shared_root)
    return shared_root


def convert(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("convert", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def refused(*args: str) -> list[str]:
    """Run a command that refuses: it exits 1; return its stderr lines."""
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("convert", *args, stdout=out, stderr=err)
    assert exited.value.code == 1
    return err.getvalue().splitlines()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["no_such_converter", "good1.csv"],
            "refused: unknown converter 'no_such_converter'; known converters: csv_to_json",
        ),
        (["csv_to_json", "good1.csv", "--priority", "11"], "refused: invalid priority 11"),
        (["csv_to_json", "good1.csv", "--priority", "0"], "refused: invalid priority 0"),
        (["csv_to_json", "../outside.csv"], "refused ../outside.csv: path "),
        (["csv_to_json", "good1.csv", "/etc/passwd"], "refused /etc/passwd: path '/etc/passwd' is outside"),
        (["csv_to_json", "missing.csv"], "refused missing.csv: source 'missing.csv' does not exist under the root"),
        (["csv_to_json", "sub"], "refused sub: source 'sub' is a directory, not a file [invalid_input]"),
    ],
)
def test_convert__a_refusal_is_one_line_and_publishes_nothing(root: Path, args: list[str], line: str) -> None:
    [error] = refused(*args)
    assert error.startswith(line)
    assert not Job.objects.exists()
    assert Rejection.objects.count() == 1  # stored once, not silent


@pytest.mark.django_db
def test_convert__each_refused_file_is_its_own_line_and_none_is_submitted(root: Path) -> None:
    lines = refused("csv_to_json", "good1.csv", "missing.csv", "sub", "../x.csv")
    assert [line.split(":")[0] for line in lines] == ["refused missing.csv", "refused sub", "refused ../x.csv"]
    assert not Job.objects.exists()  # all or nothing without --partial
    assert Rejection.objects.count() == 3


@pytest.mark.django_db
def test_convert__bad_priority_text_is_an_argument_error(root: Path) -> None:
    with pytest.raises(CommandError, match="invalid int value: 'high'"):
        convert("csv_to_json", "good1.csv", "--priority", "high")


@pytest.mark.django_db
def test_convert__help_lists_the_converters() -> None:
    text = convert_command.Command().create_parser("manage.py", "convert").format_help()
    for name in ("csv_to_json (→ .json)", "xml_to_json", "image_to_webp (→ .webp)"):
        assert name in " ".join(text.split())
    assert "--target-dir" in text
    assert "--partial" in text
    assert "--json" in text


@pytest.mark.django_db(transaction=True)
def test_convert__from_the_command_line_one_line_per_refusal_and_no_log_line(root: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "convert", "csv_to_json", "missing.csv", "../outside.csv"],
        cwd=root,
        env=worker_env(CONVERTERS_ROOT=str(root)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    # Exactly one line per refusal: no "WARNING queueprio reject …" log line, no CommandError line
    assert [line.split(":")[0] for line in done.stderr.splitlines()] == [
        "refused missing.csv",
        "refused ../outside.csv",
    ]
    assert done.stdout == ""
    assert Rejection.objects.count() == 2  # the refusals are stored, not silent


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
def test_convert__paths_are_relative_to_the_current_directory(root: Path, broker: Connection, monkeypatch) -> None:
    # From a directory inside the root
    monkeypatch.chdir(root / "sub")
    out, _ = convert("csv_to_json", "deep.csv", "../good1.csv")
    assert Job.objects.filter(args=["sub/deep.csv", "sub/deep.json"]).exists()
    assert Job.objects.filter(args=["good1.csv", "good1.json"]).exists()
    # The ids are printed with each file and its output: relative to the current directory when
    # under it, else absolute
    assert "  deep.csv -> deep.json" in out
    assert f"  {root}/good1.csv -> {root}/good1.json" in out
    # From the root's parent, the same file by its path from there
    monkeypatch.chdir(root.parent)
    convert("csv_to_json", f"{root.name}/good2.csv")
    assert Job.objects.filter(args=["good2.csv", "good2.json"]).exists()
    # And a file next to the root (not in it) is still refused
    (root.parent / "beside.csv").write_text("a\n1\n")
    [line] = refused("csv_to_json", "beside.csv")
    assert line.startswith("refused beside.csv: path ")
    assert "is outside the allowed root" in line


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
def test_convert__partial_submits_what_it_can_and_refuses_the_rest(root: Path, broker: Connection) -> None:
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command(
            "convert", "csv_to_json", "good1.csv", "missing.csv", "good2.csv", "--partial", stdout=out, stderr=err
        )
    assert exited.value.code == 1  # not everything was accepted
    assert err.getvalue().splitlines() == [
        "refused missing.csv: source 'missing.csv' does not exist under the root [invalid_input]"
    ]
    assert out.getvalue().splitlines()[0] == "submitted 2 job(s) to converter csv_to_json"
    assert sorted(Job.objects.values_list("args", flat=True)) == [
        ["good1.csv", "good1.json"],
        ["good2.csv", "good2.json"],
    ]


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
def test_convert__json_and_target_dir(root: Path, broker: Connection) -> None:
    (root / "out").mkdir(exist_ok=True)
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(SystemExit):
        call_command(
            "convert", "csv_to_json", "good1.csv", "nope.csv", "--target-dir", "out", "--partial", "--json",
            "--priority", "3", stdout=out, stderr=err,
        )  # fmt: skip
    report = json.loads(out.getvalue())
    assert err.getvalue() == ""  # everything is in the JSON
    [job] = report["submitted"]
    assert (job["source"], job["target"]) == ("good1.csv", "out/good1.json")
    assert Job.objects.get(task_id=job["task_id"]).requested_priority == 3
    [refusal] = report["refused"]
    assert (refusal["file"], refusal["reason"]) == ("nope.csv", "invalid_input")
    assert (report["converter"], report["priority"]) == ("csv_to_json", 3)


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
def test_convert__wait_shows_progress_then_a_summary_with_outputs_and_reasons(
    root: Path, broker: Connection, worker: Worker
) -> None:
    # Given two good files and an empty one, converted as a batch by a real worker into out/
    out = io.StringIO()
    with pytest.raises(CommandError, match=r"1 of 3 conversion\(s\) did not succeed"):
        call_command(
            "convert", "csv_to_json", "good1.csv", "empty.csv", "good2.csv", "--wait", "--target-dir", "done",
            stdout=out,
        )  # fmt: skip
    text = out.getvalue()
    # Then the bar was redrawn in place and ended complete, and the summary names each output,
    # the failure and why
    assert "\r[" in text
    assert "3/3 done  2 ok  1 failed" in text
    assert "succeeded: 2\nfailed: 1\nrefused: 0" in text
    assert "  ok good1.csv -> done/good1.json" in text
    assert "  ok good2.csv -> done/good2.json" in text
    assert "failed empty.csv (" in text
    assert "ConversionError" in text
    assert (root / "done" / "good1.json").exists()


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
def test_convert__wait_json_reports_each_jobs_end(root: Path, broker: Connection, worker: Worker) -> None:
    out, _ = convert("csv_to_json", "good2.csv", "--wait", "--json", "--priority", "1")
    report = json.loads(out)
    [job] = report["jobs"]
    assert (job["state"], job["source"], job["target"], job["error"]) == ("succeeded", "good2.csv", "good2.json", "")
    assert "\r[" not in out  # no progress bar in JSON mode


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


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
def test_convert__wait_detail_shows_each_jobs_bar_and_place(root: Path, broker: Connection, worker: Worker) -> None:
    # Given two big CSVs on a one-process worker: one converts while the other waits
    row = "ada lovelace,36,london,analytical engine,notes on the sketch\n"
    for name in ("big1.csv", "big2.csv"):
        with (root / name).open("w") as fh:
            fh.write("name,age,city,machine,paper\n")
            fh.writelines(row for _ in range(600_000))
    out, _ = convert("csv_to_json", "big1.csv", "big2.csv", "--wait", "--detail", "--poll-interval", "0.2")
    # Then a frame showed the running one's own bar and note, and a frame showed the other waiting
    # with its place; the frames were redrawn in place (cursor up, clear)
    assert re.search(r"  big[12]\.csv  \[#*-*\]\s+\d+%  read [\d.]+ [KM]?B of 36\.\d MB", out), out[-3000:]
    assert re.search(r"  big2\.csv  queued, 0 ahead", out), out[-3000:]
    assert "\x1b[J" in out
    assert "2/2 done  2 ok" in out


@pytest.mark.parametrize(
    ("job", "line"),
    [
        (JobView("a", "a.csv", "started", progress=0.42, note="read 4.2 MB of 10.0 MB"),
         "  a.csv  [########------------]  42%  read 4.2 MB of 10.0 MB"),
        (JobView("b", "b.csv", "started"), "  b.csv  running"),
        (JobView("c", "c.csv", "queued", ahead=3, starts_in=75.0),
         "  c.csv  queued, 3 ahead, expected to start in 1m 15s"),
        (JobView("d", "d.csv", "held"), "  d.csv  held"),
    ],
)  # fmt: skip
def test_detail_lines__a_line_per_unfinished_job(job: JobView, line: str) -> None:
    assert detail_lines([job, JobView("e", "e.csv", "succeeded")]) == [line]


def test_progress_line__running_jobs_move_the_bar() -> None:
    from collections import Counter

    views = [JobView("a", "a", "started", progress=0.5), JobView("b", "b", "started", progress=0.5)]
    assert progress_line(Counter(started=2), 2, width=10, running=running_share(views)).startswith("[#####-----]")
