"""queueprio's settings: defaults in one place, read from Django settings on every access.

Every setting is ``QUEUEPRIO_<NAME>`` in Django settings. Nothing copies a value into a
module constant, so pytest-django's ``settings`` fixture and ``override_settings`` work.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from django.conf import settings as django_settings

PREFIX = "QUEUEPRIO_"


@dataclass(frozen=True)
class Defaults:
    #: Master switch. Off: every job goes out at one AMQP priority (plain FIFO); the
    #: ledger and admin keep working. No migration either way.
    ENABLED: bool = True
    #: Priority used when neither the call, the admin nor the task's code gives one.
    DEFAULT_PRIORITY: int = 5
    #: The priority queue every queueprio task goes to unless routed elsewhere.
    QUEUE: str = "queueprio"
    #: Optional reserved lane: jobs at this priority or more urgent go to ``LANE_QUEUE`` instead.
    LANE_MAX_PRIORITY: int | None = None
    LANE_QUEUE: str = "queueprio.critical"
    #: Seconds to wait for the broker to confirm a publish.
    CONFIRM_TIMEOUT: float = 10.0
    #: A job whose worker died this many times while running it is failed instead of run
    #: again: a message that crashes every worker that takes it must not loop forever.
    MAX_WORKER_LOSSES: int = 3
    #: A single submission sends its message before its ledger row commits (the broker's
    #: write and the commit overlap). A worker that gets the copy first waits this long for
    #: the row; a copy whose row never appears (its submission rolled back) is dropped.
    CLAIM_WAIT_SECONDS: float = 5.0
    #: A started job's run renews its lease every third of this; another copy of the job may run
    #: it only once the lease has passed, and a run that can't renew stops itself before then
    #: (``queueprio.worker.lease``). Longer: slower recovery when a worker host is cut off.
    #: Shorter: more renewals (one UPDATE per running job per third).
    LEASE_SECONDS: float = 15.0
    #: How long a worker's claim and finish wait for an unreachable database (a restart or a
    #: failover), retrying with backoff, before they give up (``queueprio.worker.database``); 0: never.
    DATABASE_RETRY_SECONDS: float = 60.0
    #: The longest a worker's due scheduler sleeps between looks at delayed jobs and lapsed leases
    #: (it wakes exactly at the next ``eta`` it knows of; this bounds how late a job submitted with
    #: a shorter countdown than the current sleep can be).
    SCHEDULER_INTERVAL_SECONDS: float = 0.5
    #: A job's progress reports reach the ledger at most this often (``queueprio.progress``).
    PROGRESS_INTERVAL_SECONDS: float = 0.5
    #: How often beat reconciles band counters with the ledger; read when the entry is first created.
    RECONCILE_INTERVAL_SECONDS: float = 300.0
    #: Seconds the health endpoint waits for workers to answer its ping. A worker busy
    #: starting or under heavy load can take longer than half a second to reply.
    HEALTH_PING_TIMEOUT: float = 1.0
    #: Seconds the health endpoint reuses a worker ping's answer (per process). A stale answer is
    #: still served, up to three times this old, while one background thread pings again: a probe
    #: every second costs one ping per interval, and no probe waits for one but the first.
    HEALTH_CACHE_SECONDS: float = 5.0
    # --- aging -------------------------------------------------------------------
    AGING_ENABLED: bool = True
    AGING_THRESHOLD_SECONDS: float = 300.0
    AGING_BOOST: int = 1
    AGING_MAX_BOOST: int = 4
    AGING_INTERVAL_SECONDS: float = 30.0
    AGING_BATCH_SIZE: int = 500
    #: Recovery stops republishing a queued job (presumed lost) once it has this many
    #: generations: a bound on the copies one job can have (``queueprio.maintenance.aging``).
    AGING_MAX_COPIES: int = 8
    # --- admission -----------------------------------------------------------------
    #: Initial bands: (name, most urgent, least urgent, max queued jobs, soft s, hard s).
    BANDS: tuple[tuple[str, int, int, int | None, float | None, float | None], ...] = (
        ("urgent", 1, 2, 1_000, 60.0, 120.0),
        ("normal", 3, 5, 10_000, 600.0, 900.0),
        ("background", 6, 10, 100_000, 3600.0, 3900.0),
    )
    #: At most this many submissions at ``QUOTA_MAX_PRIORITY`` or more urgent per caller
    #: key per ``QUOTA_WINDOW_SECONDS``. ``None`` disables the quota.
    QUOTA_LIMIT: int | None = 60
    QUOTA_MAX_PRIORITY: int = 2
    QUOTA_WINDOW_SECONDS: int = 60
    #: "reject" raises QuotaExceeded; "demote" submits at ``QUOTA_DEMOTE_TO`` instead.
    QUOTA_POLICY: str = "reject"
    QUOTA_DEMOTE_TO: int = 5
    # --- retention -----------------------------------------------------------------
    REJECTION_RETENTION_DAYS: int = 30
    JOB_RETENTION_DAYS: int = 30
    METRICS_RETENTION_DAYS: int = 14
    #: A minute is rolled up only this long after it ended, so rows committed a little late
    #: (a submission inside a slow transaction) still land in their minute.
    METRICS_GRACE_SECONDS: float = 30.0
    #: How often beat runs the metrics rollup; read when its periodic task is first created.
    METRICS_ROLLUP_INTERVAL_SECONDS: int = 60
    PRUNE_BATCH_SIZE: int = 1_000


class Settings:
    """Attribute access reads ``QUEUEPRIO_<NAME>`` now, falling back to :class:`Defaults`."""

    _defaults = Defaults()
    _names = frozenset(f.name for f in fields(Defaults))

    def __getattr__(self, name: str) -> Any:
        if name not in self._names:
            raise AttributeError(f"unknown queueprio setting {name!r}")
        return getattr(django_settings, PREFIX + name, getattr(self._defaults, name))

    def aging_threshold(self) -> float | None:
        """Seconds per aging step, or ``None`` when aging is off (for ``priority.next_aging_at``)."""
        return float(self.AGING_THRESHOLD_SECONDS) if self.AGING_ENABLED else None


settings = Settings()
