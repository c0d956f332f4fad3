"""Settings for the benchmark's plain-Celery workers: the project's, with Celery's own result backend.

``queueprio.celery.configure(app)`` makes queueprio's ledger backend the result backend; a plain
Celery project would use django-celery-results' own, so the baseline does (an explicit setting
wins over ``configure``).
"""

from project.settings import *  # noqa: F403

CELERY_RESULT_BACKEND = "django-db"
