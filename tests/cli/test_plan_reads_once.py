"""`dr plan` with a drill history reads and parses the graph once (it read it twice: once for the
history's cluster name, once to plan)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import dr.cli
from dr.drill.history import History
from tests.audit.test_drill_kinds import drill
from tests.conftest import EXAMPLE_GRAPH


def test_plan_with_a_history_reads_the_graph_once(tmp_path: Path, run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    with History(tmp_path / "history.sqlite") as history:
        history.record(drill("stack", finished=time.time() - 60))
    reads = []
    real = dr.cli.load_graph_file

    def counting(path):  # type: ignore[no-untyped-def]
        reads.append(path)
        return real(path)

    monkeypatch.setattr(dr.cli, "load_graph_file", counting)
    result = run_cli("plan", "--graph", str(EXAMPLE_GRAPH), "--state-dir", str(tmp_path))
    assert result.code == 0, result.err
    assert len(reads) == 1
