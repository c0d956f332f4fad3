"""Converters as real Celery tasks: real files, a real worker, bad input that fails cleanly."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from kombu import Connection
from openpyxl import Workbook
from PIL import Image

from converters import convert, convert_batch
from queueprio import InvalidArguments, PathOutsideRoot, UnknownTask
from queueprio.models import FINISHED_STATES, Job, JobState, Rejection
from tests.conftest import queue_depth
from tests.support.ledger import finished, stored_result
from tests.support.polling import wait_for
from tests.support.worker import Worker

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]

FINAL = frozenset(FINISHED_STATES)


def run(name: str, source: str, **kwargs: object) -> Job:
    result = convert(name, source, **kwargs)
    return wait_for(lambda: finished(result.id), timeout=60, message=f"{name} on {source}")


def make_samples(root: Path) -> None:
    (root / "people.csv").write_text("name,age\nAda,36\nAlan,41\n")
    (root / "people.jsonl").write_text('{"name": "Ada", "age": 36}\n{"name": "Alan", "age": 41}\n')
    (root / "doc.xml").write_text('<root><item id="1">a</item><item id="2">b</item></root>')
    (root / "doc.json").write_text(json.dumps({"root": {"item": ["a", "b"]}}))
    (root / "conf.yaml").write_text("name: demo\nlevels: [1, 2, 3]\n")
    workbook = Workbook()
    workbook.active.append(["name", "age"])
    workbook.active.append(["Ada", 36])
    workbook.save(root / "sheet.xlsx")
    Image.new("RGB", (32, 16), "red").save(root / "pixel.png")


@pytest.mark.parametrize(
    ("name", "source", "target", "check"),
    [
        ("csv_to_json", "people.csv", "people.json", lambda t: json.loads(t)[1] == {"name": "Alan", "age": "41"}),
        ("json_to_csv", "people.jsonl", "people.csv.out", lambda t: t.splitlines()[0] == "name,age"),
        ("xml_to_json", "doc.xml", "doc.xml.json", lambda t: "item" in json.loads(t).get("root", json.loads(t))),
        ("json_to_xml", "doc.json", "doc.out.xml", lambda t: t.count("<item") == 2),
        ("yaml_to_json", "conf.yaml", "conf.json", lambda t: json.loads(t)["levels"] == [1, 2, 3]),
        ("json_to_yaml", "doc.json", "doc.yaml", lambda t: "item" in t),
        ("xlsx_to_csv", "sheet.xlsx", "sheet.csv", lambda t: t.splitlines()[1] == "Ada,36"),
    ],
)
def test_converter__converts_a_real_file_in_a_worker(
    worker: Worker, root: Path, broker: Connection, name: str, source: str, target: str, check
) -> None:
    make_samples(root)
    job = run(name, source, target=target)
    assert job.state == JobState.SUCCEEDED, job.error
    assert check((root / target).read_text())
    assert wait_for(lambda: stored_result(job.task_id), timeout=30).status == "SUCCESS"


def test_image_to_webp__writes_a_webp_next_to_the_source(worker: Worker, root: Path, broker: Connection) -> None:
    make_samples(root)
    job = run("image_to_webp", "pixel.png")
    assert job.state == JobState.SUCCEEDED, job.error
    with Image.open(root / "pixel.webp") as image:
        assert (image.format, image.size) == ("WEBP", (32, 16))


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("csv_to_json", b"", "empty"),
        ("csv_to_json", b"name,age\n\xff\xfe,1\n", "UTF-8"),
        ("xml_to_json", b"<root><a></root>", "XML"),
        ("xml_to_json", b'<!DOCTYPE r [<!ENTITY e "x">]><r>&e;</r>', ""),
        ("yaml_to_json", b"a: !!python/object/apply:os.system ['true']\n", ""),
        ("json_to_csv", b'{"a": 1}\n{"a": \n', "line 2"),
        ("xlsx_to_csv", b"not a zip", ""),
        ("image_to_webp", b"\x89PNG\r\n\x1a\nshort", ""),
    ],
)
def test_converter__malformed_input_fails_the_job_readably_and_the_worker_lives(
    worker: Worker, root: Path, broker: Connection, name: str, content: bytes, expected: str
) -> None:
    suffix = {
        "csv_to_json": ".csv",
        "xml_to_json": ".xml",
        "yaml_to_json": ".yaml",
        "json_to_csv": ".jsonl",
        "xlsx_to_csv": ".xlsx",
        "image_to_webp": ".png",
    }[name]
    source = root / f"bad-{name}{suffix}"
    source.write_bytes(content)
    job = run(name, source.name, target=f"bad-{name}.out")
    assert job.state == JobState.FAILED
    assert job.error.startswith("ConversionError: "), job.error
    assert expected in job.error.splitlines()[0]
    assert not (root / f"bad-{name}.out").exists()  # no partial output
    result = wait_for(lambda: stored_result(job.task_id), timeout=30)
    assert (result.status, json.loads(result.result)["exc_type"]) == ("FAILURE", "ConversionError")
    assert worker.proc.poll() is None


@pytest.mark.parametrize("path", ["../outside.csv", "/etc/passwd", "link-out/passwd", "a/../../outside.csv"])
def test_convert__path_outside_root_is_refused_before_publishing(root: Path, broker: Connection, path: str) -> None:
    link = root / "link-out"
    if not link.exists():
        link.symlink_to("/etc")
    with pytest.raises(PathOutsideRoot, match="outside the allowed root"):
        convert("csv_to_json", path)
    assert queue_depth(broker) == 0
    assert not Job.objects.exists()
    assert Rejection.objects.get().reason == "path_outside_root"


def test_convert__missing_source_and_unknown_converter_are_refused(root: Path, broker: Connection) -> None:
    with pytest.raises(InvalidArguments, match="does not exist"):
        convert("csv_to_json", "nope.csv")
    with pytest.raises(UnknownTask, match="csv_to_json"):
        convert("pdf_to_docx", "nope.pdf")
    assert queue_depth(broker) == 0
    assert not Job.objects.exists()
    assert sorted(Rejection.objects.values_list("reason", flat=True)) == ["invalid_input", "unknown_task"]


def test_convert__a_directory_is_refused_at_submission(root: Path, broker: Connection) -> None:
    # Refused before publishing, not failed later by the worker ("is not a regular file")
    (root / "a-directory.csv").mkdir(exist_ok=True)
    with pytest.raises(InvalidArguments, match="is a directory, not a file"):
        convert("csv_to_json", "a-directory.csv")
    with pytest.raises(InvalidArguments, match="is a directory, not a file"):
        convert_batch("csv_to_json", ["a-directory.csv"])
    assert queue_depth(broker) == 0
    assert not Job.objects.exists()
    assert list(Rejection.objects.values_list("reason", flat=True)) == ["invalid_input", "invalid_input"]


def test_convert_batch__records_and_publishes_every_file(worker: Worker, root: Path, broker: Connection) -> None:
    sources = []
    for i in range(20):
        (root / f"b{i}.csv").write_text(f"n\n{i}\n")
        sources.append(f"b{i}.csv")
    batch = convert_batch("csv_to_json", sources, priority=3, target_dir="batch-out")
    assert len(batch) == 20
    wait_for(lambda: Job.objects.filter(task_id__in=batch.ids, state=JobState.SUCCEEDED).count() == 20, timeout=60)
    assert json.loads((root / "batch-out" / "b7.json").read_text()) == [{"n": "7"}]
    assert set(Job.objects.values_list("effective_priority", flat=True)) == {3}


def test_csv_to_json__reports_its_progress_as_it_streams(worker: Worker, root: Path, broker: Connection) -> None:
    # A CSV big enough to take a few seconds: its bar must move while it converts
    row = "ada lovelace,36,london,analytical engine,notes on the sketch\n"
    with (root / "big.csv").open("w") as fh:
        fh.write("name,age,city,machine,paper\n")
        fh.writelines(row for _ in range(400_000))
    result = convert("csv_to_json", "big.csv")
    seen: list[tuple[float, str]] = []

    def moving() -> bool:
        job = Job.objects.get(task_id=result.id)
        if job.state == JobState.STARTED and job.progress is not None:
            seen.append((job.progress, job.progress_note))
        return len({round(p, 3) for p, _ in seen if 0 < p < 1}) >= 2 or job.state in FINAL

    wait_for(moving, timeout=120, message="two progress values while it converts")
    job = wait_for(lambda: finished(result.id), timeout=120)
    assert job.state == JobState.SUCCEEDED, job.error
    fractions = [p for p, _ in seen if 0 < p < 1]
    assert len(set(fractions)) >= 2, seen  # read as it went, not 0 then done
    assert fractions == sorted(fractions)
    assert all(re.fullmatch(r"read [\d.]+ [KM]?B of 24.4 MB", note) for _, note in seen), seen
