"""How help pages name things, the same in every command: flags show no type placeholder
(``--dry-run``, not ``--dry-run <bool>``), and arguments are upper-case names, plain when
required (``USER``) and in brackets when optional (``[FILE]``), as in most command-line
tools. Typer draws the help pages; these three of its display hooks are set here, once."""

from __future__ import annotations

from typing import Any

from typer.core import TyperArgument, TyperOption

_option_type = TyperOption.display_type_rich


def _flag_without_type(self: Any, ctx: Any) -> str | None:
    if self.is_flag or self.count:
        return None
    return _option_type(self, ctx)


def _argument_name(self: Any) -> str:
    return str(self.metavar or self.name or "").upper()


def _usage_name(self: Any) -> str:
    name = _argument_name(self)
    if not self.required:
        name = f"[{name}]"
    return name + ("..." if self.nargs != 1 else "")


def _help_name(self: Any) -> str:
    return _argument_name(self) + ("..." if self.metavar is None and self.nargs != 1 else "")


def apply() -> None:
    TyperOption.display_type_rich = _flag_without_type  # type: ignore[method-assign]
    TyperArgument._usage_display_name = _usage_name  # type: ignore[method-assign]
    TyperArgument._rich_display_name = _help_name  # type: ignore[method-assign]
