"""Every converter against a corpus of bad files, in a real worker: a failed job, a readable error, no output.

``tests/converters/test_tasks.py`` has one malformed file per converter; this is the full
matrix: empty, truncated, the wrong format, invalid UTF-8, one huge line, deep nesting, an XML
entity bomb and XXE, a YAML alias bomb, an image that lies about its size, memory bombs (an XLSX
decompression bomb, JSON, XML and YAML that would take gigabytes once parsed; their memory is
measured in ``tests/converters/test_memory_bombs.py``), a directory where a file should be, and
a symlink out of the root that appears after the job was submitted.
"""

from __future__ import annotations

import io
import os
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from django.db import transaction
from kombu import Connection
from openpyxl import Workbook
from PIL import Image

from converters import convert
from queueprio import InvalidArguments
from queueprio.models import Job, JobState
from tests.converters import bombs
from tests.converters.bombs import XML_BOMB, YAML_BOMB
from tests.support.ledger import finished, stored_result
from tests.support.polling import wait_for
from tests.support.worker import Worker

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]

MB = 1_000_000


def png_claiming(width: int, height: int) -> bytes:
    """A well-formed PNG header that says ``width`` x ``height``, with a few bytes of pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def real_png() -> bytes:
    out = io.BytesIO()
    Image.effect_noise((256, 256), 64).convert("RGB").save(out, format="PNG")  # noise: IDAT doesn't shrink
    return out.getvalue()


def real_xlsx() -> bytes:
    workbook, out = Workbook(), io.BytesIO()
    for i in range(500):
        workbook.active.append([f"row {i}", i, i * 1.5])
    workbook.save(out)
    return out.getvalue()


def zip_of(name: str, data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(name, data)
    return out.getvalue()


def nested(depth: int, open_: str, close: str, core: str = "") -> bytes:
    return (open_ * depth + core + close * depth).encode()


XXE = b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>'

#: (converter, case, source suffix, content, what the error's first line says).
Bytes = bytes | Callable[[], bytes]
CORPUS: list[tuple[str, str, str, Bytes, str]] = [
    ("csv_to_json", "truncated quote", ".csv", b'name,age\n"Ada,3', "unexpected end of data"),
    ("csv_to_json", "wrong format (gzip)", ".csv", lambda: zlib.compress(b"name,age\n" * 100), "not UTF-8"),
    ("csv_to_json", "huge single line", ".csv", lambda: b"a" * (20 * MB), "longer than 16 MiB"),
    ("json_to_csv", "empty", ".json", b"", "empty JSON"),
    ("json_to_csv", "truncated", ".json", b'[{"a": 1}, {"a":', "invalid JSON"),
    ("json_to_csv", "wrong format (csv)", ".json", b"a,b\n1,2\n", "invalid JSON"),
    ("json_to_csv", "invalid UTF-8", ".json", b'[{"a": "\xff\xfe"}]', "not UTF-8"),
    ("json_to_csv", "huge single line", ".jsonl", lambda: b'{"a": "' + b"x" * 20 * MB + b'"}\n', "longer than 16 MiB"),
    ("json_to_csv", "deeply nested", ".json", lambda: nested(100_000, "[", "]"), "nested too deeply"),
    ("json_to_xml", "empty", ".json", b"  \n", "empty JSON"),
    ("json_to_xml", "truncated", ".json", b'{"root": {"item": ["a", ', "invalid JSON"),
    ("json_to_xml", "invalid UTF-8", ".json", b'{"r\xc3\x28": 1}', "not UTF-8"),
    ("json_to_xml", "deeply nested", ".json", lambda: nested(100_000, "[", "]"), "nested too deeply"),
    ("json_to_xml", "nested past the limit", ".json", lambda: nested(300, '{"a":', "}", core="1"), "deeper than 200"),
    ("json_to_xml", "memory bomb (10 MiB of [])", ".json", bombs.json_empty_arrays, "would need about"),
    ("json_to_yaml", "empty", ".json", b"", "empty JSON"),
    ("json_to_yaml", "wrong format (yaml)", ".json", b"a: 1\nb: [2, 3]\n", "invalid JSON"),
    ("json_to_yaml", "deeply nested", ".json", lambda: nested(100_000, "[", "]"), "nested too deeply"),
    ("json_to_yaml", "nested past the limit", ".json", lambda: nested(300, "[", "]"), "deeper than 200"),
    ("json_to_yaml", "memory bomb (4 MiB of [])", ".json", lambda: bombs.json_empty_arrays(4 * MB), "made into YAML"),
    ("xml_to_json", "empty", ".xml", b"", "empty XML"),
    ("xml_to_json", "truncated", ".xml", b"<root><item>1</item><item>", "invalid XML"),
    ("xml_to_json", "wrong format (json)", ".xml", b'{"root": 1}', "invalid XML"),
    ("xml_to_json", "invalid UTF-8", ".xml", b'<?xml version="1.0" encoding="utf-8"?><r>\xff\xfe</r>', "invalid XML"),
    ("xml_to_json", "entity bomb", ".xml", XML_BOMB, "entity declarations are not allowed"),
    ("xml_to_json", "XXE to a local file", ".xml", XXE, "are not allowed"),
    ("xml_to_json", "deeply nested", ".xml", lambda: nested(100_000, "<a>", "</a>"), "deeper than 200"),
    ("xml_to_json", "memory bomb (16 MB of attributes)", ".xml", lambda: bombs.xml_attributes(16 * MB), "would need"),
    ("yaml_to_json", "empty", ".yaml", b"", "empty YAML"),
    ("yaml_to_json", "truncated", ".yaml", b"a: [1, 2\nb: {c: ", "invalid YAML"),
    ("yaml_to_json", "wrong format (png)", ".yaml", lambda: png_claiming(1, 1), "not UTF-8"),
    ("yaml_to_json", "invalid UTF-8", ".yaml", b"a: \xff\xfe\n", "not UTF-8"),
    ("yaml_to_json", "alias bomb", ".yaml", YAML_BOMB, "more than 5,000,000 values"),
    ("yaml_to_json", "deeply nested", ".yaml", lambda: nested(10_000, "[", "]"), "nested too deeply"),
    ("yaml_to_json", "memory bomb (2.5 MB of [a,…])", ".yaml", lambda: bombs.yaml_flow_scalars(5 * MB // 2), "nodes"),
    ("xlsx_to_csv", "empty", ".xlsx", b"", "not a readable XLSX workbook"),
    ("xlsx_to_csv", "truncated", ".xlsx", lambda: real_xlsx()[:3000], "not a readable XLSX workbook"),
    ("xlsx_to_csv", "a zip, not a workbook", ".xlsx", lambda: zip_of("a.txt", b"hi"), "not a readable XLSX workbook"),
    ("xlsx_to_csv", "decompression bomb (300 KB to 300 MB)", ".xlsx", bombs.xlsx_core_properties, "more than 100 to 1"),
    ("image_to_webp", "empty", ".png", b"", "not an image"),
    ("image_to_webp", "truncated", ".png", lambda: real_png()[:20_000], "truncated or corrupt"),
    ("image_to_webp", "wrong format (text)", ".png", b"this is not an image\n", "not an image"),
    ("image_to_webp", "lies about its size", ".png", lambda: png_claiming(100_000, 100_000), "too many pixels"),
]
SUFFIX = {
    "csv_to_json": ".csv",
    "json_to_csv": ".json",
    "json_to_xml": ".json",
    "json_to_yaml": ".json",
    "xml_to_json": ".xml",
    "yaml_to_json": ".yaml",
    "xlsx_to_csv": ".xlsx",
    "image_to_webp": ".png",
}


def slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text)


def assert_failed_cleanly(worker: Worker, root: Path, task_id: str, target: str, *, error: str, says: str = "") -> Job:
    job = wait_for(lambda: finished(task_id), timeout=90, message=f"job {task_id}")
    assert job.state == JobState.FAILED
    # Celery stores the outcome after the task body finished the row: wait for it, so it lands
    # before this test's database flush and not in a later test's tables.
    assert wait_for(lambda: stored_result(task_id), timeout=30).status == "FAILURE"
    first_line = job.error.splitlines()[0]
    assert first_line.startswith(error), job.error[:2000]
    assert says in first_line
    assert len(first_line) < 500  # readable: a sentence, not a dump
    assert not (root / target).exists()  # no partial output, nor a leftover temp file
    out = (root / target).parent
    assert not [p.name for p in out.iterdir() if p.name.endswith(".part")] if out.exists() else True
    assert worker.proc.poll() is None
    return job


@pytest.mark.parametrize(
    ("name", "case", "suffix", "content", "says"), CORPUS, ids=[f"{name}-{slug(case)}" for name, case, *_ in CORPUS]
)
def test_bad_file__fails_the_job_readably_and_the_worker_lives(
    worker: Worker, root: Path, broker: Connection, name: str, case: str, suffix: str, content: Bytes, says: str
) -> None:
    source = root / f"{name}-{slug(case)}{suffix}"
    source.write_bytes(content() if callable(content) else content)
    target = f"out/{source.stem}.out"
    result = convert(name, source.name, target)
    assert_failed_cleanly(worker, root, result.id, target, error="ConversionError: ", says=says)


@pytest.mark.parametrize("name", sorted(SUFFIX))
def test_directory_instead_of_a_file__refused_at_submission(root: Path, broker: Connection, name: str) -> None:
    source = root / f"a-directory-{name}{SUFFIX[name]}"
    source.mkdir(exist_ok=True)
    with pytest.raises(InvalidArguments, match="is a directory, not a file"):
        convert(name, source.name, f"out/dir-{name}.out")
    assert not Job.objects.filter(task_name=f"converters.{name}").exists()


@pytest.mark.parametrize("name", sorted(SUFFIX))
def test_directory_swapped_in_after_submission__fails_readably_in_the_worker(
    worker: Worker, root: Path, broker: Connection, name: str
) -> None:
    source = root / f"becomes-a-directory-{name}{SUFFIX[name]}"
    source.write_text("a file at submission\n")
    with transaction.atomic():  # published on commit: the swap happens before any worker can see the job
        result = convert(name, source.name, f"out/dir-{name}.out")
        source.unlink()
        source.mkdir()
    assert_failed_cleanly(
        worker, root, result.id, f"out/dir-{name}.out", error="ConversionError: ", says="not a regular file"
    )


@pytest.mark.parametrize("name", sorted(SUFFIX))
def test_symlink_out_of_the_root_after_submission__refused_in_the_worker(
    worker: Worker, root: Path, broker: Connection, name: str
) -> None:
    source = root / f"swapped-{name}{SUFFIX[name]}"
    source.write_text("fine at submission\n")
    with transaction.atomic():  # published on commit: the swap happens before any worker can see the job
        result = convert(name, source.name, f"out/swapped-{name}.out")
        link = root / f".link-{name}"
        link.symlink_to("/etc/passwd")
        os.replace(link, source)  # the file is now a symlink out of the root
    job = assert_failed_cleanly(
        worker, root, result.id, f"out/swapped-{name}.out", error="PathOutsideRoot: ", says="outside the allowed root"
    )
    assert "root:" not in job.error  # nothing of /etc/passwd leaked into the error


def test_corpus__covers_every_converter() -> None:
    from converters import tasks  # noqa: F401  (registers the shipped converters)
    from converters.registry import CONVERTERS

    assert {name for name, *_ in CORPUS} == set(SUFFIX) == set(CONVERTERS)
