"""Every benchmark in bench/ runs once at a tiny size, so none can rot unnoticed (`make bench` had
failed: bench/plan.py wrote graphs naming a playbook the loader refuses). Nothing here is timed: each
benchmark must finish and print its figures."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from dr.kube.toolchain import CONTROL_PLANE, ENGINE, KUBERNETES_PROVIDER, Toolchain
from tests.conftest import REPO

pytestmark = pytest.mark.integration


def run(*argv: str) -> str:
    done = subprocess.run([sys.executable, *argv], cwd=REPO, capture_output=True, text=True, timeout=900,
                          check=False, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_plan_benchmark() -> None:
    out = run("bench/plan.py", "--sizes", "50", "100", "--repeat", "1")
    assert "100 / 50" in out and "time ratio" in out


def test_gitops_import_benchmark() -> None:
    out = run("bench/gitops_import.py", "--apps", "3", "6", "--repeat", "1")
    rows = [line.split() for line in out.splitlines()[1:]]
    assert [row[0] for row in rows] == ["3", "6"] and [row[-1] for row in rows] == ["3", "6"], out


def test_restore_benchmark() -> None:
    out = run("bench/restore.py", "--tree-mb", "2", "--wal-mb", "16")
    assert "ratio restic / cp -a" in out and "per GB of WAL" in out


def test_drill_benchmark_quick() -> None:
    out = run("bench/drill.py", "--quick")
    assert "ms per step over 30 no-op steps" in out


def test_engine_benchmark() -> None:
    missing = Toolchain.find().missing((*CONTROL_PLANE, *ENGINE, *KUBERNETES_PROVIDER))
    if missing:
        if os.environ.get("DR_TOOLCHAIN_BIN"):
            pytest.fail(f"missing {missing}")
        pytest.skip(f"missing {missing} (run `make toolchain`)")
    out = run("bench/engine.py", "--sizes", "3", "6", "--widths", "3", "--skip-example")
    assert "6/3 components at width 3: time ratio" in out
