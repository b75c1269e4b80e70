"""A stack's configuration as its stack file holds it (`stacks/Pulumi.<stack>.yaml`), read without
Pulumi: `dr docs` names the secrets a stack sets, and writing docs never needs the engine or its SDK.
Encrypted values stay encrypted: they read as "[secret]"."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import yaml

from dr.errors import UsageError


def load_stack_config(stack: str, *, stacks_dir: Path = Path("stacks")) -> dict[str, str]:
    path = stacks_dir / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        raise UsageError(f"no stack file {path}; stacks are prod and drill (stacks/Pulumi.<stack>.yaml)")
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise UsageError(f"{path}:{mark.line + 1 if mark else 0}: not valid YAML") from None
    if not isinstance(document, Mapping) or not isinstance(document.get("config") or {}, Mapping):
        raise UsageError(f"{path}: a stack file is a mapping with a 'config' mapping")
    config: dict[str, str] = {}
    for key, value in (document.get("config") or {}).items():
        if isinstance(value, Mapping) and "secure" in value:
            value = "[secret]"  # encrypted in the stack file; preview never decrypts
        config[str(key)] = value if isinstance(value, str) else json.dumps(value)
    if config.get("dr:mode", "prod") not in ("prod", "drill"):
        raise UsageError(f"{path}: dr:mode must be prod or drill, not {config['dr:mode']!r}")
    if config.get("dr:recovery", "scratch") not in ("scratch", "etcd-snapshot"):
        raise UsageError(f"{path}: dr:recovery must be scratch or etcd-snapshot, not {config['dr:recovery']!r}")
    return config
