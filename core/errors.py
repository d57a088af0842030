"""One error family: pages and the CLI catch `StudioError` and show its message; nothing else is expected."""

from __future__ import annotations


class StudioError(Exception):
    """The root of every error the studio raises on purpose (anything else is a bug, shown with its type)."""


class UserError(StudioError, ValueError):
    """A message meant for the person: what was expected, what arrived, and what to do next."""


class Cancelled(StudioError):
    """Work stopped because someone asked it to (a Cancel button, a job's cancel flag, Ctrl-C in the CLI)."""
