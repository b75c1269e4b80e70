"""The registry of backup tools: one module per tool, one line per tool here.

Everything dr knows about a tool's restores comes from its `RestoreTool` (see `base.py`): the graph
reader checks `repo` with it, the resource plan renders its objects, `pulumi up` and the drills wait with
its completion conditions, the restore precheck reads its secrets and awaited backups, the sandbox's
stand-in operator writes its finished status. Adding a tool is one new module and one line below.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dr.core.kube_objects import group_kind
from dr.core.restore_tools import cnpg, host, kopiur, longhorn, velero, volsync
from dr.core.restore_tools.base import Completion, GroupKind, RestoreRequest, RestoreTool, SecretsRead

TOOLS: Mapping[str, RestoreTool] = {tool.name: tool for tool in (
    host.ETCD_SNAPSHOT, host.RESTIC, host.PGBACKREST,
    cnpg.BARMAN, cnpg.BARMAN_PLUGIN_TOOL, longhorn.TOOL, velero.TOOL, volsync.TOOL,
    kopiur.TOOL,
)}
BACKUP_TOOLS: tuple[str, ...] = tuple(TOOLS)
HOST_LEVEL_TOOLS: frozenset[str] = frozenset(name for name, tool in TOOLS.items() if tool.host_level)
# When a restore object is done, per (group, kind): its dependants (the app) must not start before the
# data is back -- the blank-volume incident. One table, read by `pulumi up`, the drills and the gates.
COMPLETIONS: Mapping[GroupKind, Completion] = {key: c for tool in TOOLS.values() for key, c in tool.completions.items()}
_BY_KIND: Mapping[GroupKind, tuple[RestoreTool, ...]] = {
    key: tuple(t for t in TOOLS.values() if key in t.kinds) for t in TOOLS.values() for key in t.kinds}

__all__ = ["BACKUP_TOOLS", "COMPLETIONS", "HOST_LEVEL_TOOLS", "TOOLS", "Completion", "RestoreRequest", "RestoreTool",
           "backup_waited_for", "completion", "object_problems", "repository_problem", "restore_done", "secrets_read"]


def repository_problem(tool: str, repo: str) -> str | None:
    """Why `tool` would not read `repo` as a repository, or None (also for tools whose repository is
    named inside the cluster: Velero, VolSync)."""
    known = TOOLS.get(tool)
    return known.repository_problem(repo) if known is not None else None


def object_problems(manifest: Mapping[str, Any]) -> list[str]:
    """What a backup tool would refuse in one of the cluster's objects it reads (a kopiur backend)."""
    key = group_kind(manifest)
    return [problem for tool in TOOLS.values() if key in tool.object_checks
            for problem in tool.object_checks[key](manifest)]


def completion(manifest: Mapping[str, Any]) -> Completion | None:
    return COMPLETIONS.get(group_kind(manifest))


def restore_done(manifest: Mapping[str, Any]) -> str | None:
    """The condition a restore object is done at (`kubectl wait --for`), or None: not a restore object,
    or one that nothing waits for (a passive volume-populator source)."""
    found = completion(manifest)
    return found.condition(manifest) if found is not None else None


def secrets_read(manifest: Mapping[str, Any]) -> SecretsRead:
    kind, spec = str(manifest.get("kind", "")), manifest.get("spec", {})
    readers = {t.secrets_read for t in _BY_KIND.get(group_kind(manifest), ())}
    return [found for read in readers for found in read(kind, spec)]


def backup_waited_for(manifest: Mapping[str, Any]) -> dict[str, Any] | None:
    kind, spec = str(manifest.get("kind", "")), manifest.get("spec", {})
    namespace = str(manifest.get("metadata", {}).get("namespace", ""))
    for tool in _BY_KIND.get(group_kind(manifest), ()):
        found = tool.backup_waited_for(kind, spec, namespace)
        if found is not None:
            return found
    return None
