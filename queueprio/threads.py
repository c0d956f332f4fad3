"""Background threads that leave signals to the main thread.

The kernel delivers a process-directed signal to any thread that doesn't block it. Celery's worker
(and billiard's pool processes) count on signals landing in the main thread: SIGCHLD interrupts
the main process's event loop so that it reaps a dead pool process and fails its job over;
SIGUSR1 interrupts a pool process's task at its soft time limit. A thread of ours that took such
a signal would leave the main thread asleep until something else woke it: a killed process's job
then waited for ever to be redelivered (seen in tests/queueprio/test_execution.py). So every
thread queueprio starts blocks every signal first.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable


def start_quiet_thread(target: Callable[[], None], *, name: str) -> threading.Thread:
    """Start a daemon thread running ``target`` with every signal blocked in it."""

    def run() -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        target()

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread
