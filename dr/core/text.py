"""Text from a graph or a repository shown to a person on one line: a comment, a review note (pure)."""

from __future__ import annotations


def one_line(text: str) -> str:
    """`text` with every character that is not printable (a newline, a carriage return, a tab, an escape,
    a line or paragraph separator, a bidirectional override) written as its Python escape (`\\n`,
    `\\x1b`, `\\u2028`): nothing is lost, and nothing in it can end the line it is on or start another."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)
