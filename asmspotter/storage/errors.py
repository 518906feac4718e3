"""The errors of the store: what it cannot do, and databases it cannot use."""

from __future__ import annotations

from asmspotter.errors import AsmspotterError


class StorageError(AsmspotterError):
    """The store was asked something it cannot do (unknown run, id collision, ...)."""


class DatabaseURLError(StorageError, ValueError):
    """The database URL cannot be parsed or names an unsupported database."""


class DatabaseUnavailableError(StorageError, ConnectionError):
    """The database cannot be reached or opened."""


class DatabaseMissingError(StorageError, FileNotFoundError):
    """The SQLite file is gone while the outputs of earlier runs remain: history lost."""


class RecordNotFoundError(StorageError, LookupError):
    """A run or site id is not in the store."""
