"""A tiny document model for generated docs, rendered to Markdown and to printable HTML.

The runbook is built once as blocks and rendered twice, so the Markdown and the HTML can never say
different things. Pure: blocks in, text out; output is byte-for-byte deterministic.

The text of a block is Markdown that dr writes: `code` spans, **bold** and [links](#anchor). Anything
that came from a graph, a repository or a drill (a name, a description, a detail) goes in through
`text()` (escaped: it reads as written, never as markup) or `code()` (a code span that holds it whole),
so it can never make a link, a tag or an attribute. Links go to `#...`, relative paths and http(s) only.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass

from dr.core.text import one_line


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


# What Markdown (CommonMark, GitHub's) could read as markup in text: escaped with a backslash by `text()`.
_MARKUP = frozenset("\\`*_[]<>&|~#!")
_PUNCTUATION = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")  # what a backslash escapes in CommonMark


def text(value: str) -> str:
    """`value` (from the graph, a repository, a drill) as text in a block: its markup characters escaped,
    line breaks and runs of spaces as one space, other control characters written as escapes."""
    return "".join("\\" + ch if ch in _MARKUP else ch for ch in one_line(" ".join(str(value).split())))


def code(value: str) -> str:
    """`value` as a code span that holds it whole: fenced by more backticks than it holds in a row."""
    shown = one_line(str(value))
    fence = "`" * (max((len(run) for run in re.findall(r"`+", shown)), default=0) + 1)
    # CommonMark takes one space off each end of a span that starts and ends with one: put one back.
    pad = " " if shown[:1] == "`" or shown[-1:] == "`" or (shown[:1] == " " and shown[-1:] == " ") else ""
    return f"{fence}{pad}{shown}{pad}{fence}"


def _md_cell(cell: str) -> str:
    return re.sub(r"(?<!\\)\|", r"\\|", cell).replace("\n", " ")  # a `|` text() escaped stays escaped


def to_markdown(blocks: Sequence[Block]) -> str:
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):  # an explicit anchor stays a link target in Markdown too
            anchor = f'<a id="{html.escape(block.anchor)}"></a>\n\n' if block.anchor else ""
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


def safe_link(url: str) -> bool:
    """A link dr makes: to an anchor of the page, a relative path, or http(s); never a script scheme
    (`javascript:`, `data:`), another host without a scheme (`//host`) or a path from the root."""
    if url.startswith("#") or re.match(r"https?://[^/\s]", url, flags=re.IGNORECASE):
        return True
    first = re.split(r"[/?#]", url, maxsplit=1)[0]
    return bool(url) and ":" not in first and not url.startswith(("/", "\\")) and not re.search(r"[\s<>\"'`]", url)


def _inline_html(markdown: str, *, links: bool = True) -> str:
    """dr's inline Markdown as HTML: backslash escapes, code spans, **bold**, [text](url) links (see
    `safe_link`); everything else is text, escaped."""
    out: list[str] = []
    i, end = 0, len(markdown)
    while i < end:
        ch = markdown[i]
        if ch == "\\" and i + 1 < end and markdown[i + 1] in _PUNCTUATION:
            out.append(html.escape(markdown[i + 1], quote=False))
            i += 2
        elif ch == "`":
            fence = re.match(r"`+", markdown[i:])
            assert fence is not None
            run = fence.group()
            close = re.compile(rf"(?<!`){run}(?!`)").search(markdown, i + len(run))
            if close is None:
                out.append(html.escape(run, quote=False))
                i += len(run)
                continue
            inner = markdown[i + len(run):close.start()]
            if len(inner) >= 2 and inner.startswith(" ") and inner.endswith(" ") and inner.strip(" "):
                inner = inner[1:-1]
            out.append(f"<code>{html.escape(inner, quote=False)}</code>")
            i = close.end()
        elif markdown.startswith("**", i) and (close_at := _closing(markdown, "**", i + 2)) > i + 2:
            out.append(f"<strong>{_inline_html(markdown[i + 2:close_at], links=links)}</strong>")
            i = close_at + 2
        elif ch == "[" and links and (link := _link_at(markdown, i)) is not None:
            label, url, i = link
            inner = _inline_html(label, links=False)
            out.append(f'<a href="{html.escape(url, quote=True)}">{inner}</a>' if safe_link(url) else inner)
        else:
            out.append(html.escape(ch, quote=False))
            i += 1
    return "".join(out)


def _closing(markdown: str, delimiter: str, start: int) -> int:
    """Where `delimiter` closes what opened before `start`, skipping escapes and code spans; -1 if nowhere."""
    i = start
    while i < len(markdown):
        if markdown[i] == "\\":
            i += 2
        elif markdown[i] == "`":
            run = re.match(r"`+", markdown[i:])
            assert run is not None
            close = re.compile(rf"(?<!`){run.group()}(?!`)").search(markdown, i + len(run.group()))
            i = close.end() if close is not None else i + len(run.group())
        elif markdown.startswith(delimiter, i):
            return i
        else:
            i += 1
    return -1


def _link_at(markdown: str, start: int) -> tuple[str, str, int] | None:
    """(label, url, where it ends) of a `[label](url)` at `start`, or None."""
    close = _closing(markdown, "]", start + 1)
    if close < 0 or not markdown.startswith("(", close + 1):
        return None
    url = re.match(r"\(([^()\s]*)\)", markdown[close + 1:])
    if url is None:
        return None
    return markdown[start + 1:close], url.group(1), close + 1 + url.end()


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
