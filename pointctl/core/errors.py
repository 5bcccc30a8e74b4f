"""The one error hierarchy that crosses the service/CLI boundary.

Every error carries its documented exit code (README: Exit codes and errors); the CLI prints
``Error: <message>`` and exits
with it.
"""

from __future__ import annotations


class PointctlError(Exception):
    """Base of every error a command can end with."""

    exit_code = 1
    # a refusal recorded under its idempotency key: the command's transaction commits that
    # record (and nothing else was written) before the error ends the command
    commit = False
    replay = False  # the refusal recorded for this request earlier, given again

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RefusedError(PointctlError):
    """A rule of the ledger or the program refuses the request (exit 1)."""

    exit_code = 1


class InvalidInputError(PointctlError):
    """The request itself is malformed (exit 2)."""

    exit_code = 2


class NotFoundError(PointctlError):
    """A named account, source, entry or user does not exist (exit 3)."""

    exit_code = 3


class DatabaseUnavailableError(PointctlError):
    """The database cannot be reached or opened (exit 4)."""

    exit_code = 4


class ServiceUnavailableError(PointctlError):
    """An outside service pointctl needs is not configured or cannot be reached: the mail
    server of ``report sources --email`` (exit 4, like an unavailable database)."""

    exit_code = 4


class SchemaError(PointctlError):
    """The database schema is missing or not at the version this pointctl needs (exit 4)."""

    exit_code = 4


class RetryableConflict(PointctlError):
    """A concurrent transaction won a race (deadlock, serialization failure, the same
    idempotency key); the whole command is retried, a bounded number of times."""

    exit_code = 1
