"""Every ``TextChoices`` of queueprio's tables, and the state groups the code reasons with."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class JobState(models.TextChoices):
    #: Waiting for its ``eta``/``countdown`` in the ledger, not in the broker nor in its band.
    SCHEDULED = "scheduled", _("scheduled")
    #: Its newest copy is in the broker; it holds a place in its band.
    QUEUED = "queued", _("queued")
    #: Waiting in the ledger for a running slot in its band (``Band.max_running``); holds its
    #: band place; published when a slot frees.
    HELD = "held", _("held for a running slot")
    #: A copy won the claim and runs (under a lease its process renews).
    STARTED = "started", _("started")
    SUCCEEDED = "succeeded", _("succeeded")
    FAILED = "failed", _("failed")
    PUBLISH_FAILED = "publish_failed", _("publish failed")
    #: Revoked (``queueprio.revoke``, ``AsyncResult.revoke``, the admin's Cancel): never runs again.
    CANCELLED = "cancelled", _("cancelled")
    #: Its ``expires`` passed before it ran.
    EXPIRED = "expired", _("expired")
    #: The task raised ``celery.exceptions.Ignore``.
    IGNORED = "ignored", _("ignored")
    #: The task raised ``celery.exceptions.Reject(requeue=False)``.
    REJECTED = "rejected", _("rejected")
    #: ``Task.replace()`` handed the task id to a task outside queueprio.
    REPLACED = "replaced", _("replaced")


#: States in which a job may still run and holds its idempotency key.
ACTIVE_STATES = (JobState.SCHEDULED, JobState.QUEUED, JobState.HELD, JobState.STARTED)
#: States that hold a place in the job's band (``Band.queued`` counts them).
WAITING_STATES = (JobState.QUEUED, JobState.HELD)
#: Terminal states: nothing of the job runs any more (until a retry or a resend of its task id).
FINISHED_STATES = (
    JobState.SUCCEEDED,
    JobState.FAILED,
    JobState.PUBLISH_FAILED,
    JobState.CANCELLED,
    JobState.EXPIRED,
    JobState.IGNORED,
    JobState.REJECTED,
    JobState.REPLACED,
)


class PrioritySource(models.TextChoices):
    CALL = "call", _("per-call")
    ADMIN = "admin", _("admin default")
    CODE = "code", _("code default")
    GLOBAL = "global", _("global default")
    DEMOTED = "demoted", _("demoted by the urgent quota")
    EXTERNAL = "external", _("published outside queueprio")
    MIGRATED = "migrated", _("moved from a FIFO queue")


class AgingReason(models.TextChoices):
    AGING = "aging", _("aging")
    ADMIN = "admin", _("set in admin")
    DEDUP = "dedup", _("raised by a duplicate submission")
    RETRY = "retry", _("retry")
    RECOVER = "recover", _("lost copy republished")
    DUE = "due", _("scheduled time reached")
    LEASE = "lease", _("run's lease expired; run again")
    RESEND = "resend", _("its task id sent again")
    REQUEUE = "requeue", _("rejected with requeue")


class RejectionReason(models.TextChoices):
    QUEUE_FULL = "queue_full", _("queue full")
    INVALID_PRIORITY = "invalid_priority", _("invalid priority")
    UNKNOWN_TASK = "unknown_task", _("unknown task")
    PATH_OUTSIDE_ROOT = "path_outside_root", _("path outside the root")
    QUOTA_EXCEEDED = "quota_exceeded", _("quota exceeded")
    INVALID_INPUT = "invalid_input", _("invalid input")


class QuotaPolicy(models.TextChoices):
    REJECT = "reject", _("reject (QuotaExceeded)")
    DEMOTE = "demote", _("demote to a lower priority")
