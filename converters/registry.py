"""``@converter``: register a plain conversion function as a prioritised Celery task."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from celery import shared_task

from queueprio import InvalidArguments, PriorityTask, UnknownTask, validate_priority

from . import limits, paths
from .errors import ConversionError

ConvertFn = Callable[..., dict[str, Any]]

#: converter name -> its Celery task.
CONVERTERS: dict[str, ConverterTask] = {}


class ConverterTask(PriorityTask):
    """A converter's task: ``(source, target=None, options=None)``, paths confined to the root."""

    #: Suffix of the default target file (the source with this suffix instead).
    converter_suffix: str = ""
    converter_name: str = ""

    def prepare_arguments(self, args: list[Any], kwargs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        # Refuse bad paths here, at submission: nothing is recorded or published for them.
        source, target, options = unpack(args, kwargs)
        base = paths.root()  # resolved once per submission: it costs a handful of syscalls
        source_path = paths.confine(source, base=base)
        if not source_path.exists():
            raise InvalidArguments(f"source {source!r} does not exist under the root", path=str(source))
        if source_path.is_dir():  # refused here, not failed later in the worker
            raise InvalidArguments(f"source {source!r} is a directory, not a file", path=str(source))
        if target is None:
            target_path = paths.confine(paths.default_target(source_path, self.converter_suffix), base=base)
        else:
            target_path = paths.confine(target, base=base)
        if target_path == source_path:
            raise InvalidArguments(f"target {str(target)!r} would overwrite the source")
        if options is not None and not isinstance(options, dict):
            raise InvalidArguments(f"options must be a dict, got {type(options).__name__}")
        relative = [paths.relative(source_path, base=base), paths.relative(target_path, base=base)]
        return relative, {"options": options or {}}


def unpack(args: list[Any], kwargs: dict[str, Any]) -> tuple[Any, Any, Any]:
    if len(args) > 3 or set(kwargs) - {"source", "target", "options"}:
        raise InvalidArguments("a converter takes (source, target=None, options=None)")
    values = dict(zip(("source", "target", "options"), args, strict=False)) | kwargs
    if "source" not in values:
        raise InvalidArguments("a converter needs a source path")
    return values["source"], values.get("target"), values.get("options")


def converter(*, name: str, suffix: str, priority: int | None = None) -> Callable[[ConvertFn], ConverterTask]:
    """Register ``fn(source: Path, target: Path, **options)`` as task ``converters.<name>``.

    ``priority`` is the code default on queueprio's scale (1 = most urgent … 10 = least);
    the admin can override it at run time.
    """
    if priority is not None:
        validate_priority(priority)

    def register(fn: ConvertFn) -> ConverterTask:
        @functools.wraps(fn)
        def run(source: str, target: str | None = None, options: dict[str, Any] | None = None) -> dict[str, Any]:
            # Confine again in the worker: the tree may have changed since submission.
            source_path = paths.confine(source)
            target_path = paths.confine(target) if target else paths.default_target(source_path, suffix)
            if not source_path.is_file():
                raise ConversionError(f"source {source!r} is not a regular file")
            summary = convert_within_memory(fn, source_path, target_path, options or {})
            return {**summary, "target": paths.relative(target_path)}

        task = shared_task(
            name=f"converters.{name}",
            base=ConverterTask,
            queueprio_priority=priority,
            converter_suffix=suffix,
            converter_name=name,
        )(run)
        CONVERTERS[name] = task
        return task

    return register


def convert_within_memory(fn: ConvertFn, source: Path, target: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Run ``fn``; running out of memory (the worker's limit) is the job's ``ConversionError``, not a crash."""
    try:
        return fn(source, target, **options)
    except MemoryError:
        pass
    # Raised outside the handler, so the MemoryError's traceback, and the frames holding whatever
    # filled the memory, are released first: the worker process goes on with its memory back.
    raise limits.out_of_memory(source)


def get(name: str) -> ConverterTask:
    """The converter called ``name``, or :class:`UnknownTask` listing the known ones.

    The shipped converters are registered by ``ConvertersConfig.ready``.
    """
    try:
        return CONVERTERS[name]
    except KeyError:
        known = ", ".join(sorted(CONVERTERS))
        raise UnknownTask(f"unknown converter {name!r}; known converters: {known}", name=name) from None
