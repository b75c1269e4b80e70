"""Runs dr's playbooks through ansible-runner: the only module that starts Ansible.

Each run gets a private data directory, an inventory built from the graph's `hosts` (or a local
inventory for this machine), extravars, and secrets. Secrets are playbook variables read from a
0600 file in RAM (/dev/shm) that exists only while the playbook runs; playbooks use them only in
`no_log` tasks. They are not passed as environment variables because ansible-runner writes the whole
environment into the `command` artifact; for the same reason that artifact's environment is
removed after every run (`suppress_env_files` keeps the rest of the environment off the disk). Events are
streamed to a progress callback; the result is a `PlaybookResult` with per-host counts, rc and
duration. ansible-runner does not raise when `ansible-playbook` is missing or a host cannot be
reached: this module turns both into a `PlaybookError` that says what to do.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ansible_runner

from dr import process_groups
from dr.core.spec import Host
from dr.errors import DrError
from dr.graph_file import PLAYBOOK_DIR

ProgressCallback = Callable[[str], None]


class PlaybookError(DrError):
    """A playbook could not run or failed; `result` holds what is known."""

    def __init__(self, message: str, result: PlaybookResult | None = None) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class HostCounts:
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0


@dataclass(frozen=True)
class PlaybookResult:
    playbook: str
    rc: int
    status: str
    duration_s: float
    hosts: Mapping[str, HostCounts]
    failures: tuple[str, ...] = ()  # "host: task: message", secrets already censored by no_log

    @property
    def ok(self) -> bool:
        return self.rc == 0 and self.status == "successful"

    @property
    def changed(self) -> int:
        return sum(h.changed for h in self.hosts.values())


@dataclass(frozen=True)
class Inventory:
    """Hosts and groups for one run, in ansible-runner's dict form."""

    hosts: Mapping[str, Mapping[str, Any]]
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_graph(cls, hosts: Mapping[str, Host], *, user_vars: Mapping[str, Any] | None = None) -> Inventory:
        groups: dict[str, list[str]] = {}
        for host in hosts.values():
            for group in host.groups:
                groups.setdefault(group, []).append(host.name)
        return cls(hosts={h.name: {"ansible_host": h.address, **dict(h.vars), **dict(user_vars or {})}
                          for h in hosts.values()},
                   groups={g: tuple(members) for g, members in groups.items()})

    @classmethod
    def local(cls, groups: tuple[str, ...] = ()) -> Inventory:
        """This machine as `localhost`, run with the current interpreter (discovery picks wrong ones)."""
        return cls(hosts={"localhost": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}},
                   groups={g: ("localhost",) for g in groups})

    def to_runner(self) -> dict[str, Any]:
        children: dict[str, Any] = {g: {"hosts": {h: {} for h in members}} for g, members in self.groups.items()}
        return {"all": {"hosts": {h: dict(v) for h, v in self.hosts.items()}, "children": children}}


def _ansible_playbook_binary() -> str | None:
    override = os.environ.get("DR_ANSIBLE_PLAYBOOK")  # which ansible-playbook to use, when not the venv's
    if override:
        return override if Path(override).exists() else None
    beside = Path(sys.executable).parent / "ansible-playbook"
    if beside.exists():
        return str(beside)
    return shutil.which("ansible-playbook")


def _ram_dir() -> str | None:
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


def _scrub_command_artifacts(artifacts: Path) -> None:
    """Drop the process environment ansible-runner records in each run's `command` artifact."""
    for command_file in artifacts.rglob("command"):
        try:
            recorded = json.loads(command_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if "env" in recorded:
            recorded["env"] = "removed by dr: the environment may hold credentials"
            command_file.write_text(json.dumps(recorded), encoding="utf-8")


def _ansible_error(runner: Any) -> str:
    """The ERROR line ansible-playbook printed, when it stopped before running any task."""
    try:
        text = runner.stdout.read()
    except (AttributeError, OSError, ValueError):
        return ""
    errors = [line.strip() for line in str(text).splitlines() if "ERROR!" in line or "[ERROR]" in line]
    return errors[0] if errors else ""


def run_playbook(playbook: str, *, inventory: Inventory, extravars: Mapping[str, Any] | None = None,
                 secrets: Mapping[str, str] | None = None, limit: str | None = None, check: bool = False,
                 progress: ProgressCallback | None = None, artifacts_dir: Path | None = None,
                 keep_artifacts: int = 5, playbook_dir: Path = PLAYBOOK_DIR) -> PlaybookResult:
    """Run one playbook in a worker process; raise PlaybookError unless it succeeded on every host.

    ansible-runner is not safe to run from several threads at once (concurrent runs lose their event
    directories), so every run gets its own process; the request, secrets included, goes in on stdin.
    """
    if not (playbook_dir / playbook).is_file():
        raise PlaybookError(f"playbook {playbook!r} not found in {playbook_dir}")
    if _ansible_playbook_binary() is None:
        raise PlaybookError("ansible-playbook is not installed; run `make venv` (it installs ansible-core) "
                            "or put ansible-playbook on PATH")
    artifacts_base = artifacts_dir or Path(tempfile.gettempdir()) / "dr-ansible-artifacts"
    artifacts_base.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=artifacts_base))
    (run_dir / _IN_PROGRESS).touch()
    try:
        return _run_in_worker(playbook, inventory=inventory, extravars=extravars, secrets=secrets, limit=limit,
                              check=check, progress=progress, run_dir=run_dir, playbook_dir=playbook_dir)
    finally:
        (run_dir / _IN_PROGRESS).unlink(missing_ok=True)
        _rotate(artifacts_base, keep_artifacts)


_IN_PROGRESS = ".in-progress"


def _rotate(base: Path, keep: int) -> None:
    """Keep the newest `keep` finished runs' artifacts; never touch a run still going (in any process)."""
    done = sorted((p for p in base.glob("run-*") if p.is_dir() and not (p / _IN_PROGRESS).exists()),
                  key=lambda p: p.stat().st_mtime, reverse=True)
    for old in done[max(keep, 1):]:
        shutil.rmtree(old, ignore_errors=True)


def stop_all_workers() -> int:
    """Stop every playbook run in flight (each worker's whole process group: ansible-playbook, ssh, the
    commands it started). Called when dr is interrupted, before it cleans up, so no step keeps
    working behind the cleanup's back. Returns how many were stopped."""
    return process_groups.stop()


def _run_in_worker(playbook: str, *, inventory: Inventory, extravars: Mapping[str, Any] | None,
                   secrets: Mapping[str, str] | None, limit: str | None, check: bool,
                   progress: ProgressCallback | None, run_dir: Path, playbook_dir: Path) -> PlaybookResult:
    request = {"playbook": playbook, "inventory": {"hosts": {h: dict(v) for h, v in inventory.hosts.items()},
                                                   "groups": {g: list(m) for g, m in inventory.groups.items()}},
               "extravars": dict(extravars or {}), "secrets": dict(secrets or {}), "limit": limit, "check": check,
               "run_dir": str(run_dir), "playbook_dir": str(playbook_dir)}
    # Its own process group, so an interrupt can stop the playbook and everything it started.
    # Filed under the step running it: a timeout stops this step's playbook, a signal every playbook.
    worker = process_groups.start([sys.executable, "-m", "dr.hosts.worker"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        return _talk_to_worker(worker, request, playbook, progress)
    finally:
        process_groups.forget(worker)


def _talk_to_worker(worker: subprocess.Popen[str], request: Mapping[str, Any], playbook: str,
                    progress: ProgressCallback | None) -> PlaybookResult:
    assert worker.stdin is not None and worker.stdout is not None
    worker.stdin.write(json.dumps(request, default=str))
    worker.stdin.close()
    outcome: dict[str, Any] = {}
    for line in worker.stdout:
        message = json.loads(line)
        if "progress" in message and progress is not None:
            progress(message["progress"])
        outcome.update({k: v for k, v in message.items() if k != "progress"})
    stderr = worker.stderr.read() if worker.stderr else ""
    worker.wait()
    result = _result_from(outcome["result"]) if outcome.get("result") else None
    if "error" in outcome:
        raise PlaybookError(outcome["error"], result)
    if result is None:
        raise PlaybookError(f"{playbook}: the Ansible worker died (exit {worker.returncode}): "
                            f"{stderr.strip().splitlines()[-1] if stderr.strip() else 'no output'}")
    return result


def _result_from(data: Mapping[str, Any]) -> PlaybookResult:
    return PlaybookResult(playbook=data["playbook"], rc=data["rc"], status=data["status"],
                          duration_s=data["duration_s"], hosts={h: HostCounts(**c) for h, c in data["hosts"].items()},
                          failures=tuple(data["failures"]))


def _event_handler(playbook: str, failures: list[str],
                   progress: ProgressCallback | None) -> Callable[[dict[str, Any]], bool]:
    """ansible-runner's event handler: collects the failures (host, task, message), reports progress."""

    def on_event(event: dict[str, Any]) -> bool:
        data = event.get("event_data", {})
        kind = event.get("event", "")
        host, task = data.get("host", ""), data.get("task", "")
        if kind in ("runner_on_failed", "runner_item_on_failed", "runner_on_unreachable") and not data.get(
                "ignore_errors") and (data.get("res") or {}).get("msg") != "One or more items failed":
            res = data.get("res") or {}
            stderr = str(res.get("stderr", "")).strip().splitlines()
            message = " ".join([str(res.get("msg", "") or kind), *stderr[-1:]])
            failures.append(f"{host}: {task}: {message}")
        if progress is not None:
            if kind == "playbook_on_task_start":
                progress(f"{playbook}: {task}")
            elif kind in ("runner_on_failed", "runner_on_unreachable"):
                progress(f"{playbook}: {task} FAILED on {host}")
        return True  # keep the event in the artifacts (no_log tasks are censored by Ansible)

    return on_event


def _host_counts(stats: Mapping[str, Any]) -> dict[str, HostCounts]:
    def count(key: str, name: str) -> int:
        return int(stats.get(key, {}).get(name, 0))

    return {name: HostCounts(ok=count("ok", name), changed=count("changed", name), failed=count("failures", name),
                             unreachable=count("dark", name), skipped=count("skipped", name))
            for name in set().union(*(stats.get(k, {}) for k in ("ok", "changed", "failures", "dark", "skipped")))}


def run_playbook_here(playbook: str, *, inventory: Inventory, run_dir: Path, extravars: Mapping[str, Any] | None = None,
                      secrets: Mapping[str, str] | None = None, limit: str | None = None, check: bool = False,
                      progress: ProgressCallback | None = None, playbook_dir: Path = PLAYBOOK_DIR,
                      cancelled: Callable[[], bool] = lambda: False) -> PlaybookResult:
    """Run one playbook through ansible-runner in this process (the worker's side); `cancelled`
    returning True stops ansible-playbook (the worker sets it on SIGTERM)."""
    path = playbook_dir / playbook
    if not path.is_file():
        raise PlaybookError(f"playbook {playbook!r} not found in {playbook_dir}")
    binary = _ansible_playbook_binary()
    if binary is None:
        raise PlaybookError("ansible-playbook is not installed; run `make venv` (it installs ansible-core) "
                            "or put ansible-playbook on PATH")
    failures: list[str] = []
    on_event = _event_handler(playbook, failures, progress)

    run_root = Path(tempfile.mkdtemp(prefix="dr-ansible-"))
    # One artifacts directory per run: ansible-runner's own rotation deletes the artifacts of runs that
    # are still going when several playbooks run at once, so dr rotates them itself (run_playbook).
    artifacts = run_dir
    secrets_dir = Path(tempfile.mkdtemp(prefix="dr-secrets-", dir=_ram_dir()))
    started = time.monotonic()
    envvars = {"ANSIBLE_HOST_KEY_CHECKING": "False", "ANSIBLE_RETRY_FILES_ENABLED": "False",
               "ANSIBLE_NOCOLOR": "True", "ANSIBLE_LOCAL_TEMP": str(run_root / "tmp"),
               "PATH": f"{Path(binary).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    options = ["--check", "--diff"] if check else []
    if secrets:
        secrets_file = secrets_dir / "secrets.json"
        fd = os.open(secrets_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(dict(secrets), handle)
        options += ["-e", f"@{secrets_file}"]
    cmdline = shlex.join(options) if options else None
    try:
        runner = ansible_runner.run(
            private_data_dir=str(run_root), playbook=str(path), inventory=inventory.to_runner(),
            extravars=dict(extravars or {}), envvars=envvars, suppress_env_files=True, limit=limit,
            cmdline=cmdline, quiet=True, event_handler=on_event, artifact_dir=str(artifacts),
            project_dir=os.getcwd(), cancel_callback=cancelled,
            settings={"suppress_ansible_output": True})
    finally:
        # The private data dir holds this run's inventory and extravars only; artifacts live elsewhere.
        shutil.rmtree(run_root, ignore_errors=True)
        shutil.rmtree(secrets_dir, ignore_errors=True)
        _scrub_command_artifacts(artifacts)
    result = PlaybookResult(playbook=playbook, rc=runner.rc, status=runner.status,
                            duration_s=time.monotonic() - started, hosts=_host_counts(runner.stats or {}),
                            failures=tuple(failures))
    if runner.rc == 127:
        raise PlaybookError("ansible-playbook could not be started (rc 127); is ansible-core installed in "
                            "the virtualenv? run `make venv`", result)
    if not result.hosts:
        detail = _ansible_error(runner)
        if runner.rc == 0 or "no hosts" in detail:
            raise PlaybookError(f"{playbook} ran on no host: the inventory has no host matching "
                                f"{limit or 'all'!r}; check the component's hosts against the graph's hosts", result)
        if detail:
            raise PlaybookError(f"{playbook} could not run: {detail}", result)
    unreachable = sorted(h for h, c in result.hosts.items() if c.unreachable)
    if unreachable:
        raise PlaybookError(f"{playbook}: host(s) unreachable: {', '.join(unreachable)}; check the address "
                            "in the graph's hosts, SSH access and that the machine is up", result)
    if not result.ok:
        detail = "; ".join(failures) or f"status {runner.status}, rc {runner.rc}"
        raise PlaybookError(f"{playbook} failed: {detail}", result)
    return result
