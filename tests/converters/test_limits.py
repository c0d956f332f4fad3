"""The per-process memory limit: the setting, RLIMIT_DATA in a worker child, and MemoryError as a readable error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from celery.signals import worker_process_init
from django.core.exceptions import ImproperlyConfigured

from converters import limits
from converters.errors import ConversionError
from converters.formats import images, tabular
from converters.registry import convert_within_memory
from tests.converters.bombs import png_pixels, workbook_with

ROOT = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024


def in_child(code: str, **settings: object) -> dict[str, Any]:
    """Run ``code`` in a fresh Django process with ``CONVERTERS_<NAME>`` settings; it sets ``result``."""
    script = (
        "import django, json, resource\n"
        "from django.conf import settings\n"
        "django.setup()\n"
        f"for name, value in json.loads({json.dumps(json.dumps(settings))}).items():\n"
        "    setattr(settings, 'CONVERTERS_' + name, value)\n"
        f"{code}\n"
        "print(json.dumps(result))\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


SEND_SIGNAL = (
    "from celery.signals import worker_process_init\n"
    "worker_process_init.send(sender=None)\n"
    "result = {'limit': resource.getrlimit(resource.RLIMIT_DATA)[0]}\n"
)


def test_signal__sets_the_data_limit_in_the_process_that_receives_it() -> None:
    assert in_child(SEND_SIGNAL, MAX_MEMORY_MB=768)["limit"] == 768 * MiB


def test_signal__the_default_is_1536_mib() -> None:
    assert in_child(SEND_SIGNAL)["limit"] == 1536 * MiB


def test_signal__none_leaves_the_process_unlimited() -> None:
    assert in_child(SEND_SIGNAL, MAX_MEMORY_MB=None)["limit"] == -1  # RLIM_INFINITY


def test_signal__a_tighter_limit_set_outside_is_kept() -> None:
    code = "resource.setrlimit(resource.RLIMIT_DATA, (600 * 2**20, resource.RLIM_INFINITY))\n" + SEND_SIGNAL
    assert in_child(code, MAX_MEMORY_MB=1024)["limit"] == 600 * MiB


def test_signal__the_receiver_is_connected_by_the_app() -> None:
    # The test process ran ConvertersConfig.ready(): the receiver is there (without sending it here).
    assert any(key[0] == "converters.memory_limit" for key, _ in worker_process_init.receivers)


def test_limit__an_allocation_over_it_is_a_memory_error_and_the_process_goes_on() -> None:
    code = (
        "from converters.limits import apply_memory_limit\n"
        "apply_memory_limit()\n"
        "try:\n"
        "    bytearray(700 * 2**20)\n"
        "    over = 'allocated'\n"
        "except MemoryError:\n"
        "    over = 'MemoryError'\n"
        "result = {'over': over, 'after': len(bytearray(100 * 2**20))}\n"
    )
    assert in_child(code, MAX_MEMORY_MB=512) == {"over": "MemoryError", "after": 100 * MiB}
    # Control: the same allocation without the limit (calloc'd, so it costs no real memory).
    assert in_child(code, MAX_MEMORY_MB=None)["over"] == "allocated"


@pytest.mark.parametrize("value", [100, 0, -5, True, "1024", 1.5])
def test_setting__nonsense_is_a_configuration_error(settings: Any, value: object) -> None:
    settings.CONVERTERS_MAX_MEMORY_MB = value
    with pytest.raises(ImproperlyConfigured, match="CONVERTERS_MAX_MEMORY_MB"):
        limits.memory_limit()


def test_setting__read_on_every_access(settings: Any) -> None:
    settings.CONVERTERS_MAX_MEMORY_MB = 2048
    assert limits.document_budget() == (2048 - 256) * MiB
    settings.CONVERTERS_MAX_MEMORY_MB = None
    assert limits.document_budget() is None


def test_convert_within_memory__memory_error_becomes_a_readable_conversion_error(settings: Any, tmp_path: Path) -> None:
    settings.CONVERTERS_MAX_MEMORY_MB = 1024

    def hungry(source: Path, target: Path, **options: Any) -> dict[str, Any]:
        raise MemoryError

    with pytest.raises(ConversionError) as caught:
        convert_within_memory(hungry, tmp_path / "big.json", tmp_path / "out", {})
    assert str(caught.value) == (
        "big.json: converting it needs more memory than the 1024 MiB limit per worker process "
        "(CONVERTERS_MAX_MEMORY_MB); the input is too large or expands too much"
    )
    # Raised after the handler: no reference to the MemoryError's traceback (and the frames that
    # held what filled the memory) travels with the error.
    assert caught.value.__context__ is None


def test_reraise_memory_error__finds_it_among_the_causes() -> None:
    try:
        raise ValueError("could not read properties") from MemoryError()
    except ValueError as exc:
        with pytest.raises(MemoryError):
            limits.reraise_memory_error(exc)
    limits.reraise_memory_error(ValueError("just bad"))  # not caused by one: nothing raised


def test_xlsx__memory_error_inside_openpyxl_is_not_reported_as_a_corrupt_file(tmp_path: Path, monkeypatch: Any) -> None:
    source = tmp_path / "in.xlsx"
    source.write_bytes(workbook_with("docProps/app.xml", lambda data: data))

    def load_workbook(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("Unable to read workbook") from MemoryError()

    monkeypatch.setattr(tabular.openpyxl, "load_workbook", load_workbook)
    with pytest.raises(MemoryError):
        tabular.xlsx_to_csv(source, tmp_path / "out.csv")
    # Control: the same ValueError without a MemoryError behind it is the file's fault.
    monkeypatch.setattr(tabular.openpyxl, "load_workbook", lambda *a, **k: (_ for _ in ()).throw(ValueError("bad")))
    with pytest.raises(ConversionError, match="not a readable XLSX workbook"):
        tabular.xlsx_to_csv(source, tmp_path / "out.csv")


def test_image__memory_error_while_decoding_is_not_reported_as_corrupt(tmp_path: Path, monkeypatch: Any) -> None:
    source = tmp_path / "in.png"
    source.write_bytes(png_pixels(8, 8))

    def exif_transpose(*args: Any, **kwargs: Any) -> None:
        raise MemoryError

    monkeypatch.setattr(images.ImageOps, "exif_transpose", exif_transpose)
    with pytest.raises(MemoryError):
        images.image_to_webp(source, tmp_path / "out.webp")
