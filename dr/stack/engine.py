"""The real Pulumi engine behind dr: the one Automation API wrapper every front end uses.

Two kinds of stacks: dr's own (`Engine.at(state_dir)`: the sandbox drill and the tests), which live under
one state directory — `pulumi-state/` (the `file://` backend), `pulumi-home/` (plugins and the engine's
own files) and `passphrase` (0600: the secrets provider's passphrase, unless PULUMI_CONFIG_PASSPHRASE is
set) — and the user's (`Engine.for_project(dir)`: `dr drill --stack`), which use the project's
`Pulumi.yaml`, its stack files and the backend the user logged in to. Either way update checks and plugin
downloads are off, and the CLI, the Python dynamic-provider script and the pulumi-kubernetes provider
come from `make toolchain` (`dr.kube.toolchain`); `describe()` says which provider binary runs.

Programs run inline: the Automation API serves them from this process to the engine, so no separate
Python language host is needed (the Go-built one is not served by the module proxy here).
"""

from __future__ import annotations

import os
import secrets as secrets_module
import shutil
import signal
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dr import process_tree
from dr.errors import DrError
from dr.kube.toolchain import ENGINE, KUBERNETES_PROVIDER_VERSION, Toolchain


class EngineUnavailable(DrError):
    """The Pulumi CLI (or its Python dynamic-provider script) is not installed."""


def describe(toolchain: Toolchain) -> str:
    """Which engine and Kubernetes provider binaries run (plugin downloads are off: never another one)."""
    pulumi = toolchain.which("pulumi") or "pulumi (missing)"
    provider = toolchain.which("pulumi-resource-kubernetes")
    return (f"engine {pulumi}; kubernetes provider "
            f"{provider + ' (v' + KUBERNETES_PROVIDER_VERSION + ')' if provider else 'not installed'}")


@dataclass(frozen=True)
class Engine:
    state_dir: Path
    toolchain: Toolchain
    project_dir: Path | None = None  # the user's Pulumi project: its backend and stack files, not dr's

    @classmethod
    def at(cls, state_dir: Path, toolchain: Toolchain | None = None) -> Engine:
        engine = cls(state_dir.resolve(), toolchain or Toolchain.find())
        engine._check()
        return engine

    @classmethod
    def for_project(cls, project_dir: Path, toolchain: Toolchain | None = None) -> Engine:
        """The user's project (`Pulumi.yaml`, its `stackConfigDir`) with the backend they logged in to
        (`pulumi login`, or PULUMI_BACKEND_URL) and their own secrets provider."""
        project_dir = project_dir.resolve()
        if not (project_dir / "Pulumi.yaml").is_file():
            raise EngineUnavailable(f"{project_dir} has no Pulumi.yaml: run dr from the project directory")
        engine = cls(project_dir / ".dr", toolchain or Toolchain.find(), project_dir=project_dir)
        engine._check()
        return engine

    def _check(self) -> None:
        missing = self.toolchain.missing(ENGINE)
        if missing:
            raise EngineUnavailable(f"the Pulumi engine is not installed ({', '.join(missing)} missing); "
                                    "run `make toolchain`")

    def describe(self) -> str:
        return describe(self.toolchain)

    def commands_running(self, work_dir: Path) -> list[int]:
        """The `pulumi` processes this process started in `work_dir` (a stack's workspace): its own children
        whose executable is the toolchain's pulumi and whose working directory is that workspace."""
        pulumi = self.toolchain.which("pulumi")
        if pulumi is None:
            return []
        binary, where = os.path.realpath(pulumi), os.path.realpath(work_dir)
        found = []
        for pid in process_tree.children(os.getpid()):
            try:
                exe, cwd = os.readlink(f"/proc/{pid}/exe"), os.readlink(f"/proc/{pid}/cwd")
            except OSError:
                continue
            if exe == binary and cwd == where:
                found.append(pid)
        return found

    @property
    def home(self) -> Path | None:
        """The engine's own PULUMI_HOME (dr's stacks only): every engine process and plugin of these stacks
        carries it in its environment, which is how what a dead run left is recognised as dr's."""
        return None if self.project_dir is not None else self.state_dir / "pulumi-home"

    def stop_leftovers(self) -> list[str]:
        """Stop the engine processes and plugins a dead run of dr's own stacks left (after `kill -9`: the
        `pulumi` command, the Kubernetes provider, the dynamic provider, reparented and still running).
        Only processes whose environment names this engine's PULUMI_HOME, never this process or its
        children. Returns their executables' names."""
        home = self.home
        if home is None:
            return []
        needle = f"PULUMI_HOME={home}".encode()
        ours = {os.getpid(), *(pid for pid, _ in process_tree.descendants(os.getpid()))}
        found: list[process_tree.Process] = []
        for pid in process_tree.with_environment(needle):
            if pid not in ours:
                found.append((pid, process_tree.start_ticks(pid)))
        names = []
        for pid, _ in found:
            try:
                names.append(os.path.basename(os.readlink(f"/proc/{pid}/exe")))
            except OSError:
                names.append(str(pid))
        process_tree.stop(found, 5.0)
        process_tree.reap(pid for pid, _ in found)
        return names

    def clear_dead_locks(self, project: str, stack: str) -> list[Path]:
        """Remove the locks of dr's own `file://` backend whose holder is verifiably dead: written on this
        host by a pid that is no longer a running `pulumi` (a `kill -9` leaves its lock, and the next `up`
        fails at once with "the stack is currently locked"). A lock held by a live engine is left alone.
        Returns the lock files removed."""
        if self.project_dir is not None:
            return []  # the user's backend: their locks, their `pulumi cancel`
        import json
        import socket

        locks = self.state_dir / "pulumi-state" / ".pulumi" / "locks" / "organization" / project / stack
        if not locks.is_dir() or locks.is_symlink():
            return []
        pulumi = self.toolchain.which("pulumi")
        binary = os.path.realpath(pulumi) if pulumi else ""
        removed = []
        for lock in sorted(locks.glob("*.json")):
            if lock.is_symlink() or not lock.is_file():
                continue
            try:
                content = json.loads(lock.read_text(encoding="utf-8"))
                pid, host = int(content.get("pid", 0)), str(content.get("hostname", ""))
            except (OSError, ValueError, TypeError, AttributeError):
                continue  # not a lock dr can judge: left for a person
            if host != socket.gethostname() or pid <= 0:
                continue
            try:
                alive = os.path.realpath(f"/proc/{pid}/exe") == binary
            except OSError:
                alive = False
            if alive and process_tree.alive((pid, None)):
                continue
            lock.unlink()
            removed.append(lock)
        return removed

    def stop_commands(self, work_dir: Path, *, grace_s: float = 10.0) -> int:
        """Cancel the engine's commands running in `work_dir` and stop the plugins they started.

        SIGINT first (pulumi cancels the update: it asks its providers to cancel and writes its state), then,
        after `grace_s`, SIGKILL to what is left. The plugins (the Kubernetes provider, the dynamic provider)
        are the command's descendants, recorded with their start times before any signal, so a plugin
        reparented after its engine died is still found, and a pid reused since is never signalled.
        Returns how many commands were running."""
        commands = [(pid, process_tree.start_ticks(pid)) for pid in self.commands_running(work_dir)]
        plugins = [p for pid, _ in commands for p in process_tree.descendants(pid)]
        for command in commands:
            process_tree.signal_if_same(command, signal.SIGINT)
        if not process_tree.wait_gone(commands, grace_s):
            plugins += [p for pid, _ in commands for p in process_tree.descendants(pid)]  # started since
            process_tree.stop(commands, 0.0, first=signal.SIGKILL)
        process_tree.stop(list(dict.fromkeys(plugins)), 3.0)
        process_tree.reap(pid for pid, _ in plugins)  # the commands themselves: the Automation API waits for them
        return len(commands)

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

    @property
    def tmp_dir(self) -> Path:
        """The engine's temporary directory (TMPDIR of the engine and its plugins): the Kubernetes provider
        writes a kubeconfig file per Helm release there and never removes it, and a plugin stopped by a
        signal leaves what it had open (the GitOps gate's `dr-gate-*`). dr removes it (`remove_tmp`)."""
        return self.state_dir / "tmp"

    def remove_tmp(self) -> None:
        """Empty the engine's temporary directory (it stays: the stack's environment names it, and the next
        operation of the same stack, a destroy after an up, writes there again)."""
        if not self.tmp_dir.is_dir() or self.tmp_dir.is_symlink():
            return
        for entry in self.tmp_dir.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)

    def env(self) -> dict[str, str]:
        self.tmp_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        common = {"PULUMI_SKIP_UPDATE_CHECK": "true", "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
                  "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK": "true", "PULUMI_PYTHON_CMD": sys.executable,
                  "PATH": self.toolchain.env_path(), "TMPDIR": str(self.tmp_dir)}
        if self.project_dir is not None:
            return common  # the user's backend, home and secrets provider, as their environment says
        backend = self.state_dir / "pulumi-state"
        home = self.state_dir / "pulumi-home"
        backend.mkdir(parents=True, exist_ok=True)
        home.mkdir(parents=True, exist_ok=True)
        return {**common, "PULUMI_BACKEND_URL": f"file://{backend}", "PULUMI_HOME": str(home),
                "PULUMI_CONFIG_PASSPHRASE": self.passphrase()}

    def stack(self, *, project: str, stack: str, program: Callable[[], None],
              config: Mapping[str, Any] | None = None, secret_config: Mapping[str, str] | None = None,
              work_dir: Path | None = None) -> Any:
        """Create or select `stack` of `project` running `program` inline; config set before returning."""
        from pulumi import automation

        root = self.toolchain.pulumi_root
        if root is None:
            raise EngineUnavailable("pulumi is not installed; run `make toolchain`")
        env = self.env()
        command = automation.PulumiCommand(root=str(root), skip_version_check=True)
        if self.project_dir is not None:
            # The project's own Pulumi.yaml and stack files; the program still runs inline.
            options = automation.LocalWorkspaceOptions(work_dir=str(self.project_dir), env_vars=env,
                                                       pulumi_command=command)
        else:
            # Without a work_dir the Automation API makes a temporary one per stack and never removes it.
            work_dir = work_dir or self.state_dir / "workspaces" / project
            work_dir.mkdir(parents=True, exist_ok=True)
            options = automation.LocalWorkspaceOptions(
                work_dir=str(work_dir), env_vars=env, pulumi_command=command,
                project_settings=automation.ProjectSettings(
                    name=project, runtime="python", backend=automation.ProjectBackend(url=env["PULUMI_BACKEND_URL"])))
        try:
            handle = automation.create_or_select_stack(stack_name=stack, project_name=project, program=program,
                                                       opts=options)
        except automation.errors.CommandError as exc:
            last = next((line.strip() for line in reversed(str(exc).splitlines()) if "error:" in line), str(exc))
            raise EngineUnavailable(f"cannot open the Pulumi stack {stack!r}: {last.split('error:', 1)[-1].strip()}; "
                                    "log in to its backend (`pulumi login`, or PULUMI_BACKEND_URL) first") from None
        values = {key: automation.ConfigValue(value=str(value)) for key, value in (config or {}).items()}
        values.update({key: automation.ConfigValue(value=value, secret=True)
                       for key, value in (secret_config or {}).items()})
        if values:
            handle.set_all_config(values, path=True)
        return handle
