"""Errors that speak to the user.

A ``UsageError`` is a mistake the user can fix (an unknown name, a bad value, a missing
file). The command line prints its message on one line and exits with status 2, with no
traceback. Anything else is a bug or a failure during training.
"""

from __future__ import annotations


class UsageError(Exception):
    """A mistake in what the user asked for; the message says what would be right."""


class UnknownNameError(UsageError, KeyError):
    """A name that no registry holds."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DataNotFoundError(UsageError, FileNotFoundError):
    """A dataset file that is not where the user said it would be."""


class TrainingFailed(Exception):
    """Training stopped on a failure (a NaN loss, a full disk); the last good checkpoint is kept."""
