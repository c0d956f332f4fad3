"""Benchmarks for queueprio: each module is a command (``.venv/bin/python bench/<name>.py``)."""
