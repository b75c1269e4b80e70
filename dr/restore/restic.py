"""restic restore driver: list snapshots, choose one, verify what was restored.

Talks to the `restic` binary (listing, stats). The restore itself is volume-restore.yml, run by
`dr.hosts.host_steps` (the one restore path of the product and the tests). The
repository password is a secret: it travels in the environment of the restic process and of the
playbook run, never on a command line, in a file or in a message.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dr.core.backups import BackupPoint, choose_backup
from dr.core.durations import format_duration
from dr.core.invocations import S3_CREDENTIALS, ChosenBackup, restic_repository
from dr.core.spec import Retention
from dr.errors import NoAnswer, RestoreError
from dr.process_groups import run_bounded

_READ_ONLY_COMMANDS = frozenset({"snapshots", "stats", "ls", "restore", "cat"})


def shown_repository(repository: str) -> str:
    """A repository as dr may print it: credentials in its URL (`rest:https://user:pass@host/`) hidden."""
    return re.sub(r"(?<=://)[^/@\s]*@", "***@", repository)


@dataclass(frozen=True)
class ResticRepository:
    repository: str
    password: str = field(repr=False)
    credentials: Mapping[str, str] = field(default_factory=dict, repr=False)  # AWS_* for an s3: repository
    timeout_s: float = 3600  # one restic call; past it the call is stopped (NoAnswer)
    say: Callable[[str], None] | None = field(default=None, repr=False, compare=False)  # a line before each wait

    def _env(self) -> dict[str, str]:
        return {**os.environ, **self.credentials, "RESTIC_PASSWORD": self.password}

    def run(self, *args: str) -> str:
        """Run restic against this repository and return stdout; RestoreError with its reason otherwise,
        NoAnswer when it has not finished within `timeout_s` (a server that accepts and never answers)."""
        shown = shown_repository(self.repository)
        if self.say is not None:
            self.say(f"restic {args[0]} on {shown}: waiting for the repository (at most "
                     f"{format_duration(self.timeout_s)})")
        try:
            # Reading must work on a repository dr may not write to (a drill reads production backups).
            lock = ["--no-lock"] if args and args[0] in _READ_ONLY_COMMANDS else []
            done = run_bounded(["restic", *lock, "-r", self.repository, *args], env=self._env(),
                               timeout_s=self.timeout_s)
        except FileNotFoundError:
            raise RestoreError("restic is not installed; run `make system` (Debian package restic)") from None
        except subprocess.TimeoutExpired:
            raise NoAnswer(f"the restic repository {shown} did not answer within {self.timeout_s:g} s "
                           f"(restic {args[0]})") from None
        if done.returncode != 0:
            raise RestoreError(f"restic {args[0]} on {shown} failed: {_reason(done.stderr)}")
        return done.stdout


_UNREACHABLE = ("no such host", "connection refused", "i/o timeout", "network is unreachable", "no route to host",
                "server misbehaving", "TLS handshake", "x509:", "context deadline exceeded", "connection reset")
_DENIED = ("AccessDenied", "Access Denied", "403 Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch",
           "permission denied")


def _reason(stderr: str) -> str:
    """What went wrong, told apart as restic reports it: a wrong password, a server that cannot be reached
    (DNS, refused, TLS), access denied, and a repository that is not there are different problems."""
    text = stderr.strip()
    lines = text.splitlines()
    detail = next((line for line in lines if line.startswith("Fatal:")), lines[-1] if lines else "")
    if "wrong password" in text:
        return "wrong password or no key found; check the repository password (RESTIC_PASSWORD)"
    if any(marker in text for marker in _UNREACHABLE):
        return f"the repository's server could not be reached; check its address, DNS and network ({detail})"
    if any(marker in text for marker in _DENIED):
        return f"access denied; check the repository's credentials and permissions ({detail})"
    if "no such file or directory" in text or "does not exist" in text or "NoSuchBucket" in text or (
            "unable to open config file" in text):
        return "the repository does not exist at this location; check the backup's repo"
    return detail or "no output"


def forget_args(retention: Retention) -> list[str]:
    """restic forget flags for a graph's GFS retention."""
    args = []
    for field_name, flag in (("last", "--keep-last"), ("hourly", "--keep-hourly"), ("daily", "--keep-daily"),
                             ("weekly", "--keep-weekly"), ("monthly", "--keep-monthly"),
                             ("yearly", "--keep-yearly")):
        count = getattr(retention, field_name)
        if count:
            args += [flag, str(count)]
    if retention.within_s:
        # restic's durations know y, m (months!), d and h: whole hours, at least one.
        args += ["--keep-within", f"{max(1, retention.within_s // 3600)}h"]
    return args


@dataclass(frozen=True)
class ResticSnapshot:
    point: BackupPoint
    source_path: str


def _parse_time(text: str) -> dt.datetime:
    # restic prints nanoseconds; Python keeps microseconds.
    trimmed = re.sub(r"(\.\d{6})\d+", r"\1", text).replace("Z", "+00:00")
    return dt.datetime.fromisoformat(trimmed)


def list_snapshots(repo: ResticRepository) -> list[ResticSnapshot]:
    """Every snapshot with its time, restore size and file count, oldest first."""
    snapshots: list[dict[str, Any]] = json.loads(repo.run("snapshots", "--json") or "[]")
    out = []
    for snap in snapshots:
        stats = json.loads(repo.run("stats", "--json", "--mode", "restore-size", snap["id"]))
        paths = snap.get("paths") or []
        out.append(ResticSnapshot(
            point=BackupPoint(id=snap["short_id"], time=_parse_time(snap["time"]),
                              size_bytes=int(stats.get("total_size", 0)),
                              file_count=int(stats.get("total_file_count", 0))),
            source_path=paths[0] if len(paths) == 1 else ""))
    return sorted(out, key=lambda s: s.point.time)


def choose_snapshot(snapshots: list[ResticSnapshot], target_time: str, *, allow_collapsed: bool) -> ResticSnapshot:
    chosen = choose_backup([s.point for s in snapshots], target_time, allow_collapsed=allow_collapsed)
    snapshot = next(s for s in snapshots if s.point.id == chosen.id)
    if not snapshot.source_path:
        raise RestoreError(f"snapshot {chosen.id} holds several paths; dr restores one volume per snapshot")
    return snapshot


def s3_environment(secrets: Mapping[str, str]) -> dict[str, str]:
    """restic's S3 credentials from the stack's secrets (aws_access_key_id, aws_secret_access_key)."""
    return {name.upper(): secrets[name] for name in S3_CREDENTIALS if name in secrets}


def choose(inputs: Mapping[str, Any], secrets: Mapping[str, str]) -> tuple[ChosenBackup, BackupPoint]:
    """Ask the repository which snapshots exist and pick the one for the step's target time."""
    if "restic_password" not in secrets:
        raise RestoreError(f"step {inputs.get('step', 'restore')!r} needs the secret restic_password "
                           "(stack config dr:secrets)")
    repo = ResticRepository(restic_repository(inputs), secrets["restic_password"], s3_environment(secrets))
    snapshot = choose_snapshot(list_snapshots(repo), str(inputs.get("target_time", "latest")),
                               allow_collapsed=bool(inputs.get("allow_collapsed", False)))
    return ChosenBackup(id=snapshot.point.id, source_path=snapshot.source_path), snapshot.point


def tree_summary(root: Path) -> tuple[int, int]:
    """(file count, total bytes) the way restic counts a restore: files and directories, not the root."""
    count, size = 0, 0
    for path in root.rglob("*"):
        count += 1
        if path.is_file() and not path.is_symlink():
            size += path.stat().st_size
    return count, size


def verify(point: BackupPoint, restore_path: Path) -> None:
    """The restored tree has the snapshot's size; RestoreError if not."""
    if not restore_path.is_dir():
        raise RestoreError(f"verification failed: {restore_path} does not exist after the restore")
    _, size = tree_summary(restore_path)
    if size != point.size_bytes:
        raise RestoreError(f"verification failed: {restore_path} holds {size} B, snapshot {point.id} "
                           f"holds {point.size_bytes} B")
