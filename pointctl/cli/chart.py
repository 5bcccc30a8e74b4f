"""The chart under ``report sources``: one group of horizontal bars per day (issued, redeemed,
expired), summed over the sources shown, drawn with Rich."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# (series, colour, glyph): each series has its own glyph, so that the bars can be told apart
# without colour (NO_COLOR, a file, a pipe)
SERIES = (("issued", "green", "█"), ("redeemed", "yellow", "▓"), ("expired", "red", "░"))
LABEL_WIDTH = 11  # "2026-11-24 "


def render(rows: Sequence[dict[str, Any]], *, view: str, width: int) -> Any:
    """A Rich renderable: per day, one bar per series, scaled to the largest value."""
    from rich.console import Group
    from rich.text import Text

    prefix = "cumulative_" if view == "cumulative" else ""
    per_day: dict[str, list[int]] = {}
    for row in rows:
        sums = per_day.setdefault(row["day"], [0] * len(SERIES))
        for n, (name, _, _) in enumerate(SERIES):
            sums[n] += row[prefix + name]
    biggest = max((abs(v) for sums in per_day.values() for v in sums), default=0)
    digits = max(len(f"{v:,}") for sums in per_day.values() for v in sums) if per_day else 1
    room = max(10, width - LABEL_WIDTH - digits - 2)
    title = Text(f"Points per day ({'cumulative' if prefix else 'daily'}, all sources shown)  ",
                 style="bold")
    for name, colour, glyph in SERIES:
        title.append(f"{glyph} ", style=colour).append(f"{name}  ")
    lines = [title]
    for day, sums in per_day.items():
        for n, (_, colour, glyph) in enumerate(SERIES):
            value = sums[n]
            length = 0 if biggest == 0 else round(abs(value) / biggest * room)
            if value and length == 0:
                length = 1
            line = Text(day if n == 0 else "", no_wrap=True)
            line.pad_right(LABEL_WIDTH - len(line))
            line.append(glyph * length, style=colour).append(f" {value:,}")
            lines.append(line)
    return Group(*lines)
