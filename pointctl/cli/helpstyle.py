"""How help pages name things, the same in every command, as in most command-line tools:

- arguments are upper-case names, plain when required (``USER``) and in brackets when optional
  (``[FILE]``), and show no type of their own (the name says what goes there);
- an option shows its value as an upper-case name (``--source SOURCE``, ``--limit N``) or its
  choices (``--format table|json|csv``); a flag shows nothing (``--dry-run``, never
  ``--dry-run <bool>``);
- a paragraph of a command's help is one paragraph, wrapped to the terminal, whatever line
  breaks its source text has; a line that starts with ``-`` starts a list item.

Typer draws the help pages; these display hooks of its are set here, once, and its help
module is imported without the parts pointctl never uses.
"""

from __future__ import annotations

import re
import sys
import types
from typing import Any

from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

_LIST_ITEM = re.compile(r"\n(?=\s*[-*] )")


def _option_value(self: Any, ctx: Any) -> str | None:
    if self.is_flag or self.count:
        return None
    if self.metavar is not None:
        return str(self.metavar)
    descriptor = self.type_descriptor
    if descriptor.is_choice:
        return "|".join(str(getattr(choice, "value", choice)).lower()
                        for choice in descriptor.choices or ())
    if descriptor.is_path:
        return "FILE"
    annotation = descriptor.annotation
    if annotation is int or (descriptor.is_list and "int" in str(annotation)):
        return "N"
    return str(self.name or "value").rsplit("_", 1)[-1].upper()


def _argument_name(self: Any) -> str:
    return str(self.metavar or self.name or "").upper()


def _usage_name(self: Any) -> str:
    name = _argument_name(self)
    if not self.required:
        name = f"[{name}]"
    return name + ("..." if self.nargs != 1 else "")


def _help_name(self: Any) -> str:
    return _argument_name(self) + ("..." if self.metavar is None and self.nargs != 1 else "")


def _paragraphs(paragraphs: list[str], markup_mode: Any) -> str:
    """Each paragraph one line for Rich to wrap; list items keep their own lines."""
    joined = []
    for paragraph in paragraphs:
        items = _LIST_ITEM.split(paragraph.strip("\n"))
        joined.append("\n".join(" ".join(item.split()) for item in items))
    return "\n\n".join(joined)


class _Unused:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("pointctl's help uses neither Markdown nor rich tracebacks")


def import_help_module() -> None:
    """Typer's help module (``typer.rich_utils``) imports ``rich.markdown`` (with markdown-it)
    and ``rich.traceback`` (with pygments) at its top, for markup mode "markdown" and pretty
    tracebacks; pointctl uses neither (markup mode "rich", pretty exceptions off), and the two
    imports were a third of the time of ``pointctl --help``. It is imported with stand-ins for
    them, removed right after, so that a later import of either gets the real module. Its
    paragraph joining is then pointctl's (``_paragraphs``)."""
    if "typer.rich_utils" not in sys.modules:
        stand_ins: dict[str, types.ModuleType] = {}
        for name, attribute in (("rich.markdown", "Markdown"), ("rich.traceback", "Traceback")):
            if name not in sys.modules:
                module = types.ModuleType(name)
                setattr(module, attribute, _Unused)
                stand_ins[name] = module
        sys.modules.update(stand_ins)
        try:
            import typer.rich_utils
        finally:
            for name, module in stand_ins.items():
                if sys.modules.get(name) is module:
                    del sys.modules[name]
    import typer.rich_utils

    typer.rich_utils._fix_linebreaks = _paragraphs


def _light(format_help: Any) -> Any:
    def light_format_help(self: Any, ctx: Any, formatter: Any) -> None:
        import_help_module()
        format_help(self, ctx, formatter)

    return light_format_help


def apply() -> None:
    TyperOption.display_type_rich = _option_value  # type: ignore[method-assign]
    TyperArgument.display_type_rich = lambda self, ctx: None  # type: ignore[method-assign]
    TyperArgument.display_name_raw = property(_argument_name)  # type: ignore[assignment]
    TyperArgument._usage_display_name = _usage_name  # type: ignore[method-assign]
    TyperArgument._rich_display_name = _help_name  # type: ignore[method-assign]
    TyperCommand.format_help = _light(TyperCommand.format_help)  # type: ignore[method-assign]
    TyperGroup.format_help = _light(TyperGroup.format_help)  # type: ignore[method-assign]
