"""A JSON Schema (draft-07) of the recovery graph, for editors (yaml-language-server) (pure).

Built from the same field lists, layers, actions and backup tools the reader (`dr.core.spec_reader`)
checks with, so the two cannot drift apart on shape. The schema sees one file's shape only: what needs
the whole graph (a dependency on an unknown component, a cycle, a restore of an unknown backup), YAML
itself (a duplicate key) or grammar the schema language cannot say (a cron expression's fields, a
repository's syntax per tool) is left to `dr plan`, which says it with `path:line`.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from dr.core.graph import PATH_VARS
from dr.core.restore_tools import BACKUP_TOOLS
from dr.core.spec import (
    ACTIONS,
    BACKUP_FIELDS,
    COMMAND_FIELDS,
    COMPONENT_FIELDS,
    DRILL_FIELDS,
    DRILL_RECONCILED_BY_FIELDS,
    GITOPS_KINDS,
    HELM_FIELDS,
    HOST_FIELDS,
    LAYERS,
    RECONCILED_BY_FIELDS,
    RESTORE_FIELDS,
    RETENTION_KEYS,
    TALOS_FIELDS,
    TOP_FIELDS,
    VERIFY_KINDS,
)

SCHEMA_ID = "https://dr.invalid/schemas/recovery-graph.schema.json"
SCHEMA_FILE = "recovery-graph.schema.json"  # published in schema/, written beside an imported graph

_TEXT: dict[str, Any] = {"type": "string"}
_NAME: dict[str, Any] = {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63}
_DURATION: dict[str, Any] = {"type": "string", "pattern": "^(?=.)([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?$",
                             "description": "a duration with units: 90s, 8m, 1h30m, 2d"}
_NAMES: dict[str, Any] = {"oneOf": [_TEXT, {"type": "array", "items": _TEXT}],
                          "description": "one name, or a list of them"}
_MAPPING: dict[str, Any] = {"type": ["object", "null"]}
_HOST_ADDRESS: dict[str, Any] = {"type": "string", "pattern": "^[A-Za-z0-9_.:-]+$",
                                 "description": "an IP address or a host name"}
_CRON: dict[str, Any] = {
    "type": "string", "pattern": "^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|\\S+( \\S+){4,5})$",
    "description": "a cron expression with five fields (\"0 3 * * *\"), or @hourly, @daily ..."}
_TARGET_TIME: dict[str, Any] = {
    "type": "string", "description": "latest, or an ISO 8601 time with a UTC offset",
    "pattern": "^(latest|[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\\.[0-9]+)?)?"
               "(Z|[+-][0-9]{2}:?[0-9]{2}))$"}
# The variables that name a path on a host: absolute, no `..`, no control character.
_HOST_PATH: dict[str, Any] = {"type": "string", "pattern": "^/(?!(.*/)?\\.\\.(/|$))[^\\x00-\\x1f\\x7f]*$"}
_BOOLEAN: dict[str, Any] = {"type": "boolean"}


def _object(fields: tuple[str, ...], properties: dict[str, Any], *, required: tuple[str, ...] = (),
            description: str = "") -> dict[str, Any]:
    assert set(properties) == set(fields), sorted(set(properties) ^ set(fields))  # every field, no other
    out: dict[str, Any] = {"type": "object", "additionalProperties": False,
                           "properties": {f: properties[f] for f in fields}}
    if required:
        out["required"] = list(required)
    if description:
        out["description"] = description
    return out


def _host() -> dict[str, Any]:
    return _object(HOST_FIELDS, {"address": _HOST_ADDRESS, "groups": _NAMES, "vars": _MAPPING,
                                 "hostname": _HOST_ADDRESS, "host_key": _TEXT},
                   required=("address",))


def _backup() -> dict[str, Any]:
    retention = {"type": "object", "additionalProperties": False, "minProperties": 1,
                 "properties": {**{k: {"type": "integer", "minimum": 0} for k in RETENTION_KEYS},
                                "within": _DURATION}}
    return _object(BACKUP_FIELDS, {
        "tool": {"enum": list(BACKUP_TOOLS)}, "protects": _NAMES,
        "repo": {**_TEXT, "description": "where the backups are, as the tool reads it (docs/graph-format.md)"},
        "schedule": _CRON,
        "retention": retention, "rpo": _DURATION, "source": _NAMES},
        required=("tool", "repo", "schedule", "retention", "rpo"))


def _actions() -> dict[str, Any]:
    helm = _object(HELM_FIELDS, {"chart": _TEXT, "repo": _TEXT, "namespace": _TEXT, "values": _MAPPING,
                                 "release": _TEXT,
                                 "version": {**_TEXT, "description": "pinned, and quoted when YAML would read "
                                                                     "a number (\"1.16\")"}},
                   required=("chart", "repo", "version", "namespace"))
    command_object = _object(COMMAND_FIELDS, {"run": _NAMES, "cwd": _TEXT, "secrets": _NAMES, "env": _MAPPING},
                             required=("run",))
    talos = _object(TALOS_FIELDS, {"nodes": _NAMES, "config": _TEXT, "talosconfig": _TEXT, "endpoint": _TEXT,
                                   "recover_from": _TEXT, "insecure": _BOOLEAN}, required=("nodes", "config"))
    restore = _object(RESTORE_FIELDS, {"backup": _TEXT, "allow_collapsed": _BOOLEAN, "target_time": _TARGET_TIME},
                      required=("backup",))
    return {"playbook": _TEXT, "helm": helm, "manifests": _NAMES,
            "restore": restore, "command": {"oneOf": [_TEXT, {"type": "array", "items": _TEXT}, command_object]},
            "talos": talos, "external": _TEXT}


def _reconciled_by() -> dict[str, Any]:
    return _object(RECONCILED_BY_FIELDS, {"kind": {"enum": list(GITOPS_KINDS)}, "name": _TEXT, "namespace": _TEXT,
                                          "controller": _TEXT, "source": _TEXT, "path": _TEXT, "manifest": _TEXT},
                   required=("kind", "name", "controller"))


def _component() -> dict[str, Any]:
    drill = _object(DRILL_FIELDS, {"replace_with": _TEXT, "values": _MAPPING, "reconciled_by": _object(
        DRILL_RECONCILED_BY_FIELDS, {"source": _TEXT, "path": _TEXT, "substitutions": _MAPPING})})
    verify = {"type": "array", "items": {"type": "object", "oneOf": [
        {"required": [kind], "not": {"anyOf": [{"required": [other]} for other in VERIFY_KINDS if other != kind]}}
        for kind in VERIFY_KINDS]}}
    properties: dict[str, Any] = {
        "layer": {"enum": list(LAYERS)}, "depends_on": _NAMES, **_actions(), "hosts": _NAMES,
        "vars": {"type": ["object", "null"], "properties": {var: _HOST_PATH for var in PATH_VARS}},
        "estimate": _DURATION, "timeout": _DURATION, "stateful": _BOOLEAN, "prod_only": _BOOLEAN,
        "drill_only": _BOOLEAN, "drill": drill,
        "verify": verify, "description": _TEXT, "reconciled_by": _reconciled_by(), "serves": _NAMES}
    component = _object(COMPONENT_FIELDS, properties, required=("layer",))
    # One action per component; `hosts` and `vars` only with a playbook or a restore.
    component["not"] = {"anyOf": [{"required": list(pair)} for pair in itertools.combinations(ACTIONS, 2)]}
    component["if"] = {"not": {"anyOf": [{"required": ["playbook"]}, {"required": ["restore"]}]}}
    component["then"] = {"not": {"anyOf": [{"required": ["hosts"]}, {"required": ["vars"]}]}}
    return component


def graph_schema() -> dict[str, Any]:
    properties: dict[str, Any] = {
        "cluster": _TEXT, "kubernetes": {"type": "string", "pattern": "^1\\.[0-9]+$",
                                         "description": "the minor version, quoted: \"1.30\""},
        "rto": _DURATION, "hosts": {"type": ["object", "null"], "additionalProperties": _host()},
        "drill_hosts": {"type": ["object", "null"], "additionalProperties": _host()},
        "prod_markers": {"type": ["array", "null"], "items": _TEXT},
        "backups": {"type": ["object", "null"], "propertyNames": _NAME, "additionalProperties": _backup()},
        "components": {"type": ["object", "null"], "propertyNames": _NAME, "additionalProperties": _component()},
        "crds": _NAMES, "playbooks": _TEXT}
    schema = _object(TOP_FIELDS, properties, required=("cluster", "components"),
                     description="A dr recovery graph (docs/graph-format.md). `dr plan` checks what a schema "
                                 "cannot: references between components and backups, cycles, cron fields.")
    return {"$schema": "http://json-schema.org/draft-07/schema#", "$id": SCHEMA_ID, "title": "dr recovery graph",
            **schema}


def schema_text() -> str:
    return json.dumps(graph_schema(), indent=2, sort_keys=False) + "\n"


def modeline(schema: str = f"./{SCHEMA_FILE}") -> str:
    """The first line that makes yaml-language-server (VS Code, Neovim, Helix) check a graph file."""
    return f"# yaml-language-server: $schema={schema}"
