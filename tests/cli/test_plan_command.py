"""`dr plan`: the JSON contract, the text table, --only, exit codes and stderr messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import EXAMPLE_GRAPH, MINIMAL, REPO


def test_json_has_exactly_the_contract_keys(run_cli) -> None:
    result = run_cli("plan", "--graph", str(EXAMPLE_GRAPH), "--json")
    assert result.code == 0
    plan = json.loads(result.out)
    assert list(plan) == ["cluster", "mode", "waves", "steps", "critical_path", "predicted_rto_s"]
    assert plan["cluster"] == "homelab" and plan["mode"] == "prod"
    assert set(plan["steps"][0]) == {"name", "layer", "depends_on", "action", "wave", "estimate_s"}
    assert plan["steps"][0] == {"name": "os-prepare", "layer": "os", "depends_on": [], "action": "playbook",
                                "wave": 0, "estimate_s": 480}


def test_json_is_consistent_with_itself(run_cli) -> None:
    plan = json.loads(run_cli("plan", "--graph", str(EXAMPLE_GRAPH), "--json").out)
    steps = {s["name"]: s for s in plan["steps"]}
    for index, wave in enumerate(plan["waves"]):
        for name in wave:
            assert steps[name]["wave"] == index
    position = {s["name"]: i for i, s in enumerate(plan["steps"])}
    for step in plan["steps"]:
        assert all(position[d] < position[step["name"]] for d in step["depends_on"])
    assert plan["predicted_rto_s"] == sum(steps[n]["estimate_s"] for n in plan["critical_path"])
    for earlier, later in zip(plan["critical_path"], plan["critical_path"][1:], strict=False):
        assert earlier in steps[later]["depends_on"]


def test_drill_json_shows_the_graph_after_swaps(run_cli) -> None:
    plan = json.loads(run_cli("plan", "--graph", str(EXAMPLE_GRAPH), "--mode", "drill", "--json").out)
    names = {s["name"] for s in plan["steps"]}
    assert plan["mode"] == "drill"
    assert {"letsencrypt-prod", "external-dns"}.isdisjoint(names)
    assert "selfsigned-issuer" in names
    gitea = next(s for s in plan["steps"] if s["name"] == "gitea")
    assert "selfsigned-issuer" in gitea["depends_on"]


def test_only_keeps_the_named_component_and_its_ancestors(run_cli) -> None:
    plan = json.loads(run_cli("plan", "--graph", str(EXAMPLE_GRAPH), "--only", "k3s-server", "--json").out)
    assert [s["name"] for s in plan["steps"]] == ["os-prepare", "etcd", "k3s-server"]
    assert plan["critical_path"] == ["os-prepare", "etcd", "k3s-server"]


def test_only_with_unknown_name_is_a_usage_error(run_cli) -> None:
    result = run_cli("plan", "--graph", str(EXAMPLE_GRAPH), "--only", "gitee")
    assert result.code == 2
    assert "'gitee' (did you mean 'gitea'?)" in result.err
    assert result.out == ""


def test_text_table_marks_the_critical_path(run_cli) -> None:
    result = run_cli("plan", "--graph", str(EXAMPLE_GRAPH))
    assert result.code == 0
    plan = json.loads(run_cli("plan", "--graph", str(EXAMPLE_GRAPH), "--json").out)
    marked = [line.split("* ")[1].split()[0] for line in result.out.splitlines() if " * " in line]
    assert marked == plan["critical_path"]
    from dr.core.durations import format_duration

    rto = plan["predicted_rto_s"]
    assert rto == sum(s["estimate_s"] for s in plan["steps"] if s["name"] in plan["critical_path"])
    assert f"Predicted RTO: {format_duration(rto)} ({rto}s)" in result.out


def test_invalid_graph_exits_2_with_path_and_line_on_stderr(run_cli, write_graph) -> None:
    path = write_graph(MINIMAL + "  k3s: {layer: control-plane, depends_on: [oss]}\n")
    result = run_cli("plan", "--graph", str(path))
    assert result.code == 2
    assert result.out == ""
    assert result.err == f"{path}:5: component 'k3s' depends on unknown component 'oss' (did you mean 'os'?)\n"


def test_missing_graph_file_exits_2(run_cli, tmp_path) -> None:
    result = run_cli("plan", "--graph", str(tmp_path / "nope.yaml"))
    assert result.code == 2
    assert "no such file" in result.err


def test_warnings_go_to_stderr_and_exit_0(run_cli, write_graph) -> None:
    path = write_graph(MINIMAL + "  web: {layer: app, playbook: nfs-exports.yml}\n")
    result = run_cli("plan", "--graph", str(path), "--json")
    assert result.code == 0
    assert "warning: component 'web' has no estimate" in result.err
    json.loads(result.out)


def test_a_graph_without_estimates_has_no_predicted_rto_and_says_why(run_cli, write_graph) -> None:
    """An imported graph has no estimates: "Predicted RTO: 0s (0s)" read as a promise of an instant rebuild."""
    path = write_graph("""\
cluster: lab
kubernetes: "1.30"
components:
  os: {layer: os, playbook: os-prepare.yml}
  web: {layer: app, playbook: nfs-exports.yml, depends_on: [os]}
""")
    result = run_cli("plan", "--graph", str(path))
    assert result.code == 0
    assert "Predicted RTO: none: no step has an estimate" in result.out and "0s (0s)" not in result.out


def test_console_script_never_prints_a_traceback(tmp_path) -> None:
    graph = tmp_path / "g.yaml"
    graph.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00binary")
    dr = REPO / ".venv" / "bin" / "dr"
    command = [str(dr)] if dr.exists() else [sys.executable, "-m", "dr.cli"]
    done = subprocess.run([*command, "plan", "--graph", str(graph)], capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith(f"{graph}:3: this is a binary file")


def test_bad_mode_is_a_usage_error(run_cli) -> None:
    import pytest

    with pytest.raises(SystemExit) as caught:
        run_cli("plan", "--mode", "staging")
    assert caught.value.code == 2



def test_a_reader_that_went_away_is_not_an_error() -> None:
    """`dr plan | head -1` once head has exited: exit 0 and nothing on stderr (the BrokenPipeError handler
    was shadowed by the OSError one above it: exit 2, "error:: Broken pipe")."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before dr writes
    try:
        done = subprocess.run([str(Path(sys.executable).parent / "dr"), "plan", "--graph", str(EXAMPLE_GRAPH)],
                              cwd=REPO, stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (0, "")
