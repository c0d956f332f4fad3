"""``manage.py queueprio``: a dispatcher of subcommands, each in its own module."""

from __future__ import annotations

from importlib import import_module

import pytest
from django.core.management import CommandError, call_command

from queueprio.management.commands.queueprio import SUBCOMMANDS


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_subcommands__each_module_has_the_three_hooks(name: str) -> None:
    module = import_module(SUBCOMMANDS[name])
    assert isinstance(module.HELP, str)
    assert callable(module.add_arguments)
    assert callable(module.handle)


def test_queueprio__without_a_subcommand_is_an_error() -> None:
    with pytest.raises(CommandError, match="SUBCOMMAND"):
        call_command("queueprio")


def test_queueprio__unknown_subcommand_is_an_error() -> None:
    with pytest.raises(CommandError, match="invalid choice: 'nope'"):
        call_command("queueprio", "nope")
