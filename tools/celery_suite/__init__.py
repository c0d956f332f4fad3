"""Celery's own integration suite run against queueprio: ``make celery-suite`` (``python -m tools.celery_suite``).

``__main__`` downloads the sdist matching the installed Celery and runs ``t/integration/test_tasks.py``
and ``test_canvas.py`` twice, ``plain`` and ``queueprio``; ``plugin`` is the pytest plugin that
configures the suite's app for each mode and records every test's outcome; ``settings`` is the
Django settings module of the queueprio mode.
"""
