"""A draft recovery graph as YAML text, every guess marked `# REVIEW:` on the entry it concerns (pure)."""

from __future__ import annotations

from typing import Any

import yaml

from dr.core.graph_schema import modeline
from dr.gitops_import.infer import Draft, Entry

REVIEW = "# REVIEW:"


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def _block(name: str, entry: Entry) -> list[str]:
    lines = [f"  {REVIEW} {item}" for item in entry.review]
    body = {k: v for k, v in entry.body.items() if v not in ([], {}, None, "")}
    dumped = yaml.dump({name: body}, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=110)
    lines += ["  " + line for line in dumped.rstrip("\n").splitlines()]
    return lines


def render(draft: Draft, *, source: str) -> str:
    # Editors check the graph as it is reviewed (the schema is written beside it, or `dr schema --out`).
    lines = [modeline(),
             f"# Recovery graph imported by `dr import {draft.tool} {source}`: a starting point, not a finished graph.",
             f"# Decide every `{REVIEW}` below (estimates, prod_only, how bootstrap steps run), then run",
             "# `dr plan --graph <this file>` and `dr plan --mode drill`.",
             *[f"{REVIEW} {item}" for item in draft.review],
             f"cluster: {draft.cluster}",
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
