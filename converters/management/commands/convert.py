"""``manage.py convert <converter> <files…> [--priority N] [--wait]``: submit conversions, optionally watch them."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from converters.api import convert, convert_batch
from converters.progress import JobView, all_final, progress_line, summary, tally
from queueprio import PublishFailed, Rejected, jobs

#: Task ids per ledger query while polling (SQLite caps the parameters of one statement).


class Command(BaseCommand):
    help = (
        "Convert files as prioritised jobs. Paths are relative to CONVERTERS_ROOT (or absolute inside it). "
        "Priority 1 is the most urgent, 10 the least."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("converter", help="converter name, e.g. csv_to_json")
        parser.add_argument("files", nargs="+", help="source files")
        parser.add_argument(
            "--priority",
            type=int,
            default=None,
            help="1 (most urgent) … 10 (least urgent); default: the converter's default as set in the admin or code",
        )
        parser.add_argument("--wait", action="store_true", help="show progress until every job has finished")
        parser.add_argument("--poll-interval", type=float, default=0.5, help="seconds between progress checks")

    def handle(self, *args: Any, converter: str, files: list[str], priority: int | None, **options: Any) -> None:
        task_ids, rejected = self.submit(converter, files, priority)
        self.stdout.write(f"submitted {len(task_ids)} job(s) to converter {converter}")
        if not options["wait"]:
            self.stdout.write("\n".join(task_ids))
            return
        jobs = self.wait(task_ids, interval=options["poll_interval"])
        self.stdout.write("\n".join(summary(jobs, rejected=rejected)))
        failed = sum(1 for job in jobs if job.state != "succeeded")
        if failed or rejected:
            raise CommandError(f"{failed + len(rejected)} of {len(files)} conversion(s) did not succeed")

    def submit(self, converter: str, files: Sequence[str], priority: int | None) -> tuple[list[str], list[str]]:
        """Submit one job (``convert``) or a batch (``convert_batch``); refusals become ``CommandError``."""
        try:
            if len(files) == 1:
                return [convert(converter, files[0], priority=priority).id], []
            batch = convert_batch(converter, files, priority=priority)
        except Rejected as exc:  # stored as a Rejection by the submission path
            raise CommandError(f"rejected ({exc.reason}): {exc}") from exc
        except PublishFailed as exc:
            raise CommandError(f"the broker did not take the job(s): {exc}") from exc
        return batch.ids, [f"{files[index]}: {exc}" for index, exc in batch.rejected]

    def wait(self, task_ids: list[str], *, interval: float) -> list[JobView]:
        """Redraw the progress bar until every job is final; Ctrl-C stops waiting, not the jobs."""
        last = ""
        try:
            while True:
                jobs = read_jobs(task_ids)
                line = progress_line(tally(jobs), len(task_ids))
                if line != last:
                    self.stdout.write(f"\r{line}", ending="")
                    self.stdout.flush()
                    last = line
                if all_final(jobs):
                    self.stdout.write("")
                    return jobs
                time.sleep(interval)
        except KeyboardInterrupt:
            self.stdout.write("")
            self.stderr.write(
                "Stopped waiting; the jobs were not cancelled and keep running. Check them later in the admin "
                "(Queue priorities › Jobs, search by task id) or with `manage.py queueprio status`. Task ids:\n"
                + "\n".join(task_ids)
            )
            raise SystemExit(130) from None


def read_jobs(task_ids: Sequence[str]) -> list[JobView]:
    """The ledger's view of ``task_ids``, in the order given."""
    return [
        JobView(task_id, "?", "queued")
        if info is None
        else JobView(task_id, str(info.args[0]) if info.args else "?", info.state, info.error or "")
        for task_id, info in zip(task_ids, jobs(task_ids), strict=True)
    ]
