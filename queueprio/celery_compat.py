"""Backports of the two Celery APIs queueprio uses that older supported Celery releases lack.

* ``Task.__class_getitem__`` (Celery 5.7): queueprio subscripts ``celery.Task[Any, Any]`` for the
  type checker, and ``class PriorityTask(celery.Task[Any, Any])`` does it at run time, which
  raises ``TypeError: type 'Task' is not subscriptable`` on Celery 5.5 and 5.6.
* ``celery.app.trace.get_actual_ignore_result`` (Celery 5.6): the worker path asks it whether
  to store a job's STARTED state.

``queueprio/__init__.py`` imports this module first, so both are in place before any other
queueprio module loads. Each is what the newer Celery defines, copied; on a Celery that has it,
nothing is touched. The matrix (noxfile.py) runs Celery 5.5 and 5.6 with them.
"""

from __future__ import annotations

import types
from typing import Any

import celery
from celery.app import trace
from celery.app.task import Context

if "__class_getitem__" not in vars(celery.Task):
    celery.Task.__class_getitem__ = classmethod(types.GenericAlias)  # type: ignore[attr-defined,assignment,unused-ignore]


def get_actual_ignore_result(task: Any, req: Any) -> Any:
    """Celery 5.6's: the request's explicit ``ignore_result`` wins over the task's."""
    if req is None:
        return task.ignore_result
    actual = getattr(req, "ignore_result", None)
    # Context has a class-level ``ignore_result = False``: only an instance value was set explicitly.
    if isinstance(req, Context) and "ignore_result" not in req.__dict__:
        actual = None
    return actual if actual is not None else task.ignore_result


if not hasattr(trace, "get_actual_ignore_result"):
    trace.get_actual_ignore_result = get_actual_ignore_result  # type: ignore[attr-defined,unused-ignore]
