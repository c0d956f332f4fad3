"""One run at a time: a started job's run renews its lease while it lives, and stops if it can't.

A job's claim writes ``lease_until`` (now + ``QUEUEPRIO_LEASE_SECONDS``). While the run lasts, a
thread of the worker process renews it every third of the lease. Another copy of the job may
run it only once the lease has passed (``JobQuerySet.take_over``; the lease recovery in
``maintenance.due`` republishes such a job). So a redelivered copy — after a dropped broker
connection, a RabbitMQ consumer timeout or a lost heartbeat — never starts a second run while
the first is alive.

A run that can't renew (its database is unreachable, or the ledger says another copy holds the
job now) **stops itself** before its lease runs out, by ending its process: the worker's pool
replaces the process, and only then may another copy run the job. The window that remains is a
process paused for longer than the safety margin (``QUEUEPRIO_LEASE_SECONDS`` / 6) between two
checks, or clocks between hosts further apart than that margin: then two runs can overlap by
at most that much. Jobs shorter than a third of the lease never renew: their lease costs nothing
but the claim's own write.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import close_old_connections
from django.utils import timezone

from ..conf import settings
from ..models import Job
from ..threads import start_quiet_thread

logger = logging.getLogger("queueprio")

#: Exit status of a process that stopped itself because it lost its lease.
LOST_LEASE_EXIT = 75


@dataclass
class Held:
    generation: int
    until: datetime


class Leases:
    """The jobs this process runs, and the thread that renews their leases."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[str, Held] = {}
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0
        #: When the renewal in progress began (``time.monotonic()``), ``None`` between renewals.
        self._renewing_since: float | None = None

    def hold(self, task_id: str, generation: int, until: datetime) -> None:
        with self._lock:
            self._held[task_id] = Held(generation, until)
            if self._thread is None or self._pid != os.getpid():  # first run here, or a forked child
                self._pid = os.getpid()
                self._thread = start_quiet_thread(self._run, name="queueprio-lease")
                start_quiet_thread(self._watch, name="queueprio-lease-watchdog")

    def release(self, task_id: str) -> None:
        with self._lock:
            self._held.pop(task_id, None)

    def _run(self) -> None:
        while True:
            seconds = float(settings.LEASE_SECONDS)
            self._wake.wait(max(seconds / 3, 0.05))
            with self._lock:
                held = dict(self._held)
            for task_id, lease in held.items():
                self._renewing_since = time.monotonic()  # watched by _watch
                try:
                    self._renew(task_id, lease, seconds)
                finally:
                    self._renewing_since = None

    def _watch(self) -> None:
        """Stop the process when a renewal hangs while its lease runs out.

        On a host cut off from the network the renewal's database call neither answers nor fails
        for minutes (TCP retransmits), so the check after the call (``_renew``) is never reached
        and the run would go on past its lease, beside the copy another host took over
        (tests/machines/test_partition.py). This thread touches no database, so nothing hangs it:
        it stops the process once a renewal has been in flight for longer than the safety margin
        and a held lease is within that margin of running out. A renewal that returns keeps the
        old rules (``_renew`` decides).
        """
        while True:
            seconds = float(settings.LEASE_SECONDS)
            margin = seconds / 6
            time.sleep(max(seconds / 12, 0.05))
            began = self._renewing_since
            if began is None or time.monotonic() - began < max(margin, 0.5):
                continue
            deadline = timezone.now() + timedelta(seconds=margin)
            with self._lock:
                late = [task_id for task_id, lease in self._held.items() if lease.until <= deadline]
            if late:
                stop(late[0], "the lease could not be renewed before it ran out (the renewal hangs)")

    def _renew(self, task_id: str, lease: Held, seconds: float) -> None:
        now = timezone.now()
        until = now + timedelta(seconds=seconds)
        try:
            close_old_connections()
            kept = Job.objects.renew_lease(task_id, lease.generation, until)
        except Exception as exc:
            logger.warning("lease renewal failed task_id=%s error=%r", task_id, exc)
            kept = None
        if kept:
            with self._lock:
                if task_id in self._held:
                    self._held[task_id].until = until
            return
        if kept is False:
            # The ledger no longer says this run holds the job (cancelled, or another copy took it).
            if (
                Job.objects.filter(task_id=task_id, state="started")
                .exclude(claimed_generation=lease.generation)
                .exists()
            ):
                stop(task_id, "another copy holds the job now")
            return
        if now >= lease.until - timedelta(seconds=seconds / 6):
            stop(task_id, "the lease could not be renewed before it ran out")


def stop(task_id: str, why: str) -> None:
    """End this process so that its run can't overlap another; the worker's pool replaces it."""
    logger.critical("stop run task_id=%s pid=%s: %s", task_id, os.getpid(), why)
    logging.shutdown()
    os._exit(LOST_LEASE_EXIT)


#: This process's leases (a prefork child starts its own thread on its first run).
leases = Leases()
