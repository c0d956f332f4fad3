"""queueprio's tables: per-task default priorities, the job ledger, aging steps, rejections."""

from __future__ import annotations

from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from .priority import LEAST_URGENT, MOST_URGENT
from .querysets import JobQuerySet, RejectionQuerySet, TaskPriorityQuerySet, UrgentQuotaQuerySet


def _in_range(field: str, *, nullable: bool = False) -> Q:
    """The DB-side twin of ``validate_priority``: the scale's range as a constraint."""
    check = Q(**{f"{field}__gte": MOST_URGENT, f"{field}__lte": LEAST_URGENT})
    return check | Q(**{f"{field}__isnull": True}) if nullable else check


PRIORITY_HELP = _("1 = most urgent … 10 = least urgent. RabbitMQ receives 11 minus this value.")


class TaskPriority(models.Model):
    """One row per registered queueprio task: its code default and the admin's override."""

    task_name = models.CharField(_("task"), max_length=200, unique=True)
    code_default = models.PositiveSmallIntegerField(
        _("code default"),
        null=True,
        blank=True,
        help_text=_("The priority given at registration in code. Refreshed on migrate and worker start."),
    )
    priority = models.PositiveSmallIntegerField(
        _("priority override"),
        null=True,
        blank=True,
        help_text=PRIORITY_HELP
        + " "
        + _("Leave empty to follow the code default. Applies to the next submission, no restart."),
    )
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    objects = TaskPriorityQuerySet.as_manager()

    class Meta:
        verbose_name = _("task default priority")
        verbose_name_plural = _("task default priorities")
        ordering = ["task_name"]
        constraints = [
            models.CheckConstraint(
                condition=_in_range("priority", nullable=True), name="queueprio_taskpriority_priority_range"
            ),
            models.CheckConstraint(
                condition=_in_range("code_default", nullable=True), name="queueprio_taskpriority_code_default_range"
            ),
        ]

    def __str__(self) -> str:
        return self.task_name


class JobState(models.TextChoices):
    QUEUED = "queued", _("queued")
    STARTED = "started", _("started")
    SUCCEEDED = "succeeded", _("succeeded")
    FAILED = "failed", _("failed")
    PUBLISH_FAILED = "publish_failed", _("publish failed")
    CANCELLED = "cancelled", _("cancelled")


#: States in which a job still holds a place in its band and may still run.
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


class Job(models.Model):
    """The ledger: one row per submitted job, keyed by its Celery task id."""

    id = models.BigAutoField(primary_key=True)
    task_id = models.CharField(_("task id"), max_length=255, unique=True)
    task_name = models.CharField(_("task"), max_length=200)
    args = models.JSONField(_("args"), default=list, blank=True)
    kwargs = models.JSONField(_("kwargs"), default=dict, blank=True)
    options = models.JSONField(
        _("publish options"), default=dict, blank=True, help_text=_("Celery options kept for republishing the job.")
    )
    queue = models.CharField(_("queue"), max_length=200, blank=True)
    requested_priority = models.PositiveSmallIntegerField(_("requested priority"), help_text=PRIORITY_HELP)
    effective_priority = models.PositiveSmallIntegerField(
        _("effective priority"), help_text=_("The priority of the newest published copy: requested, minus aging.")
    )
    priority_source = models.CharField(_("priority from"), max_length=16, choices=PrioritySource.choices)
    state = models.CharField(_("state"), max_length=16, choices=JobState.choices, default=JobState.QUEUED)
    generation = models.PositiveIntegerField(
        _("generation"), default=1, help_text=_("Number of the newest published copy; only it may claim the job.")
    )
    claimed_generation = models.PositiveIntegerField(_("claimed generation"), null=True, blank=True)
    retries = models.PositiveIntegerField(_("retries"), default=0)
    worker_losses = models.PositiveSmallIntegerField(
        _("worker losses"), default=0, help_text=_("Times the worker running this job died before it finished.")
    )
    band = models.CharField(_("band"), max_length=32, blank=True)
    caller_key = models.CharField(_("caller"), max_length=200, blank=True)
    idempotency_key = models.CharField(_("idempotency key"), max_length=200, null=True, blank=True)
    eta = models.DateTimeField(_("not before"), null=True, blank=True)
    queued_at = models.DateTimeField(_("queued at"))
    aging_since = models.DateTimeField(
        _("aging since"),
        null=True,
        blank=True,
        help_text=_("Waiting time for aging counts from here: submission (or its ETA), or an admin's priority change."),
    )
    published_at = models.DateTimeField(_("newest copy published at"), null=True, blank=True)
    next_aging_at = models.DateTimeField(_("next aging at"), null=True, blank=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    worker = models.CharField(_("worker"), max_length=255, blank=True)
    error = models.TextField(_("error"), blank=True)

    objects = JobQuerySet.as_manager()

    class Meta:
        verbose_name = _("job")
        verbose_name_plural = _("jobs")
        ordering = ["-queued_at"]
        permissions = [("reprioritize_job", _("Can change the priority of queued jobs and retry failed ones"))]
        indexes = [
            # The aging sweep reads only due rows; the partial index keeps finished history out.
            # ``state`` leads although every entry is 'queued': without ANALYZE statistics (which
            # nothing runs on SQLite) SQLite's planner prefers an index whose first column the query
            # matches by equality, and it chose ``state_prio_idx`` below, reading every queued row
            # and sorting them (bench/aging.py). With ``state`` first this index wins on both engines.
            models.Index(fields=["state", "next_aging_at"], condition=Q(state="queued"), name="queueprio_job_due_idx"),
            models.Index(fields=["state", "effective_priority"], name="queueprio_job_state_prio_idx"),
            models.Index(fields=["task_name", "state"], name="queueprio_job_task_state_idx"),
            models.Index(fields=["finished_at"], name="queueprio_job_finished_idx"),
            models.Index(fields=["queued_at"], name="queueprio_job_queued_idx"),
            models.Index(fields=["caller_key", "queued_at"], name="queueprio_job_caller_idx"),
            # The metrics rollup reads jobs by the minute they started.
            models.Index(fields=["started_at"], name="queueprio_job_started_idx"),
            # Dedup looks a key up with the state as a bound parameter, which SQLite's planner
            # can't match against the partial unique index below: this plain one serves it.
            models.Index(fields=["idempotency_key"], name="queueprio_job_idem_key_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=_in_range("requested_priority"), name="queueprio_job_requested_range"),
            models.CheckConstraint(condition=_in_range("effective_priority"), name="queueprio_job_effective_range"),
            # Deduplication is enforced by the database, so concurrent submitters can't both win.
            models.UniqueConstraint(
                fields=["idempotency_key"],
                condition=Q(state__in=["queued", "started"]),
                name="queueprio_job_active_idempotency_key",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.task_name}[{self.task_id}]"


class AgingReason(models.TextChoices):
    AGING = "aging", _("aging")
    ADMIN = "admin", _("set in admin")
    DEDUP = "dedup", _("raised by a duplicate submission")
    RETRY = "retry", _("retry")
    RECOVER = "recover", _("lost copy republished")


class AgingStep(models.Model):
    """One republish of a job: its priority before and after, and how long it had waited."""

    id = models.BigAutoField(primary_key=True)
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="aging_steps", verbose_name=_("job"))
    from_priority = models.PositiveSmallIntegerField(_("from"))
    to_priority = models.PositiveSmallIntegerField(_("to"))
    generation = models.PositiveIntegerField(_("new generation"))
    waited_seconds = models.FloatField(_("waited (s)"))
    reason = models.CharField(_("reason"), max_length=16, choices=AgingReason.choices, default=AgingReason.AGING)
    at = models.DateTimeField(_("at"))

    class Meta:
        verbose_name = _("aging step")
        verbose_name_plural = _("aging steps")
        ordering = ["-at"]
        indexes = [models.Index(fields=["at"], name="queueprio_agingstep_at_idx")]

    def __str__(self) -> str:
        return f"{self.from_priority}→{self.to_priority} ({self.reason})"


class RejectionReason(models.TextChoices):
    QUEUE_FULL = "queue_full", _("queue full")
    INVALID_PRIORITY = "invalid_priority", _("invalid priority")
    UNKNOWN_TASK = "unknown_task", _("unknown task")
    PATH_OUTSIDE_ROOT = "path_outside_root", _("path outside the root")
    QUOTA_EXCEEDED = "quota_exceeded", _("quota exceeded")
    INVALID_INPUT = "invalid_input", _("invalid input")


class Rejection(models.Model):
    """A submission refused before publishing. Stored, so no refusal is ever silent."""

    id = models.BigAutoField(primary_key=True)
    at = models.DateTimeField(_("at"))
    task_name = models.CharField(_("task"), max_length=200, blank=True)
    requested_priority = models.CharField(
        _("requested priority"), max_length=64, blank=True, help_text=_("As given, which may be invalid.")
    )
    band = models.CharField(_("band"), max_length=32, blank=True)
    reason = models.CharField(_("reason"), max_length=32, choices=RejectionReason.choices)
    detail = models.TextField(_("detail"), blank=True)
    caller_key = models.CharField(_("caller"), max_length=200, blank=True)

    objects = RejectionQuerySet.as_manager()

    class Meta:
        verbose_name = _("rejection")
        verbose_name_plural = _("rejections")
        ordering = ["-at"]
        indexes = [models.Index(fields=["at"], name="queueprio_rejection_at_idx")]

    def __str__(self) -> str:
        return f"{self.reason}: {self.task_name}"


class Band(models.Model):
    """A range of priorities sharing a limit of queued jobs and time limits. Editable in the admin."""

    name = models.CharField(_("name"), max_length=32, unique=True)
    most_urgent = models.PositiveSmallIntegerField(_("most urgent priority"), help_text=PRIORITY_HELP)
    least_urgent = models.PositiveSmallIntegerField(_("least urgent priority"), help_text=PRIORITY_HELP)
    max_queued = models.PositiveIntegerField(
        _("max queued jobs"),
        null=True,
        blank=True,
        help_text=_("Submissions beyond this many queued jobs in the band raise QueueFull. Empty: unlimited."),
    )
    queued = models.IntegerField(
        _("queued now"),
        default=0,
        editable=False,
        help_text=_(
            "Admission counter: taken on submit, released when a job starts, fails to publish or is cancelled."
        ),
    )
    soft_time_limit = models.FloatField(
        _("soft time limit (s)"), null=True, blank=True, help_text=_("The job fails with a clear error past this.")
    )
    time_limit = models.FloatField(
        _("hard time limit (s)"), null=True, blank=True, help_text=_("The worker process is killed past this.")
    )

    class Meta:
        verbose_name = _("priority band")
        verbose_name_plural = _("priority bands")
        ordering = ["most_urgent"]
        constraints = [
            models.CheckConstraint(condition=_in_range("most_urgent"), name="queueprio_band_most_urgent_range"),
            models.CheckConstraint(condition=_in_range("least_urgent"), name="queueprio_band_least_urgent_range"),
            models.CheckConstraint(
                condition=Q(most_urgent__lte=F("least_urgent")), name="queueprio_band_ordered_bounds"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.most_urgent}–{self.least_urgent})"

    def clean(self) -> None:
        # Admission counts a job in every band that covers its priority: bands must not overlap.
        from django.core.exceptions import ValidationError

        overlapping = Band.objects.exclude(pk=self.pk).filter(
            most_urgent__lte=self.least_urgent, least_urgent__gte=self.most_urgent
        )
        if overlapping.exists():
            raise ValidationError(f"priorities {self.most_urgent}–{self.least_urgent} overlap band {overlapping[0]}")


class QuotaPolicy(models.TextChoices):
    REJECT = "reject", _("reject (QuotaExceeded)")
    DEMOTE = "demote", _("demote to a lower priority")


class UrgentQuota(models.Model):
    """The abuse quota on urgent submissions per caller key. One row; editable in the admin."""

    limit = models.PositiveIntegerField(
        _("limit"), null=True, blank=True, help_text=_("Urgent submissions per caller per window. Empty: no quota.")
    )
    max_priority = models.PositiveSmallIntegerField(
        _("applies at or above"), default=2, help_text=_("Priorities this urgent or more count against the quota.")
    )
    window_seconds = models.PositiveIntegerField(_("window (s)"), default=60)
    policy = models.CharField(
        _("over the quota"), max_length=8, choices=QuotaPolicy.choices, default=QuotaPolicy.REJECT
    )
    demote_to = models.PositiveSmallIntegerField(_("demote to"), default=5, help_text=PRIORITY_HELP)

    objects = UrgentQuotaQuerySet.as_manager()

    class Meta:
        verbose_name = _("urgent quota")
        verbose_name_plural = _("urgent quota")
        constraints = [
            models.CheckConstraint(condition=_in_range("max_priority"), name="queueprio_quota_max_priority_range"),
            models.CheckConstraint(condition=_in_range("demote_to"), name="queueprio_quota_demote_to_range"),
        ]

    def __str__(self) -> str:
        return "urgent quota"


from .models_metrics import *  # noqa: E402,F403  (metrics tables live in their own module)
