"""Memory per job: the worker child's data limit, and estimates checked before a document is parsed.

Two layers. Each converter estimates, from what it can count cheaply before the expensive step
(structural characters, YAML events, pixels, zip headers), what its conversion will hold in
memory, and refuses a document whose estimate is over ``CONVERTERS_MAX_MEMORY_MB`` less a reserve:
a readable error, before any of that memory is used. Behind that, every worker child runs with
``RLIMIT_DATA`` at the same figure (``apply_memory_limit``, connected to Celery's
``worker_process_init``), so whatever no estimate foresaw fails its job with ``MemoryError``,
which the task turns into a ``ConversionError``, instead of taking the machine's memory.

``RLIMIT_DATA``, not ``RLIMIT_AS``: since Linux 4.7 it counts every private writable mapping
(the heap, anonymous ``mmap``: where Python objects, parse trees and decoded pixels live) and
not address space that holds no data of the process (shared library code, read-only file
mappings, the ``PROT_NONE`` regions malloc reserves per thread arena), so the limit follows
what a job really allocates rather than how libraries lay out their address space.
"""

from __future__ import annotations

import logging
import resource
from collections.abc import Callable
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from .conf import settings
from .errors import ConversionError

logger = logging.getLogger(__name__)

MiB = 1024 * 1024
#: Below this a worker child has too little room for any real document next to itself.
MIN_MEMORY_MB = 512
#: What a document's estimate may not use of the limit: the worker process itself (about 80 MiB of
#: data before its first job, more once earlier jobs have left the heap fragmented) and slack.
RESERVE = 256 * MiB


def memory_limit() -> int | None:
    """``CONVERTERS_MAX_MEMORY_MB`` in bytes, or ``None`` for no limit."""
    value: object = settings.MAX_MEMORY_MB
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < MIN_MEMORY_MB:
        raise ImproperlyConfigured(
            f"CONVERTERS_MAX_MEMORY_MB must be None or a whole number of MiB, at least {MIN_MEMORY_MB}; got {value!r}"
        )
    return value * MiB


def document_budget() -> int | None:
    """Bytes a document's estimate may come to, or ``None`` when there is no limit."""
    limit = memory_limit()
    return None if limit is None else limit - RESERVE


def apply_memory_limit(**_: object) -> None:
    """Limit this process's data to ``CONVERTERS_MAX_MEMORY_MB`` (a ``worker_process_init`` receiver).

    Never raises the hard limit (an unprivileged process can't) nor loosens a tighter one set outside.
    """
    limit = memory_limit()
    if limit is None:
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    if soft != resource.RLIM_INFINITY:
        limit = min(limit, soft)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
    logger.info("converters: worker process data limit %d MiB (RLIMIT_DATA)", limit // MiB)


def check_estimate(source: Path, estimate: int, what: str | Callable[[], str], *, at_least: bool = False) -> None:
    """Refuse ``source`` if ``estimate`` bytes are over the document budget; ``what`` says what was counted.

    ``what`` may be a function, called only to word a refusal. ``at_least``: counting stopped once
    past the budget, so the estimate is a floor.
    """
    budget = document_budget()
    if budget is not None and estimate > budget:
        need = f"more than {_mib(budget)}" if at_least else f"about {_mib(estimate)}"
        counted = what if isinstance(what, str) else what()
        raise ConversionError(
            f"{source.name}: {counted} would need {need} MiB of memory; a job may use "
            f"{_mib(budget)} MiB for its document (CONVERTERS_MAX_MEMORY_MB = {settings.MAX_MEMORY_MB})"
        )


def out_of_memory(source: Path) -> ConversionError:
    """The error for a conversion that hit the process's memory limit (``MemoryError``)."""
    limit = memory_limit()
    where = f"the {limit // MiB} MiB limit per worker process" if limit else "the memory available"
    return ConversionError(
        f"{source.name}: converting it needs more memory than {where} (CONVERTERS_MAX_MEMORY_MB); "
        "the input is too large or expands too much"
    )


def reraise_memory_error(exc: BaseException) -> None:
    """Raise ``MemoryError`` if ``exc`` is one or was caused by one.

    For catch-alls around libraries that raise an open-ended set of types on bad input: running
    out of memory is not a corrupt file, and the task reports it as the memory limit.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, MemoryError):
            raise MemoryError from None
        seen.add(id(current))
        current = current.__cause__ or current.__context__


def _mib(size: int) -> str:
    return f"{-(-size // MiB):,}"
