"""One dr run per state directory (issue 21, item 5): a second drill or `dr sandbox up|down` on the same
directory refuses at once and names the holder; the lock dies with its holder, even under SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dr.state_lock import StateDirBusy, state_dir_lock
from tests.conftest import EXAMPLE_GRAPH, REPO

HOLD = """
import sys, time
from pathlib import Path
from dr.state_lock import state_dir_lock
with state_dir_lock(Path(sys.argv[1]), "dr drill --sandbox"):
    print("held", flush=True)
    time.sleep(600)
"""


def holder(state: Path) -> subprocess.Popen[str]:
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(state)], stdout=subprocess.PIPE, text=True,
                               cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert process.stdout is not None and process.stdout.readline().strip() == "held"
    return process


def test_a_second_run_in_the_same_process_is_refused(tmp_path: Path) -> None:
    busy = pytest.raises(StateDirBusy, match=r"in use by `dr drill --sandbox` \(pid \d+")
    with state_dir_lock(tmp_path, "dr drill --sandbox"), busy, state_dir_lock(tmp_path, "dr sandbox up"):
        pass
    with state_dir_lock(tmp_path, "dr sandbox up"):  # released when the first run ended
        pass


def test_drill_and_sandbox_commands_refuse_a_busy_state_dir_and_touch_nothing(tmp_path: Path, run_cli) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "current-drill").write_text("20261201T000000Z")
    process = holder(state)
    try:
        for argv in (["drill", "--sandbox", "--graph", str(EXAMPLE_GRAPH)], ["sandbox", "up"], ["sandbox", "down"]):
            result = run_cli(*argv, "--state-dir", str(state))
            assert result.code != 0, argv
            assert "is in use by `dr drill --sandbox`" in result.err and f"pid {process.pid}" in result.err, result.err
        assert (state / "current-drill").read_text() == "20261201T000000Z"
        assert sorted(p.name for p in state.iterdir()) == ["current-drill", "dr.lock"]
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    # The kernel released the killed holder's lock: no stale lock to clean up by hand.
    result = run_cli("sandbox", "down", "--state-dir", str(state))
    assert result.code == 0 and "nothing was running" in result.out


def test_a_planted_link_at_the_lock_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_text("keep")
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "dr.lock").symlink_to(target)
    with pytest.raises(StateDirBusy, match="symbolic link"), state_dir_lock(tmp_path / "state", "dr drill --sandbox"):
        pass
    assert target.read_text() == "keep"
