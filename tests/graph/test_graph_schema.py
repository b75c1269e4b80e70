"""The JSON Schema editors check a graph with (`dr schema`, schema/recovery-graph.schema.json) agrees with
dr's own reader: every graph the reader accepts passes it, and every bad input the reader refuses is
refused by it too, unless the case needs what one file's schema cannot see (listed, with why)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from dr.core.graph_schema import graph_schema, modeline, schema_text
from dr.core.spec import GraphSpec
from tests.conftest import EXAMPLE_GRAPH, REPO
from tests.graph.test_bad_input import CASES

VALIDATOR = jsonschema.Draft7Validator(graph_schema())
# What the reader refuses that a schema of one file cannot say, and why (`dr plan` says it with path:line).
BEYOND_A_SCHEMA = {
    "duplicate backup": "YAML: a duplicate key (yaml-language-server flags it itself)",
    "duplicate component": "YAML: a duplicate key (yaml-language-server flags it itself)",
    "duplicate field": "YAML: a duplicate key (yaml-language-server flags it itself)",
    "hosts not known": "a reference to the graph's hosts",
    "restore of unknown backup": "a reference to the graph's backups",
    "self dependency": "a cycle",
    "unknown dependency": "a reference to the graph's components",
    "restic repository in s3:// form": "a repository's syntax as its tool reads it",
    "restic repository of an unknown scheme": "a repository's syntax as its tool reads it",
    "restic repository that is relative": "a repository's syntax as its tool reads it",
}


def problems(data: Any) -> list[str]:
    return [f"{e.json_path}: {e.message}" for e in VALIDATOR.iter_errors(data)]


def test_the_published_schema_is_the_one_dr_prints(run_cli) -> None:
    jsonschema.Draft7Validator.check_schema(graph_schema())
    published = REPO / "schema" / "recovery-graph.schema.json"
    assert published.read_text() == schema_text(), "run `dr schema --out schema/recovery-graph.schema.json`"
    result = run_cli("schema")
    assert result.code == 0 and json.loads(result.out)["title"] == "dr recovery graph"


def valid_graphs() -> dict[str, str]:
    from tests.kube.test_engine_gitops_gate import GRAPH as GATE
    from tests.pulumi.test_gitops_backup_objects import GRAPH as GITOPS_BACKUPS
    from tests.restore_tools.test_kopiur import GRAPH as KOPIUR

    return {"example": EXAMPLE_GRAPH.read_text(), "kopiur": KOPIUR, "gitops backups": GITOPS_BACKUPS,
            "gitops gate": GATE}


@pytest.mark.parametrize("name", sorted(valid_graphs()))
def test_every_graph_the_reader_accepts_passes_the_schema(name: str) -> None:
    text = valid_graphs()[name]
    GraphSpec.from_yaml(text, path="g.yaml")
    assert problems(yaml.safe_load(text)) == []


@pytest.mark.parametrize("case", sorted(CASES), ids=sorted(CASES))
def test_every_bad_input_the_reader_refuses_the_schema_refuses(case: str) -> None:
    text = CASES[case][0]
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return  # not YAML at all: the editor's YAML parser says so before any schema
    if case in BEYOND_A_SCHEMA:
        assert problems(data) == [], f"{case} is refused by the schema now: drop it from BEYOND_A_SCHEMA"
    else:
        assert problems(data), f"the schema accepts {case!r}, which dr refuses"


def test_an_imported_graph_points_editors_at_the_schema_written_beside_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.gitops_import.test_import import FIXTURES, run

    out = tmp_path / "flux.yaml"
    code, _, err = run(["import", "flux", str(FIXTURES / "flux-homelab"), "--out", str(out)], capsys)
    assert code in (0, 1), err
    assert out.read_text().splitlines()[0] == modeline() == \
        "# yaml-language-server: $schema=./recovery-graph.schema.json"
    assert (tmp_path / "recovery-graph.schema.json").read_text() == schema_text()
    assert problems(yaml.safe_load(out.read_text())) == []
    code, _, err = run(["import", "flux", str(FIXTURES / "flux-homelab"), "--out", str(tmp_path / "other.yaml")],
                       capsys)
    assert code == 2 and "recovery-graph.schema.json exists; pass --force" in err
