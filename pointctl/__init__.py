"""pointctl: the point economy of a loyalty program, as a library and a command line.

The public Python API is the service functions (keyword-only, session-first, never committing),
the runners behind ``pointctl batch`` and ``expire run`` (``run_file``, ``run_due``: given a
database URL, they own their transactions) and the error types. Services are imported on
first use so that ``import pointctl`` (and ``pointctl --help``) stay free of the database
stack.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from pointctl.core.errors import (
    DatabaseUnavailableError,
    InvalidInputError,
    NotFoundError,
    PointctlError,
    RefusedError,
    SchemaError,
)

__version__ = "0.1.0"

_SERVICES = {
    "create_account": "pointctl.services.accounts",
    "list_accounts": "pointctl.services.accounts",
    "show_account": "pointctl.services.accounts",
    "edit_account": "pointctl.services.accounts",
    "set_account_status": "pointctl.services.accounts",
    "create_source": "pointctl.services.sources",
    "list_sources": "pointctl.services.sources",
    "show_source": "pointctl.services.sources",
    "edit_source": "pointctl.services.sources",
    "pause_source": "pointctl.services.sources",
    "activate_source": "pointctl.services.sources",
    "archive_source": "pointctl.services.sources",
    "adjust_inventory": "pointctl.services.sources",
    "set_policy": "pointctl.services.expiry",
    "clear_policy": "pointctl.services.expiry",
    "due_evaluations": "pointctl.services.expiry",
    "perform": "pointctl.services.expiry",
    "preview": "pointctl.services.expiry",
    "run_due": "pointctl.services.expire_runner",
    "set_reactivation": "pointctl.services.reactivation",
    "reactivate": "pointctl.services.reactivation",
    "run_file": "pointctl.services.batch_runner",
    "transaction": "pointctl.db.session",
    "upgrade": "pointctl.db.migrate",
}

__all__ = [
    "DatabaseUnavailableError", "InvalidInputError", "NotFoundError", "PointctlError",
    "RefusedError", "SchemaError", "__version__", *_SERVICES,
]


def __getattr__(name: str) -> Any:
    module = _SERVICES.get(name)
    if module is None:
        raise AttributeError(f"module 'pointctl' has no attribute {name!r}")
    return getattr(import_module(module), name)
