"""`dr schedule`: scheduled drills as a Kubernetes CronJob and as a systemd timer and service.

Pure apart from writing the files: a cron expression in, manifests and unit files out.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from dr.errors import UsageError

_DAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")
_NAMES = {name.lower(): str(i) for i, name in enumerate(_DAYS)}
_DIGITS = re.compile(r"[0-9]+")  # not str.isdigit(): it takes any Unicode digit, and '²' too


def _field(value: str, *, start: int, days: bool = False, pad: bool = False,
           bounds: tuple[int, int] = (0, 59), what: str = "minute") -> str:
    """One cron field in systemd OnCalendar syntax; numbers outside `bounds` are refused."""
    def number(text: str) -> str:
        if not (bounds[0] <= int(text) <= bounds[1]):
            raise UsageError(f"cron {what} {text} is out of range {bounds[0]}-{bounds[1]}")
        return text

    parts = []
    for part in value.split(","):
        part = _NAMES.get(part.lower(), part) if days else part
        step = None
        if "/" in part:
            part, step = part.split("/", 1)
            if not _DIGITS.fullmatch(step):
                raise UsageError(f"cron step {step!r} must be a number")
        if part == "*":
            text = f"{start}/{step}" if step else "*"
        elif re.fullmatch(r"[0-9]+-[0-9]+", part):
            low, high = (number(x) for x in part.split("-"))
            text = f"{low}..{high}" + (f"/{step}" if step else "")
        elif _DIGITS.fullmatch(part):
            number(part)
            text = (part.zfill(2) if pad else part) + (f"/{step}" if step else "")
        else:
            raise UsageError(f"cannot read the cron field {value!r}; use numbers, *, ranges, lists and */n")
        parts.append(text)
    return ",".join(parts)


def on_calendar(cron: str) -> str:
    """A five-field cron expression as a systemd OnCalendar value."""
    fields = cron.split()
    if len(fields) != 5:
        raise UsageError(f'--cron needs five fields (minute hour day month weekday), like "0 3 * * 0", not {cron!r}')
    minute, hour, dom, month, dow = fields
    calendar = (f"*-{_field(month, start=1, bounds=(1, 12), what='month')}-"
                f"{_field(dom, start=1, bounds=(1, 31), what='day of month')} "
                f"{_field(hour, start=0, pad=True, bounds=(0, 23), what='hour')}:"
                f"{_field(minute, start=0, pad=True)}:00")
    if dow != "*":
        days = []
        for part in _field(dow, start=0, days=True, bounds=(0, 7), what="weekday").split(","):
            if ".." in part:
                low, high = (int(x) % 7 for x in part.split(".."))
                days.append(f"{_DAYS[low]}..{_DAYS[high]}")
            elif _DIGITS.fullmatch(part):
                days.append(_DAYS[int(part) % 7])
            else:
                raise UsageError(f"cannot read the weekday field {dow!r}")
        calendar = ",".join(days) + " " + calendar
    return calendar


def cronjob(cron: str, *, image: str, graph: str = "stacks/cluster.yaml") -> dict[str, Any]:
    on_calendar(cron)  # the same validation as the timer
    return {
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": {"app.kubernetes.io/name": NAME}},
        "spec": {
            "schedule": cron, "concurrencyPolicy": "Forbid", "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 5,
            "jobTemplate": {"spec": {"backoffLimit": 0, "activeDeadlineSeconds": 14400, "template": {"spec": {
                "restartPolicy": "Never", "serviceAccountName": NAME, "automountServiceAccountToken": False,
                "containers": [{"name": "drill", "image": image,
                                "command": ["dr", "drill", "--stack", "drill", "--graph", graph,
                                            "--state-dir", "/var/lib/dr"],
                                "env": [{"name": "PULUMI_CONFIG_PASSPHRASE_FILE", "value": "/secrets/passphrase"}],
                                "volumeMounts": [{"name": "state", "mountPath": "/var/lib/dr"},
                                                 {"name": "secrets", "mountPath": "/secrets", "readOnly": True}]}],
                "volumes": [{"name": "state", "persistentVolumeClaim": {"claimName": f"{NAME}-state"}},
                            {"name": "secrets", "secret": {"secretName": NAME}}]}}}}}}


def _unit_quote(text: str) -> str:
    """One argument of a systemd ExecStart line: double-quoted, with \\, \" and % escaped."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%") + '"'


def systemd_units(cron: str, *, workdir: str, graph: str = "stacks/cluster.yaml") -> dict[str, str]:
    if not workdir.startswith("/") or any(ord(c) < 32 or c == "\x7f" for c in workdir):
        raise UsageError(f"--workdir must be an absolute path without control characters, not {workdir!r}")
    if any(ord(c) < 32 or c == "\x7f" for c in graph):
        raise UsageError(f"--graph must not contain control characters, not {graph!r}")
    quoted = workdir.replace("%", "%%")
    service = (f"# Written by `dr schedule --cron \"{cron}\"`.\n[Unit]\nDescription=dr sandbox DR drill\n"
               "After=network-online.target\n\n[Service]\nType=oneshot\n"
               f"WorkingDirectory={quoted}\nExecStart={_unit_quote(workdir + '/.venv/bin/dr')} drill --sandbox "
               f"--graph {_unit_quote(graph)} --state-dir {_unit_quote(workdir + '/.dr')}\nTimeoutStartSec=2h\n"
               "# On timeout systemd sends SIGTERM to dr alone; dr stops what the drill started, in time.\n"
               "KillMode=mixed\nTimeoutStopSec=5min\n")
    timer = (f"# Written by `dr schedule --cron \"{cron}\"`.\n[Unit]\nDescription=Run the dr drill on a schedule\n\n"
             f"[Timer]\nOnCalendar={on_calendar(cron)}\nPersistent=true\nRandomizedDelaySec=5m\n\n"
             "[Install]\nWantedBy=timers.target\n")
    return {"dr-drill.service": service, "dr-drill.timer": timer}


NAMESPACE, NAME = "dr", "dr-drill"


def cronjob_dependencies() -> list[dict[str, Any]]:
    """What the CronJob needs in its cluster besides the Secret: its namespace, a ServiceAccount with no
    token mounted and no rights (the drill talks to the drill cluster through the stack's own kubeconfig,
    never to the cluster it runs in), and the claim that keeps the drill history between runs."""
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": NAME, "namespace": NAMESPACE},
         "automountServiceAccountToken": False},
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
         "metadata": {"name": f"{NAME}-state", "namespace": NAMESPACE},
         "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}},
    ]


def write_schedule(cron: str, *, out: Path, image: str | None, workdir: str,
                   graph: str = "stacks/cluster.yaml") -> list[Path]:
    """The systemd units always; the CronJob, with everything it needs but its Secret, only for an image."""
    out.mkdir(parents=True, exist_ok=True)
    files = dict(systemd_units(cron, workdir=workdir, graph=graph))
    if image is not None:
        header = (f"# Written by `dr schedule --cron \"{cron}\"`: runs `dr drill --stack drill` in the cluster.\n"
                  f"# Before applying: kubectl -n {NAMESPACE} create secret generic {NAME} "
                  "--from-file=passphrase=<the drill stack's passphrase file>\n")
        documents = [*cronjob_dependencies(), cronjob(cron, image=image, graph=graph)]
        files["dr-drill-cronjob.yaml"] = header + yaml.safe_dump_all(documents, sort_keys=False)
    written = []
    for name, content in sorted(files.items()):
        path = out / name
        path.write_text(content, encoding="utf-8")
        written.append(path)
    return written
