"""`dr audit` against servers that accept a connection and never answer: a restic repository on a REST
server or on S3, and the cluster's API server. Each call has a timeout of its own (--timeout), says on
stderr what it waits for before it waits, and becomes a "not checked" finding when the time is up.

The servers are a thread with a listening socket on loopback that accepts and never writes a byte. The
audit runs in a child process with a generous bound: a hang fails the test instead of holding the suite."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.integration

BOUND_S = 150  # the audit's own timeout below is 3 s a call
TIMEOUT = "3s"


class SilentServer:
    """Accepts every connection on 127.0.0.1 and never answers (holding the sockets open)."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted.append(connection)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for connection in self.accepted:
            connection.close()
        self.listener.close()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


def run_audit(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    full_env.pop("DR_DEBUG", None)
    try:
        return subprocess.run([sys.executable, "-m", "dr.cli", "audit", "--json", "--timeout", TIMEOUT,
                               "--state-dir", str(state), *args], capture_output=True, text=True, env=full_env,
                              stdin=subprocess.DEVNULL, timeout=BOUND_S, check=False, cwd=tmp_path)
    except subprocess.TimeoutExpired:
        pytest.fail(f"dr audit did not finish within {BOUND_S} s")


def graph(tmp_path: Path, repo: str) -> Path:
    path = tmp_path / "graph.yaml"
    path.write_text(f"""\
cluster: lab
backups:
  vol: {{tool: restic, protects: app, repo: "{repo}", schedule: "0 * * * *", rpo: 2h, retention: {{hourly: 24, daily: 7}}}}
components:
  restore-vol: {{layer: data, restore: {{backup: vol}}, vars: {{restore_path: /srv/vol}}, estimate: 1m}}
  app: {{layer: app, depends_on: [restore-vol], estimate: 1m}}
""", encoding="utf-8")
    return path


def no_cluster(tmp_path: Path) -> Path:
    status = tmp_path / "status.json"
    status.write_text(json.dumps({"pvcs": [], "pvs": [], "crds": []}), encoding="utf-8")
    return status


@pytest.mark.skipif(shutil.which("restic") is None, reason="make system")
@pytest.mark.parametrize("scheme", ["rest", "s3"])
def test_a_backup_repository_that_never_answers_is_not_checked_within_the_timeout(
        tmp_path: Path, silent: SilentServer, scheme: str) -> None:
    repo = f"rest:http://127.0.0.1:{silent.port}/" if scheme == "rest" else f"s3:http://127.0.0.1:{silent.port}/bucket"
    secrets = tmp_path / "secrets.yaml"
    secrets.write_text("restic_password: canary-audit-silent\naws_access_key_id: AKIASILENT\n"
                       "aws_secret_access_key: canary-secret-silent\n", encoding="utf-8")
    secrets.chmod(0o600)
    done = run_audit(tmp_path, "--graph", str(graph(tmp_path, repo)), "--k8s-status", str(no_cluster(tmp_path)),
                     "--secrets", str(secrets))
    assert done.returncode == 1, done.stderr
    assert "internal error" not in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert silent.accepted, "restic really connected to the silent server"
    findings = json.loads(done.stdout)["findings"]
    (vol,) = [f for f in findings if f["subject"] == "vol"]
    assert vol["check"] == "freshness" and vol["severity"] == "unchecked", vol
    assert vol["message"].startswith("not checked: ") and "did not answer within 3 s" in vol["message"], vol
    assert f"127.0.0.1:{silent.port}" in vol["message"]
    waiting = [line for line in done.stderr.splitlines() if "restic snapshots" in line and "at most 3s" in line]
    assert waiting, f"a line of progress before the wait: {done.stderr}"
    assert "canary" not in done.stderr + done.stdout, "no secret in what the audit says"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl")
def test_an_api_server_that_never_answers_is_not_checked_within_the_timeout(
        tmp_path: Path, silent: SilentServer) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(f"""\
apiVersion: v1
kind: Config
clusters: [{{name: silent, cluster: {{server: "https://127.0.0.1:{silent.port}", insecure-skip-tls-verify: true}}}}]
users: [{{name: u, user: {{token: canary-token-silent}}}}]
contexts: [{{name: c, context: {{cluster: silent, user: u}}}}]
current-context: c
""", encoding="utf-8")
    path = tmp_path / "graph.yaml"
    path.write_text("cluster: lab\ncomponents:\n  app: {layer: app, estimate: 1m}\n", encoding="utf-8")
    done = run_audit(tmp_path, "--graph", str(path), "--kubeconfig", str(kubeconfig))
    assert done.returncode == 1, done.stderr
    assert "internal error" not in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert silent.accepted, "kubectl really connected to the silent server"
    findings = json.loads(done.stdout)["findings"]
    unchecked = [f for f in findings if f["severity"] == "unchecked"]
    assert {f["check"] for f in unchecked} >= {"coverage", "cascade"}, findings
    for finding in unchecked:
        assert f"https://127.0.0.1:{silent.port} did not answer within 3 s" in finding["message"], finding
    assert any("kubectl get" in line and "at most 3s" in line for line in done.stderr.splitlines()), done.stderr
    assert "canary" not in done.stderr + done.stdout
