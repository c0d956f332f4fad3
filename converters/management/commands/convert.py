"""``manage.py convert <converter> <files…>``: submit conversions, optionally watch them.

Paths are relative to the current directory, as in any command, and must lie inside
``CONVERTERS_ROOT``. Every file is checked before anything is published; each refusal is one
line on stderr (and a stored ``Rejection``), nothing else. Without ``--partial`` a refusal
submits nothing; with it, the other files go ahead.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from converters import paths
from converters.api import convert, convert_batch, get_converter
from converters.progress import JobView, all_final, detail_lines, progress_line, running_share, summary, tally
from converters.registry import CONVERTERS, ConverterTask
from queueprio import PublishFailed, Rejected, job, jobs, record_rejection, validate_priority


@dataclass(frozen=True)
class Refusal:
    file: str
    reason: str
    error: str

    def line(self) -> str:
        return (
            f"refused {self.file}: {self.error} [{self.reason}]"
            if self.file
            else f"refused: {self.error} [{self.reason}]"
        )


@dataclass(frozen=True)
class Submitted:
    task_id: str
    source: str
    target: str


class Command(BaseCommand):
    help = (
        "Convert files as prioritised jobs. Paths are relative to the current directory and must lie inside "
        "CONVERTERS_ROOT. Priority 1 is the most urgent, 10 the least."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        known = ", ".join(f"{name} (→ {task.converter_suffix})" for name, task in sorted(CONVERTERS.items()))
        parser.add_argument("converter", metavar="CONVERTER", help=f"the converter: {known or 'none registered'}")
        parser.add_argument("files", nargs="+", metavar="FILE", help="source files (not directories)")
        parser.add_argument(
            "--target-dir",
            metavar="DIR",
            help="write every output into DIR (inside the root), named after its source; default: next to the source",
        )
        parser.add_argument(
            "--priority",
            type=int,
            default=None,
            help="1 (most urgent) … 10 (least urgent); default: the converter's default as set in the admin or code",
        )
        parser.add_argument(
            "--partial",
            action="store_true",
            help="submit the files that can be, refuse the rest (default: one refused file submits nothing)",
        )
        parser.add_argument("--wait", action="store_true", help="show progress until every job has finished")
        parser.add_argument(
            "--json", action="store_true", help="print one JSON object on stdout (no progress bar, no other lines)"
        )
        parser.add_argument(
            "--detail",
            action="store_true",
            help="with --wait: a line per unfinished job under the bar (its progress, or its place and expected start)",
        )
        parser.add_argument("--poll-interval", type=float, default=0.5, help="seconds between progress checks")

    def handle(self, *args: Any, converter: str, files: list[str], priority: int | None, **options: Any) -> None:
        as_json, wait = options["json"], options["wait"]
        with refusals_not_logged():
            submitted, refused = self.submit(converter, files, priority, options["target_dir"], options["partial"])
        report: dict[str, Any] = {
            "converter": converter,
            "priority": priority,
            "submitted": [asdict(job) for job in submitted],
            "refused": [asdict(refusal) for refusal in refused],
        }
        if not as_json:
            for refusal in refused:
                self.stderr.write(refusal.line())
            if submitted:
                self.stdout.write(f"submitted {len(submitted)} job(s) to converter {converter}")
                if not wait:
                    self.stdout.write("\n".join(f"{job.task_id}  {job.source} -> {job.target}" for job in submitted))
        if not submitted or not wait:
            if as_json:
                self.stdout.write(json.dumps(report, indent=2))
            if refused:
                raise SystemExit(1)
            return
        views = self.wait(submitted, interval=options["poll_interval"], quiet=as_json, detail=options["detail"])
        report["jobs"] = [asdict(view) for view in views]
        if as_json:
            self.stdout.write(json.dumps(report, indent=2))
        else:
            self.stdout.write("\n".join(summary(views, refused=[r.line().removeprefix("refused ") for r in refused])))
        failed = sum(1 for view in views if view.state != "succeeded")
        if failed or refused:
            if as_json:
                raise SystemExit(1)
            raise CommandError(f"{failed + len(refused)} of {len(files)} conversion(s) did not succeed")

    def submit(
        self, converter: str, files: Sequence[str], priority: int | None, target_dir: str | None, partial: bool
    ) -> tuple[list[Submitted], list[Refusal]]:
        """Check every file (each refusal stored), then submit what may go; nothing if any was refused
        unless ``partial``."""
        try:
            task = get_converter(converter, priority=priority)  # an unknown converter is stored as refused
            if priority is not None:
                try:
                    validate_priority(priority)
                except Rejected as exc:
                    record_rejection(exc, task_name=task.name, priority=priority)
                    raise
        except Rejected as exc:
            return [], [Refusal("", exc.reason, str(exc))]
        sources = [from_cwd(name) for name in files]
        target_base = from_cwd(target_dir) if target_dir is not None else None
        refused, good = [], []
        for name, source in zip(files, sources, strict=True):
            try:
                task.prepare_arguments([source, target_for(task, source, target_base)], {})
            except Rejected as exc:
                record_rejection(exc, task_name=task.name, priority=priority)
                refused.append(Refusal(name, exc.reason, str(exc)))
            else:
                good.append((name, source))
        if not good or (refused and not partial):
            return [], refused
        try:
            if len(good) == 1 and not refused:
                [(_, source)] = good
                results = [convert(converter, source, target_for(task, source, target_base), priority=priority)]
                rejected: list[tuple[int, Rejected]] = []
            else:
                batch = convert_batch(
                    converter,
                    [source for _, source in good],
                    priority=priority,
                    target_dir=target_base,
                    partial=partial,
                )
                results, rejected = list(batch), batch.rejected
        except Rejected as exc:  # refused as a whole at submission (a full band, the urgent quota); stored
            return [], [*refused, Refusal("", exc.reason, str(exc))]
        except PublishFailed as exc:
            raise CommandError(f"the broker did not take the job(s): {exc}") from exc
        refused += [Refusal(good[index][0], exc.reason, str(exc)) for index, exc in rejected]
        return [as_submitted(info) for info in jobs([r.id for r in results]) if info is not None], refused

    def wait(self, submitted: list[Submitted], *, interval: float, quiet: bool, detail: bool = False) -> list[JobView]:
        """Redraw the progress bar until every job is final; Ctrl-C stops waiting, not the jobs.

        The bar counts finished jobs and the running ones' reported progress. With ``detail``, the
        lines under it (one per unfinished job) are redrawn in place: the cursor goes back up over
        the last frame and clears it (ANSI), as a terminal shows it."""
        task_ids = [job.task_id for job in submitted]
        last: list[str] = []
        try:
            while True:
                views = read_jobs(task_ids, detail=detail)
                frame = [progress_line(tally(views), len(task_ids), running=running_share(views))]
                if detail:
                    frame += detail_lines(views)
                if frame != last and not quiet:
                    if detail:
                        up = f"\x1b[{len(last) - 1}F" if len(last) > 1 else "\r"
                        self.stdout.write(f"{up}\x1b[J" + "\n".join(frame), ending="")
                    else:
                        self.stdout.write(f"\r{frame[0]}", ending="")
                    self.stdout.flush()
                    last = frame
                if all_final(views):
                    if not quiet:
                        self.stdout.write("")
                    return views
                time.sleep(interval)
        except KeyboardInterrupt:
            self.stdout.write("")
            self.stderr.write(
                "Stopped waiting; the jobs were not cancelled and keep running. Check them later in the admin "
                "(Queue priorities › Jobs, search by task id or file) or with `manage.py queueprio status`. Task ids:\n"
                + "\n".join(task_ids)
            )
            raise SystemExit(130) from None


@contextmanager
def refusals_not_logged() -> Iterator[None]:
    """Each refusal is this command's own line on stderr (and a stored rejection): not a log line as well."""
    logger = logging.getLogger("queueprio")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def from_cwd(name: str) -> str:
    """A path as given on the command line, relative to the current directory, as the converters
    take it: relative to the root when it is under the root, else absolute (and then refused).

    Only ``..`` is resolved here; the converters resolve symlinks and confine the result."""
    path = Path(os.path.normpath(Path.cwd().resolve() / Path(name).expanduser()))
    root = paths.root()
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def target_for(task: ConverterTask, source: str, target_dir: str | None) -> str | None:
    """The output path in ``target_dir`` (named after the source, as ``convert_batch`` names it)."""
    if target_dir is None:
        return None
    return str(Path(target_dir) / Path(source).with_suffix(task.converter_suffix).name)


def shown(stored: str) -> str:
    """A path as the ledger stores it (relative to the root) as the user reads it: relative to the
    current directory when under it, else absolute."""
    if not stored:
        return "?"
    absolute = paths.root() / stored
    relative = os.path.relpath(absolute, Path.cwd())
    return str(absolute) if relative.startswith("..") else relative


def source_and_target(args: Sequence[Any]) -> tuple[str, str]:
    """A converter job's two paths as the user reads them (the ledger's ``args``: source, target)."""
    source, target, *_ = [*args, "", ""]
    return shown(str(source or "")), shown(str(target or ""))


def as_submitted(info: Any) -> Submitted:
    return Submitted(info.task_id, *source_and_target(info.args))


#: Waiting jobs whose place and expected start ``--detail`` asks for on each refresh.
DETAIL_PLACES = 20


def read_jobs(task_ids: Sequence[str], *, detail: bool = False) -> list[JobView]:
    """The ledger's view of ``task_ids``, in the order given; with ``detail``, the first waiting
    ones' places and expected starts too (``queueprio.job``)."""
    views = []
    places = DETAIL_PLACES if detail else 0
    now = time.time()
    for task_id, info in zip(task_ids, jobs(task_ids), strict=True):
        if info is None:
            views.append(JobView(task_id, "?", "queued"))
            continue
        if places and info.state == "queued":
            places -= 1
            info = job(task_id) or info
        source, target = source_and_target(info.args)
        starts_in = None if info.expected_start is None else max(0.0, info.expected_start.timestamp() - now)
        views.append(
            JobView(
                task_id,
                source,
                info.state,
                info.error or "",
                target,
                progress=info.progress,
                note=info.progress_note,
                ahead=info.position,
                starts_in=starts_in,
            )
        )
    return views
