"""The ledger's state transitions: each one conditional, so racing copies, workers and sweeps can't
both win. What they mean for a job's life is in ``queueprio.worker`` (the invariants)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db import connections, models, transaction
from django.db.models import F, Q
from django.utils import timezone

from .choices import ACTIVE_STATES, FINISHED_STATES, JobState
from .querysets import first_row

if TYPE_CHECKING:
    from .ledger import Job

QUEUED, SCHEDULED, STARTED, HELD = JobState.QUEUED, JobState.SCHEDULED, JobState.STARTED, JobState.HELD


@dataclass(frozen=True)
class Claimed:
    """What a winning claim learned from the row: its band place to give back."""

    band_id: int | None


class JobQuerySet(models.QuerySet["Job"]):
    def queued(self) -> JobQuerySet:
        return self.filter(state=QUEUED)

    def active(self) -> JobQuerySet:
        return self.filter(state__in=ACTIVE_STATES)

    def finished(self) -> JobQuerySet:
        return self.filter(state__in=FINISHED_STATES)

    def active_with_key(self, key: str, now: datetime | None = None) -> tuple[str, str, int, bool] | None:
        """``(task_id, state, effective_priority, expired)`` of the active job holding idempotency
        ``key``; ``expired``: its ``expires`` has passed by ``now`` (the sweep has yet to end it).

        Runs on every keyed submission. Plain SQL over the partial unique index: building the
        ORM query cost several times the lookup itself (``bench/submit.py``, phase d).
        """
        row: tuple[str, str, int, Any] | None = first_row(
            self.db,
            "SELECT task_id, state, effective_priority, "
            "CASE WHEN expires_at IS NOT NULL AND expires_at <= %s THEN 1 ELSE 0 END FROM {table} "
            "WHERE idempotency_key = %s AND state IN (%s, %s, %s, %s) LIMIT 1",
            self.model,
            # Every state of the partial unique index: a key left out here would pass dedup and
            # then fail the insert with an IntegrityError.
            [
                connections[self.db].ops.adapt_datetimefield_value(now or timezone.now()),
                key,
                SCHEDULED,
                QUEUED,
                HELD,
                STARTED,
            ],
        )
        return None if row is None else (row[0], row[1], row[2], bool(row[3]))

    def due_for_aging(self, now: datetime) -> JobQuerySet:
        """Waiting jobs whose next aging step is due (queued: ``queueprio_job_due_idx``; held)."""
        return self.filter(state__in=(QUEUED, HELD), next_aging_at__lte=now)

    def due(self, now: datetime) -> JobQuerySet:
        """Scheduled jobs whose time has come (``queueprio_job_scheduled_idx``)."""
        return self.filter(state=SCHEDULED, eta__lte=now)

    def lease_lapsed(self, now: datetime) -> JobQuerySet:
        """Started jobs whose run stopped renewing its lease (``queueprio_job_lease_idx``)."""
        return self.filter(state=STARTED, lease_until__lt=now)

    # --- the claim (worker) ------------------------------------------------------------

    def claim(
        self, task_id: str, generation: int, token: str, *, worker: str, now: datetime, lease_until: datetime
    ) -> Claimed | None:
        """The copy of ``generation`` wins the job: queued, not expired, at most this generation,
        and the copy carries the job's token. One statement; ``None`` if it lost.

        ``generation <=``: a republished copy may arrive before the row records its generation (the
        row is updated once the broker confirmed the publish); it may claim too.
        """
        connection = connections[self.db]
        table = connection.ops.quote_name(self.model._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET state = %s, claimed_generation = %s, started_at = %s, worker = %s, "  # noqa: S608
                "next_aging_at = NULL, lease_until = %s "
                "WHERE task_id = %s AND state = %s AND generation <= %s AND token = %s "
                "AND (expires_at IS NULL OR expires_at > %s) RETURNING band_id",
                [STARTED, generation, now, worker[:255], lease_until, task_id, QUEUED, generation, token, now],
            )
            row = cursor.fetchone()
        return None if row is None else Claimed(row[0])

    def take_over(
        self, task_id: str, generation: int, token: str, *, worker: str, now: datetime, lease_until: datetime
    ) -> bool:
        """The claiming copy again (redelivered), allowed only once the run that held it stopped
        renewing its lease: its process died, or was cut off longer than the lease."""
        return bool(
            self.filter(task_id=task_id, state=STARTED, claimed_generation=generation, token=token)
            .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
            .update(started_at=now, worker=worker[:255], lease_until=lease_until, worker_losses=F("worker_losses") + 1)
        )

    def standing(self, task_id: str, generation: int, token: str, now: datetime) -> str:
        """After a lost claim, what the row says of the copy of ``generation``, read afresh.

        ``"absent"``: no row is visible (yet). ``"claimable"``: the row was committed after the
        claim's ``UPDATE`` took its snapshot; claim again. ``"expired"``: its ``expires`` passed.
        ``"held"``: this generation holds the job (a redelivered copy). ``"stale"``: anything else
        (another copy holds or held it, it finished or was cancelled, a forged copy).
        """
        fields = ("state", "generation", "claimed_generation", "token", "expires_at")
        row = self.filter(task_id=task_id).values_list(*fields).first()
        if row is None:
            return "absent"
        state, newest, claimed, row_token, expires_at = row
        if row_token != token:
            return "stale"
        if state == QUEUED and expires_at is not None and expires_at <= now:
            return "expired"
        if state == QUEUED and newest <= generation:
            return "claimable"
        return "held" if state == STARTED and claimed == generation else "stale"

    def renew_lease(self, task_id: str, generation: int, until: datetime) -> bool:
        """The run of ``generation`` is alive: push its lease to ``until``. ``False``: it lost the job."""
        return bool(
            self.filter(task_id=task_id, state=STARTED, claimed_generation=generation).update(lease_until=until)
        )

    def end_lease(self, task_id: str, generation: int, now: datetime, *, worker: str | None = None) -> bool:
        """The run's process is gone (the worker saw it die): a redelivered copy may take over now.

        ``worker``: only if that worker still holds the job. A takeover keeps the generation, so
        without it a worker that saw its cut-off run die only once its link came back would end
        the lease of the other host's run of the same job (tests/machines/test_partition.py)."""
        rows = self.filter(task_id=task_id, state=STARTED, claimed_generation=generation)
        if worker is not None:
            rows = rows.filter(worker=worker[:255])
        return bool(rows.update(lease_until=now))

    # --- how a run ends ------------------------------------------------------------------

    def finish(self, task_id: str, generation: int, *, state: str, error: str, now: datetime) -> bool:
        """Record the outcome of the copy that holds the claim, and free its band's running slot;
        a stale copy changes nothing. Call inside a transaction (two statements).

        Plain SQL: it runs once per job on the worker, where building the ORM query cost more
        than the statement (``bench/worker.py``).
        """
        connection = connections[self.db]
        table = connection.ops.quote_name(self.model._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET state = %s, finished_at = %s, error = %s, lease_until = NULL "  # noqa: S608
                "WHERE task_id = %s AND state = %s AND claimed_generation = %s RETURNING band_id",
                [state, now, error[:10_000], task_id, STARTED, generation],
            )
            row = cursor.fetchone()
        if row is not None:
            _bands(self).stop(row[0])
        return row is not None

    def give_up(self, task_id: str, generation: int, *, error: str, now: datetime) -> bool:
        """Fail a job whose claiming copy keeps killing its worker (a poison message)."""
        return self.finish(task_id, generation, state=JobState.FAILED, error=error, now=now)

    def run_again(self, task_id: str, claimed: int, **changes: Any) -> bool:
        """The run of generation ``claimed`` hands the job on (a retry, a replace, ``Reject(requeue=True)``):
        the row waits again, ``queued`` or ``scheduled`` as ``changes`` say, and its running slot is
        freed (a queued job takes its waiting place back; a scheduled one takes it when due).
        Call inside a transaction."""
        band = self.filter(task_id=task_id).values_list("band_id", flat=True).first()
        moved = bool(
            self.filter(task_id=task_id, state=STARTED, claimed_generation=claimed).update(
                claimed_generation=None, lease_until=None, **changes
            )
        )
        if moved and changes.get("state") == QUEUED:
            _bands(self).restart(band)
        elif moved:
            _bands(self).stop(band)
        return moved

    def hold(self, task_id: str, generation: int) -> bool:
        """A copy found its band at its running limit: the job waits in the ledger (``held``) until
        a slot frees (``maintenance.due.release_held``); this copy is dropped."""
        return bool(
            self.filter(task_id=task_id, state=QUEUED, generation__lte=generation).update(state=HELD, published_at=None)
        )

    # --- from outside a run --------------------------------------------------------------

    def end_waiting(self, task_id: str, state: str, *, error: str, now: datetime) -> bool:
        """Cancel or expire a job that has not started, and give back the band place it held (a
        ``queued`` or ``held`` job holds one, a ``scheduled`` one doesn't), in one transaction;
        returns whether it did."""
        changes = {"state": state, "finished_at": now, "error": error, "next_aging_at": None}
        waiting = (QUEUED, HELD)
        with transaction.atomic(using=self.db):
            # Locked: a republish moving it to another band meanwhile would otherwise have this give
            # back the old band's place a second time (PostgreSQL re-reads the row once it commits).
            band = (
                self.select_for_update()
                .filter(task_id=task_id, state__in=waiting)
                .values_list("band_id", flat=True)
                .first()
            )
            if self.filter(task_id=task_id, state__in=waiting).update(**changes):
                _bands(self).release(band)
                return True
            return bool(self.filter(task_id=task_id, state=SCHEDULED).update(**changes))

    def end_running(self, task_id: str, state: str, *, error: str, now: datetime) -> bool:
        """A run ended outside the task body (terminated by a revoke, killed at its hard time limit):
        record it, whichever copy ran, and free its slot. Call inside a transaction."""
        band = self.filter(task_id=task_id).values_list("band_id", flat=True).first()
        ended = bool(
            self.filter(task_id=task_id, state=STARTED).update(
                state=state, finished_at=now, error=error, lease_until=None
            )
        )
        if ended:
            _bands(self).stop(band)
        return ended

    def raise_waiting(
        self, task_id: str, priority: int, *, band_id: int | None = None, next_aging: datetime | None = None
    ) -> bool:
        """A more urgent duplicate of a job with no message in the broker: the ledger row is raised.

        A ``scheduled`` job holds no band place yet: it moves to ``band_id`` (the new priority's
        band), whose place it takes when due. A ``held`` job keeps its band (and place), as
        aging leaves it: it is released in its band's priority order; its aging starts over from
        now at the new priority (``next_aging``), as a raised queued job's does.
        """
        band = {} if band_id is None else {"band_id": band_id}
        raised = self.filter(task_id=task_id, state=SCHEDULED, effective_priority__gt=priority).update(
            requested_priority=priority, effective_priority=priority, **band
        )
        raised += self.filter(task_id=task_id, state=HELD, effective_priority__gt=priority).update(
            requested_priority=priority,
            effective_priority=priority,
            admin_priority=None,
            aging_since=timezone.now(),
            next_aging_at=next_aging,
        )
        return bool(raised)

    def next_generation(self, task_id: str, *, states: tuple[str, ...], **changes: Any) -> Job | None:
        """Bump the generation of ``task_id`` if it is in one of ``states`` (and apply ``changes``);
        the fresh row, or ``None`` if another racer moved it first."""
        updated = self.filter(task_id=task_id, state__in=states).update(generation=F("generation") + 1, **changes)
        return self.filter(task_id=task_id).first() if updated else None


def _bands(jobs: JobQuerySet) -> Any:
    """The band manager, found through the ledger's foreign key (``config`` imports this module)."""
    band: Any = jobs.model._meta.get_field("band").related_model
    return band._default_manager.db_manager(jobs.db)
