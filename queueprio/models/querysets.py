"""Domain verbs on the ledger's QuerySets: the state transitions, each one conditional UPDATE."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db import connections, models

from ..conf import settings
from ..priority import resolve_priority, validate_priority
from .choices import PrioritySource

if TYPE_CHECKING:
    # Named in the QuerySets' generic bases as strings, which linters don't count as uses.
    from .config import Band, TaskPriority, UrgentQuota  # noqa: F401
    from .rejections import Rejection  # noqa: F401


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


class BandQuerySet(models.QuerySet["Band"]):
    """A band's two counters: ``queued`` (waiting: queued or held) and ``running`` (started).

    Every transition of a job in or out of those states moves its band's counters, by the band's
    key, in the same transaction as the row (``maintenance.reconcile`` checks they stay true).
    Plain SQL: these run on every claim and finish (``bench/worker.py``).
    """

    def _update(self, sql: str, params: list[Any]) -> int:
        connection = connections[self.db]
        table = connection.ops.quote_name(self.model._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(sql.format(table=table), params)
            return int(cursor.rowcount)

    def release(self, band_id: int | None, count: int = 1) -> None:
        """Give back waiting places (a job failed to publish, was cancelled or expired)."""
        if band_id is not None and count:
            self._update("UPDATE {table} SET queued = queued - %s WHERE id = %s", [count, band_id])

    def reacquire(self, band_id: int | None, count: int = 1) -> None:
        """Count jobs as waiting again (a due job, an operator's retry) without checking the limit:
        they were admitted once."""
        if band_id is not None and count:
            self._update("UPDATE {table} SET queued = queued + %s WHERE id = %s", [count, band_id])

    def start(self, band_id: int | None) -> bool:
        """A waiting job starts: its place becomes a running slot, if the band's ``max_running``
        allows another. ``False``: the band is at its limit and nothing changed."""
        if band_id is None:
            return True
        return bool(
            self._update(
                "UPDATE {table} SET queued = queued - 1, running = running + 1 "
                "WHERE id = %s AND (max_running IS NULL OR running < max_running)",
                [band_id],
            )
        )

    def stop(self, band_id: int | None) -> None:
        """A run ended: its slot is free."""
        if band_id is not None:
            self._update("UPDATE {table} SET running = running - 1 WHERE id = %s", [band_id])

    def restart(self, band_id: int | None) -> None:
        """A run hands its job back to waiting (a retry, a replace, a requeue, a lapsed lease)."""
        if band_id is not None:
            self._update("UPDATE {table} SET running = running - 1, queued = queued + 1 WHERE id = %s", [band_id])


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
        row: QuotaRow | None = first_row(self.db, sql, self.model, [])
        return row


def first_row(using: str, sql: str, model: type[models.Model], params: list[Any]) -> Any:
    connection = connections[using]
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(sql.format(table=table), params)
        return cursor.fetchone()
