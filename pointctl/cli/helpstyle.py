"""How help pages name things, the same in every command: flags show no type placeholder
(``--dry-run``, not ``--dry-run <bool>``), and arguments are upper-case names, plain when
required (``USER``) and in brackets when optional (``[FILE]``), as in most command-line
tools. Typer draws the help pages; these three of its display hooks are set here, once, and
its help module is imported without the parts pointctl never uses."""

from __future__ import annotations

import sys
import types
from typing import Any

from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

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


class _Unused:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("pointctl's help uses neither Markdown nor rich tracebacks")


def import_help_module() -> None:
    """Typer's help module (``typer.rich_utils``) imports ``rich.markdown`` (with markdown-it)
    and ``rich.traceback`` (with pygments) at its top, for markup mode "markdown" and pretty
    tracebacks; pointctl uses neither (markup mode "rich", pretty exceptions off), and the two
    imports were a third of the time of ``pointctl --help``. It is imported with stand-ins for
    them, removed right after, so that a later import of either gets the real module."""
    if "typer.rich_utils" in sys.modules:
        return
    stand_ins = {}
    for name, attribute in (("rich.markdown", "Markdown"), ("rich.traceback", "Traceback")):
        if name not in sys.modules:
            module = types.ModuleType(name)
            setattr(module, attribute, _Unused)
            stand_ins[name] = module
    sys.modules.update(stand_ins)
    try:
        import typer.rich_utils  # noqa: F401
    finally:
        for name, module in stand_ins.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]


def _light(format_help: Any) -> Any:
    def light_format_help(self: Any, ctx: Any, formatter: Any) -> None:
        import_help_module()
        format_help(self, ctx, formatter)

    return light_format_help


def apply() -> None:
    TyperOption.display_type_rich = _flag_without_type  # type: ignore[method-assign]
    TyperArgument._usage_display_name = _usage_name  # type: ignore[method-assign]
    TyperArgument._rich_display_name = _help_name  # type: ignore[method-assign]
    TyperCommand.format_help = _light(TyperCommand.format_help)  # type: ignore[method-assign]
    TyperGroup.format_help = _light(TyperGroup.format_help)  # type: ignore[method-assign]
