"""Shared helpers: write a graph to a temporary file, run the CLI in-process."""

from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from dr.cli import main

REPO = Path(__file__).resolve().parents[1]


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    """Hypothesis keeps its example database under this run's temporary directory, not in the work tree."""
    from hypothesis import settings
    from hypothesis.configuration import set_hypothesis_home_dir
    from hypothesis.database import DirectoryBasedExampleDatabase

    base = config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    set_hypothesis_home_dir(base / "hypothesis")
    # Under `make mutation` every mutant reruns the property tests: fewer examples keep it to minutes.
    examples = 25 if os.environ.get("MUTANT_UNDER_TEST") else settings.default.max_examples
    settings.register_profile("dr", database=DirectoryBasedExampleDatabase(base / "hypothesis"),
                              max_examples=examples)
    settings.load_profile("dr")
EXAMPLE_GRAPH = REPO / "stacks" / "cluster.yaml"

# Test data only, never read by dr: the project's reference copies of upstream CRDs, beside the checkout on
# the project's own machines (../shared/crds, with its SOURCES.md). Only the `reference_crds` fixture reads
# it, for operators no registry publishes (kopiur) and for old releases a test compares against; a test that
# needs it skips where it is missing (a user's clone), saying so.
REFERENCE_CRDS = REPO.parent / "shared" / "crds"


@pytest.fixture
def reference_crds(monkeypatch: pytest.MonkeyPatch):
    """`reference_crds("kopiur-0.1.0")`: that directory of the reference CRDs, added to DR_CRDS_DIR for the
    test; skips when the reference copies are not beside the checkout."""
    def use(name: str) -> Path:
        directory = REFERENCE_CRDS / name
        if not directory.is_dir():
            pytest.skip(f"{directory} is not here: the reference CRDs of {name} (published by no registry, or an "
                        "old release) sit beside the project's own checkouts only")
        current = os.environ.get("DR_CRDS_DIR")
        monkeypatch.setenv("DR_CRDS_DIR", os.pathsep.join(p for p in (current, str(directory)) if p))
        return directory
    return use

MINIMAL = """\
cluster: lab
kubernetes: "1.30"
components:
  os: {layer: os, playbook: os-prepare.yml, estimate: 1m}
"""


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def write_graph(tmp_path: Path):
    def write(text: str, name: str = "graph.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path
    return write


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str], tmp_path_factory: pytest.TempPathFactory):
    def run(*args: str) -> CliResult:
        argv = list(args)
        if argv and argv[0] == "plan" and "--state-dir" not in argv:
            # No drill history unless a test asks for it: estimates then come from the graph.
            argv += ["--state-dir", str(tmp_path_factory.mktemp("no-history"))]
        code = main(argv)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)
    return run
