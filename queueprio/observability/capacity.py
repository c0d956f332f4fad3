"""How many worker processes consume each queue, asked of the workers themselves and cached.

Two broadcast questions (``inspect().stats()`` for each worker's pool size, ``active_queues()``
for what it consumes), asked at once, cost ``QUEUEPRIO_HEALTH_PING_TIMEOUT``, so the answer is kept
for ``CACHE_SECONDS``: the expected-start estimates of a page of jobs share one.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import celery

from ..conf import settings

logger = logging.getLogger("queueprio")

CACHE_SECONDS = 10.0
_cache: dict[str, Any] = {}


def processes_by_queue(app: celery.Celery | None = None) -> dict[str, int]:
    """``queue -> worker processes consuming it``, from the workers that answer (cached)."""
    now = time.monotonic()
    if _cache and now - _cache["at"] < CACHE_SECONDS:
        counts: dict[str, int] = _cache["counts"]
        return counts
    app = app or celery.current_app
    inspect = app.control.inspect(timeout=float(settings.HEALTH_PING_TIMEOUT))
    try:
        # Both questions at once (each waits out the timeout for replies, on its own connection).
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="queueprio-capacity") as pool:
            asked_stats, asked_queues = pool.submit(inspect.stats), pool.submit(inspect.active_queues)
            stats: dict[str, Any] = asked_stats.result() or {}
            queues: dict[str, Any] = asked_queues.result() or {}
    except Exception:  # the broker is away: no worker can be counted (and estimates say so)
        logger.warning("could not ask the workers what they consume", exc_info=True)
        stats, queues = {}, {}
    counts = {}
    for worker, consumed in queues.items():
        size = int(((stats.get(worker) or {}).get("pool") or {}).get("max-concurrency") or 1)
        for queue in consumed:
            counts[queue["name"]] = counts.get(queue["name"], 0) + size
    _cache.update(at=now, counts=counts)
    return counts
