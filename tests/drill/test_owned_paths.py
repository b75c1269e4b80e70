"""dr deletes and writes only inside the state directory it owns, never through a link, and never at a
name read from a file it did not check (issue 21, item 2). Each case plants what an attacker or a stale
file would, runs the real command, and checks what was left."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dr.drill.history import History, HistoryDamaged
from dr.drill.run import DrillPaths, write_reports
from dr.owned_paths import NotOwned, read_run_id, remove_owned_tree
from tests.conftest import EXAMPLE_GRAPH
from tests.drill.test_stack_drill_and_schedule import report


def state_with_history(root: Path) -> Path:
    state = root / "state"
    (state / "reports" / "20261130T010000Z").mkdir(parents=True)
    (state / "reports" / "20261130T010000Z" / "report.md").write_text("last month's drill")
    History(state / "history.sqlite").record(report("r1", etcd_s=20.0))
    return state


@pytest.mark.parametrize("pointer", ["..", "../../victim", "drills/../..", "", "20261201T000000Z/../.."])
def test_a_run_id_that_is_not_one_dr_writes_deletes_nothing(tmp_path: Path, run_cli, pointer: str) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious").write_text("keep me")
    state = state_with_history(tmp_path)
    (state / "current-drill").write_text(pointer)
    result = run_cli("drill", "--sandbox", "--graph", str(EXAMPLE_GRAPH), "--state-dir", str(state))
    assert result.code != 0
    if pointer:
        assert "not a run id dr writes" in result.err and "nothing was deleted" in result.err
    assert (victim / "precious").read_text() == "keep me"
    assert (state / "history.sqlite").is_file()
    assert (state / "reports" / "20261130T010000Z" / "report.md").read_text() == "last month's drill"


def test_the_pointer_file_itself_may_not_be_a_link(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").write_text("20261201T000000Z")
    (tmp_path / "current-drill").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(NotOwned, match="symbolic link"):
        read_run_id(tmp_path / "current-drill")


def test_paths_for_a_run_refuse_links_and_bad_ids(tmp_path: Path) -> None:
    paths = DrillPaths(tmp_path)
    assert paths.sandbox("20261201T000000Z") == tmp_path / "drills" / "20261201T000000Z"
    for bad in ("..", "../x", "a/b", "20261201T000000Z/.."):
        with pytest.raises(NotOwned):
            paths.sandbox(bad)
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "reports").symlink_to(outside)
    with pytest.raises(NotOwned, match="symbolic link"):
        paths.reports("20261201T000000Z")


def test_a_link_planted_at_a_report_file_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    target = tmp_path / "etc-passwd"
    target.write_text("root:x:0:0")
    reports = tmp_path / "reports" / "20261201T000000Z"
    reports.mkdir(parents=True)
    (reports / "report.json").symlink_to(target)
    with pytest.raises(NotOwned, match="symbolic link"):
        write_reports(report("r", etcd_s=1.0), reports)
    assert target.read_text() == "root:x:0:0"


def test_a_link_planted_at_history_png_is_refused(tmp_path: Path, run_cli) -> None:
    state = state_with_history(tmp_path)
    target = tmp_path / "victim.txt"
    target.write_text("keep me")
    (state / "history.png").symlink_to(target)
    result = run_cli("history", "--state-dir", str(state), "--png", str(state / "history.png"))
    assert result.code != 0 and "symbolic link" in result.err
    assert target.read_text() == "keep me"
    (state / "history.png").unlink()
    assert run_cli("history", "--state-dir", str(state), "--png", str(state / "history.png")).code == 0
    assert (state / "history.png").read_bytes()[:4] == b"\x89PNG"


def test_history_reads_the_state_dir_and_writes_nothing_into_it(tmp_path: Path, run_cli) -> None:
    """`dr history` wrote history.png into the state dir (the README says it only reads it), and failed on
    a read-only one after printing its table."""
    state = state_with_history(tmp_path)
    def contents() -> dict[str, bytes]:
        return {str(p.relative_to(state)): p.read_bytes() for p in state.rglob("*") if p.is_file()}

    before = contents()
    result = run_cli("history", "--state-dir", str(state))
    assert result.code == 0 and "chart: not drawn; --png FILE" in result.out
    assert contents() == before
    chart = tmp_path / "chart.png"
    assert run_cli("history", "--state-dir", str(state), "--png", str(chart)).code == 0
    assert chart.read_bytes()[:4] == b"\x89PNG" and contents() == before
    # Opened read-only, the history cannot be written, whoever runs it (root included).
    with History(state / "history.sqlite", read_only=True) as history, pytest.raises(HistoryDamaged):
        history.record(report("later", etcd_s=1.0))


def test_removing_a_tree_stays_inside_its_root(tmp_path: Path) -> None:
    root, outside = tmp_path / "state", tmp_path / "outside"
    (root / "drills").mkdir(parents=True)
    outside.mkdir()
    (outside / "precious").write_text("keep me")
    os.symlink(outside, root / "drills" / "20261201T000000Z")
    with pytest.raises(NotOwned):
        remove_owned_tree(root, "drills", "20261201T000000Z")
    assert (outside / "precious").is_file()
    (root / "drills" / "20261201T000001Z" / "x").mkdir(parents=True)
    remove_owned_tree(root, "drills", "20261201T000001Z")
    assert not (root / "drills" / "20261201T000001Z").exists()
