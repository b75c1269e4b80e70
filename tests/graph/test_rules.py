"""The validation rules of design.md, one behaviour each."""

from __future__ import annotations

import pytest

from dr.core.graph import RecoveryGraph
from dr.core.spec import GraphSpec
from dr.errors import GraphError

BACKUP = "{tool: restic, repo: /srv/backups/app, schedule: '0 * * * *', retention: {hourly: 24, daily: 7}, rpo: 2h}"


def build(text: str, mode: str = "prod") -> RecoveryGraph:
    return RecoveryGraph.build(GraphSpec.from_yaml(text, path="g.yaml"), mode=mode)


def errors(text: str, mode: str = "prod") -> list[str]:
    with pytest.raises(GraphError) as caught:
        build(text, mode)
    return [str(d) for d in caught.value.diagnostics]


def test_cycle_is_printed_as_a_chain_back_to_its_start() -> None:
    found = errors("""\
cluster: lab
components:
  a: {layer: os, depends_on: [c]}
  b: {layer: os, depends_on: [a]}
  c: {layer: os, depends_on: [b]}
""")
    assert found == ["g.yaml:3: dependency cycle: a -> b -> c -> a; a recovery order needs one of these "
                     "dependencies removed"]


def test_every_independent_cycle_is_reported() -> None:
    found = errors("""\
cluster: lab
components:
  a: {layer: os, depends_on: [b]}
  b: {layer: os, depends_on: [a]}
  x: {layer: os, depends_on: [y]}
  y: {layer: os, depends_on: [x]}
""")
    assert len(found) == 2
    assert "a -> b -> a" in found[0] and "x -> y -> x" in found[1]


def test_app_that_owns_a_backup_must_depend_on_its_restore() -> None:
    found = errors(f"""\
cluster: lab
backups:
  app-data: {BACKUP[:-1]}, protects: app}}
components:
  storage: {{layer: storage}}
  app-data-restore: {{layer: data, depends_on: [storage], restore: {{backup: app-data}}, vars: {{restore_path: /srv/app}}}}
  app: {{layer: app, depends_on: [storage]}}
""")
    assert found == [
        "g.yaml:7: component 'app' owns the data of backup 'app-data' but does not depend on a restore of it; "
        "it would start on empty storage and initialise it: add 'app-data-restore' to its depends_on"]


def test_transitive_restore_satisfies_the_data_rule() -> None:
    graph = build(f"""\
cluster: lab
backups:
  app-data: {BACKUP[:-1]}, protects: app}}
components:
  restore: {{layer: data, restore: {{backup: app-data}}, vars: {{restore_path: /srv/app}}}}
  db: {{layer: data, depends_on: [restore]}}
  app: {{layer: app, depends_on: [db]}}
""")
    assert graph.topological_order().index("restore") < graph.topological_order().index("app")


def test_data_rule_without_any_restore_says_how_to_add_one() -> None:
    found = errors(f"""\
cluster: lab
backups:
  app-data: {BACKUP[:-1]}, protects: app}}
components:
  app: {{layer: app}}
""")
    assert "add a component with restore: {backup: app-data}" in found[0]


def test_stateful_component_needs_a_backup() -> None:
    found = errors("cluster: lab\ncomponents:\n  db:\n    layer: data\n    stateful: true\n")
    assert found == ["g.yaml:5: component 'db' is stateful but no backup protects it; add a backup with "
                     "protects: db, or drop stateful if it holds no data"]


def test_backup_protecting_an_unknown_component_is_named() -> None:
    found = errors(f"cluster: lab\nbackups:\n  b: {BACKUP[:-1]}, protects: gitee}}\ncomponents:\n  gitea: {{layer: app}}\n")
    assert "protects unknown component 'gitee' (did you mean 'gitea'?)" in found[0]


def test_later_layer_dependency_is_a_warning_not_an_error() -> None:
    graph = build("cluster: lab\ncomponents:\n  vault: {layer: app, estimate: 1m}\n"
                  "  cilium: {layer: cni, depends_on: [vault], estimate: 1m}\n")
    assert [str(w) for w in graph.warnings] == [
        "g.yaml:4: warning: component 'cilium' (layer cni) depends on 'vault' from the later layer app; "
        "is that intended?"]


def test_missing_estimate_is_a_warning() -> None:
    graph = build("cluster: lab\ncomponents:\n  os: {layer: os, playbook: os.yml}\n")
    assert "has no estimate" in str(graph.warnings[0])


def test_milestone_without_action_is_allowed() -> None:
    graph = build("cluster: lab\ncomponents:\n  os: {layer: os, playbook: os.yml, estimate: 1m}\n"
                  "  hosts-ready: {layer: os, depends_on: [os]}\n")
    assert graph.spec.components["hosts-ready"].action_kind == "milestone"
    assert graph.warnings == ()


def test_manifest_file_must_exist(tmp_path) -> None:
    path = tmp_path / "g.yaml"
    path.write_text("cluster: lab\ncomponents:\n  issuer:\n    layer: addon\n    manifests: [issuer.yaml]\n")
    spec = GraphSpec.from_yaml(path.read_text(), path=str(path))
    with pytest.raises(GraphError) as caught:
        RecoveryGraph.build(spec, read_text=lambda p: p.read_text())
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.line == 5
    assert "manifest file 'issuer.yaml' cannot be read" in diagnostic.message
