"""Django's Tasks framework on queueprio: what ``queueprio.backends.QueueprioBackend`` stands on.

``mapping`` turns a Django priority (-100…100) into queueprio's (1…10); ``registry`` knows the
Django tasks a backend validated, the only ones a worker will run; ``runner`` is the Celery
task that runs one; ``results`` reads a job back as a Django ``TaskResult``; ``compat`` finds
the framework (``django.tasks`` on Django 6, the ``django-tasks`` backport before).
"""
