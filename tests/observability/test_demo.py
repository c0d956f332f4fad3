"""``manage.py demo``: its processes keep secrets off their command lines and are checked before
any URL is printed; its verdict is computed from the ledger; and the whole demo, run for real."""

from __future__ import annotations

import io
import re
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.core.management import CommandError, call_command
from kombu import Connection

from converters.demo import report
from converters.demo.processes import Process, http_ok, taken, wait_until_up
from converters.management.commands import demo
from queueprio.models import Band
from tests.support.flower import free_port
from tests.support.worker import ROOT, worker_env

PASSWORD = "demo-password-not-in-ps"
T = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def test_demo_processes__no_secret_on_any_command_line(tmp_path: Path) -> None:
    processes = demo.demo_processes(PASSWORD, 8000, 5555, tmp_path)
    assert [p.name for p in processes] == ["worker", "beat", "flower", "web"]
    for process in processes:
        assert not any(PASSWORD in arg for arg in process.command), process.command
        assert not any(arg.startswith("--basic-auth") for arg in process.command)
    # Flower takes the login from its environment instead
    assert demo.demo_env(PASSWORD)["FLOWER_BASIC_AUTH"] == f"admin:{PASSWORD}"


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


@pytest.mark.broker
def test_demo_flower__asks_for_the_password_that_ps_does_not_show(tmp_path: Path, broker: Connection) -> None:
    # Given the demo's own Flower process, started as the demo starts it
    port = free_port()
    [flower] = [p for p in demo.demo_processes(PASSWORD, free_port(), port, tmp_path) if p.name == "flower"]
    flower.start(worker_env(**{k: v for k, v in demo.demo_env(PASSWORD).items() if k.startswith("FLOWER_")}), ROOT)
    try:
        # When it is up (the demo's own check, which logs in)
        assert wait_until_up([flower], timeout=60) == []
        # Then what `ps` shows of it has no password, yet Flower wants it
        assert flower.proc is not None
        assert PASSWORD not in cmdline(flower.proc.pid)
        assert "flower" in cmdline(flower.proc.pid)
        assert not http_ok(f"http://127.0.0.1:{port}/")
        assert http_ok(f"http://127.0.0.1:{port}/", user="admin", password=PASSWORD)
    finally:
        flower.stop()


@pytest.mark.django_db(transaction=True)
def test_demo_web__a_taken_port_is_reported_with_the_log(tmp_path: Path) -> None:
    # Given the port already taken by something else
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        [web] = [p for p in demo.demo_processes(PASSWORD, port, free_port(), tmp_path) if p.name == "web"]
        web.start(worker_env(), ROOT)
        try:
            # When the demo checks it
            [failure] = wait_until_up([web], timeout=60)
        finally:
            web.stop()
    # Then it names the process, says it exited, where its log is, and what the log says
    assert failure.name == "web"
    assert failure.reason.startswith("it exited with status")
    assert failure.log == tmp_path / "web.log"
    assert any("already in use" in line for line in failure.lines())


@pytest.mark.django_db(transaction=True)
def test_demo_web__the_control_a_free_port_comes_up(tmp_path: Path) -> None:
    [web] = [p for p in demo.demo_processes(PASSWORD, free_port(), free_port(), tmp_path) if p.name == "web"]
    web.start(worker_env(), ROOT)
    try:
        assert wait_until_up([web], timeout=60) == []
    finally:
        web.stop()


def test_taken__a_port_another_server_answers_on_is_named_before_anything_starts() -> None:
    # Given another HTTP server on the web port, answering 200 (as another dev server would:
    # the demo's "is it up" check would take it for its own web server)
    import http.server
    import threading

    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert http_ok(f"http://127.0.0.1:{port}/")  # the control: the up-check alone is fooled
        free = free_port()
        # When the demo asks before starting, then it names the process and the port
        [message] = taken({"web": port, "flower": free})
    finally:
        server.shutdown()
        server.server_close()
    assert message.startswith(f"web: port {port} on 127.0.0.1 is taken by another program")
    assert taken({"web": port, "flower": free}) == []  # released: free again


def test_demo__a_taken_port_stops_it_before_any_process_starts(tmp_path: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        with pytest.raises(CommandError, match=f"web: port {port} .* taken"):
            call_command("demo", "--port", str(port), "--flower-port", str(free_port()), "--exit")


def test_wait_until_up__a_process_that_never_answers_times_out(tmp_path: Path) -> None:
    sleeper = Process("sleeper", ["sleep", "30"], tmp_path / "sleeper.log", lambda _: False)
    sleeper.start({}, tmp_path)
    try:
        [failure] = wait_until_up([sleeper], timeout=0.5, interval=0.1)
    finally:
        sleeper.stop()
    assert (failure.name, failure.reason) == ("sleeper", "not up after 0 s")


def job(queued: float, started: float | None, priority: int = 9, effective: int | None = None) -> SimpleNamespace:
    return SimpleNamespace(
        queued_at=T + timedelta(seconds=queued),
        started_at=None if started is None else T + timedelta(seconds=started),
        finished_at=None if started is None else T + timedelta(seconds=started + 1),
        requested_priority=priority,
        effective_priority=priority if effective is None else effective,
    )


def test_verdict__urgent_ahead_of_every_waiting_bulk_job_is_preemption() -> None:
    # Two processes busy from 0 s; the urgent job at 2.5 s starts at 3 s, ahead of the rest
    bulk = [job(0, 0), job(0, 0), job(0, 2), job(0, 2), job(0, 3.2), job(0, 4), job(0, 4)]
    urgent = report.against_bulk("urgent-1", job(2.5, 3.0, priority=1), bulk)
    assert (urgent.waiting, urgent.ahead_of) == (3, 3)
    verdict = report.verdict([urgent], bulk, processes=2)
    assert verdict.shown
    assert verdict.lines[0] == (
        "PREEMPTED: each of the 1 urgent jobs started ahead of every bulk job waiting when it arrived"
    )
    assert "urgent jobs waited 0.5 s–0.5 s" in verdict.lines[1]


def test_verdict__one_bulk_job_a_process_had_already_taken_is_said_but_is_not_overtaking() -> None:
    # A bulk job counted as waiting (started 0.02 s after the urgent job was submitted) started first:
    # it was already on its way to a free process. At most one per process can be.
    bulk = [job(0, 0), job(0, 2.52), job(0, 3.5), job(0, 3.6), job(0, 5)]
    urgent = report.against_bulk("urgent-1", job(2.5, 3.0, priority=1), bulk)
    assert (urgent.waiting, urgent.ahead_of, urgent.started_first) == (4, 3, 1)
    assert report.ahead_text(urgent) == "3 of 4 (1 already taken)"
    verdict = report.verdict([urgent], bulk, processes=2)
    assert verdict.shown
    assert verdict.lines[0].endswith("but 1 a worker process had already taken (at most one per process can be)")


def test_verdict__waiting_bulk_jobs_started_first_beyond_one_per_process_is_not_preemption() -> None:
    # The control: three waiting bulk jobs start before the urgent one on two processes (FIFO does this)
    bulk = [job(0, 0), job(0, 0), job(0, 2.7), job(0, 2.8), job(0, 3.5), job(0, 4.5)]
    urgent = report.against_bulk("urgent-1", job(2.5, 4.0, priority=1), bulk)
    assert (urgent.waiting, urgent.ahead_of) == (4, 1)
    verdict = report.verdict([urgent], bulk, processes=2)
    assert not verdict.shown
    assert verdict.lines[0] == "NOT shown: bulk jobs that were waiting started before urgent-1 (after 3 of 4)"


def test_verdict__nothing_waiting_shows_nothing() -> None:
    bulk = [job(0, 0), job(0, 1)]
    urgent = report.against_bulk("urgent-1", job(5, 5.1, priority=1), bulk)
    assert not report.verdict([urgent], bulk, processes=2).shown


def test_report__a_compact_table_with_the_backlog_in_one_row() -> None:
    bulk = [job(0, 0, effective=9), job(0, 4, effective=8), job(0.1, 9, effective=7)]
    urgent = [report.against_bulk("urgent-1", job(2, 2.4, priority=1), bulk)]
    lines = report.report(T, urgent, bulk, [("late bulk ×6", 0.1, "band 'background' is full")])
    assert lines[0].split() == [
        "job",
        "priority",
        "submitted",
        "waited",
        "ran",
        *["waiting", "bulk", "jobs", "it", "started", "ahead", "of"],
    ]
    assert lines[2].split() == ["urgent-1", "1", "+2.0", "s", "0.4", "s", "1.0", "s", "2", "of", "2"]
    assert lines[3].split()[:4] == ["bulk", "×3", "9→7", "at"]
    assert "median 4.0 s, max 8.9 s" in lines[3]
    assert lines[-1] == "late bulk ×6 refused: band 'background' is full"


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
def test_demo__for_real_urgent_jobs_preempt_a_running_backlog(
    tmp_path: Path, broker: Connection, settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the demo's processes on this run's database, vhost and a root of their own
    files = tmp_path / "files"
    files.mkdir()
    settings.CONVERTERS_ROOT = str(files)
    settings.VAR_DIR = tmp_path
    for name, value in worker_env(CONVERTERS_ROOT=str(files)).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("QUEUEPRIO_DEMO_PASSWORD", PASSWORD)
    limit_before = Band.objects.get(name="background").max_queued
    out, err = io.StringIO(), io.StringIO()
    # When it runs through
    call_command(
        "demo", "--exit", "--port", str(free_port()), "--flower-port", str(free_port()), stdout=out, stderr=err
    )
    text = out.getvalue()
    # Then every process was checked up before any URL was printed
    assert text.index("the web server are up") < text.index("http://127.0.0.1")
    # And each urgent job started ahead of every bulk job waiting when it arrived (but one a worker
    # process had already taken, at most, per process), computed from the ledger
    rows = re.findall(r"^urgent-\d+ .* (\d+) of (\d+)(?: \((\d+) already taken\))?$", text, flags=re.MULTILINE)
    assert len(rows) == 6, text
    assert all(int(ahead) + int(taken or 0) == int(waiting) for ahead, waiting, taken in rows), text
    assert all(int(taken or 0) <= demo.WORKER_PROCESSES for _, _, taken in rows), text
    assert "verdict: PREEMPTED" in text
    # And a full band refused the late batch; aging raised bulk jobs; the worker logged every job
    assert re.search(r"late bulk ×6 refused: band 'background' .* is full", text)
    assert re.search(r"aging: [1-9]\d* of 24 bulk jobs were raised", text)
    assert "worker.log: a 'succeeded' line for 30 of 30 jobs" in text
    # And the band's limit and beat's intervals are the operator's again
    assert Band.objects.get(name="background").max_queued == limit_before
    assert sweep_interval() == (30, "seconds")


@pytest.mark.django_db(transaction=True)
def test_demo__a_process_that_fails_stops_the_demo_before_any_url(
    tmp_path: Path, settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.VAR_DIR = tmp_path
    settings.CONVERTERS_ROOT = str(tmp_path / "files")
    for name, value in worker_env().items():
        monkeypatch.setenv(name, value)
    failing = [
        Process(
            "web",
            ["sh", "-c", "echo 'Error: That port is already in use.'; exit 1"],
            tmp_path / "web.log",
            lambda _: False,
        )
    ]
    monkeypatch.setattr(demo, "demo_processes", lambda *args: failing)
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError, match="1 of 1 demo processes did not come up"):
        call_command("demo", "--exit", "--port", "8123", stdout=out, stderr=err)
    assert "http://" not in out.getvalue()
    assert f"web failed: it exited with status 1; its log: {tmp_path / 'web.log'}" in err.getvalue()
    assert "Error: That port is already in use." in err.getvalue()
    assert "is port 8123 taken? --port chooses another" in err.getvalue()


def sweep_interval() -> tuple[int, str]:
    from django_celery_beat.models import PeriodicTask

    interval = PeriodicTask.objects.get(task="queueprio.age_waiting_jobs").interval
    return interval.every, interval.period


@pytest.mark.django_db
def test_beat_every__faster_for_the_demo_then_the_operators_interval_again() -> None:
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    # Given an operator who set the sweep to every 2 minutes in the admin
    two_minutes, _ = IntervalSchedule.objects.get_or_create(every=2, period=IntervalSchedule.MINUTES)
    PeriodicTask.objects.filter(task="queueprio.age_waiting_jobs").update(interval=two_minutes)
    with demo.beat_every(3, 10):
        assert sweep_interval() == (3, "seconds")
    assert sweep_interval() == (2, "minutes")


@pytest.mark.django_db
def test_beat_every__an_interval_an_interrupted_demo_left_goes_back_to_the_setting() -> None:
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    # Given the demo's own interval, left by a demo killed before it could restore it
    left, _ = IntervalSchedule.objects.get_or_create(every=3, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.filter(task="queueprio.age_waiting_jobs").update(interval=left)
    with demo.beat_every(3, 10):
        pass
    assert sweep_interval() == (30, "seconds")  # QUEUEPRIO_AGING_INTERVAL_SECONDS' default
