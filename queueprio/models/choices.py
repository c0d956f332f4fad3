"""Every ``TextChoices`` of queueprio's tables, and the state groups the code reasons with."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class JobState(models.TextChoices):
    QUEUED = "queued", _("queued")
    STARTED = "started", _("started")
    SUCCEEDED = "succeeded", _("succeeded")
    FAILED = "failed", _("failed")
    PUBLISH_FAILED = "publish_failed", _("publish failed")
    CANCELLED = "cancelled", _("cancelled")


#: States in which a job still holds its idempotency key and may still run.
ACTIVE_STATES = (JobState.QUEUED, JobState.STARTED)
FINISHED_STATES = (JobState.SUCCEEDED, JobState.FAILED, JobState.PUBLISH_FAILED, JobState.CANCELLED)


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
