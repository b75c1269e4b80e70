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


def _field(value: str, *, start: int, days: bool = False, pad: bool = False) -> str:
    """One cron field in systemd OnCalendar syntax."""
    parts = []
    for part in value.split(","):
        part = _NAMES.get(part.lower(), part) if days else part
        step = None
        if "/" in part:
            part, step = part.split("/", 1)
            if not step.isdigit():
                raise UsageError(f"cron step {step!r} must be a number")
        if part == "*":
            text = f"{start}/{step}" if step else "*"
        elif re.fullmatch(r"\d+-\d+", part):
            low, high = part.split("-")
            text = f"{low}..{high}" + (f"/{step}" if step else "")
        elif part.isdigit():
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
    calendar = (f"*-{_field(month, start=1)}-{_field(dom, start=1)} "
                f"{_field(hour, start=0, pad=True)}:{_field(minute, start=0, pad=True)}:00")
    if dow != "*":
        days = []
        for part in _field(dow, start=0, days=True).split(","):
            if ".." in part:
                low, high = (int(x) % 7 for x in part.split(".."))
                days.append(f"{_DAYS[low]}..{_DAYS[high]}")
            elif part.isdigit():
                days.append(_DAYS[int(part) % 7])
            else:
                raise UsageError(f"cannot read the weekday field {dow!r}")
        calendar = ",".join(days) + " " + calendar
    return calendar


def cronjob(cron: str, *, image: str) -> dict[str, Any]:
    on_calendar(cron)  # the same validation as the timer
    return {
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "dr-drill", "namespace": "dr", "labels": {"app.kubernetes.io/name": "dr-drill"}},
        "spec": {
            "schedule": cron, "concurrencyPolicy": "Forbid", "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 5,
            "jobTemplate": {"spec": {"backoffLimit": 0, "activeDeadlineSeconds": 14400, "template": {"spec": {
                "restartPolicy": "Never", "serviceAccountName": "dr-drill",
                "containers": [{"name": "drill", "image": image,
                                "command": ["dr", "drill", "--stack", "drill", "--state-dir", "/var/lib/dr"],
                                "env": [{"name": "PULUMI_CONFIG_PASSPHRASE_FILE", "value": "/secrets/passphrase"}],
                                "volumeMounts": [{"name": "state", "mountPath": "/var/lib/dr"},
                                                 {"name": "secrets", "mountPath": "/secrets", "readOnly": True}]}],
                "volumes": [{"name": "state", "persistentVolumeClaim": {"claimName": "dr-drill-state"}},
                            {"name": "secrets", "secret": {"secretName": "dr-drill"}}]}}}}}}


def systemd_units(cron: str, *, workdir: str) -> dict[str, str]:
    service = (f"# Written by `dr schedule --cron \"{cron}\"`.\n[Unit]\nDescription=dr sandbox DR drill\n"
               "After=network-online.target\n\n[Service]\nType=oneshot\n"
               f"WorkingDirectory={workdir}\nExecStart={workdir}/.venv/bin/dr drill --sandbox --state-dir "
               f"{workdir}/.dr\nTimeoutStartSec=2h\n")
    timer = (f"# Written by `dr schedule --cron \"{cron}\"`.\n[Unit]\nDescription=Run the dr drill on a schedule\n\n"
             f"[Timer]\nOnCalendar={on_calendar(cron)}\nPersistent=true\nRandomizedDelaySec=5m\n\n"
             "[Install]\nWantedBy=timers.target\n")
    return {"dr-drill.service": service, "dr-drill.timer": timer}


def write_schedule(cron: str, *, out: Path, image: str, workdir: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    header = f"# Written by `dr schedule --cron \"{cron}\"`: runs `dr drill --stack drill` in the cluster.\n"
    files = {"dr-drill-cronjob.yaml": header + yaml.safe_dump(cronjob(cron, image=image), sort_keys=False),
             **systemd_units(cron, workdir=workdir)}
    written = []
    for name, content in files.items():
        path = out / name
        path.write_text(content, encoding="utf-8")
        written.append(path)
    return written
