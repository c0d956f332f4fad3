"""The priority in Flower: the kwargsrepr we publish, and a real Flower that shows and finds it."""

from __future__ import annotations

import ast
import html
from pathlib import Path
from types import SimpleNamespace

import pytest
from flower.utils.search import TaskSearchEngine
from kombu import Connection

from queueprio.broker.flower import MARKER, MAX_LENGTH, display_repr, kwargs_repr
from tests.support.flower import running_flower
from tests.support.polling import lines, wait_for
from tests.support.tasks import record
from tests.support.worker import running_worker


def flower_search(kwargs_reprs: dict[str, str], query: str) -> set[str]:
    """Flower's own search engine over fake tasks whose kwargs are ``kwargs_reprs``."""
    engine = TaskSearchEngine()
    tasks = [(tid, SimpleNamespace(uuid=tid, name="t", state="PENDING", kwargs=k)) for tid, k in kwargs_reprs.items()]
    engine.rebuild(tasks)
    return engine.matching_ids(query)


def test_kwargs_repr__priority_first_then_the_real_kwargs() -> None:
    text = kwargs_repr({"path": "in/a.csv", "options": {"indent": 2}}, 3)
    assert text == "{'queueprio_priority': 3, 'path': 'in/a.csv', 'options': {'indent': 2}}"
    assert ast.literal_eval(text) == {MARKER: 3, "path": "in/a.csv", "options": {"indent": 2}}


def test_kwargs_repr__an_aged_job_shows_what_it_asked_for() -> None:
    assert ast.literal_eval(kwargs_repr({}, 2, requested=6)) == {MARKER: 2, "queueprio_requested": 6}
    assert ast.literal_eval(kwargs_repr({}, 6, requested=6)) == {MARKER: 6}


def test_kwargs_repr__long_kwargs_are_shortened_but_still_parse() -> None:
    text = kwargs_repr({"path": "a.csv", "rows": list(range(2_000))}, 4)
    assert len(text) <= MAX_LENGTH
    parsed = ast.literal_eval(text)
    assert parsed[MARKER] == 4
    assert parsed["path"] == "a.csv"
    assert parsed["rows"].startswith("[0, 1, 2")
    assert parsed["rows"].endswith("…")


def test_kwargs_repr__too_many_kwargs_keep_only_the_marker() -> None:
    text = kwargs_repr({f"k{i}": i for i in range(500)}, 9)
    assert len(text) <= MAX_LENGTH
    assert ast.literal_eval(text)[MARKER] == 9


def test_kwargs_repr__a_caller_cannot_spoof_the_marker() -> None:
    assert ast.literal_eval(kwargs_repr({MARKER: 1}, 8))[MARKER] == 8


def test_display_repr__built_from_the_messages_own_kwargsrepr_never_the_kwargs() -> None:
    # Celery's repr of the kwargs: the marker joins it
    assert ast.literal_eval(display_repr("{'x': 1}", 2, requested=5)) == {MARKER: 2, "queueprio_requested": 5, "x": 1}
    # A caller's kwargsrepr that masks a secret: the marker joins the mask, the secret stays out
    masked = display_repr("{'password': '***'}", 4)
    assert ast.literal_eval(masked) == {MARKER: 4, "password": "***"}
    # Free text, a repr Celery cut short, values that are no literals: left exactly as they were
    for original in ("CUSTOM KWARGS", "{'rows': [1, 2, 3, ...", "{'at': datetime.datetime(2026, 1, 1, 0, 0)}", None):
        assert display_repr(original, 4) == original


def test_flower_search__finds_exactly_one_priority() -> None:
    reprs = {"p1": kwargs_repr({}, 1), "p2": kwargs_repr({"a": 1}, 2), "p10": kwargs_repr({}, 10), "p12": "{'x': 12}"}
    assert flower_search(reprs, "kwargs:queueprio_priority=1") == {"p1"}
    assert flower_search(reprs, "kwargs:queueprio_priority=2") == {"p2"}
    assert flower_search(reprs, "kwargs:queueprio_priority=1 OR kwargs:queueprio_priority=2") == {"p1", "p2"}


def datatable_query(search: str) -> dict[str, str]:
    """The parameters Flower's task list sends when someone types ``search`` into its search box."""
    return {
        "draw": "1",
        "start": "0",
        "length": "15",
        "search[value]": search,
        "order[0][column]": "0",
        "order[0][dir]": "desc",
        "columns[0][data]": "received",
    }


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
def test_kwargsrepr__a_callers_mask_is_kept_in_every_copy(broker: Connection, settings) -> None:
    from queueprio.models import Job
    from queueprio.operations.actions import set_priority
    from tests.support.messages import drain

    # A caller keeps a secret out of logs and Flower with Celery's own kwargsrepr=
    secret = {"label": "s3cr3t-token", "path": "x"}
    result = record.apply_async(kwargs=secret, kwargsrepr="{'label': '***'}", priority=5)
    set_priority(Job.objects.filter(task_id=result.id), 2)  # and an admin republishes it
    copies = drain(broker)
    assert len(copies) == 2
    for copy in copies:
        # Before: the ledger's kwargs were shown, secret included
        assert "s3cr3t" not in repr(copy["headers"])
        assert ast.literal_eval(copy["headers"]["kwargsrepr"])["label"] == "***"
    assert {ast.literal_eval(c["headers"]["kwargsrepr"])[MARKER] for c in copies} == {5, 2}


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
def test_flower__shows_and_finds_each_jobs_priority(tmp_path: Path, broker: Connection) -> None:
    out = tmp_path / "out.txt"
    flower_env = {"FLOWER_TASKS_COLUMNS": "name,uuid,state,kwargs,received,runtime,worker"}  # as in the docs
    with running_flower(tmp_path, **flower_env) as flower, running_worker(tmp_path, concurrency=1):
        # Given one job at priority 2 and one at 7, run by a real worker while Flower watches
        wait_for(lambda: flower.get("/api/workers", refresh="1")[1], timeout=30, message="flower to see the worker")
        urgent = record.apply_async(kwargs={"label": "urgent", "path": str(out)}, priority=2)
        bulk = record.apply_async(kwargs={"label": "bulk", "path": str(out)}, priority=7)
        wait_for(lambda: len(lines(str(out))) == 2, timeout=30, message="both jobs to run")

        # When Flower is asked for the urgent ones with the documented search
        def found() -> dict:
            status, tasks = flower.get("/api/tasks", search="kwargs:queueprio_priority=2")
            assert status == 200, tasks
            return tasks

        urgent_only = wait_for(found, timeout=30, message="flower to index the urgent job")
        # Then it finds exactly the priority-2 job, and shows each job's priority in its kwargs
        assert set(urgent_only) == {urgent.id}

        def bulk_info() -> dict | None:
            # Flower indexes each job from its own events: the bulk job's may come after the urgent one's.
            status, info = flower.get(f"/api/task/info/{bulk.id}")
            return info if status == 200 and isinstance(info, dict) and info.get("kwargs") else None

        info = wait_for(bulk_info, timeout=30, message="flower to index the bulk job")
        assert ast.literal_eval(info["kwargs"])[MARKER] == 7
        assert ast.literal_eval(urgent_only[urgent.id]["kwargs"]) == {MARKER: 2, "label": "urgent", "path": str(out)}
        # And the web UI shows it: a kwargs column in the task list, the priority on the task page,
        # and the list's search box (its datatable endpoint) finds the urgent job
        assert '<th data-column="kwargs">kwargs</th>' in flower.get("/tasks")[1]
        assert "'queueprio_priority': 7" in html.unescape(flower.get(f"/task/{bulk.id}")[1])
        _, table = flower.get("/tasks/datatable", **datatable_query("kwargs:queueprio_priority=2"))
        assert [row["uuid"] for row in table["data"]] == [urgent.id]
    # And the task itself received its real kwargs, without the marker
    assert sorted(lines(str(out))) == ["bulk", "urgent"]
