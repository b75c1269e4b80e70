"""The Pulumi program reads the stack config and plans the graph for that stack's mode."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest
import yaml

from dr import pulumi_program
from tests.conftest import REPO


class NoResources(pulumi.runtime.Mocks):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        raise AssertionError(f"the program must not create resources yet: {args.typ} {args.name}")

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


@pytest.fixture
def exports(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    pulumi.runtime.set_mocks(NoResources(), preview=False)
    captured: dict[str, Any] = {}
    monkeypatch.setattr(pulumi, "export", lambda name, value: captured.__setitem__(name, value))
    monkeypatch.chdir(REPO)
    return captured


def stack_config(stack: str) -> dict[str, str]:
    document = yaml.safe_load((REPO / "stacks" / f"Pulumi.{stack}.yaml").read_text())
    return dict(document["config"])


@pytest.mark.parametrize("stack", ["prod", "drill"])
def test_stack_files_point_at_the_example_graph_and_their_mode(stack: str, exports: dict[str, Any]) -> None:
    for key, value in stack_config(stack).items():
        pulumi.runtime.set_config(key, value)
    pulumi_program.run()
    assert exports["mode"] == stack
    assert exports["recovery_order"][0] == "os-prepare"
    has_prod_issuer = "letsencrypt-prod" in exports["recovery_order"]
    assert has_prod_issuer == (stack == "prod")


def test_invalid_graph_fails_the_update_with_its_location(exports: dict[str, Any], tmp_path) -> None:
    bad = tmp_path / "g.yaml"
    bad.write_text("cluster: lab\ncomponents:\n  os: {layer: oss}\n")
    pulumi.runtime.set_config("dr:graph", str(bad))
    pulumi.runtime.set_config("dr:mode", "prod")
    with pytest.raises(pulumi.RunError, match=f"{bad}:3: component 'os': unknown layer 'oss'"):
        pulumi_program.run()


def test_main_module_is_one_line_that_hands_over() -> None:
    lines = [line for line in (REPO / "__main__.py").read_text().splitlines() if line.strip()]
    assert len(lines) == 1 and "dr.pulumi_program" in lines[0]
