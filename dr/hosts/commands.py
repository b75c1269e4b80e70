"""Runs the steps that are commands on this machine: a user's command (helmfile, just, terraform, a
secret-store bootstrap), a Talos control plane through talosctl, and the checks of `external`
components. Each process is started in its own process group under the current step
(`dr.process_groups`), so a timeout or a signal stops it with everything it started. Output is kept
out of the step's outputs (it may print secrets); a failure reports its last lines, with every secret
value the step was given masked.
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dr import process_groups
from dr.core.invocations import command_environment, talos_commands
from dr.errors import DrError
from dr.restore import etcd


class CommandError(DrError):
    pass


def _mask(text: str, secrets: Sequence[str]) -> str:
    for value in secrets:
        if value:
            text = text.replace(value, "****")
    return text


def run_command(argv: Sequence[str], *, cwd: str | None = None, env: Mapping[str, str] | None = None,
                secret_values: Sequence[str] = (), step: str = "command") -> str:
    """Run `argv`; return its output (masked). CommandError with the last lines when it fails."""
    environment = {**os.environ, **(env or {})}
    try:
        process = process_groups.start(list(argv), cwd=cwd or None, env=environment, stdin=subprocess.DEVNULL,
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    except FileNotFoundError:
        raise CommandError(f"step {step!r}: {argv[0]} is not installed (not found on PATH)") from None
    except NotADirectoryError:
        raise CommandError(f"step {step!r}: the working directory {cwd} does not exist") from None
    try:
        output, _ = process.communicate()
    finally:
        process_groups.forget(process)
    output = _mask(output or "", secret_values)
    if process.returncode != 0:
        tail = "\n".join(output.strip().splitlines()[-5:]) or "no output"
        raise CommandError(f"step {step!r}: {argv[0]} exited {process.returncode}: {tail}")
    return output


def run_command_step(inputs: Mapping[str, Any], secrets: Mapping[str, str]) -> dict[str, Any]:
    step = str(inputs.get("step", "command"))
    missing = [n for n in inputs.get("secrets", []) if n not in secrets]
    if missing:
        raise CommandError(f"step {step!r} needs the secret(s) {', '.join(missing)}; set them in dr:secrets")
    if not Path(str(inputs["cwd"])).is_dir():
        raise CommandError(f"step {step!r}: the working directory {inputs['cwd']} does not exist")
    run_command([str(a) for a in inputs["command"]], cwd=str(inputs["cwd"]),
                env=command_environment(inputs, secrets),
                secret_values=[secrets[n] for n in inputs.get("secrets", [])], step=step)
    return {"changed": 1}


def run_talos_step(inputs: Mapping[str, Any]) -> dict[str, Any]:
    step = str(inputs.get("step", "talos"))
    snapshot = ""
    if inputs.get("recover_from"):
        point, _ = etcd.choose({"repo": inputs["recover_from"], "target_time": "latest"}, {})
        snapshot = point.id
    with tempfile.TemporaryDirectory(prefix="dr-talos-") as scratch:
        kubeconfig = Path(scratch) / "kubeconfig"
        for argv in talos_commands(inputs, snapshot=snapshot, kubeconfig=str(kubeconfig)):
            run_command(argv, step=step)
        if not kubeconfig.is_file():
            raise CommandError(f"step {step!r}: talosctl kubeconfig wrote no kubeconfig")
        outputs: dict[str, Any] = {"changed": 1, "kubeconfig": kubeconfig.read_text(encoding="utf-8")}
    if snapshot:
        outputs["restored"] = snapshot
    return outputs


def check_external(target: str, *, timeout_s: float = 10) -> str:
    """'' when the external thing is there; otherwise what is wrong. Never creates anything."""
    if target.startswith("tcp://"):
        host, port = target[len("tcp://"):].rsplit(":", 1)
        try:
            with socket.create_connection((host, int(port)), timeout=timeout_s):
                return ""
        except OSError as exc:
            return f"{target}: cannot connect ({exc.strerror or exc})"
    if target.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(target, timeout=timeout_s) as response:
                return "" if int(response.status) < 500 else f"{target}: HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            return "" if exc.code < 500 else f"{target}: HTTP {exc.code}"
        except (urllib.error.URLError, OSError, ssl.SSLError) as exc:
            return f"{target}: unreachable ({getattr(exc, 'reason', exc)})"
    return "" if Path(target).exists() else f"{target}: not present"


def run_external_step(inputs: Mapping[str, Any]) -> dict[str, Any]:
    problem = check_external(str(inputs["check"]))
    if problem:
        raise CommandError(f"step {inputs.get('step', 'external')!r}: {problem}; dr does not create external "
                           "things, bring it back first")
    return {"changed": 0}
