"""The helpers users call: ``convert`` one file, ``convert_batch`` many."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from celery.result import AsyncResult

from queueprio import BatchResult, UnknownTask, record_rejection, submit_batch

from . import paths, registry
from .dedup import content_key
from .registry import ConverterTask


def get_converter(name: str, *, priority: Any = None) -> ConverterTask:
    try:
        return registry.get(name)
    except UnknownTask as exc:
        record_rejection(exc, task_name=f"converters.{name}", priority=priority)
        raise


def convert(
    name: str,
    source: str | Path,
    target: str | Path | None = None,
    *,
    priority: int | None = None,
    options: dict[str, Any] | None = None,
    dedupe: bool = False,
    **submit_options: Any,
) -> AsyncResult[Any]:
    """Convert ``source`` with converter ``name``; returns the Celery ``AsyncResult``.

    ``priority`` is queueprio's scale: 1 = most urgent … 10 = least; ``None`` takes the
    admin's or the converter's default. Paths are relative to ``CONVERTERS_ROOT`` (or
    absolute inside it). Bad input raises a ``queueprio.Rejected`` subclass and publishes nothing.
    ``dedupe=True`` derives an idempotency key from the converter, the input's content, the
    target and the options: while such a job is queued or running, the same call returns it
    (raised to ``priority`` if that is more urgent). ``caller_key=`` and ``idempotency_key=``
    pass through to :func:`queueprio.enqueue`.
    """
    task = get_converter(name, priority=priority)
    args = [str(source), None if target is None else str(target)]
    if dedupe and submit_options.get("idempotency_key") is None:
        source_path = paths.confine(source)
        if source_path.is_file():  # otherwise the submission is refused with a clear error below
            submit_options["idempotency_key"] = content_key(name, source_path, target=args[1], options=options)
    return task.apply_async(args=args, kwargs={"options": options}, priority=priority, **submit_options)


def convert_batch(
    name: str,
    sources: Iterable[str | Path],
    *,
    priority: int | None = None,
    target_dir: str | Path | None = None,
    options: dict[str, Any] | None = None,
    **submit_options: Any,
) -> BatchResult:
    """Submit one job per source: one DB round trip for the ledger, one producer connection."""
    task = get_converter(name, priority=priority)
    calls = []
    for source in sources:
        target = None
        if target_dir is not None:
            target = str(Path(target_dir) / Path(source).with_suffix(task.converter_suffix).name)
        calls.append(([str(source), target], {"options": options}))
    return submit_batch(task, calls, priority=priority, **submit_options)
