# The two commands a new machine needs: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python

# The tests that depend on the database's concurrency control, run again on PostgreSQL.
# pytest-django creates and drops its own test database (test_queueprio_ci).
POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/queueprio_ci
# The Celery-semantics tests whose outcome rests on row locks and counters (the whole directory
# passes on PostgreSQL too: 63 in 4 min, run by hand before a release).
POSTGRES_SEMANTICS = $(addprefix tests/celery_semantics/,test_books.py test_dedup_admission.py test_held_and_scheduled.py test_lease.py test_transactions.py)
POSTGRES_TESTS ?= tests/queueprio tests/converters/test_tasks.py tests/faults/test_database_down.py $(POSTGRES_SEMANTICS)

.PHONY: demo test test-postgres test-machines matrix lint bench soak celery-suite

demo:
	bash .ci/bootstrap
	$(PY) manage.py demo

test:
	bash .ci/bootstrap
	$(PY) -m pytest $(PYTEST_ARGS)

test-postgres:
	bash .ci/bootstrap
	DATABASE_URL=$(POSTGRES_URL) $(PY) -m pytest $(POSTGRES_TESTS) $(PYTEST_ARGS)

# Many machines (tests/machines, docs/scaling.md): worker hosts in network namespaces, a 2-node
# RabbitMQ cluster and a PostgreSQL cluster of the tests' own; needs root (ip netns). The database
# URL's host and port are placeholders: the fixture starts the server and points the tests at it.
MACHINES_DATABASE_URL ?= postgres://postgres@127.0.0.1:1/queueprio_machines

test-machines:
	bash .ci/bootstrap
	DATABASE_URL=$(MACHINES_DATABASE_URL) $(PY) -m pytest tests/machines -m machines -p no:logging $(PYTEST_ARGS)

# The compatibility matrix (noxfile.py): the test subset on each supported Django x Celery pair,
# the lowest versions the package admits, and Django 6.0 where a Python 3.12 is installed.
matrix:
	bash .ci/bootstrap
	$(VENV)/bin/nox $(NOX_ARGS)

lint:
	bash .ci/bootstrap
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

# Every benchmark (bench/all.py: submit, concurrent, aging, worker) on SQLite and PostgreSQL,
# then one table of ratios with PASS/MISS; under ten minutes on 2 cores. BENCH_ARGS="--quick" for
# a smoke run, "--only submit,concurrent" for some; PostgreSQL databases bench_submit_* are
# created and dropped on BENCH_POSTGRES.
BENCH_POSTGRES ?= postgres://postgres@127.0.0.1:5432
bench:
	bash .ci/bootstrap
	$(PY) bench/all.py --postgres $(BENCH_POSTGRES) $(BENCH_ARGS)

soak:
	bash .ci/bootstrap
	$(PY) bench/soak.py $(SOAK_ARGS)

# Celery's own integration suite (t/integration/test_tasks.py, test_canvas.py), once plain and
# once with every task a queueprio.PriorityTask; prints the regressions. Needs RabbitMQ and a
# local Redis; about an hour on 2 cores (57 min measured). E.g. CELERY_SUITE_ARGS="--only queueprio -k chord --timeout 120".
celery-suite:
	REQUIREMENTS=requirements/celery-suite.txt bash .ci/bootstrap
	$(PY) -m tools.celery_suite $(CELERY_SUITE_ARGS)
