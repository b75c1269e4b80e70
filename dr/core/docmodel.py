"""A tiny document model for generated docs, rendered to Markdown and to printable HTML.

The runbook is built once as blocks and rendered twice, so the Markdown and the HTML can never say
different things. Pure: blocks in, text out; output is byte-for-byte deterministic.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Heading:
    level: int
    text: str
    anchor: str = ""


@dataclass(frozen=True)
class Para:
    text: str  # may hold `code` spans and **bold**


@dataclass(frozen=True)
class Code:
    text: str
    lang: str = ""


@dataclass(frozen=True)
class Table:
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Raw:
    """Output-specific content: Markdown text and HTML text (e.g. a Mermaid block vs an inline SVG)."""

    markdown: str
    html: str


Block = Heading | Para | Code | Table | Bullets | Raw


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: Sequence[Block]) -> str:
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):  # an explicit anchor stays a link target in Markdown too
            anchor = f'<a id="{block.anchor}"></a>\n\n' if block.anchor else ""
            out.append(f"{anchor}{'#' * block.level} {block.text}")
        elif isinstance(block, Para):
            out.append(block.text)
        elif isinstance(block, Code):
            fence = "````" if "```" in block.text else "```"
            out.append(f"{fence}{block.lang}\n{block.text.rstrip()}\n{fence}")
        elif isinstance(block, Table):
            out.append("| " + " | ".join(_md_cell(h) for h in block.headers) + " |")
            out[-1] += "\n|" + "|".join("---" for _ in block.headers) + "|"
            for row in block.rows:
                out[-1] += "\n| " + " | ".join(_md_cell(c) for c in row) + " |"
        elif isinstance(block, Bullets):
            out.append("\n".join(f"- {item}" for item in block.items))
        elif isinstance(block, Raw):
            out.append(block.markdown.rstrip())
    return "\n\n".join(out) + "\n"


def _inline_html(text: str) -> str:
    escaped = html.escape(text, quote=False)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    escaped = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", escaped)
    return re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", r'<a href="\2">\1</a>', escaped)


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.45; }
pre { background: #f4f4f4; padding: .6rem; overflow-x: auto; white-space: pre-wrap; word-break: break-all; }
code { font-family: ui-monospace, monospace; font-size: .92em; }
table { border-collapse: collapse; margin: .5rem 0; }
th, td { border: 1px solid #bbb; padding: .2rem .5rem; text-align: left; vertical-align: top; }
h3 { border-top: 2px solid #333; padding-top: .6rem; break-after: avoid; }
.graph { width: 100vw; position: relative; left: 50%; margin-left: -50vw; overflow-x: auto; box-sizing: border-box;
  padding: 0 .5rem; border-top: 1px solid #ddd; border-bottom: 1px solid #ddd; }
.graph svg { width: 100%; min-width: 56rem; height: auto; }
.graph a:hover polygon, .graph a:hover path { stroke: #c00; stroke-width: 2; }
h3:target { background: #fff6d5; }
@media print { body { margin: 0; max-width: none; } pre { border: 1px solid #ccc; } h3 { break-before: auto; }
  .graph { width: auto; left: auto; margin-left: 0; overflow: visible; border: 0; }
  .graph svg { min-width: 0; max-width: 100%; } }
"""


def to_html(blocks: Sequence[Block], *, title: str) -> str:
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           f"<title>{html.escape(title)}</title>", f"<style>{_STYLE}</style>", "</head>", "<body>"]
    for block in blocks:
        if isinstance(block, Heading):
            anchor = f' id="{html.escape(block.anchor)}"' if block.anchor else ""
            out.append(f"<h{block.level}{anchor}>{_inline_html(block.text)}</h{block.level}>")
        elif isinstance(block, Para):
            out.append(f"<p>{_inline_html(block.text)}</p>")
        elif isinstance(block, Code):
            out.append(f"<pre><code>{html.escape(block.text.rstrip(), quote=False)}</code></pre>")
        elif isinstance(block, Table):
            rows = ["<tr>" + "".join(f"<th>{_inline_html(h)}</th>" for h in block.headers) + "</tr>"]
            rows += ["<tr>" + "".join(f"<td>{_inline_html(c)}</td>" for c in row) + "</tr>" for row in block.rows]
            out.append("<table>" + "".join(rows) + "</table>")
        elif isinstance(block, Bullets):
            out.append("<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in block.items) + "</ul>")
        elif isinstance(block, Raw):
            out.append(block.html)
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"
