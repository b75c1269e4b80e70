"""An installed wheel (not only a checkout) has dr's playbooks: `dr plan` of a graph whose host steps
name them passes from a directory that is not the checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.integration


def test_the_wheel_carries_the_playbooks_and_the_installed_dr_finds_them(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "dist"), str(REPO)],
                   check=True, cwd=tmp_path, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("dr-*.whl")
    prefix = tmp_path / "prefix"
    # --ignore-installed: without it pip uninstalls the dr this virtualenv has (the checkout, editable)
    # before installing into the prefix, and `make demo` or the next `make test` finds no `dr` command.
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--ignore-installed", "--prefix",
                    str(prefix), str(wheel)],
                   check=True, capture_output=True)
    installed = subprocess.run([sys.executable, "-m", "pip", "show", "-q", "dr"], capture_output=True)
    assert installed.returncode == 0, "installing the wheel elsewhere uninstalled this virtualenv's dr"
    site = Path(sysconfig.get_path("purelib", vars={"base": str(prefix)}))
    # The installed dr first on the path; its dependencies from this virtualenv.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), sysconfig.get_path("purelib")])}
    found = subprocess.run([sys.executable, "-c", "import dr.graph_file as g; print(g.__file__); print(g.PLAYBOOK_DIR)"],
                           env=env, cwd=tmp_path, capture_output=True, text=True, check=True).stdout.split()
    assert found[0].startswith(str(site)), f"the checkout's dr was imported, not the wheel's: {found[0]}"
    playbooks = Path(found[1])
    assert playbooks == prefix / "share" / "dr" / "playbooks"
    assert sorted(p.name for p in playbooks.glob("*.yml")) == sorted(p.name for p in (REPO / "playbooks").glob("*.yml"))
    shutil.copytree(REPO / "stacks", tmp_path / "stacks")
    plan = subprocess.run([sys.executable, "-m", "dr.cli", "plan", "--json"], env=env, cwd=tmp_path,
                          capture_output=True, text=True)
    assert plan.returncode == 0, plan.stderr
