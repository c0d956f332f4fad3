"""Domain verbs on the ledger's QuerySets: the state transitions, each one conditional UPDATE."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db import connections, models
from django.db.models import F

from ..conf import settings
from ..priority import resolve_priority, validate_priority
from .choices import ACTIVE_STATES, FINISHED_STATES, JobState, PrioritySource

if TYPE_CHECKING:
    # Named in the QuerySets' generic bases as strings, which linters don't count as uses.
    from .config import Band, TaskPriority, UrgentQuota  # noqa: F401
    from .ledger import Job
    from .rejections import Rejection  # noqa: F401

QUEUED, STARTED = JobState.QUEUED, JobState.STARTED


class TaskPriorityQuerySet(models.QuerySet["TaskPriority"]):
    def resolve(self, task_name: str, explicit: int | None, *, code_default: int | None) -> tuple[int, str]:
        """The priority a job of ``task_name`` runs at, and where it came from (``PrioritySource``).

        The precedence is ``queueprio.priority.resolve_priority``; an explicit priority needs no
        query, since nothing below it could change it.
        """
        if explicit is not None:
            return validate_priority(explicit), PrioritySource.CALL
        admin_default = self.admin_default(task_name, code_default=code_default)
        priority = resolve_priority(
            None, admin_default=admin_default, code_default=code_default, global_default=settings.DEFAULT_PRIORITY
        )
        if admin_default is not None:
            return priority, PrioritySource.ADMIN
        if code_default is not None:
            return priority, PrioritySource.CODE
        return priority, PrioritySource.GLOBAL

    def admin_default(self, task_name: str, *, code_default: int | None) -> int | None:
        """The admin's override for ``task_name``, creating its row the first time it is seen."""
        row = self.filter(task_name=task_name).values_list("priority", "code_default").first()
        if row is None:
            self.get_or_create(task_name=task_name, defaults={"code_default": code_default})
            return None
        if row[1] != code_default:
            # The code default changed since the row was seeded: keep the display honest.
            self.filter(task_name=task_name).update(code_default=code_default)
        admin_priority: int | None = row[0]
        return admin_priority

    def sync(self, code_defaults: dict[str, int | None]) -> int:
        """Create missing rows and refresh code defaults; returns how many rows were created."""
        existing = dict(self.values_list("task_name", "code_default"))
        new = [self.model(task_name=n, code_default=d) for n, d in code_defaults.items() if n not in existing]
        self.bulk_create(new, ignore_conflicts=True)
        for name, default in code_defaults.items():
            if name in existing and existing[name] != default:
                self.filter(task_name=name).update(code_default=default)
        return len(new)


class JobQuerySet(models.QuerySet["Job"]):
    def queued(self) -> JobQuerySet:
        return self.filter(state=QUEUED)

    def active(self) -> JobQuerySet:
        return self.filter(state__in=ACTIVE_STATES)

    def finished(self) -> JobQuerySet:
        return self.filter(state__in=FINISHED_STATES)

    def active_with_key(self, key: str) -> tuple[str, str, int] | None:
        """``(task_id, state, effective_priority)`` of the active job holding idempotency ``key``.

        Runs on every keyed submission. Plain SQL over the partial unique index: building the
        ORM query cost several times the lookup itself (``bench/submit.py``, phase d).
        """
        row: tuple[str, str, int] | None = _first_row(
            self.db,
            "SELECT task_id, state, effective_priority FROM {table} "
            "WHERE idempotency_key = %s AND state IN (%s, %s) LIMIT 1",
            self.model,
            [key, QUEUED, STARTED],
        )
        return row

    def due_for_aging(self, now: datetime) -> JobQuerySet:
        """Queued jobs whose next aging step is due, served by the partial index ``queueprio_job_due_idx``."""
        return self.filter(state=QUEUED, next_aging_at__lte=now)

    def claim(self, task_id: str, generation: int, *, redelivered: bool, worker: str, now: datetime) -> str:
        """Let the copy of ``generation`` run, or tell the caller to drop it. See ``queueprio.worker``.

        Returns ``"claimed"`` (first claim), ``"redelivered"`` (the claiming copy again) or ``""`` (stale).
        """
        # ``generation__lte``: a republished copy may arrive before the row records its
        # generation (the row is updated after the publish is confirmed); it may claim too.
        won = self.filter(task_id=task_id, state=QUEUED, generation__lte=generation).update(
            state=STARTED, claimed_generation=generation, started_at=now, worker=worker, next_aging_at=None
        )
        if won:
            return "claimed"
        if not redelivered:
            return ""
        # The claiming copy itself, handed out again because its worker died before acking.
        again = self.filter(task_id=task_id, state=STARTED, claimed_generation=generation).update(
            started_at=now, worker=worker, worker_losses=F("worker_losses") + 1
        )
        return "redelivered" if again else ""

    def standing(self, task_id: str, generation: int) -> str:
        """After a lost claim, what the row says of the copy of ``generation``, read afresh.

        ``"absent"``: no row is visible (yet). ``"claimable"``: the claim should have won; the
        row was committed after the claim's ``UPDATE`` took its snapshot, so claim again.
        ``"stale"``: another copy holds, or held, the job.
        """
        row = self.filter(task_id=task_id).values_list("state", "generation").first()
        if row is None:
            return "absent"
        state, newest = row
        return "claimable" if state == QUEUED and newest <= generation else "stale"

    def give_up(self, task_id: str, generation: int, *, error: str, now: datetime) -> bool:
        """Fail a job whose claiming copy keeps killing its worker (a poison message)."""
        return bool(
            self.filter(task_id=task_id, state=STARTED, claimed_generation=generation).update(
                state=JobState.FAILED, finished_at=now, error=error
            )
        )

    def finish(self, task_id: str, generation: int, *, state: str, error: str, now: datetime) -> bool:
        """Record the outcome of the copy that holds the claim; a stale copy changes nothing."""
        return bool(
            self.filter(task_id=task_id, state=STARTED, claimed_generation=generation).update(
                state=state, finished_at=now, error=error[:10_000]
            )
        )

    def next_generation(self, task_id: str, **changes: Any) -> Job | None:
        """Bump the generation of ``task_id`` (and apply ``changes``) and return the fresh row."""
        updated = self.filter(task_id=task_id).update(generation=F("generation") + 1, **changes)
        return self.filter(task_id=task_id).first() if updated else None


class BandQuerySet(models.QuerySet["Band"]):
    def release(self, band: str, count: int = 1) -> None:
        """Give back places in ``band`` (a job started, failed to publish or was cancelled)."""
        if band and count:
            self.filter(name=band).update(queued=F("queued") - count)

    def reacquire(self, band: str, count: int = 1) -> None:
        """Count jobs as queued again (a retry) without checking the limit: they were admitted once."""
        if band and count:
            self.filter(name=band).update(queued=F("queued") + count)


class RejectionQuerySet(models.QuerySet["Rejection"]):
    def older_than(self, when: datetime) -> RejectionQuerySet:
        return self.filter(at__lt=when)


#: The quota as ``UrgentQuotaQuerySet.current()`` reads it:
#: ``(limit, max_priority, window_seconds, policy, demote_to)``.
QuotaRow = tuple[int | None, int, int, str, int]


class UrgentQuotaQuerySet(models.QuerySet["UrgentQuota"]):
    def current(self) -> QuotaRow | None:
        """The quota as ``(limit, max_priority, window_seconds, policy, demote_to)``; ``None`` if unset.

        Read on every submission that names a caller, so the admin's edits apply at once;
        plain SQL for the same reason as ``JobQuerySet.active_with_key``.
        """
        quote = connections[self.db].ops.quote_name
        columns = ", ".join(quote(c) for c in ("limit", "max_priority", "window_seconds", "policy", "demote_to"))
        sql = f"SELECT {columns} FROM {{table}} ORDER BY id LIMIT 1"  # noqa: S608  (our own column names)
        row: QuotaRow | None = _first_row(self.db, sql, self.model, [])
        return row


def _first_row(using: str, sql: str, model: type[models.Model], params: list[Any]) -> Any:
    connection = connections[using]
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(sql.format(table=table), params)
        return cursor.fetchone()
