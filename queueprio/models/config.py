"""What staff configure in the admin: default priority per task, the priority bands, the urgent quota."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from .choices import QuotaPolicy
from .fields import PRIORITY_HELP, in_range
from .querysets import BandQuerySet, TaskPriorityQuerySet, UrgentQuotaQuerySet


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
                condition=in_range("priority", nullable=True), name="queueprio_taskpriority_priority_range"
            ),
            models.CheckConstraint(
                condition=in_range("code_default", nullable=True), name="queueprio_taskpriority_code_default_range"
            ),
        ]

    def __str__(self) -> str:
        return self.task_name


#: The live counters of a band (admission, running slots, reconcile corrections).
BAND_COUNTERS = frozenset({"queued", "running", "corrections"})


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
    max_running = models.PositiveIntegerField(
        _("max running jobs"),
        null=True,
        blank=True,
        help_text=_(
            "At most this many of the band's jobs run at once; the rest wait in the ledger ('held') and are "
            "published as slots free, so other bands keep worker processes. Empty: no limit."
        ),
    )
    running = models.IntegerField(
        _("running now"), default=0, editable=False, help_text=_("Jobs of this band running now (started).")
    )
    corrections = models.PositiveBigIntegerField(
        _("counter corrections"),
        default=0,
        editable=False,
        help_text=_("Jobs by which reconciling with the ledger had to correct the counter, in all (drift)."),
    )
    soft_time_limit = models.FloatField(
        _("soft time limit (s)"), null=True, blank=True, help_text=_("The job fails with a clear error past this.")
    )
    time_limit = models.FloatField(
        _("hard time limit (s)"), null=True, blank=True, help_text=_("The worker process is killed past this.")
    )

    objects = BandQuerySet.as_manager()

    class Meta:
        verbose_name = _("priority band")
        verbose_name_plural = _("priority bands")
        ordering = ["most_urgent"]
        constraints = [
            models.CheckConstraint(condition=in_range("most_urgent"), name="queueprio_band_most_urgent_range"),
            models.CheckConstraint(condition=in_range("least_urgent"), name="queueprio_band_least_urgent_range"),
            models.CheckConstraint(
                condition=Q(most_urgent__lte=F("least_urgent")), name="queueprio_band_ordered_bounds"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.most_urgent}–{self.least_urgent})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Saving a band never writes its counters: they move only by the manager's single-statement
        updates, while a row saved here was read earlier (an admin form is read, edited, then posted)
        and would write back the counts of that moment, undoing every admission and start since."""
        if not self._state.adding and kwargs.get("update_fields") is None:
            kwargs["update_fields"] = [
                f.name for f in self._meta.concrete_fields if not f.primary_key and f.name not in BAND_COUNTERS
            ]
        super().save(*args, **kwargs)

    def clean(self) -> None:
        # Admission counts a job in every band that covers its priority: bands must not overlap.
        overlapping = Band.objects.exclude(pk=self.pk).filter(
            most_urgent__lte=self.least_urgent, least_urgent__gte=self.most_urgent
        )
        if overlapping.exists():
            raise ValidationError(f"priorities {self.most_urgent}–{self.least_urgent} overlap band {overlapping[0]}")


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
            models.CheckConstraint(condition=in_range("max_priority"), name="queueprio_quota_max_priority_range"),
            models.CheckConstraint(condition=in_range("demote_to"), name="queueprio_quota_demote_to_range"),
        ]

    def __str__(self) -> str:
        return "urgent quota"
