"""The runbook's own restic and pgBackRest commands, run for real against an S3 API server on loopback
(moto's server, from PyPI) with the real restic and pgBackRest (issue 21, item 8): each repository is
written in its tool's syntax, so what the runbook prints is what works.

pgBackRest speaks S3 only over TLS: the S3 server sits behind socat (Debian's package), which terminates
TLS with a certificate made for the test and closes each connection cleanly (moto's own TLS mode drops
connections without a TLS close, which OpenSSL 3 refuses); pgBackRest checks the certificate."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dr.core.repositories import pgbackrest_options
from dr.core.spec import GraphSpec
from dr.drill.sandbox_pg import PG_BIN, PgSandbox
from dr.errors import RestoreError
from dr.hosts.host_steps import run_step
from dr.restore import pgbackrest
from dr.restore.restic import ResticRepository, list_snapshots

pytestmark = [pytest.mark.integration, pytest.mark.skipif(shutil.which("restic") is None, reason="restic")]

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "drill-key", "AWS_SECRET_ACCESS_KEY": "drill-secret", "RESTIC_PASSWORD": "pw"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port}")


@pytest.fixture
def s3_endpoint(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    server = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=(tmp_path / "moto.log").open("wb"), stderr=subprocess.STDOUT)
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def s3_tls(s3_endpoint: str, tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """The S3 server over TLS on localhost: (port, the CA file that certifies it, readable by postgres)."""
    if shutil.which("socat") is None:
        pytest.fail("socat is not installed (make system installs it)")
    certs = Path(tempfile.mkdtemp(prefix="dr-s3-tls-"))
    certs.chmod(0o755)
    key, cert = certs / "key.pem", certs / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
                   check=True, capture_output=True)
    cert.chmod(0o644)
    both = tmp_path / "tls.pem"
    both.write_bytes(key.read_bytes() + cert.read_bytes())
    port = free_port()
    backend = s3_endpoint.rsplit(":", 1)[1]
    proxy = subprocess.Popen(["socat", f"OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,cert={both},verify=0",
                              f"TCP:127.0.0.1:{backend}"], stdout=subprocess.DEVNULL,
                             stderr=(tmp_path / "socat.log").open("wb"))
    try:
        wait_for_port(port)
        yield port, cert
    finally:
        proxy.terminate()
        proxy.wait(timeout=10)
        shutil.rmtree(certs, ignore_errors=True)


def runbook_commands(markdown: str, step_heading: str) -> tuple[str, list[str]]:
    """The find line and the 'what the playbook does' commands of one step's section."""
    # The heading is "N. name", starred when the step is on the critical path.
    section = re.split(rf"\. {re.escape(step_heading)}(?: ★)?\n", markdown, maxsplit=1)[1].split("\n## ", 1)[0]
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


@pytest.mark.skipif(not (PG_BIN / "postgres").exists() or shutil.which("pgbackrest") is None,
                    reason="PostgreSQL 15 or pgBackRest is not installed (make system)")
def test_the_runbooks_pgbackrest_commands_restore_from_s3_over_tls(s3_tls: tuple[int, Path], tmp_path: Path,
                                                                  run_cli) -> None:
    import boto3

    port, ca_file = s3_tls
    repo = "s3://homelab-backups/pgbackrest/db0"
    boto3.client("s3", endpoint_url=f"https://localhost:{port}", verify=str(ca_file), region_name="us-east-1",
                 aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                 aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"]).create_bucket(Bucket="homelab-backups")
    # The host's pgbackrest.conf: the repository options the runbook names for this repo, plus what only
    # the host holds (endpoint, region, key; pgBackRest checks the server's certificate).
    options = {**pgbackrest_options(repo), "repo1-s3-endpoint": "localhost", "repo1-storage-port": str(port),
               "repo1-s3-region": "us-east-1", "repo1-s3-uri-style": "path", "repo1-storage-ca-file": str(ca_file),
               "repo1-s3-key": CREDENTIALS["AWS_ACCESS_KEY_ID"],
               "repo1-s3-key-secret": CREDENTIALS["AWS_SECRET_ACCESS_KEY"], "process-max": "4"}
    pg = PgSandbox.create(repository=options)
    try:
        stanza = pgbackrest.PgBackRestStanza(config=str(pg.config))
        stanza.run("stanza-create")
        pg.sql("CREATE TABLE orders (id serial PRIMARY KEY, note text)")
        pg.sql("INSERT INTO orders (note) VALUES ('before the backup')")
        stanza.run("--type=full", "backup")
        pg.sql("INSERT INTO orders (note) VALUES ('archived after it')")
        pg.sql("SELECT pg_switch_wal()")
        stanza.run("check")  # the switched segment is in the bucket
        pg.stop()
        shutil.rmtree(pg.data)  # the disaster

        graph = tmp_path / "graph.yaml"
        graph.write_text(f"""cluster: lab
hosts:
  db0: {{address: 10.0.0.30, groups: [databases]}}
drill_hosts:
  drill-db0: {{address: 10.0.1.30, groups: [databases]}}
backups:
  host-postgres: {{tool: pgbackrest, repo: "{repo}", schedule: "0 2 * * *", retention: {{daily: 7}}, rpo: 15m,
                   source: ["{pg.data}"]}}
components:
  postgres-host:
    layer: data
    restore: {{backup: host-postgres}}
    hosts: [databases]
    vars: {{pgbackrest_config: "{pg.config}", pg_data: "{pg.data}", pg_port: {pg.port},
           pg_socket_dir: "{pg.base}"}}
    estimate: 5m
""")
        out = tmp_path / "docs"
        assert run_cli("docs", "--graph", str(graph), "--out", str(out), "--mode", "prod").code == 0
        markdown = (out / "recovery-order.md").read_text()
        for key, value in pgbackrest_options(repo).items():
            assert f"`{key}={value}`" in markdown  # what the runbook says the host's configuration must name
        find, restore = runbook_commands(markdown, "postgres-host")

        listed = subprocess.run(["bash", "-c", find], capture_output=True, text=True, check=True)
        (backup_set,) = re.findall(r"full backup: (\S+)", listed.stdout)
        for line in restore:
            subprocess.run(["bash", "-c", line.replace("<BACKUP_SET>", backup_set)], check=True,
                           capture_output=True, text=True, timeout=600)
        for _ in range(300):
            if pg.sql("SELECT pg_is_in_recovery()") == "f":
                break
            time.sleep(0.2)
        assert pg.sql("SELECT string_agg(note, ',' ORDER BY id) FROM orders") == "before the backup,archived after it"
    finally:
        pg.destroy()


def test_a_restore_step_reads_an_s3_repository_with_the_credentials_from_the_stack_secrets(
        s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """dr's own restore (driver and volume-restore.yml through Ansible): the S3 keys come from dr:secrets,
    not from whatever environment dr happens to run in, and reach restic on the host."""
    repo = f"s3:{s3_endpoint}/homelab-backups/restic/registry"
    data = tmp_path / "registry"
    (data / "v2").mkdir(parents=True)
    (data / "v2" / "blob").write_bytes(b"layer" * 1000)
    env = {**os.environ, **CREDENTIALS}
    subprocess.run(["restic", "-r", repo, "init"], env=env, check=True, capture_output=True)
    subprocess.run(["restic", "-r", repo, "backup", str(data)], env=env, check=True, capture_output=True)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "RESTIC_PASSWORD"):
        monkeypatch.delenv(key, raising=False)
    target = tmp_path / "restored" / "registry"
    inputs = {"step": "registry-images-restore", "step_kind": "host-restore", "tool": "restic", "repo": repo, "target_time": "latest",
              "hosts": ["all"], "vars": {"restore_path": str(target)}}

    with pytest.raises(RestoreError, match="access denied"):  # the driver finds no keys anywhere
        run_step(inputs, hosts={}, secrets={"restic_password": CREDENTIALS["RESTIC_PASSWORD"]})
    outputs = run_step(inputs, hosts={}, secrets={"restic_password": CREDENTIALS["RESTIC_PASSWORD"],
                                                  "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
                                                  "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"]})
    assert (target / "v2" / "blob").read_bytes() == b"layer" * 1000
    assert CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in repr(outputs)
