"""Command groups whose sub-commands are built when they are used, not at every start.

Typer builds a Click command from each command function's signature (type hints, defaults,
every option): for the whole tree of pointctl that is most of the time a command takes before
it does anything. A ``LazyGroup`` knows its sub-commands by name and builds one, with Typer's
own builders, the first time it is looked up; ``pointctl balance`` builds the root and
``balance``, nothing else. Its help lists every sub-command with its short help, taken from
the same definitions without building them.
"""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

import typer.main
from typer import _click
from typer.core import TyperCommand, TyperGroup
from typer.models import CommandInfo, DefaultPlaceholder, TyperInfo

Definition = CommandInfo | TyperInfo


def command_name(info: CommandInfo) -> str:
    assert info.callback is not None
    return info.name or typer.main.get_command_name(info.callback.__name__)


class LazyCommands(MutableMapping[str, _click.Command]):
    """Sub-commands by name: each found (``find`` returns its Typer definition, importing its
    module) and built the first time it is read, then kept."""

    def __init__(self, find: dict[str, Callable[[], Definition]],
                 settings: dict[str, Any]) -> None:
        self._find = dict(find)
        self._built: dict[str, _click.Command] = {}
        self._settings = settings

    def __getitem__(self, name: str) -> _click.Command:
        if name not in self._built:
            if name not in self._find:
                raise KeyError(name)
            self._built[name] = build(self._find[name](), self._settings)
        return self._built[name]

    def __setitem__(self, name: str, command: _click.Command) -> None:
        self._find.setdefault(name, functools.partial(_given, CommandInfo(name=name)))
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        del self._find[name]
        self._built.pop(name, None)

    def __contains__(self, name: object) -> bool:  # without building it
        return name in self._find

    def __iter__(self) -> Iterator[str]:
        return iter(self._find)

    def __len__(self) -> int:
        return len(self._find)

    def summary(self, name: str) -> _click.Command:
        """The command as its group's help lists it (name, short help, panel, hidden), without
        its parameters: built from the same definition as ``self[name]``."""
        if name in self._built:
            return self._built[name]
        definition = self._find[name]()
        if isinstance(definition, TyperInfo):
            solved = typer.main.solve_typer_info_defaults(definition)
            return TyperCommand(name, help=solved.help, short_help=solved.short_help,
                                hidden=solved.hidden, deprecated=solved.deprecated,
                                rich_help_panel=solved.rich_help_panel)
        assert definition.callback is not None
        text = (inspect.cleandoc(definition.help) if definition.help is not None
                else inspect.getdoc(definition.callback))
        return TyperCommand(name, help=text, short_help=definition.short_help,
                            hidden=definition.hidden, deprecated=definition.deprecated,
                            rich_help_panel=definition.rich_help_panel)


class LazyGroup(TyperGroup):
    """A Typer group over ``LazyCommands``: lists names without building, builds what runs."""

    _listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        return list(self.commands)

    def get_command(self, ctx: Any, cmd_name: str) -> _click.Command | None:
        if self._listing and isinstance(self.commands, LazyCommands):
            return self.commands.summary(cmd_name) if cmd_name in self.commands else None
        return self.commands.get(cmd_name)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True  # the list of sub-commands needs their short help only
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


def _given(definition: Definition) -> Definition:
    return definition


def sub_commands(typer_app: typer.Typer) -> dict[str, Callable[[], Definition]]:
    """The commands and groups registered on a Typer app, by name, in its order."""
    found: dict[str, Callable[[], Definition]] = {}
    for info in typer_app.registered_commands:
        found[command_name(info)] = functools.partial(_given, info)
    for group in typer_app.registered_groups:
        assert isinstance(group.name, str), "pointctl's groups are named"
        found[group.name] = functools.partial(_given, group)
    return found


def build(definition: Definition, settings: dict[str, Any]) -> _click.Command:
    """One command with Typer's builder; a group as a ``LazyGroup`` over its own commands."""
    if isinstance(definition, CommandInfo):
        return typer.main.get_command_from_info(
            definition, pretty_exceptions_short=settings["pretty_exceptions_short"],
            rich_markup_mode=settings["rich_markup_mode"])
    typer_app = definition.typer_instance
    assert typer_app is not None
    # Typer builds the group itself (callback, options, help) from a copy without commands
    shell = copy.copy(typer_app)
    shell.registered_commands, shell.registered_groups = [], []
    info = copy.copy(definition)
    info.typer_instance = shell
    if isinstance(info.cls, DefaultPlaceholder) and isinstance(typer_app.info.cls,
                                                              DefaultPlaceholder):
        info.cls = LazyGroup
    group = typer.main.get_group_from_info(info, **settings)
    group.commands = LazyCommands(sub_commands(typer_app), settings)
    return group
