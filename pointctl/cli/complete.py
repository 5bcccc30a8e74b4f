"""Shell completion of account and source names from the database.

Typer completes commands and options by itself (``pointctl --install-completion``); these
callbacks add the names of accounts and sources wherever a command takes one. They run only
while the shell asks for completions: they read the database of ``--db`` /
``POINTCTL_DATABASE_URL`` through a read-only connection, and any problem (no database yet,
server down) just means no suggestions, never an error on the user's prompt.
"""

from __future__ import annotations

import os
import re
from typing import Any

from pointctl.cli import state

_SHELL_SPECIAL = re.compile(r"([^\w@%+=:,./-])")


def _database(ctx: Any) -> str:
    root = ctx.find_root() if ctx is not None else None
    url = root.params.get("db") if root is not None else None
    return url or os.environ.get("POINTCTL_DATABASE_URL") or state.DEFAULT_URL


def _names(ctx: Any, kind: str, incomplete: str) -> list[str]:
    try:
        from sqlalchemy import select

        from pointctl.db.models import Account, Source
        from pointctl.db.session import transaction

        model: Any = Account if kind == "account" else Source
        with transaction(_database(ctx), write=False, read_only=True) as session:
            names = list(session.execute(select(model.name).order_by(model.name_key)).scalars())
    except Exception:  # noqa: BLE001 - completion never fails loudly
        return []
    # names are case-insensitive: "ride" completes to "ride Share Partner", keeping what was
    # typed (the shell only offers completions that start with it)
    found = [incomplete + name[len(incomplete):] for name in names
             if name[:len(incomplete)].lower() == incomplete.lower()]
    if os.environ.get("_POINTCTL_COMPLETE") == "complete_bash":
        # bash inserts a completion as typed text: escape what the shell would read, as
        # printf %q does ("Ride\ Share\ Partner", "Kids\ \&\ Teens"); so in bash,
        # complete before typing the first such character
        found = [_SHELL_SPECIAL.sub(r"\\\1", name) for name in found]
    return found


def account_names(ctx: Any, incomplete: str) -> list[str]:
    return _names(ctx, "account", incomplete)


def source_names(ctx: Any, incomplete: str) -> list[str]:
    return _names(ctx, "source", incomplete)
