"""Errors that the CLI prints as one line (no traceback)."""

from __future__ import annotations


class BrackitError(Exception):
    """Base class of the errors brackit raises on bad user input."""


class ConfigError(BrackitError, ValueError):
    """An invalid configuration: the message says which field and what to change."""


class DatasetError(BrackitError, ValueError):
    """A dataset file that cannot be used: names the file, the field and what was expected."""

    def __init__(self, path: object, field: str, expected: str, found: str | None = None):
        self.path = str(path)
        self.field = field
        self.expected = expected
        self.found = found
        message = f"{self.path}: field '{field}': expected {expected}"
        if found is not None:
            message += f", found {found}"
        super().__init__(message)
