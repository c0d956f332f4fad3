"""The admin dashboard: its numbers, and the real pages (dashboard, job list, a job) rendered by headless Chromium."""

from __future__ import annotations

import math
import os
import random
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from django_celery_results.models import TaskResult

from queueprio.models import AgingStep, Band, BandSample, Job, TaskPriority
from queueprio.observability import dashboard, rollup, waits
from queueprio.observability.aggregate import Stat, minute_floor
from tests.support import chromium as browser
from tests.support.ledger import make_aging_step, make_job, make_rejection
from tests.support.worker import ROOT

DASHBOARD = "/admin/queueprio/dashboard/"
SCREENSHOTS = ROOT / "docs"


TASKS = ("converters.csv_to_json", "converters.image_to_webp", "converters.xml_to_json")


def seed_running(now: datetime) -> None:
    """Jobs running now, reporting progress, and the background band at its running limit of 2 with
    three more held."""
    Band.objects.filter(name="background").update(max_running=2)
    for i, (priority, progress, note) in enumerate(
        ((2, 0.81, "rows 81000/100000"), (9, 0.35, "bytes 7.0/20.0 MB"), (9, None, "reading"))
    ):
        make_job(
            queued_at=now - timedelta(seconds=40 + i),
            priority=priority,
            task=TASKS[i],
            state="started",
            queue="celery",
            started_at=now - timedelta(seconds=12 + 7 * i),
            progress=progress,
            progress_note=note,
            band="urgent" if priority < 3 else "background",
        )
    for i in range(3):
        make_job(queued_at=now - timedelta(seconds=90 + i), priority=9, state="held", band="background", task=TASKS[1])


def seed(now: datetime) -> None:
    """A plausible last hour: a backlog, finished jobs with waits growing with priority, refusals, aging."""
    rng = random.Random(7)
    for priority, queued in ((1, 1), (2, 3), (3, 6), (5, 14), (7, 9), (9, 22), (10, 5)):
        for _ in range(queued):
            at = now - timedelta(seconds=rng.uniform(5, 60 * priority))
            make_job(queued_at=at, priority=priority, queue="celery", published_at=at, task=TASKS[priority % 3])
    seed_running(now)
    for minute in range(55, 0, -1):
        for _ in range(rng.randint(2, 9)):
            priority = rng.choice((1, 2, 3, 5, 5, 7, 9, 10))
            queued = now - timedelta(minutes=minute, seconds=rng.uniform(0, 59))
            started = queued + timedelta(seconds=rng.expovariate(1 / (2 * priority**1.6)))
            state = "failed" if rng.random() < 0.05 else "succeeded"
            finished = started + timedelta(seconds=rng.uniform(0.2, 4))
            make_job(queued_at=queued, priority=priority, state=state, started_at=started, finished_at=finished)
    for reason, count in (("queue_full", 7), ("invalid_input", 3), ("path_outside_root", 2), ("quota_exceeded", 1)):
        for i in range(count):
            make_rejection(at=now - timedelta(minutes=2 * i + 1), reason=reason)
    for i in range(6):
        job = make_job(queued_at=now - timedelta(minutes=20 + i), priority=9, effective=8)
        make_aging_step(job, at=now - timedelta(minutes=14 + i), from_priority=9, to_priority=8)
    for i, who in enumerate(("alice", "bob")):  # raised by hand: admin changes, not aging
        job = make_job(queued_at=now - timedelta(minutes=30 + i), priority=7, effective=2, admin_priority=2)
        step = make_aging_step(job, at=now - timedelta(minutes=10 + i), from_priority=7, to_priority=2, reason="admin")
        AgingStep.objects.filter(pk=step.pk).update(changed_by=who)
    for minute in range(59, -1, -1):  # the rollup's depth snapshots, one a minute
        at = minute_floor(now) - timedelta(minutes=minute)
        for band, base in (("urgent", 1), ("normal", 12), ("background", 30)):
            queued = max(0, int(base + base * 0.6 * math.sin(minute / 7 + base)))
            BandSample.objects.create(at=at, band=band, queued=queued)
    TaskPriority.objects.update_or_create(
        task_name="converters.csv_to_json", defaults={"code_default": 5, "priority": 3}
    )
    TaskPriority.objects.update_or_create(task_name="converters.image_to_webp", defaults={"code_default": 7})
    rollup.rollup(now)


def test_minute_series__fills_missing_minutes_with_zero() -> None:
    t = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    stat = Stat()
    stat.counts.update(succeeded=3, failed=1)
    points = dashboard.minute_series({t + timedelta(minutes=1): stat}, t, t + timedelta(minutes=3))
    assert points == [("12:00", 0.0), ("12:01", 4.0), ("12:02", 0.0)]
    # Over a longer range, a point per 5 minutes holds their sum
    wide = dashboard.minute_series({t + timedelta(minutes=1): stat}, t, t + timedelta(minutes=10), step_minutes=5)
    assert wide == [("12:00", 4.0), ("12:05", 0.0)]


def test_parse_range__the_three_ranges_and_the_hour_for_anything_else() -> None:
    assert [dashboard.parse_range(key).span for key in ("1h", "6h", "24h")] == [
        timedelta(hours=1),
        timedelta(hours=6),
        timedelta(hours=24),
    ]
    assert dashboard.parse_range("1y") == dashboard.parse_range(None) == dashboard.DEFAULT_RANGE


def test_fold__keeps_each_groups_peak() -> None:
    assert dashboard.fold([1, 5, None, 2, None, None, 7], 2) == [5, 2, None, 7]


@pytest.mark.django_db
def test_context__live_depth_window_figures_and_defaults() -> None:
    now = timezone.now()
    seed(now)
    context = dashboard.context(now)
    assert context["queued_total"] == 60 + 6 + 2
    # Aging and admin changes counted apart
    assert (context["counts"]["aged"], context["counts"]["admin_changes"]) == (6, 2)
    assert {row["reason"] for row in context["aging_steps"]} == {"aging"}
    assert [(c["who"], c["from_priority"], c["to_priority"]) for c in context["admin_changes"]] == [
        ("alice", 7, 2),
        ("bob", 7, 2),
    ]
    assert dict(context["rejections"])["queue_full"] == 7
    assert {row.priority for row in context["waits"].rows} >= {1, 5, 10}
    assert context["waits"].exact
    defaults = {row["task_name"]: row for row in context["task_defaults"]}
    assert defaults["converters.csv_to_json"]["effective"] == 3
    assert defaults["converters.image_to_webp"]["effective"] == 7
    for chart in ("depth_chart", "band_depth_chart", "wait_chart", "throughput_chart", "rejections_chart"):
        assert str(context[chart]).startswith('<svg class="qp-chart"')
    # Depth by band over time: one line per band through the hour's 60 snapshots
    assert str(context["band_depth_chart"]).count('class="qp-line"') == 3


@pytest.mark.django_db
def test_context__the_range_widens_every_window_figure() -> None:
    now = timezone.now()
    make_aging_step(
        make_job(queued_at=now - timedelta(hours=5), priority=9, effective=8),
        at=now - timedelta(hours=4),
        from_priority=9,
        to_priority=8,
    )
    assert dashboard.context(now)["aging_steps"] == []
    [step] = dashboard.context(now, dashboard.parse_range("6h"))["aging_steps"]
    assert (step["from_priority"], step["to_priority"], step["steps"]) == (9, 8, 1)


def waited(now: datetime, seconds: list[float], priority: int = 4) -> None:
    for i, wait in enumerate(seconds):
        queued = now - timedelta(minutes=30, seconds=i)
        started = queued + timedelta(seconds=wait)
        make_job(queued_at=queued, priority=priority, state="succeeded", started_at=started, finished_at=started)


@pytest.mark.django_db
def test_waits__exact_from_the_ledger_at_the_nearest_rank() -> None:
    # Given 20 jobs that waited 1…20 s (a histogram would put 11…15 s in one bucket)
    now = timezone.now()
    waited(now, [float(s) for s in range(1, 21)])
    result = waits.waits(now - timedelta(hours=1), now)
    [row] = result.rows
    assert result.exact
    assert result.started == 20
    assert (row.p50.value, row.p95.value, row.longest) == (pytest.approx(10.0), pytest.approx(19.0), 20.0)
    assert (row.p50.text, row.p50.bucket) == ("10.0 s", "")


@pytest.mark.django_db
def test_waits__over_the_limit_an_estimate_with_the_bucket_it_lies_in() -> None:
    # Given the same jobs, rolled up, and a ledger too busy to read one by one
    now = timezone.now()
    waited(now, [float(s) for s in range(1, 21)])
    rollup.rollup(now)
    exact = waits.from_ledger(now - timedelta(hours=1), now, limit=10)
    assert exact == "more than 10 jobs started in the window"
    result = waits.from_rollup(now - timedelta(hours=1), exact)
    [row] = result.rows
    # Then the p95 is an estimate inside its bucket (15, 30] s, and says so; the exact 19 s is in it
    assert not result.exact
    assert row.p95.lower == 15.0
    assert row.p95.upper == 30.0
    assert row.p95.text.startswith("≈ ")
    assert row.p95.bucket == "15.0 s–30.0 s"


@pytest.mark.django_db
def test_dashboard_page__states_the_estimates_error(admin_client, monkeypatch) -> None:
    now = timezone.now()
    waited(now, [float(s) for s in range(1, 21)])
    rollup.rollup(now)
    exact_page = admin_client.get(DASHBOARD).content.decode()
    assert "p50 and p95 are exact: from the ledger's 20 jobs" in exact_page
    monkeypatch.setattr(waits, "EXACT_LIMIT", 10)
    page = admin_client.get(DASHBOARD).content.decode()
    assert "p50 and p95 are estimates (more than 10 jobs started in the window)" in page
    assert "the error is at most that bucket" in page
    assert "in 15.0 s–30.0 s" in page


@pytest.mark.django_db(transaction=True)
def test_dashboard__renders_in_headless_chromium(
    chromium: str, live_server, settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an hour of activity and a superuser whose browser session the test opens; two worker
    # processes consume the queue (the answer the workers would give, without a worker here)
    settings.ROOT_URLCONF = "tests.observability.dashboard_urls"
    monkeypatch.setattr(dashboard, "processes_by_queue", lambda: {"celery": 2})
    now = timezone.now()
    seed(now)
    get_user_model().objects.create_superuser("boss", "boss@example.com", "pw")

    def load(path: str) -> str:
        dom = browser.run(
            chromium, tmp_path / "profile-dom", "--dump-dom", f"{live_server.url}/test-login/boss/?next={path}"
        )
        assert dom.returncode == 0, dom.stderr[-2000:]
        assert 'id="login-form"' not in dom.stdout
        return dom.stdout

    # When Chromium loads the admin dashboard through the live server
    dom = load(DASHBOARD)
    # Then the page is the dashboard (not the login form) with its five charts in the DOM
    assert "Queue dashboard" in dom
    assert dom.count('<svg class="qp-chart"') == 5
    assert dom.count('class="qp-bar"') >= 10
    assert 'http-equiv="refresh" content="15"' in dom
    # And its range links, the admin changes counted apart, exact quantiles said so
    assert '<strong class="qp-range-current">last hour</strong>' in dom
    assert 'href="?range=24h"' in dom
    assert "<strong>2</strong>admin priority changes" in dom
    assert "p50 and p95 are exact" in dom
    # And a count axis in whole numbers: every tick label of the depth chart is an integer
    depth = dom[dom.index('id="qp-depth"') : dom.index('id="qp-bands"')]
    ticks = re.findall(r'text-anchor="end" fill="#666">([^<]+)<', depth)
    assert ticks
    assert all(tick.isdigit() for tick in ticks)
    # And the bands now: running against the limit, held jobs; what runs with its progress; the
    # next to start in RabbitMQ's order with an expected start
    bands = dom[dom.index('id="qp-bands"') : dom.index('id="qp-running"')]
    assert re.search(r"<strong[^>]*>2</strong> <span class=\"qp-muted\">/ 2</span>", bands)
    running = dom[dom.index('id="qp-running"') : dom.index('id="qp-next"')]
    assert '<progress max="100" value="81">' in running
    assert "rows 81000/100000" in running
    upcoming = dom[dom.index('id="qp-next"') : dom.index('id="qp-band-depth"')]
    assert upcoming.count("<tr>") == 1 + dashboard.LIVE_SHOWN
    assert "no worker" not in upcoming
    # And over 24 hours the same page widens its window
    assert '<strong class="qp-range-current">last 24 hours</strong>' in load(f"{DASHBOARD}?range=24h")
    shot(chromium, tmp_path, live_server.url, DASHBOARD, "dashboard.png", height=2700)


def shot(chromium: str, tmp_path: Path, base: str, path: str, name: str, *, height: int, width: int = 1280) -> None:
    """A screenshot of ``path`` as ``boss``: a real PNG of some substance; kept in docs/ when asked."""
    png = tmp_path / name
    url = f"{base}/test-login/boss/?next={path}"
    done = browser.run(
        chromium, tmp_path / f"profile-{name}", f"--screenshot={png}", f"--window-size={width},{height}", url
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 30_000
    if os.environ.get("QUEUEPRIO_WRITE_SCREENSHOT") == "1":
        SCREENSHOTS.mkdir(exist_ok=True)
        shutil.copyfile(png, SCREENSHOTS / name)


JOBS = "/admin/queueprio/job/"


def seed_jobs(now: datetime) -> dict[str, object]:
    """A morning of conversions as the job list shows them: done, failed, running, waiting, raised by hand."""
    rng = random.Random(11)
    made: dict[str, object] = {}
    for i in range(14):
        queued = now - timedelta(minutes=40 - 2 * i, seconds=rng.uniform(0, 50))
        started = queued + timedelta(seconds=rng.uniform(0.2, 30 if i % 3 else 240))
        finished = started + timedelta(seconds=rng.uniform(0.3, 9))
        kind = (
            ("csv_to_json", "in/orders-2026-{:02}.csv", 5) if i % 2 else ("image_to_webp", "photos/shop-{:03}.png", 7)
        )
        task, source, priority = kind[0], kind[1].format(i + 1), kind[2]
        failed = i in (3, 8)
        job = make_job(
            queued_at=queued,
            priority=priority,
            task=f"converters.{task}",
            state="failed" if failed else "succeeded",
            started_at=started,
            finished_at=finished,
            args=[source, source.rsplit(".", 1)[0] + (".json" if task == "csv_to_json" else ".webp")],
            kwargs={"options": {}},
            error=(
                f"ConversionError: {source}: row 4 has 5 fields, expected 3\nTraceback (most recent call last):\n  ..."
                if failed
                else ""
            ),
        )
        TaskResult.objects.create(task_id=job.task_id, status="FAILURE" if failed else "SUCCESS")
    running = make_job(
        queued_at=now - timedelta(seconds=12),
        priority=3,
        task="converters.xml_to_json",
        state="started",
        started_at=now - timedelta(seconds=4),
        args=["in/invoice-7731.xml", "in/invoice-7731.json"],
        progress=0.42,
        progress_note="bytes 4.2/10.0 MB",
        progress_at=now - timedelta(seconds=1),
    )
    TaskResult.objects.create(task_id=running.task_id, status="STARTED")
    for i in range(3):
        make_job(
            queued_at=now - timedelta(seconds=30 + 9 * i),
            priority=9,
            effective=8,
            task="converters.image_to_webp",
            args=[f"archive/scan-{i:04}.tiff", f"archive/scan-{i:04}.webp"],
            queue="celery",
            published_at=now - timedelta(seconds=30 + 9 * i),
        )
    raised = make_job(
        queued_at=now - timedelta(minutes=3),
        priority=7,
        effective=2,
        admin_priority=2,
        task="converters.csv_to_json",
        args=["in/payroll-2026-01.csv", "in/payroll-2026-01.json"],
        caller_key="user:42",
        queue="celery",
        published_at=now - timedelta(minutes=1),
    )
    step = make_aging_step(raised, at=now - timedelta(minutes=1), from_priority=7, to_priority=2, reason="admin")
    AgingStep.objects.filter(pk=step.pk).update(changed_by="alice")
    make_aging_step(raised, at=now - timedelta(minutes=2), from_priority=7, to_priority=7, reason="aging")
    made["raised"] = raised
    return made


@pytest.mark.django_db(transaction=True)
def test_job_pages__render_in_headless_chromium(
    chromium: str, live_server, settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a morning of conversions and a superuser whose browser session the test opens (two
    # worker processes consume the queue: the answer the workers would give)
    settings.ROOT_URLCONF = "tests.observability.dashboard_urls"
    from queueprio.admin import jobs as job_admin

    monkeypatch.setattr(job_admin, "processes_by_queue", lambda: {"celery": 2})
    now = timezone.now()
    made = seed_jobs(now)
    get_user_model().objects.create_superuser("boss", "boss@example.com", "pw")
    raised = made["raised"]
    assert isinstance(raised, Job)

    def load(path: str) -> str:
        url = f"{live_server.url}/test-login/boss/?next={path}"
        dom = browser.run(chromium, tmp_path / "profile-jobs", "--dump-dom", url)
        assert dom.returncode == 0, dom.stderr[-2000:]
        assert 'id="login-form"' not in dom.stdout
        return dom.stdout

    # When Chromium loads the job list
    page = load(JOBS)
    # Then each row reads as people ask: compact id (whole id as its tooltip), the input file,
    # times to the second, waited and run times, the error's first line, the result
    assert f'<span title="{raised.task_id}">{raised.task_id[:8]}</span>' in page
    assert "in/payroll-2026-01.csv" in page
    assert re.search(r">\d{4}-\d\d-\d\d \d\d:\d\d:\d\d<", page)
    assert "row 4 has 5 fields, expected 3" in page
    assert "Traceback" not in page
    assert '2 <span title="set in the admin">(admin)</span>' in page
    assert ">FAILURE</a>" in page
    # And the running job's progress, each waiting job's place (the raised one first)
    assert '<progress max="100" value="42"' in page
    assert "bytes 4.2/10.0 MB" in page
    assert page.count(" ahead</td>") == 4
    assert ">0 ahead<" in page
    assert ">3 ahead<" in page
    # And the actions include Cancel next to Set priority and Retry
    for action in ("set_priority", "cancel", "retry"):
        assert f'<option value="{action}">' in page
    # And searching by file finds the job
    found = load(f"{JOBS}?q=payroll")
    assert raised.task_id[:8] in found
    assert "in/orders-2026-02.csv" not in found
    # When Chromium loads the raised job's page, it shows the caller's priority and the admin's change
    detail = load(f"{JOBS}{raised.pk}/change/")
    assert re.search(r"2 \(from 7\) by alice at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d", detail)
    assert re.search(r'<div class="readonly">7</div>', detail)  # requested: what the caller asked
    assert ">0 ahead<" in detail
    assert "on 2 worker processes" in detail
    shot(chromium, tmp_path, live_server.url, JOBS, "jobs.png", height=1000, width=1920)
    shot(chromium, tmp_path, live_server.url, f"{JOBS}{raised.pk}/change/", "job.png", height=1700)
