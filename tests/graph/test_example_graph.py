"""The example graph in stacks/ is valid in both modes and shaped like the incidents in design.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from dr.core.graph import RecoveryGraph
from dr.core.spec import LAYERS, GraphSpec, RestoreAction
from dr.graph_file import load_graph_file
from tests.conftest import EXAMPLE_GRAPH


@pytest.fixture(scope="module")
def spec() -> GraphSpec:
    return load_graph_file(EXAMPLE_GRAPH)


def read(path: Path) -> str:
    return path.read_text()


@pytest.mark.parametrize("mode", ["prod", "drill"])
def test_example_is_valid_without_warnings(spec: GraphSpec, mode: str) -> None:
    graph = RecoveryGraph.build(spec, mode=mode, read_text=read)
    assert graph.warnings == ()


def test_example_has_a_component_in_every_layer(spec: GraphSpec) -> None:
    assert {c.layer for c in spec.components.values()} == set(LAYERS)


def test_every_backup_has_schedule_retention_and_rpo(spec: GraphSpec) -> None:
    for backup in spec.backups.values():
        assert backup.schedule and backup.rpo_s > 0 and backup.retention.restore_points > 1, backup.name
        assert backup.protects and set(backup.protects) <= set(spec.components)


def test_every_component_with_an_action_has_an_estimate(spec: GraphSpec) -> None:
    assert all(c.estimate_s > 0 for c in spec.components.values() if c.action is not None)


def test_host_level_and_kubernetes_level_backups_are_both_present(spec: GraphSpec) -> None:
    tools = {b.tool for b in spec.backups.values()}
    assert {"etcd-snapshot", "restic", "pgbackrest"} <= tools
    assert {"cnpg-barman", "longhorn", "velero"} <= tools


def test_restore_tools_are_installed_before_their_restores(spec: GraphSpec) -> None:
    graph = RecoveryGraph.build(spec, read_text=read)
    order = graph.topological_order()
    installer = {"velero": "velero", "longhorn": "longhorn", "cnpg-barman": "cnpg-operator"}
    for name, component in spec.components.items():
        if isinstance(component.action, RestoreAction):
            tool = spec.backups[component.action.backup].tool
            if tool in installer:
                assert order.index(installer[tool]) < order.index(name), name


def test_drill_swaps_the_production_issuer_and_drops_external_dns(spec: GraphSpec) -> None:
    drill = RecoveryGraph.build(spec, mode="drill", read_text=read)
    assert "letsencrypt-prod" not in drill.components and "external-dns" not in drill.components
    assert "selfsigned-issuer" in drill.components["gitea"].depends_on


def test_without_its_drill_override_longhorn_would_leak_the_production_bucket(spec: GraphSpec) -> None:
    text = EXAMPLE_GRAPH.read_text().replace("backupTarget: s3://homelab-drill@eu-west-1/longhorn", "foo: bar")
    leaky = GraphSpec.from_yaml(text, path=str(EXAMPLE_GRAPH))
    from dr.errors import GraphError

    with pytest.raises(GraphError, match="component 'longhorn' in drill mode: helm.values.defaultSettings.backupTarget"):
        RecoveryGraph.build(leaky, mode="drill", read_text=read)
