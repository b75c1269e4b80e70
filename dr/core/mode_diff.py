"""What drill mode changes: two resource plans compared component by component and object by object.

Pure; shown by `dr preview --diff` and written into the drill runbook.
"""

from __future__ import annotations

import json
from typing import Any

from dr.core.resources import ResourcePlan


def diff_modes(first: ResourcePlan, second: ResourcePlan) -> str:
    """What changes between two resource plans, component by component and object by object."""
    lines = [f"Changes from {first.mode} to {second.mode}:"]
    a = {c.name: c for c in first.components}
    b = {c.name: c for c in second.components}
    for name in sorted(set(a) - set(b)):
        lines.append(f"- component {name} (only in {first.mode})")
    for name in sorted(set(b) - set(a)):
        lines.append(f"+ component {name} (only in {second.mode})")
    for name in [c.name for c in second.components if c.name in a]:
        old, new = a[name], b[name]
        if old.depends_on != new.depends_on:
            lines.append(f"~ component {name}: depends on {', '.join(old.depends_on)} -> {', '.join(new.depends_on)}")
        old_children = {c.name: c for c in old.children}
        for child in new.children:
            before = old_children.get(child.name)
            if before is None:
                lines.append(f"+ {name}: {child.kind} {child.name}")
                continue
            for path, x, y in _changes(dict(before.inputs), dict(child.inputs)):
                lines.append(f"~ {name}: {child.kind} {child.name}: {path}: {_short(x)} -> {_short(y)}")
            if before.protect != child.protect:
                lines.append(f"~ {name}: {child.kind} {child.name}: protect {before.protect} -> {child.protect}")
    if len(lines) == 1:
        lines.append("  (no changes)")
    return "\n".join(lines) + "\n"


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str) if value is not None else "(absent)"
    return text if len(text) <= 80 else text[:77] + "..."


def _changes(old: Any, new: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            out += _changes(old.get(key), new.get(key), f"{path}.{key}" if path else str(key))
        return out
    return [] if old == new else [(path, old, new)]
