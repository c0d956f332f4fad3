"""The admin: read-only telemetry, permissioned actions that go through the republish path."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django_celery_beat.models import PeriodicTask
from kombu import Connection

from queueprio.models import AgingStep, Band, Job, JobState, TaskPriority
from tests.support.messages import drain
from tests.support.tasks import record

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


def staff(*perms: str) -> Client:
    user = User.objects.create_user("staff", password="pw", is_staff=True)
    for codename in perms:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client = Client()
    client.force_login(user)
    return client


def test_job_admin__is_read_only_and_the_action_needs_its_permission(broker: Connection, tmp_path) -> None:
    job_id = Job.objects.get(task_id=record.delay("x", str(tmp_path / "o")).id).pk
    viewer = staff("view_job")
    page = viewer.get("/admin/queueprio/job/")
    assert page.status_code == 200
    assert b"set_priority" not in page.content
    assert viewer.get("/admin/queueprio/job/add/").status_code == 403
    assert viewer.get(f"/admin/queueprio/job/{job_id}/delete/").status_code == 403
    response = viewer.post(
        "/admin/queueprio/job/", {"action": "set_priority", "_selected_action": [job_id], "apply": "1", "priority": "1"}
    )
    assert Job.objects.get(pk=job_id).generation == 1  # nothing happened
    assert response.status_code in (200, 302)


def test_set_priority_action__republishes_and_records_an_admin_step(broker: Connection, tmp_path) -> None:
    result = record.apply_async(args=["x", str(tmp_path / "o")], priority=8)
    job = Job.objects.get(task_id=result.id)
    client = staff("view_job", "reprioritize_job")
    form = client.post("/admin/queueprio/job/", {"action": "set_priority", "_selected_action": [job.pk]})
    assert b"Set priority" in form.content  # the intermediate page
    client.post(
        "/admin/queueprio/job/", {"action": "set_priority", "_selected_action": [job.pk], "apply": "1", "priority": "2"}
    )

    job.refresh_from_db()
    assert (job.requested_priority, job.effective_priority, job.generation) == (2, 2, 2)
    assert [(m["id"], m["priority"]) for m in drain(broker)] == [(result.id, 9), (result.id, 3)]
    step = AgingStep.objects.get()
    assert (step.reason, step.from_priority, step.to_priority) == ("admin", 8, 2)


def test_retry_action__reruns_a_failed_job_under_its_own_id(broker: Connection, tmp_path) -> None:
    result = record.apply_async(args=["x", str(tmp_path / "o")], priority=4)
    Job.objects.filter(task_id=result.id).update(state=JobState.FAILED, error="boom", claimed_generation=1)
    Band.objects.update(queued=0)  # as the claim of the failed run did
    drain(broker)
    job = Job.objects.get(task_id=result.id)
    staff("view_job", "reprioritize_job").post(
        "/admin/queueprio/job/", {"action": "retry", "_selected_action": [job.pk]}
    )
    job.refresh_from_db()
    assert (job.state, job.generation, job.error, job.claimed_generation) == (JobState.QUEUED, 2, "", None)
    [message] = drain(broker)
    assert (message["id"], message["priority"], message["headers"]["qp_generation"]) == (result.id, 7, 2)
    assert Band.objects.get(pk=job.band_id).queued == 1  # queued again: it holds a place in its band


def test_task_priority_admin__changing_needs_the_change_permission() -> None:
    row = TaskPriority.objects.get(task_name="tests.record")
    viewer = staff("view_taskpriority")
    assert viewer.get("/admin/queueprio/taskpriority/").status_code == 200
    viewer.post(f"/admin/queueprio/taskpriority/{row.pk}/change/", {"priority": "1"})
    row.refresh_from_db()
    assert row.priority is None


def test_aging_sweep__is_a_periodic_task_in_django_celery_beat() -> None:
    task = PeriodicTask.objects.get(task="queueprio.age_waiting_jobs")
    assert task.enabled
    assert task.interval.every == 30


@pytest.mark.parametrize("value", ["0", "11", "-1", "2.5"])
def test_task_priority_admin__refuses_values_outside_the_scale(admin_client: Client, value: str) -> None:
    row = TaskPriority.objects.get(task_name="tests.record")
    response = admin_client.post(
        "/admin/queueprio/taskpriority/",
        {
            "form-TOTAL_FORMS": "1",
            "form-INITIAL_FORMS": "1",
            "form-0-id": str(row.pk),
            "form-0-priority": value,
            "_save": "Save",
        },
    )
    assert response.status_code == 200  # the changelist again, with the error, not a 500
    assert b"errornote" in response.content
    row.refresh_from_db()
    assert row.priority is None
