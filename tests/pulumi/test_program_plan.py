"""The Pulumi program reads the stack config and builds the graph of that stack's mode."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest

from dr.stack import program as pulumi_program
from dr.stack.preview import _Mocks, run_preview
from tests.conftest import REPO


@pytest.mark.parametrize("stack", ["prod", "drill"])
def test_stack_files_select_the_graph_and_the_mode(stack: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    exports: dict[str, Any] = {}
    monkeypatch.setattr(pulumi, "export", lambda name, value: exports.__setitem__(name, value))
    preview = run_preview(stack)
    assert exports["mode"] == stack and preview.plan.mode == stack
    assert exports["recovery_order"][0] == "os-prepare"
    assert ("letsencrypt-prod" in exports["recovery_order"]) == (stack == "prod")
    assert any(r.type == "dr:recovery:Component" and r.name == "gitea" for r in preview.resources)


def test_invalid_graph_fails_the_update_with_its_location(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "g.yaml"
    bad.write_text("cluster: lab\ncomponents:\n  os: {layer: oss}\n")
    pulumi.runtime.set_mocks(_Mocks(), preview=False)
    pulumi.runtime.set_config("dr:graph", str(bad))
    pulumi.runtime.set_config("dr:mode", "prod")
    with pytest.raises(pulumi.RunError, match=f"{bad}:3: component 'os': unknown layer 'oss'"):
        pulumi.runtime.test(pulumi_program.run)()


def test_main_module_is_one_line_that_hands_over() -> None:
    lines = [line for line in (REPO / "__main__.py").read_text().splitlines() if line.strip()]
    assert len(lines) == 1 and "dr.stack.program" in lines[0]
