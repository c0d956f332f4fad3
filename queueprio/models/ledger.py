"""The job ledger: one row per job, and one row per republished copy (aging steps)."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from .choices import AgingReason, JobState, PrioritySource
from .fields import PRIORITY_HELP, in_range
from .querysets import JobQuerySet


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
            models.CheckConstraint(condition=in_range("requested_priority"), name="queueprio_job_requested_range"),
            models.CheckConstraint(condition=in_range("effective_priority"), name="queueprio_job_effective_range"),
            # Deduplication is enforced by the database, so concurrent submitters can't both win.
            models.UniqueConstraint(
                fields=["idempotency_key"],
                condition=Q(state__in=["queued", "started"]),
                name="queueprio_job_active_idempotency_key",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.task_name}[{self.task_id}]"


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
