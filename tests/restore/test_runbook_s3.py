"""The runbook's own restic commands, run for real against an S3 API server on loopback (moto's server,
from PyPI) with the real restic (issue 21, item 8): the example's repositories are written in restic's
`s3:` syntax, so what the runbook prints is what works. pgBackRest is not covered here: it speaks S3 only
over TLS."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dr.core.spec import GraphSpec
from dr.errors import RestoreError
from dr.restore.restic import ResticRepository, list_snapshots

pytestmark = [pytest.mark.integration, pytest.mark.skipif(shutil.which("restic") is None, reason="restic")]

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "drill-key", "AWS_SECRET_ACCESS_KEY": "drill-secret", "RESTIC_PASSWORD": "pw"}


@pytest.fixture
def s3_endpoint(tmp_path: Path) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=(tmp_path / "moto.log").open("wb"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def runbook_commands(markdown: str, step_heading: str) -> tuple[str, list[str]]:
    """The find line and the 'what the playbook does' commands of one step's section."""
    section = markdown.split(f". {step_heading}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    find = blocks[0].splitlines()[0].split("   #")[0]
    return find, blocks[2].splitlines()


def test_the_runbooks_restic_commands_restore_from_s3(s3_endpoint: str, tmp_path: Path, run_cli,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    repo = f"s3:{s3_endpoint}/homelab-backups/restic/nfs"
    env = {**os.environ, **CREDENTIALS}
    data = tmp_path / "production" / "volumes"
    (data / "gitea").mkdir(parents=True)
    (data / "gitea" / "repo.git").write_text("the only copy")
    subprocess.run(["restic", "-r", repo, "init"], env=env, check=True, capture_output=True)
    subprocess.run(["restic", "-r", repo, "backup", str(data)], env=env, check=True, capture_output=True)

    restore_path = tmp_path / "restored" / "volumes"
    restore_path.parent.mkdir()
    graph = tmp_path / "graph.yaml"
    graph.write_text(f"""cluster: lab
hosts:
  nas: {{address: 10.0.0.20, groups: [storage]}}
drill_hosts:
  drill-nas: {{address: 10.0.1.20, groups: [storage]}}
backups:
  nfs-volumes: {{tool: restic, repo: "{repo}", schedule: "15 * * * *", retention: {{daily: 7}}, rpo: 2h,
                 source: ["{data}"]}}
components:
  nfs-volumes-restore:
    layer: data
    restore: {{backup: nfs-volumes}}
    vars: {{restore_path: "{restore_path}"}}
    estimate: 5m
""")
    GraphSpec.from_yaml(graph.read_text(), path=str(graph))  # the graph check accepts restic's s3: syntax
    out = tmp_path / "docs"
    assert run_cli("docs", "--graph", str(graph), "--out", str(out), "--mode", "prod").code == 0
    find, restore = runbook_commands((out / "recovery-order.md").read_text(), "nfs-volumes-restore")

    # dr's own restic driver reads the same repository (what the drill and the audit use); without the
    # credentials it says access was denied, not that the repository is missing.
    with pytest.raises(RestoreError, match="access denied"):
        list_snapshots(ResticRepository(repo, CREDENTIALS["RESTIC_PASSWORD"]))
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, CREDENTIALS[key])
    (snapshot,) = list_snapshots(ResticRepository(repo, CREDENTIALS["RESTIC_PASSWORD"]))
    listed = subprocess.run(["bash", "-c", find], env=env, capture_output=True, text=True, check=True)
    assert snapshot.point.id[:8] in listed.stdout
    for line in restore:
        line = line.replace("<SNAPSHOT_ID>", snapshot.point.id).replace("<PATH_IN_SNAPSHOT>", str(data))
        subprocess.run(["bash", "-c", line], env=env, check=True, capture_output=True, text=True)
    assert (restore_path / "gitea" / "repo.git").read_text() == "the only copy"
    assert not Path(f"{restore_path}.dr-staging").exists()
