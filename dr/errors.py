"""The small exception hierarchy callers actually catch.

`GraphError` carries the file and line of every problem found in a recovery graph, so the CLI
can print `path:line: message` and exit 2 without a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass


class DrError(Exception):
    """Base class of every error dr raises on purpose."""


@dataclass(frozen=True)
class Diagnostic:
    """One problem in a recovery graph, located in its file."""

    path: str
    line: int
    message: str
    severity: str = "error"  # "error" | "warning"

    def __str__(self) -> str:
        prefix = "warning: " if self.severity == "warning" else ""
        where = f"{self.path}:{self.line}" if self.line > 0 else self.path  # no line: the file as a whole
        return f"{where}: {prefix}{self.message}"


class GraphError(DrError):
    """The recovery graph is invalid; holds every error found (at least one)."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        if not diagnostics:
            raise ValueError("GraphError needs at least one diagnostic")
        self.diagnostics = tuple(diagnostics)
        super().__init__("\n".join(str(d) for d in diagnostics))


class UnknownComponents(DrError):
    """Components were asked for by name that the graph does not have (the message gives hints)."""


class UsageError(DrError):
    """A command was called wrongly (unknown component in --only, bad option value)."""


class RestoreError(DrError):
    """A restore could not be done; nothing was lost."""


class DrillFailed(DrError):
    """A drill ran but a step, a check or a target failed."""


class NoAnswer(DrError):
    """A server dr asked (a backup repository, an API server) did not answer within the time allowed; the
    call was stopped. The message names the server and the time."""
