"""The job ledger: one row per job, and one row per republished copy (aging steps)."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from .choices import AgingReason, JobState, PrioritySource
from .fields import PRIORITY_HELP, in_range
from .job_queries import JobQuerySet


class Job(models.Model):
    """The ledger: one row per submitted job, keyed by its Celery task id."""

    id = models.BigAutoField(primary_key=True)
    task_id = models.CharField(_("task id"), max_length=255, unique=True)
    task_name = models.CharField(_("task"), max_length=200)
    args = models.JSONField(
        _("args"), default=list, blank=True, help_text=_("For reading and search; the job runs from its message.")
    )
    kwargs = models.JSONField(
        _("kwargs"), default=dict, blank=True, help_text=_("For reading and search; the job runs from its message.")
    )
    #: The Celery message as Celery built it for the caller (body as the task's serializer encoded
    #: it, headers, properties, routing): every copy is this message with only queueprio's headers,
    #: the AMQP priority and the queue changed. See ``queueprio.broker.message``.
    message_body = models.BinaryField(_("message body"), null=True, blank=True, editable=False)
    message_meta = models.TextField(_("message headers and properties"), blank=True, editable=False)
    queue = models.CharField(_("queue"), max_length=200, blank=True)
    requested_priority = models.PositiveSmallIntegerField(_("requested priority"), help_text=PRIORITY_HELP)
    effective_priority = models.PositiveSmallIntegerField(
        _("effective priority"),
        help_text=_("The priority of the newest published copy: the requested one (or the admin's), minus aging."),
    )
    admin_priority = models.PositiveSmallIntegerField(
        _("priority set in admin"),
        null=True,
        blank=True,
        help_text=_(
            "The newest priority an admin set (Set priority…). Aging counts from it, and from when it was set, "
            "instead of from the requested priority, which stays as the caller asked."
        ),
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
    band = models.ForeignKey(
        "queueprio.Band",
        verbose_name=_("band"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="jobs",
        db_index=False,  # served by queueprio_job_band_state_idx
        help_text=_("The band whose place the job holds while queued (by key, so a renamed band still counts)."),
    )
    band_name = models.CharField(_("band name"), max_length=32, blank=True, help_text=_("As it was at admission."))
    caller_key = models.CharField(_("caller"), max_length=200, blank=True)
    idempotency_key = models.CharField(_("idempotency key"), max_length=200, null=True, blank=True)
    eta = models.DateTimeField(_("not before"), null=True, blank=True)
    expires_at = models.DateTimeField(
        _("expires at"), null=True, blank=True, help_text=_("Fixed at submission; an expired job never runs.")
    )
    #: A secret every copy carries (``qp_token``): a message not published by queueprio can't claim the job.
    token = models.CharField(_("copy token"), max_length=32, blank=True, editable=False)
    lease_until = models.DateTimeField(
        _("lease until"),
        null=True,
        blank=True,
        help_text=_("A started job's run renews this; another copy may run it only once it has passed."),
    )
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
    progress = models.FloatField(
        _("progress"), null=True, blank=True, help_text=_("0–1, as the running job last reported it.")
    )
    progress_note = models.CharField(_("progress note"), max_length=200, blank=True)
    progress_at = models.DateTimeField(_("progress reported at"), null=True, blank=True)
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
            # Delayed jobs, read by the due scheduler by their time (same shape as the due index).
            models.Index(fields=["state", "eta"], condition=Q(state="scheduled"), name="queueprio_job_scheduled_idx"),
            # Started jobs whose run's lease ran out (its process died or was cut off).
            models.Index(fields=["state", "lease_until"], condition=Q(state="started"), name="queueprio_job_lease_idx"),
            # A waiting job's position: jobs of its queue ahead of it in RabbitMQ's order (observability.position).
            models.Index(
                fields=["state", "queue", "effective_priority", "published_at"],
                condition=Q(state="queued"),
                name="queueprio_job_position_idx",
            ),
            # Held jobs, released in priority order as their band's running slots free.
            models.Index(
                fields=["state", "band", "effective_priority", "queued_at"],
                condition=Q(state="held"),
                name="queueprio_job_held_idx",
            ),
            # Reconciling a band's counter counts its queued rows.
            models.Index(fields=["band", "state"], name="queueprio_job_band_state_idx"),
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
            models.CheckConstraint(
                condition=in_range("admin_priority", nullable=True), name="queueprio_job_admin_priority_range"
            ),
            # Deduplication is enforced by the database, so concurrent submitters can't both win.
            models.UniqueConstraint(
                fields=["idempotency_key"],
                condition=Q(state__in=["scheduled", "queued", "held", "started"]),
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
    caller_key = models.CharField(
        _("caller"), max_length=200, blank=True, help_text=_("Who asked, for a raise by a duplicate submission.")
    )
    changed_by = models.CharField(
        _("changed by"), max_length=150, blank=True, help_text=_("The admin user who set the priority (an admin step).")
    )
    at = models.DateTimeField(_("at"))

    class Meta:
        verbose_name = _("aging step")
        verbose_name_plural = _("aging steps")
        ordering = ["-at"]
        indexes = [
            models.Index(fields=["at"], name="queueprio_agingstep_at_idx"),
            # The urgent quota counts a caller's raises by duplicate submission too.
            models.Index(fields=["caller_key", "at"], name="queueprio_agingstep_caller_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.from_priority}→{self.to_priority} ({self.reason})"
