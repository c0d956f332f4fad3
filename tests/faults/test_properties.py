"""Arbitrary input to the public API: a valid job or a ``Rejected``, never another exception.

And a refused call never publishes: the broker queue's depth is checked before and after
every example.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kombu import Connection

from converters import convert
from converters import tasks as shipped
from converters.registry import CONVERTERS
from queueprio import InvalidPriority, Rejected, enqueue, validate_priority
from queueprio.models import Job
from tests.conftest import queue_depth
from tests.support.tasks import record

NAMES = sorted(name for name in CONVERTERS if getattr(shipped, name, None) is not None)

ANYTHING = st.one_of(
    st.integers(),
    st.floats(),
    st.text(),
    st.booleans(),
    st.none(),
    st.binary(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    st.integers(min_value=-2, max_value=12),  # around the edges, often
)

PATH_PARTS = ["..", ".", "", "/", "~", "in.csv", "sub", "none.csv", "\x00", "%2e%2e", "é", "\ud800", " ", "link-out"]
PATHS = st.one_of(
    st.text(),
    st.text(alphabet=st.characters(categories=["Cs", "Lu", "Po"]), max_size=8),  # with lone surrogates
    st.lists(st.sampled_from(PATH_PARTS), min_size=1, max_size=6).map("/".join),
    st.integers(min_value=250, max_value=5_000).map(lambda n: "a" * n),  # longer than a name may be
    st.integers(min_value=1, max_value=600).map(lambda n: "sub/" * n + "in.csv"),  # longer than a path may be
    st.sampled_from(["/etc/passwd", "/", "in.csv", "sub/../in.csv", "../in.csv", "in.csv\x00.png", "sub"]),
    st.integers(),
    st.none(),
)

#: Names, including what ``st.text()`` never makes: lone surrogates.
NAMES_ANY = st.one_of(st.text(max_size=30), st.sampled_from(["\ud800", "tests.record\udcff", "x" * 300]))

EXAMPLES = settings(
    max_examples=80, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@settings(database=None)
@given(value=ANYTHING)
def test_validate_priority__an_int_from_1_to_10_or_invalid_priority(value: object) -> None:
    if type(value) is int and 1 <= value <= 10:
        result = validate_priority(value)
        assert (type(result), result) == (int, value)
    else:
        with pytest.raises(InvalidPriority, match=r"1 \(most urgent\) to 10"):
            validate_priority(value)


def outcome(broker: Connection, submit: object) -> tuple[object, int]:
    """Run ``submit()``; return its result (or the ``Rejected`` it raised) and the change in queue depth."""
    before = queue_depth(broker)
    try:
        result = submit()  # type: ignore[operator]
    except Rejected as exc:
        result = exc
    return result, queue_depth(broker) - before


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
@EXAMPLES
@given(priority=ANYTHING, name=st.one_of(st.just("tests.record"), NAMES_ANY))
def test_enqueue__any_priority_and_name_gives_a_job_or_a_refusal(
    broker: Connection, tmp_path: Path, priority: object, name: str
) -> None:
    result, published = outcome(broker, lambda: enqueue(name, ["x", str(tmp_path / "o")], priority=priority))
    if isinstance(result, Rejected):
        assert published == 0
    else:
        assert published == 1
        job = Job.objects.get(task_id=result.id)
        assert 1 <= job.effective_priority <= 10
        assert priority is None or job.requested_priority == priority


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
@EXAMPLES
@given(priority=ANYTHING)
def test_apply_async__any_priority_gives_a_job_or_invalid_priority(
    broker: Connection, tmp_path: Path, priority: object
) -> None:
    result, published = outcome(broker, lambda: record.apply_async(args=["x", str(tmp_path)], priority=priority))
    if isinstance(result, Rejected):
        assert isinstance(result, InvalidPriority)
        assert published == 0
    else:
        assert published == 1
        assert Job.objects.filter(task_id=result.id).exists()


@pytest.fixture
def tree(files_root: Path) -> Path:
    (files_root / "in.csv").write_text("a\n1\n")
    (files_root / "sub").mkdir()
    (files_root / "sub" / "in.csv").write_text("a\n1\n")
    (files_root / "link-out").symlink_to("/etc")
    return files_root


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
@EXAMPLES
@given(
    name=st.one_of(st.sampled_from(NAMES), NAMES_ANY),
    source=PATHS,
    target=st.one_of(st.none(), PATHS),
    priority=st.one_of(st.none(), ANYTHING),
)
def test_convert__any_path_and_priority_gives_a_job_or_a_refusal(
    broker: Connection, tree: Path, name: str, source: object, target: object, priority: object
) -> None:
    result, published = outcome(broker, lambda: convert(name, source, target, priority=priority))  # type: ignore[arg-type]
    if isinstance(result, Rejected):
        assert published == 0
        return
    assert published == 1
    job = Job.objects.get(task_id=result.id)
    for stored in job.args:  # confined: relative to the root, and inside it
        assert not Path(stored).is_absolute()
        assert (tree / stored).resolve().is_relative_to(tree.resolve())
