"""Celery signal receivers: each worker child runs with the converters' memory limit."""

from __future__ import annotations

from celery.signals import worker_process_init

from .limits import apply_memory_limit


def connect() -> None:
    """Connect the receivers (``ConvertersConfig.ready``); connecting twice is harmless."""
    # worker_process_init: sent in every pool child (prefork) as it starts, replacements included,
    # and never in the worker's main process, whose memory is the broker connection's, not a job's.
    worker_process_init.connect(apply_memory_limit, weak=False, dispatch_uid="converters.memory_limit")
