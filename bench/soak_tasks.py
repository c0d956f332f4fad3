"""The soak's task: one side effect per run, its task id appended to a file, nothing else."""

from __future__ import annotations

import os

from celery import shared_task

from queueprio import PriorityTask


@shared_task(name="bench.soak", base=PriorityTask, bind=True)
def soak(self: PriorityTask, path: str) -> str:
    # One short O_APPEND write per run is atomic: concurrent workers never interleave lines.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{self.request.id}\n".encode())
    finally:
        os.close(fd)
    return self.request.id
