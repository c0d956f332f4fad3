"""``manage.py demo``: the whole stack on this machine, and preemption shown live, from the ledger.

It starts a worker with two processes, beat, Flower and the web server, checks that each is up,
then: a bulk backlog starts running on both worker processes; one more bulk batch is refused by
its full band; urgent jobs are injected while the backlog runs; aging raises the bulk jobs that
wait (a 4 s threshold for the demo). When everything has finished it prints each urgent job's
wait against the bulk jobs' and a verdict computed from the ledger, and leaves it all running
to browse until Ctrl-C.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import celery
from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from converters import convert, convert_batch
from converters.demo import report
from converters.demo.processes import Process, http_ok, logged, taken, wait_until_up
from queueprio import Priority, QueueFull, jobs, revoke

WORKER_PROCESSES = 2
BULK, LATE_BULK = 24, 6
#: (seconds after the backlog was submitted, urgent jobs submitted then)
URGENT_WAVES = ((2.0, 2), (5.0, 2), (8.0, 2))
#: Aging for the demo: a level per 4 s of waiting, the sweep every 2 s (defaults: 300 s and 30 s).
AGING_THRESHOLD, SWEEP_EVERY, ROLLUP_EVERY = 4.0, 2, 10
#: Each bulk job encodes this image losslessly (about a second each here); urgent jobs convert a small CSV.
BULK_OPTIONS = {"lossless": True, "quality": 100}
IMAGE_SIDE = 1000
FLOWER_COLUMNS = "name,uuid,state,kwargs,received,started,runtime,worker"
FINAL = {"succeeded", "failed", "publish_failed", "cancelled", "expired", "ignored", "rejected", "replaced"}


class Command(BaseCommand):
    help = (
        "Run a worker (2 processes), beat, Flower and the web server; show urgent jobs preempting a running bulk "
        "backlog, an aging step and a full band's refusal, measured from the ledger."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8000, help="the web server's port (default 8000)")
        parser.add_argument("--flower-port", type=int, default=5555, help="Flower's port (default 5555)")
        parser.add_argument("--exit", action="store_true", help="stop everything after showing the results")

    def handle(self, *args: Any, **options: Any) -> None:
        held = taken({"web": options["port"], "flower": options["flower_port"]})
        if held:
            raise CommandError("; ".join(held) + " (--port and --flower-port choose others)")
        call_command("migrate", verbosity=0)
        # The demo tells what happens itself; queueprio's own log lines (each submission, the refusal)
        # would bury it. (After migrate: its first look at the task registry re-applies LOGGING.)
        logging.getLogger("queueprio").setLevel(logging.ERROR)
        # `kill` stops the demo like Ctrl-C: its processes stop with it.
        signal.signal(signal.SIGTERM, stop_on_sigterm)
        password = os.environ.get("QUEUEPRIO_DEMO_PASSWORD") or secrets.token_urlsafe(12)
        self.admin_user(password)
        root = Path(settings.CONVERTERS_ROOT)
        bulk_files, urgent_files = sample_files(root / "demo")
        self.cancel_leftovers()
        log_dir = Path(settings.VAR_DIR) / "demo-logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        processes = demo_processes(password, options["port"], options["flower_port"], log_dir)
        # This process submits, so it ages with the demo's threshold too (the others get it from the environment).
        settings.QUEUEPRIO_AGING_THRESHOLD_SECONDS = AGING_THRESHOLD
        with beat_every(SWEEP_EVERY, ROLLUP_EVERY):
            try:
                for process in processes:
                    process.start(demo_env(password), Path(settings.BASE_DIR))
                    self.stdout.write(f"started {process.name:6} (log: {process.log})")
                failures = wait_until_up(processes)
                if failures:
                    for failure in failures:
                        for line in failure.lines():
                            self.stderr.write(line)
                    if any(f.name == "web" for f in failures):
                        self.stderr.write(f"(is port {options['port']} taken? --port chooses another)")
                    raise CommandError(f"{len(failures)} of {len(processes)} demo processes did not come up; stopped")
                self.stdout.write("worker (2 processes), beat, Flower and the web server are up\n")
                ids, refused, t0 = self.scenario(bulk_files, urgent_files)
                self.show(ids, refused, t0, processes[0])
                self.stdout.write(
                    self.style.SUCCESS(
                        where_to_look(password, options["port"], options["flower_port"], stays=not options["exit"])
                    )
                )
                while not options["exit"]:
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
            finally:
                for process in processes:
                    process.stop()

    def admin_user(self, password: str) -> None:
        user, _ = get_user_model().objects.get_or_create(
            username="admin", defaults={"is_staff": True, "is_superuser": True}
        )
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()

    def cancel_leftovers(self) -> None:
        """Jobs an interrupted earlier demo left waiting would run first and blur the picture: cancel them."""
        # The demo plays the operator here, who would filter the admin's job list: it reads the
        # ledger's model by name (no import of queueprio's internals; the public API has no
        # query by argument).
        Job = apps.get_model("queueprio", "Job")
        waiting = Job.objects.filter(state__in=["queued", "scheduled"], args__0__startswith="demo/")
        ids = list(waiting.values_list("task_id", flat=True))
        if ids:
            revoke(ids)
            self.stdout.write(f"cancelled {len(ids)} job(s) an earlier demo left waiting")

    def scenario(
        self, bulk_files: list[str], urgent_files: list[str]
    ) -> tuple[dict[str, list[str]], list[tuple[str, float, str]], datetime]:
        """Backlog, a refused late batch, urgent waves while the backlog runs; returns the ids by role."""
        refused: list[tuple[str, float, str]] = []
        with band_limit(Priority.BULK, BULK) as limit:
            t0 = timezone.now()
            started = time.monotonic()
            backlog = convert_batch(
                "image_to_webp", bulk_files[:BULK], priority=Priority.BULK, target_dir="demo/out", options=BULK_OPTIONS
            )
            self.stdout.write(
                f"+0.0 s  {BULK} bulk jobs (priority {int(Priority.BULK)}), each a lossless WebP encoding; "
                f"their band takes {limit} queued jobs for the demo"
            )
            try:
                late = convert_batch(
                    "image_to_webp",
                    bulk_files[BULK:],
                    priority=Priority.BULK,
                    target_dir="demo/out",
                    options=BULK_OPTIONS,
                )
            except QueueFull as exc:
                refused.append((f"late bulk ×{LATE_BULK}", (timezone.now() - t0).total_seconds(), str(exc)))
                self.stdout.write(f"+{time.monotonic() - started:.1f} s  {LATE_BULK} more bulk jobs refused: {exc}")
            else:
                backlog.results += late.results
                self.stdout.write(
                    f"+{time.monotonic() - started:.1f} s  {LATE_BULK} more bulk jobs fitted (no refusal)"
                )
        ids: dict[str, list[str]] = {"bulk": backlog.ids, "urgent": []}
        self.wait_for(lambda infos: sum(i.state != "queued" for i in infos) >= WORKER_PROCESSES, ids["bulk"], 60)
        self.stdout.write(
            f"+{time.monotonic() - started:.1f} s  the backlog is running on both worker processes; "
            "now urgent jobs arrive"
        )
        files = iter(urgent_files)
        for at, count in URGENT_WAVES:
            time.sleep(max(0.0, at - (time.monotonic() - started)))
            for _ in range(count):
                ids["urgent"].append(convert("csv_to_json", next(files), priority=Priority.CRITICAL).id)
            self.stdout.write(f"+{time.monotonic() - started:.1f} s  {count} urgent jobs (priority 1)")
        everything = ids["bulk"] + ids["urgent"]
        self.wait_for(lambda infos: all(i.state in FINAL for i in infos), everything, 600, live=started)
        return ids, refused, t0

    def wait_for(self, done: Any, task_ids: list[str], timeout: float, *, live: float | None = None) -> None:
        """Poll the ledger until ``done(infos)``; with ``live``, a status line: redrawn in place on a
        terminal, else a new line whenever it changes."""
        deadline = time.monotonic() + timeout
        terminal, last = self.stdout.isatty(), ""
        while True:
            infos = [info for info in jobs(task_ids) if info is not None]
            if live is not None:
                counts = status_line(infos)
                if terminal:
                    self.stdout.write(f"\r+{time.monotonic() - live:4.1f} s  {counts}", ending="")
                    self.stdout.flush()
                elif counts != last:
                    self.stdout.write(f"+{time.monotonic() - live:4.1f} s  {counts}")
                last = counts
            if done(infos):
                if live is not None and terminal:
                    self.stdout.write("")
                return
            if time.monotonic() > deadline:
                raise CommandError(f"the demo's jobs did not finish within {timeout:.0f} s; see the worker's log")
            time.sleep(0.25)

    def show(
        self, ids: dict[str, list[str]], refused: list[tuple[str, float, str]], t0: datetime, worker: Process
    ) -> None:
        bulk = [info for info in jobs(ids["bulk"]) if info is not None]
        urgent = [
            report.against_bulk(f"urgent-{n}", info, bulk)
            for n, info in enumerate(jobs(ids["urgent"]), start=1)
            if info is not None
        ]
        self.stdout.write(
            f"\nFrom the ledger (1 = most urgent; {WORKER_PROCESSES} worker processes; "
            "times from the first bulk submission):\n"
        )
        self.stdout.write("\n".join(report.report(t0, urgent, bulk, refused)))
        aged = [b for b in bulk if b.effective_priority < b.requested_priority]
        best = min((b.effective_priority for b in aged), default=None)
        self.stdout.write(
            f"\naging: {len(aged)} of {len(bulk)} bulk jobs were raised while they waited"
            + (f" (9→8 … 9→{best})" if best is not None else "")
            + f", a level per {AGING_THRESHOLD:g} s (the demo's threshold; the default is 300 s)"
        )
        log = worker.output()
        logged_jobs = sum(f"[{task_id}] succeeded" in log for task_id in ids["bulk"] + ids["urgent"])
        sweeps = len(re.findall(r"Task queueprio\.age_waiting_jobs\[[0-9a-f-]+\] succeeded", log))
        self.stdout.write(
            f"worker.log: a 'succeeded' line for {logged_jobs} of {len(bulk) + len(urgent)} jobs, "
            f"with {sweeps} aging sweeps run by the same worker in between"
        )
        verdict = report.verdict(urgent, bulk, processes=WORKER_PROCESSES)
        style = self.style.SUCCESS if verdict.shown else self.style.ERROR
        self.stdout.write(style("\nverdict: " + "\n         ".join(verdict.lines)))


def stop_on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def status_line(infos: list[Any]) -> str:
    def count(suffix: str, state: str) -> int:
        return sum(1 for i in infos if i.task_name.endswith(suffix) and i.state == state)

    return (
        f"bulk: {count('webp', 'queued')} waiting, {count('webp', 'started')} running, "
        f"{count('webp', 'succeeded')} done   urgent: {count('json', 'queued')} waiting, "
        f"{count('json', 'started')} running, {count('json', 'succeeded')} done"
    )


def sample_files(folder: Path) -> tuple[list[str], list[str]]:
    """The bulk image (one file, linked under each job's name) and small CSVs for the urgent jobs."""
    from PIL import Image  # the converters' own dependency

    folder.mkdir(parents=True, exist_ok=True)
    image = folder / "photo.png"
    if not image.exists():
        noise = Image.frombytes("RGB", (IMAGE_SIDE // 8, IMAGE_SIDE // 8), os.urandom((IMAGE_SIDE // 8) ** 2 * 3))
        noise.resize((IMAGE_SIDE, IMAGE_SIDE), Image.Resampling.BICUBIC).save(image)
    bulk = []
    for i in range(BULK + LATE_BULK):
        path = folder / f"bulk-{i:02}.png"
        if not path.exists():
            try:
                os.link(image, path)
            except OSError:
                path.write_bytes(image.read_bytes())
        bulk.append(f"demo/{path.name}")
    urgent = []
    for i in range(sum(count for _, count in URGENT_WAVES)):
        path = folder / f"urgent-{i}.csv"
        path.write_text("id,name,score\n" + "".join(f"{n},item-{n},{n * 3 % 17}\n" for n in range(200)))
        urgent.append(f"demo/{path.name}")
    return bulk, urgent


def demo_env(password: str) -> dict[str, str]:
    """The processes' environment: Flower's login here, never on a command line (``ps`` shows those)."""
    return {
        **os.environ,
        "FLOWER_BASIC_AUTH": f"admin:{password}",
        "FLOWER_TASKS_COLUMNS": FLOWER_COLUMNS,
        "QUEUEPRIO_AGING_THRESHOLD_SECONDS": str(AGING_THRESHOLD),
        "PYTHONUNBUFFERED": "1",
    }


def demo_processes(password: str, port: int, flower_port: int, log_dir: Path) -> list[Process]:
    """The four processes, each with how to tell it is up. No secret in any command."""
    celery_cmd = [sys.executable, "-m", "celery", "-A", "project"]
    queues = f"{settings.QUEUEPRIO_QUEUE},{settings.QUEUEPRIO_LANE_QUEUE}"
    worker = [*celery_cmd, "worker", "-l", "INFO", "-c", str(WORKER_PROCESSES), "-n", "demo@%h", "-Q", queues]
    beat = [*celery_cmd, "beat", "-l", "INFO", "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler"]
    flower = [*celery_cmd, "flower", f"--port={flower_port}", "--address=127.0.0.1"]
    web = [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"]
    return [
        Process("worker", worker, log_dir / "worker.log", worker_answers),
        Process("beat", beat, log_dir / "beat.log", logged("beat: Starting...")),
        Process(
            "flower",
            flower,
            log_dir / "flower.log",
            lambda _: http_ok(f"http://127.0.0.1:{flower_port}/healthcheck", user="admin", password=password),
        ),
        Process("web", web, log_dir / "web.log", lambda _: http_ok(f"http://127.0.0.1:{port}/")),
    ]


def worker_answers(process: Process) -> bool:
    """The demo's worker answers a remote-control ping (it consumes, and its pool is up)."""
    replies = celery.current_app.control.ping(timeout=1.0) or []
    return any(name.startswith("demo@") for reply in replies for name in reply)


#: The periodic tasks the demo runs more often, and the interval each had before if that can't be
#: known (an earlier demo killed before it could restore them): the settings' initial ones.
FASTER = {
    "queueprio.age_waiting_jobs": ("QUEUEPRIO_AGING_INTERVAL_SECONDS", 30),
    "queueprio.rollup_metrics": ("QUEUEPRIO_METRICS_ROLLUP_INTERVAL_SECONDS", 60),
}


@contextmanager
def beat_every(sweep: int, rollup: int) -> Iterator[None]:
    """The aging sweep and the metrics rollup more often for the demo; their intervals restored after."""
    wanted = {"queueprio.age_waiting_jobs": sweep, "queueprio.rollup_metrics": rollup}
    saved: dict[int, IntervalSchedule] = {}
    for task in PeriodicTask.objects.filter(task__in=wanted).select_related("interval"):
        demo_interval, _ = IntervalSchedule.objects.get_or_create(
            every=wanted[task.task], period=IntervalSchedule.SECONDS
        )
        if task.interval is None or task.interval == demo_interval:  # an earlier demo didn't get to restore it
            name, default = FASTER[task.task]
            every = max(1, round(float(getattr(settings, name, default))))
            saved[task.pk], _ = IntervalSchedule.objects.get_or_create(every=every, period=IntervalSchedule.SECONDS)
        else:
            saved[task.pk] = task.interval
        task.interval = demo_interval
        task.save()
    try:
        yield
    finally:
        for task in PeriodicTask.objects.filter(pk__in=saved):
            task.interval = saved[task.pk]
            task.save()


@contextmanager
def band_limit(priority: int, room: int) -> Iterator[int]:
    """The band of ``priority`` takes ``room`` more queued jobs for the demo (an operator would set it in the
    admin, Priority bands); its limit restored after. Yields the limit."""
    # As the admin's band page does, by the model's name (the public API has no band editor).
    Band = apps.get_model("queueprio", "Band")
    band = Band.objects.get(most_urgent__lte=priority, least_urgent__gte=priority)
    saved = band.max_queued
    limit = band.queued + room
    Band.objects.filter(pk=band.pk).update(max_queued=limit)
    try:
        yield limit
    finally:
        Band.objects.filter(pk=band.pk).update(max_queued=saved)


def where_to_look(password: str, port: int, flower_port: int, *, stays: bool = True) -> str:
    head = "Everything keeps running; look around:" if stays else "Where to look while it runs (--exit: it stops now):"
    return (
        f"\n{head}\n"
        f"  dashboard: http://127.0.0.1:{port}/admin/queueprio/dashboard/  (user admin, password {password})\n"
        f"  the jobs:  http://127.0.0.1:{port}/admin/queueprio/job/?q=demo/\n"
        f"  Flower:    http://127.0.0.1:{flower_port}/  (same login)\n"
        f"  health:    http://127.0.0.1:{port}/queueprio/health/   metrics: http://127.0.0.1:{port}/queueprio/metrics\n"
        f"  logs:      {Path(settings.VAR_DIR) / 'demo-logs'}/" + ("\nCtrl-C stops everything." if stays else "")
    )
