"""Run one converter in a child process and measure the child's peak RSS (``VmHWM``).

A bomb, with or without the check that should stop it, never runs in the test process: the child
gets its own Django setup, the settings given, the functions named in ``without`` replaced by
no-ops (the control case: the same file with that check taken out), and a guard ``RLIMIT_DATA``
so that even a control can't take more than ``guard_mb`` of the machine.

Run as ``python -m tests.converters.memory_probe '<json>'``; the child prints one JSON line.
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024


@dataclass(frozen=True)
class Probe:
    """What happened in the child: its peak RSS, its RSS just before converting, the result or error."""

    peak_rss: int
    start_rss: int
    outcome: str
    log: str = field(repr=False, default="")

    @property
    def growth(self) -> int:
        """How much the conversion added to the child's peak."""
        return self.peak_rss - self.start_rss

    @property
    def peak_mib(self) -> float:
        return self.peak_rss / MiB


def probe(
    converter: str,
    source: Path,
    *,
    settings: dict[str, Any] | None = None,
    without: tuple[str, ...] = (),
    apply_limit: bool = False,
    guard_mb: int = 3072,
    options: dict[str, Any] | None = None,
    timeout: float = 240,
) -> Probe:
    """Convert ``source`` with ``converter`` (a task name, e.g. ``"json_to_xml"``) in a child process.

    ``settings``: ``CONVERTERS_<NAME>`` values for the child (e.g. ``{"MAX_MEMORY_MB": 512}``).
    ``without``: ``"module:function"`` names replaced by no-ops. ``apply_limit``: set the worker
    child's memory limit first, as ``worker_process_init`` does. ``outcome`` is ``"ok"`` or
    ``"<ExceptionType>: <message>"``, as the job's error would start.
    """
    spec = {
        "converter": converter,
        "source": str(source),
        "settings": {"ROOT": str(source.parent), **(settings or {})},
        "without": list(without),
        "apply_limit": apply_limit,
        "guard": guard_mb * MiB,
        "options": options or {},
    }
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-m", "tests.converters.memory_probe", json.dumps(spec)]
    completed = subprocess.run(
        args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout, check=False
    )
    output = completed.stdout.decode(errors="replace")
    reports = [line for line in output.splitlines() if line.startswith('{"outcome"')]
    if completed.returncode != 0 or not reports:
        raise AssertionError(f"probe child failed (exit {completed.returncode}):\n{output[-4000:]}")
    report = json.loads(reports[-1])
    return Probe(report["peak_rss"], report["start_rss"], report["outcome"], log=output)


def main(spec: dict[str, Any]) -> None:
    resource.setrlimit(resource.RLIMIT_DATA, (spec["guard"], resource.RLIM_INFINITY))
    import django
    from django.conf import settings

    django.setup()
    for name, value in spec["settings"].items():
        setattr(settings, f"CONVERTERS_{name}", value)
    for dotted in spec["without"]:
        module, attribute = dotted.split(":")
        setattr(importlib.import_module(module), attribute, _no_op)
    from converters import limits, tasks

    if spec["apply_limit"]:
        limits.apply_memory_limit()
    source = Path(spec["source"])
    start = _status("VmRSS")
    try:
        # The task's own body, as a worker runs it: paths confined to the root, MemoryError handled.
        getattr(tasks, spec["converter"]).run(source.name, f"{source.name}.out", spec["options"])
        outcome = "ok"
    except Exception as exc:
        outcome = f"{type(exc).__name__}: {exc}"
    # VmHWM: the most this process has had resident. Not ru_maxrss (getrusage, or the parent's
    # wait4): Linux carries that over exec, so a child of a big test process would report its size.
    print(json.dumps({"outcome": outcome, "peak_rss": _status("VmHWM"), "start_rss": start}), flush=True)


def _status(field: str) -> int:
    """A size from ``/proc/self/status``, in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _no_op(*args: Any, **kwargs: Any) -> None:
    return None


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
