"""Subcommands of ``manage.py queueprio``: one module each, wired in the command's ``SUBCOMMANDS``."""
