"""The Pulumi driver of a stack drill: the user's project run through dr's one engine wrapper."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any


class EngineStack:
    """A stack of the user's Pulumi project (its `Pulumi.yaml`, stack files and backend) run through dr's
    one engine wrapper (`dr.stack.engine.Engine`) with the program inline: the Go Python language host is
    not needed."""

    def __init__(self, stack_name: str = "drill", project_dir: Path = Path("."),
                 say: Callable[[str], None] = lambda _: None) -> None:
        import yaml

        from dr.stack.engine import Engine
        from dr.stack.program import run

        engine = self._engine = Engine.for_project(project_dir)
        say(engine.describe())
        project = yaml.safe_load((engine.project_dir or project_dir).joinpath("Pulumi.yaml").read_text())["name"]
        self._stack = engine.stack(project=str(project), stack=stack_name, program=run)  # created when new

    def up(self, on_output: Callable[[str], None]) -> Mapping[str, Any]:
        try:
            self._stack.refresh(on_output=on_output, color="never")  # the test cluster may have changed
            result = self._stack.up(on_output=on_output, color="never")
        finally:
            self._engine.remove_tmp()  # the provider's kubeconfig files hold the test cluster's credentials
        return {key: value.value for key, value in result.outputs.items()}

    def destroy(self, on_output: Callable[[str], None]) -> None:
        try:
            self._stack.destroy(on_output=on_output, color="never")
        finally:
            self._engine.remove_tmp()
