"""A draft recovery graph as YAML text, every guess marked `# REVIEW:` on the entry it concerns (pure).

Every value from the repository (names, paths, charts) reaches the text through the YAML emitter, never by
joining strings; a review note is one comment line whatever it holds (`dr.core.text.one_line`): a name with
a newline and YAML in it cannot end its comment and write a component of its own.
"""

from __future__ import annotations

from typing import Any

import yaml

from dr.core.graph_schema import modeline
from dr.core.text import one_line
from dr.gitops_import.infer import Draft, Entry

REVIEW = "# REVIEW:"


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # Text with a line break or another control character in double quotes, escaped (`\n`): a reviewer sees
    # one value on one line, never a line of the repository's text that looks like the graph's own.
    style = None if value.isprintable() else '"'
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def comment(item: str) -> str:
    """A review note as one comment line."""
    return f"{REVIEW} {one_line(item)}"


def _yaml(value: Any) -> list[str]:
    """`value` as the emitter writes it, line by line (a multi-line scalar stays inside its quotes)."""
    dumped = yaml.dump(value, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=110)
    return dumped.rstrip("\n").split("\n")


def _block(name: str, entry: Entry) -> list[str]:
    lines = [f"  {comment(item)}" for item in entry.review]
    body = {k: v for k, v in entry.body.items() if v not in ([], {}, None, "")}
    lines += ["  " + line for line in _yaml({name: body})]
    return lines


def render(draft: Draft, *, source: str) -> str:
    # Editors check the graph as it is reviewed (the schema is written beside it, or `dr schema --out`).
    lines = [modeline(),
             f"# Recovery graph imported by `dr import {one_line(draft.tool)} {one_line(source)}`: a starting point, "
             "not a finished graph.",
             f"# Decide every `{REVIEW}` below (estimates, prod_only, how bootstrap steps run), then run",
             "# `dr plan --graph <this file>` and `dr plan --mode drill`.",
             *[comment(item) for item in draft.review],
             *_yaml({"cluster": draft.cluster}),
             f"{REVIEW} the Kubernetes minor version of the cluster",
             'kubernetes: "1.30"',
             f"{REVIEW} markers of production a drill must never touch (domains, buckets, hosts)",
             "prod_markers: []"]
    if draft.backups:
        lines.append("backups:")
        for name, entry in draft.backups.items():
            lines += _block(name, entry)
    lines.append("components:")
    for name, entry in draft.components.items():
        lines += _block(name, entry)
    return "\n".join(lines) + "\n"


def review_items(text: str) -> list[str]:
    """The decisions a rendered draft still asks for."""
    return [line.strip()[len(REVIEW):].strip() for line in text.splitlines() if line.strip().startswith(REVIEW)]
