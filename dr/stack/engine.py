"""The real Pulumi engine behind dr: the Automation API with a local file backend.

Every stack dr drives lives under one state directory: `pulumi-state/` (the `file://` backend),
`pulumi-home/` (plugins and the engine's own files) and `passphrase` (0600: the secrets provider's
passphrase, unless PULUMI_CONFIG_PASSPHRASE is set). Update checks and plugin downloads are off; the
CLI and the Python dynamic-provider script come from `make toolchain` (`dr.kube.toolchain`).

Programs run inline: the Automation API serves them from this process to the engine, so no separate
Python language host is needed (the Go-built one is not served by the module proxy here).
"""

from __future__ import annotations

import os
import secrets as secrets_module
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dr.errors import DrError
from dr.kube.toolchain import ENGINE, Toolchain


class EngineUnavailable(DrError):
    """The Pulumi CLI (or its Python dynamic-provider script) is not installed."""


@dataclass(frozen=True)
class Engine:
    state_dir: Path
    toolchain: Toolchain

    @classmethod
    def at(cls, state_dir: Path, toolchain: Toolchain | None = None) -> Engine:
        engine = cls(state_dir.resolve(), toolchain or Toolchain.find())
        missing = engine.toolchain.missing(ENGINE)
        if missing:
            raise EngineUnavailable(f"the Pulumi engine is not installed ({', '.join(missing)} missing); "
                                    "run `make toolchain`")
        return engine

    def passphrase(self) -> str:
        from_env = os.environ.get("PULUMI_CONFIG_PASSPHRASE")
        if from_env:
            return from_env
        path = self.state_dir / "passphrase"
        if not path.exists():
            self.state_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(secrets_module.token_urlsafe(32))
        return path.read_text(encoding="utf-8").strip()

    def env(self) -> dict[str, str]:
        backend = self.state_dir / "pulumi-state"
        home = self.state_dir / "pulumi-home"
        backend.mkdir(parents=True, exist_ok=True)
        home.mkdir(parents=True, exist_ok=True)
        return {"PULUMI_BACKEND_URL": f"file://{backend}", "PULUMI_HOME": str(home),
                "PULUMI_CONFIG_PASSPHRASE": self.passphrase(), "PULUMI_SKIP_UPDATE_CHECK": "true",
                "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true", "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK":
                "true", "PULUMI_PYTHON_CMD": sys.executable, "PATH": self.toolchain.env_path()}

    def stack(self, *, project: str, stack: str, program: Callable[[], None],
              config: Mapping[str, Any] | None = None, secret_config: Mapping[str, str] | None = None,
              work_dir: Path | None = None) -> Any:
        """Create or select `stack` of `project` running `program` inline; config set before returning."""
        from pulumi import automation

        root = self.toolchain.pulumi_root
        if root is None:
            raise EngineUnavailable("pulumi is not installed; run `make toolchain`")
        # Without a work_dir the Automation API makes a temporary one per stack and never removes it.
        work_dir = work_dir or self.state_dir / "workspaces" / project
        work_dir.mkdir(parents=True, exist_ok=True)
        options = automation.LocalWorkspaceOptions(
            work_dir=str(work_dir), env_vars=self.env(),
            pulumi_command=automation.PulumiCommand(root=str(root), skip_version_check=True),
            project_settings=automation.ProjectSettings(name=project, runtime="python",
                                                        backend=automation.ProjectBackend(url=self.env()[
                                                            "PULUMI_BACKEND_URL"])))
        handle = automation.create_or_select_stack(stack_name=stack, project_name=project, program=program,
                                                   opts=options)
        values = {key: automation.ConfigValue(value=str(value)) for key, value in (config or {}).items()}
        values.update({key: automation.ConfigValue(value=value, secret=True)
                       for key, value in (secret_config or {}).items()})
        if values:
            handle.set_all_config(values, path=True)
        return handle
