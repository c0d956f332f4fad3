"""``manage.py queueprio <subcommand>``: operator commands, one module each under ``queueprio.cli``.

A subcommand module provides ``HELP`` (one line), ``add_arguments(parser)`` and
``handle(command, **options)``. Adding one is one line in :data:`SUBCOMMANDS`.
"""

from __future__ import annotations

from importlib import import_module
from types import ModuleType
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

#: Subcommand name -> the module that implements it.
SUBCOMMANDS: dict[str, str] = {
    "status": "queueprio.cli.status",
    "migrate-queue": "queueprio.cli.queue_move",
    "reconcile": "queueprio.cli.reconcile",
}


def load(name: str) -> ModuleType:
    return import_module(SUBCOMMANDS[name])


class Command(BaseCommand):
    help = "Inspect and operate queueprio. Priority 1 is the most urgent, 10 the least."

    def add_arguments(self, parser: CommandParser) -> None:
        subcommands = parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
        for name in SUBCOMMANDS:
            module = load(name)
            module.add_arguments(subcommands.add_parser(name, help=module.HELP, description=module.__doc__))

    def handle(self, *args: Any, subcommand: str, **options: Any) -> None:
        load(subcommand).handle(self, **options)
