"""No descendant outlives a drill, whatever it did to its session (issue 21, item 4). A real playbook,
run through dr's real runner, leaves a `setsid` sleeper behind: stopping process groups does not reach
it; the run's marker does. A process started outside the run is never touched."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dr import process_groups, reaper
from dr.hosts.ansible import Inventory, run_playbook
from dr.process_identity import cmdline

pytestmark = pytest.mark.integration
HERE = Path(__file__).parent / "playbooks"


def sleepers(seconds: int) -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()
            and cmdline(int(p.name)) == ["sleep", str(seconds)]]


def test_a_setsid_process_a_playbook_left_is_reaped_and_strangers_are_not(tmp_path: Path) -> None:
    stranger = subprocess.Popen(["sleep", "4242"])  # not the run's: must survive the sweep
    try:
        with reaper.marked_run() as token:
            result = run_playbook("escape.yml", inventory=Inventory.local(), playbook_dir=HERE,
                                  artifacts_dir=tmp_path, extravars={"seconds": 4343})
            assert result.ok
            escaped = sleepers(4343)
            assert escaped, "the playbook left its sleeper running"
            process_groups.stop(grace_s=1)
            assert sleepers(4343) == escaped, "stopping process groups does not reach a setsid'd process"
            assert set(escaped) <= set(reaper.marked(token))
            assert reaper.sweep(token, grace_s=2) >= 1
            assert sleepers(4343) == []
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


def test_a_daemon_that_double_forks_is_reaped_without_a_zombie() -> None:
    # The parent exits only once the grandchild exists (it says so through a pipe): without that, under
    # load the scan below could run before the middle child had forked it.
    daemon = ("import os, time\n"
              "r, w = os.pipe()\n"
              "if os.fork() == 0:\n"
              "    os.setsid()\n"
              "    if os.fork() == 0:\n"
              "        os.write(w, b'x')\n"
              "        time.sleep(4444)\n"
              "    os._exit(0)\n"
              "os.read(r, 1)\n")
    with reaper.marked_run() as token:
        subprocess.run([sys.executable, "-c", daemon], check=True)
        orphans = reaper.marked(token)
        assert orphans, "the grandchild runs on, reparented"
        reaper.sweep(token, grace_s=2)
        assert reaper.marked(token) == []
        for pid in orphans:  # reaped by us as subreaper: not even a zombie is left
            assert not Path(f"/proc/{pid}").exists()
