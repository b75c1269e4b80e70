"""Fixtures for tests against the real control plane and engine from `make toolchain`.

When `make test` runs, DR_TOOLCHAIN_BIN is set and a missing binary is a failure; elsewhere (make
test-quick, an IDE) these tests skip and say which binaries are missing.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from dr.kube.sandbox_cluster import SandboxCluster
from dr.kube.toolchain import CONTROL_PLANE, ENGINE, Toolchain


def require(names: tuple[str, ...]) -> Toolchain:
    toolchain = Toolchain.find()
    missing = toolchain.missing(names)
    if missing:
        message = f"missing {', '.join(missing)} (run `make toolchain`)"
        if os.environ.get("DR_TOOLCHAIN_BIN"):
            pytest.fail(message)
        pytest.skip(message)
    return toolchain


@pytest.fixture
def toolchain() -> Toolchain:
    return require(CONTROL_PLANE)


@pytest.fixture
def engine() -> Toolchain:
    return require(ENGINE)


@pytest.fixture
def cluster(toolchain: Toolchain, tmp_path: Path) -> Iterator[SandboxCluster]:
    sandbox = SandboxCluster(tmp_path / "cluster", toolchain=toolchain)
    sandbox.up()
    try:
        yield sandbox
    finally:
        sandbox.down()


@pytest.fixture
def provider() -> Toolchain:
    """The engine and the pulumi-kubernetes provider (v4.25.0, built by `make toolchain`)."""
    from dr.kube.toolchain import KUBERNETES_PROVIDER

    return require((*ENGINE, *KUBERNETES_PROVIDER))


@pytest.fixture
def chart_mirror(tmp_path: Path) -> Iterator[str]:
    """The example graph's charts (dr's stand-ins) in a mirror filled over HTTP from a loopback
    "upstream" repository, as a user fills one from the internet; yields the mirror's URL."""
    from dr.charts.sandbox import sandbox_mirror
    from dr.core.charts import chart_pins
    from dr.graph_file import load_graph_file
    from tests.conftest import EXAMPLE_GRAPH

    with sandbox_mirror(chart_pins(load_graph_file(EXAMPLE_GRAPH)), tmp_path) as url:
        yield url


def restore_etcd_snapshot(cluster: SandboxCluster, tmp_path: Path) -> Path:
    """A real etcd snapshot of the running `cluster` (etcdctl), restored with etcdutl into a data
    directory a new SandboxCluster can start on (`up(etcd_data=...)`); returns that directory. The
    cluster keeps running."""
    state = cluster.load_state()
    assert state is not None
    tools, snapshot, restored = cluster.toolchain, tmp_path / "etcd.snapshot", tmp_path / "restored-etcd"
    subprocess.run([tools.path("etcdctl"), "--endpoints", f"http://127.0.0.1:{state.etcd_client_port}",
                    "snapshot", "save", str(snapshot)], check=True, capture_output=True)
    subprocess.run([tools.path("etcdutl"), "snapshot", "restore", str(snapshot), "--data-dir", str(restored),
                    "--name", "sandbox", "--initial-cluster", "sandbox=http://127.0.0.1:2380",
                    "--initial-advertise-peer-urls", "http://127.0.0.1:2380"], check=True, capture_output=True)
    return restored
