"""The ledger keeps the Celery message, holds delayed jobs, leases runs, and counts bands by key."""

from django.db import migrations, models
from django.db.models import Q
import django.db.models.deletion


def band_by_key(apps, schema_editor):
    """Point each job at its band's row (it was a name, which staff could change)."""
    Band = apps.get_model("queueprio", "Band")
    Job = apps.get_model("queueprio", "Job")
    for band in Band.objects.all():
        Job.objects.filter(band_name=band.name).update(band=band)


class Migration(migrations.Migration):
    dependencies = [
        ("queueprio", "0009_due_index_state_first"),
    ]

    operations = [
        migrations.RenameField(model_name="job", old_name="band", new_name="band_name"),
        migrations.AlterField(
            model_name="job",
            name="band_name",
            field=models.CharField(blank=True, help_text="As it was at admission.", max_length=32, verbose_name="band name"),
        ),
        migrations.AddField(
            model_name="job",
            name="band",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                help_text="The band whose place the job holds while queued (by key, so a renamed band still counts).",
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="jobs",
                to="queueprio.band",
                verbose_name="band",
            ),
        ),
        migrations.RunPython(band_by_key, migrations.RunPython.noop),
        migrations.RemoveField(model_name="job", name="options"),
        migrations.AddField(
            model_name="job",
            name="message_body",
            field=models.BinaryField(blank=True, editable=False, null=True, verbose_name="message body"),
        ),
        migrations.AddField(
            model_name="job",
            name="message_meta",
            field=models.TextField(blank=True, editable=False, verbose_name="message headers and properties"),
        ),
        migrations.AddField(
            model_name="job",
            name="expires_at",
            field=models.DateTimeField(
                blank=True, help_text="Fixed at submission; an expired job never runs.", null=True, verbose_name="expires at"
            ),
        ),
        migrations.AddField(
            model_name="job",
            name="token",
            field=models.CharField(blank=True, editable=False, max_length=32, verbose_name="copy token"),
        ),
        migrations.AddField(
            model_name="job",
            name="lease_until",
            field=models.DateTimeField(
                blank=True,
                help_text="A started job's run renews this; another copy may run it only once it has passed.",
                null=True,
                verbose_name="lease until",
            ),
        ),
        migrations.AlterField(
            model_name="job",
            name="args",
            field=models.JSONField(
                blank=True, default=list, help_text="For reading and search; the job runs from its message.", verbose_name="args"
            ),
        ),
        migrations.AlterField(
            model_name="job",
            name="kwargs",
            field=models.JSONField(
                blank=True, default=dict, help_text="For reading and search; the job runs from its message.", verbose_name="kwargs"
            ),
        ),
        migrations.AlterField(
            model_name="job",
            name="state",
            field=models.CharField(
                choices=[
                    ("scheduled", "scheduled"),
                    ("queued", "queued"),
                    ("started", "started"),
                    ("succeeded", "succeeded"),
                    ("failed", "failed"),
                    ("publish_failed", "publish failed"),
                    ("cancelled", "cancelled"),
                    ("expired", "expired"),
                    ("ignored", "ignored"),
                    ("rejected", "rejected"),
                    ("replaced", "replaced"),
                ],
                default="queued",
                max_length=16,
                verbose_name="state",
            ),
        ),
        migrations.AlterField(
            model_name="agingstep",
            name="reason",
            field=models.CharField(
                choices=[
                    ("aging", "aging"),
                    ("admin", "set in admin"),
                    ("dedup", "raised by a duplicate submission"),
                    ("retry", "retry"),
                    ("recover", "lost copy republished"),
                    ("due", "scheduled time reached"),
                    ("lease", "run's lease expired; run again"),
                    ("resend", "its task id sent again"),
                    ("requeue", "rejected with requeue"),
                ],
                default="aging",
                max_length=16,
                verbose_name="reason",
            ),
        ),
        migrations.AddField(
            model_name="agingstep",
            name="caller_key",
            field=models.CharField(
                blank=True, help_text="Who asked, for a raise by a duplicate submission.", max_length=200, verbose_name="caller"
            ),
        ),
        migrations.AddField(
            model_name="band",
            name="corrections",
            field=models.PositiveBigIntegerField(
                default=0,
                editable=False,
                help_text="Jobs by which reconciling with the ledger had to correct the counter, in all (drift).",
                verbose_name="counter corrections",
            ),
        ),
        migrations.RemoveConstraint(model_name="job", name="queueprio_job_active_idempotency_key"),
        migrations.AddConstraint(
            model_name="job",
            constraint=models.UniqueConstraint(
                condition=Q(("state__in", ["scheduled", "queued", "started"])),
                fields=("idempotency_key",),
                name="queueprio_job_active_idempotency_key",
            ),
        ),
        migrations.AddIndex(
            model_name="job",
            index=models.Index(condition=Q(("state", "scheduled")), fields=["state", "eta"], name="queueprio_job_scheduled_idx"),
        ),
        migrations.AddIndex(
            model_name="job",
            index=models.Index(
                condition=Q(("state", "started")), fields=["state", "lease_until"], name="queueprio_job_lease_idx"
            ),
        ),
        migrations.AddIndex(
            model_name="job",
            index=models.Index(fields=["band", "state"], name="queueprio_job_band_state_idx"),
        ),
        migrations.AddIndex(
            model_name="agingstep",
            index=models.Index(fields=["caller_key", "at"], name="queueprio_agingstep_caller_idx"),
        ),
    ]
