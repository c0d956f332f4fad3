"""Refused submissions, stored so that no refusal is ever silent."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from .choices import RejectionReason
from .querysets import RejectionQuerySet


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
