"""The admin: read-only telemetry, permissioned actions that go through the republish path."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Permission, User
from django.db import models
from django.test import Client
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from kombu import Connection

from queueprio.models import AgingStep, Band, Job, JobState, TaskPriority
from queueprio.operations import actions
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
    # The requested priority stays what the caller asked; the admin's is recorded beside it
    assert (job.requested_priority, job.admin_priority, job.effective_priority, job.generation) == (8, 2, 2, 2)
    assert [(m["id"], m["priority"]) for m in drain(broker)] == [(result.id, 9), (result.id, 3)]
    step = AgingStep.objects.get()
    assert (step.reason, step.from_priority, step.to_priority, step.changed_by) == ("admin", 8, 2, "staff")
    # And the job's page says who changed it, when, from and to
    page = client.get(f"/admin/queueprio/job/{job.pk}/change/").content.decode()
    assert f"2 (from 8) by staff at {step.at.astimezone(timezone.get_current_timezone()):%Y-%m-%d %H:%M:%S}" in page


def test_set_priority_then_a_duplicate__the_duplicate_is_a_new_request_again(broker: Connection, tmp_path) -> None:
    # A raise by a duplicate submission is a caller asking: it becomes the requested priority and
    # ends the admin's override (aging then counts from the new request).
    result = record.apply_async(args=["x", str(tmp_path / "o")], priority=8, idempotency_key="k")
    job = Job.objects.get(task_id=result.id)
    actions.set_priority([job], 6, changed_by="alice")
    record.apply_async(args=["x", str(tmp_path / "o")], priority=3, idempotency_key="k")
    job.refresh_from_db()
    assert (job.requested_priority, job.admin_priority, job.effective_priority) == (3, None, 3)
    assert list(AgingStep.objects.order_by("at").values_list("reason", "changed_by")) == [
        ("admin", "alice"),
        ("dedup", ""),
    ]


def test_cancel_action__cancels_waiting_jobs_for_good_and_needs_the_permission(broker: Connection, tmp_path) -> None:
    # Given a queued job and one that already finished
    waiting = Job.objects.get(task_id=record.apply_async(args=["x", str(tmp_path / "o")], priority=4).id)
    done = Job.objects.get(task_id=record.apply_async(args=["y", str(tmp_path / "o")], priority=4).id)
    Job.objects.filter(pk=done.pk).update(state=JobState.SUCCEEDED)
    selected = {"action": "cancel", "_selected_action": [waiting.pk, done.pk]}
    # When staff without the permission try it, nothing happens (the action isn't theirs)
    staff_client = staff("view_job")
    assert b'value="cancel"' not in staff_client.get("/admin/queueprio/job/").content
    staff_client.post("/admin/queueprio/job/", selected)
    assert Job.objects.get(pk=waiting.pk).state == JobState.QUEUED
    # When staff with it cancel both
    User.objects.filter(username="staff").delete()
    response = staff("view_job", "reprioritize_job").post("/admin/queueprio/job/", selected, follow=True)
    # Then the queued one is cancelled (durably: the ledger first), its band place given back,
    # and the finished one is left alone
    assert "1 of 2 selected jobs cancelled" in response.content.decode()
    waiting.refresh_from_db()
    assert (waiting.state, Job.objects.get(pk=done.pk).state) == (JobState.CANCELLED, JobState.SUCCEEDED)
    assert Band.objects.get(pk=waiting.band_id).queued == 1  # only the "finished" row's place, set by hand above


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
    # In words, not the database's constraint name
    assert "A priority is a whole number from 1 (most urgent) to 10 (least urgent)." in response.content.decode()
    assert b"Constraint" not in response.content
    row.refresh_from_db()
    assert row.priority is None


@pytest.mark.parametrize("value", ["0", "11"])
def test_task_priority_admin__the_change_form_says_the_range_too(admin_client: Client, value: str) -> None:
    row = TaskPriority.objects.get(task_name="tests.record")
    url = f"/admin/queueprio/taskpriority/{row.pk}/change/"
    # The input itself says the scale
    form = admin_client.get(url).content.decode()
    assert re.search(r'<input type="number" name="priority"[^>]* min="1" max="10"', form), form
    response = admin_client.post(url, {"priority": value})
    assert response.status_code == 200
    assert "A priority is a whole number from 1 (most urgent) to 10 (least urgent)." in response.content.decode()
    row.refresh_from_db()
    assert row.priority is None
    # The control: a value on the scale is saved
    admin_client.post(url, {"priority": "3"})
    row.refresh_from_db()
    assert row.priority == 3


def test_task_priority_admin__the_list_inputs_say_the_range(admin_client: Client) -> None:
    page = admin_client.get("/admin/queueprio/taskpriority/").content.decode()
    inputs = re.findall(r'<input type="number" name="form-\d+-priority"[^>]*>', page)
    assert inputs
    assert all('min="1"' in tag and 'max="10"' in tag for tag in inputs)


@pytest.mark.django_db
def test_band_admin__setting_max_running_keeps_the_live_counters(admin_client: Client) -> None:
    # Given the change form of a band, read while the band was idle
    band = Band.objects.get(name="background")
    form = admin_client.get(f"/admin/queueprio/band/{band.pk}/change/")
    assert form.status_code == 200
    data = {
        name: value
        for name, value in form.context["adminform"].form.initial.items()
        if value is not None and name in form.context["adminform"].form.fields
    }
    # When jobs are admitted and start while the operator edits, then the form is posted
    for _ in range(3):
        Band.objects.filter(pk=band.pk).update(queued=models.F("queued") + 1)
    assert Band.objects.start(band.pk)
    response = admin_client.post(f"/admin/queueprio/band/{band.pk}/change/", {**data, "max_running": "2"})
    assert response.status_code == 302, response.content[:2000]
    # Then the limit changed and the counters kept what happened meanwhile
    band.refresh_from_db()
    assert (band.max_running, band.queued, band.running) == (2, 2, 1)


@pytest.mark.django_db
def test_control__a_plain_model_save_writes_back_the_counters_it_read() -> None:
    band = Band.objects.get(name="background")  # read while idle
    Band.objects.filter(pk=band.pk).update(queued=models.F("queued") + 3)
    models.Model.save(band)  # what the admin did before: every column written back
    assert Band.objects.get(pk=band.pk).queued == 0  # three admissions undone
