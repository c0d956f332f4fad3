"""What monitoring tools (Flower) see of a job's priority. Celery events carry none of their own.

Celery copies a message's ``kwargsrepr`` into its task-sent and task-received events,
and Flower shows that string as the task's kwargs (task list and task page) and
searches it. So every copy we publish carries a ``kwargsrepr`` that starts with the
job's effective priority under :data:`MARKER`::

    {'queueprio_priority': 2, 'path': 'in/a.csv'}

Flower parses a kwargs string that is a Python literal into ``key=value`` pairs, so the
search ``kwargs:queueprio_priority=2`` matches exactly priority 2 (not 12, not 2.5). A
job that aged shows the priority it asked for too, as ``queueprio_requested``. Only the
events' copy of the kwargs changes; the task still receives its real kwargs.

The display is built from the message's own ``kwargsrepr`` (:func:`display_repr`), never from
the real kwargs: a caller who passed ``kwargsrepr=`` to keep a secret out of worker logs and
Flower keeps it out (the marker joins their dict when it is one; any other text stays as it is,
without the marker).
"""

from __future__ import annotations

import ast
from typing import Any

#: The kwargs key Flower shows and searches; search for ``kwargs:queueprio_priority=N``.
MARKER = "queueprio_priority"
REQUESTED = "queueprio_requested"
#: Celery's own cap on ``kwargsrepr`` (``kwargsrepr_maxsize``); events stay small.
MAX_LENGTH = 1024
#: How much of each value survives when the whole repr is too long.
VALUE_LENGTH = 40


def display_repr(original: Any, priority: int, *, requested: int | None = None) -> Any:
    """The ``kwargsrepr`` of a copy: the message's own (Celery's repr of the kwargs, or the
    caller's ``kwargsrepr=``) with the priority marker merged in when it is a dict literal;
    anything else (the caller's free text, a repr Celery cut short or of values that are not
    literals) unchanged. It shows nothing the original did not."""
    if not isinstance(original, str) or len(original) > 4 * MAX_LENGTH:
        return original
    try:
        value = ast.literal_eval(original)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return original
    if not isinstance(value, dict):
        return original
    return kwargs_repr(value, priority, requested=requested)


def kwargs_repr(kwargs: dict[str, Any], priority: int, *, requested: int | None = None) -> str:
    """``repr`` of ``kwargs`` with the priority first; a valid Python literal within ``MAX_LENGTH``.

    When the whole repr is too long, each long value is replaced by the start of its repr
    (as a string), so the result still parses (and Flower's ``key=value`` search still works);
    if even that is too long, the values are dropped and only the marker remains.
    """
    head: dict[str, Any] = {MARKER: priority}
    if requested is not None and requested != priority:
        head[REQUESTED] = requested
    rest = {str(k): v for k, v in (kwargs or {}).items() if k not in head}
    text = repr({**head, **rest})
    if len(text) <= MAX_LENGTH:
        return text
    text = repr({**head, **{k: _shorten(v) for k, v in rest.items()}})
    if len(text) <= MAX_LENGTH:
        return text
    return repr({**head, "…": f"{len(rest)} kwargs not shown"})


def _shorten(value: Any) -> Any:
    """``value`` itself if its repr is short, else the start of its repr as a string."""
    text = repr(value)
    return value if len(text) <= VALUE_LENGTH else text[: VALUE_LENGTH - 1] + "…"
