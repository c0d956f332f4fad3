"""Admin priority changes keep the requested priority and say who; metric totals know when they were last added to."""

import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('queueprio', '0011_progress_running_limits'),
    ]

    operations = [
        migrations.AddField(
            model_name='agingstep',
            name='changed_by',
            field=models.CharField(blank=True, help_text='The admin user who set the priority (an admin step).', max_length=150, verbose_name='changed by'),
        ),
        migrations.AddField(
            model_name='job',
            name='admin_priority',
            field=models.PositiveSmallIntegerField(blank=True, help_text='The newest priority an admin set (Set priority…). Aging counts from it, and from when it was set, instead of from the requested priority, which stays as the caller asked.', null=True, verbose_name='priority set in admin'),
        ),
        migrations.AddField(
            model_name='metrictotal',
            name='updated_at',
            field=models.DateTimeField(default=django.utils.timezone.now, help_text='When the rollup last added to this row.', verbose_name='last added to'),
        ),
        migrations.AlterField(
            model_name='job',
            name='effective_priority',
            field=models.PositiveSmallIntegerField(help_text="The priority of the newest published copy: the requested one (or the admin's), minus aging.", verbose_name='effective priority'),
        ),
        migrations.AddConstraint(
            model_name='job',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('admin_priority__gte', 1), ('admin_priority__lte', 10)), ('admin_priority__isnull', True), _connector='OR'), name='queueprio_job_admin_priority_range'),
        ),
    ]
