"""``manage.py demo``: the whole stack on this machine and a mixed-priority workload that shows the order."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from converters import convert_batch
from queueprio import Priority, jobs

WORKLOAD = [
    (Priority.BULK, 120),
    (Priority.LOW, 40),
    (Priority.NORMAL, 30),
    (Priority.HIGH, 10),
    (Priority.CRITICAL, 5),
]


class Command(BaseCommand):
    help = "Run worker, beat, Flower and the web server, submit a mixed-priority workload, show the order."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--flower-port", type=int, default=5555)
        parser.add_argument("--exit", action="store_true", help="stop everything after showing the results")

    def handle(self, *args: Any, **options: Any) -> None:
        call_command("migrate", verbosity=0)
        password = self.admin_user()
        sources = self.sample_files()
        # The workload goes in before any worker runs, least urgent first, so the order
        # in which jobs finish is the broker's priority order and nothing else.
        submitted = [
            convert_batch("csv_to_json", sources[:count], priority=p, target_dir=f"out/p{p}") for p, count in WORKLOAD
        ]
        ids = [task_id for batch in submitted for task_id in batch.ids]
        total = len(ids)
        self.stdout.write(
            f"submitted {total} jobs, least urgent first: " + ", ".join(f"{c}×P{int(p)}" for p, c in WORKLOAD)
        )
        procs = self.start(password, options["port"], options["flower_port"])
        try:
            self.wait_and_report(ids)
            self.stdout.write(self.style.SUCCESS(self.where_to_look(password, options["port"], options["flower_port"])))
            while not options["exit"]:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()

    def admin_user(self) -> str:
        password = os.environ.get("QUEUEPRIO_DEMO_PASSWORD") or secrets.token_urlsafe(12)
        user, _ = get_user_model().objects.get_or_create(
            username="admin", defaults={"is_staff": True, "is_superuser": True}
        )
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        return password

    def sample_files(self) -> list[str]:
        root = Path(settings.CONVERTERS_ROOT) / "demo"
        root.mkdir(parents=True, exist_ok=True)
        rows = "".join(f"{i},item-{i},{i * 3 % 17}\n" for i in range(2_000))
        names = []
        for i in range(max(count for _, count in WORKLOAD)):
            path = root / f"data-{i:03}.csv"
            path.write_text("id,name,score\n" + rows)
            names.append(f"demo/{path.name}")
        return names

    def start(self, password: str, port: int, flower_port: int) -> list[subprocess.Popen[bytes]]:
        celery = [sys.executable, "-m", "celery", "-A", "project"]
        log_dir = Path(settings.VAR_DIR) / "demo-logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        commands = {
            "worker": [
                *celery,
                "worker",
                "-l",
                "INFO",
                "-c",
                "1",
                "-Q",
                f"{settings.QUEUEPRIO_QUEUE},{settings.QUEUEPRIO_LANE_QUEUE}",
            ],
            "beat": [*celery, "beat", "-l", "INFO", "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler"],
            "flower": [
                *celery,
                "flower",
                f"--port={flower_port}",
                "--address=127.0.0.1",
                f"--basic-auth=admin:{password}",
            ],
            "web": [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        }
        # Flower reads FLOWER_* options; the password stays out of `ps`, the kwargs column
        # (where each task's priority is shown) is on.
        env = {
            **os.environ,
            "FLOWER_BASIC_AUTH": f"admin:{password}",
            "FLOWER_TASKS_COLUMNS": "name,uuid,state,kwargs,received,started,runtime,worker",
        }
        procs = []
        for name, command in commands.items():
            out = open(log_dir / f"{name}.log", "wb")  # noqa: SIM115  (closed with the process)
            procs.append(
                subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=settings.BASE_DIR, env=env)
            )
            self.stdout.write(f"started {name:6} (log: {log_dir / f'{name}.log'})")
        return procs

    def wait_and_report(self, ids: list[str]) -> None:
        deadline = time.monotonic() + 600
        while True:
            infos = [info for info in jobs(ids) if info is not None]
            if sum(info.state in ("succeeded", "failed") for info in infos) >= len(ids):
                break
            if time.monotonic() > deadline:
                raise SystemExit("the demo jobs did not finish within 10 minutes; see the worker log")
            time.sleep(0.5)
        infos.sort(key=lambda info: info.finished_at or info.queued_at)
        finished = [info.requested_priority for info in infos]
        self.stdout.write("\npriority  jobs  finished in positions (1 = first)   mean position")
        for priority, count in sorted(WORKLOAD):
            positions = [i + 1 for i, p in enumerate(finished) if p == priority]
            mean = sum(positions) / len(positions)
            span = f"{positions[0]:>5} … {positions[-1]:<5}"
            self.stdout.write(f"P{int(priority):<8} {count:>4}  {span}{'':>18}{mean:>8.1f}")

    def where_to_look(self, password: str, port: int, flower_port: int) -> str:
        return (
            f"\nUrgent jobs finished first. Look around:\n"
            f"  admin:  http://127.0.0.1:{port}/admin/  (user admin, password {password})\n"
            f"          jobs: /admin/queueprio/job/   defaults: /admin/queueprio/taskpriority/\n"
            f"  Flower: http://127.0.0.1:{flower_port}/  (same login)\n"
            f"Ctrl-C stops everything."
        )
