"""One leak scanner: every field of every kept component and every rendered object, keys included.

Each case below escaped one of the two scanners dr had before they became one.
"""

from __future__ import annotations

import pytest

from dr.core.graph import RecoveryGraph
from dr.core.leaks import find_markers
from dr.core.plan import plan_for
from dr.core.resources import Child, ComponentResources, KubeObject, ResourcePlan, find_object_leaks
from dr.core.spec import GraphSpec
from dr.errors import GraphError

BASE = """\
cluster: lab
prod_markers: [prod.example.com]
backups:
  vol: {tool: restic, protects: app, repo: /backups/vol, schedule: "0 * * * *", rpo: 1h, retention: {daily: 7}}
components:
  os: {layer: os, playbook: os.yml, estimate: 1m}
  vol-restore: {layer: data, depends_on: [os], restore: {backup: vol}, vars: {restore_path: /srv/vol}, estimate: 1m}
  app: {layer: app, depends_on: [vol-restore], estimate: 1m}
"""

CASES = {
    "playbook vars": """
  tune: {layer: os, playbook: tune.yml, vars: {ntp: prod.example.com}, estimate: 1m}
""",
    "helm repo": """
  chart: {layer: addon, helm: {chart: c, repo: "https://prod.example.com/charts", version: "1.0.0", namespace: n}, estimate: 1m}
""",
    "mapping key": """
  chart: {layer: addon, helm: {chart: c, repo: "https://charts.example.com", version: "1.0.0", namespace: n, values: {hosts: {prod.example.com: 1}}}, estimate: 1m}
""",
    "host-restore vars": """
  other-restore: {layer: data, depends_on: [os], restore: {backup: vol}, vars: {restore_path: /srv/v2, notify: "prod.example.com"}, estimate: 1m}
""",
    "playbook hosts": """
  tune: {layer: os, playbook: tune.yml, hosts: [prod.example.com], estimate: 1m}
""",
    "verify check": """
  tune: {layer: os, playbook: tune.yml, verify: [{http: "https://prod.example.com/healthz"}], estimate: 1m}
""",
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_declared_field_with_a_marker_is_refused_in_drill_mode(case: str) -> None:
    spec = GraphSpec.from_yaml(BASE + CASES[case], path="g.yaml")
    with pytest.raises(GraphError, match="prod.example.com"):
        RecoveryGraph.build(spec, mode="drill")
    RecoveryGraph.build(spec, mode="prod")  # production may name production


def test_rendered_inputs_of_every_child_kind_are_scanned() -> None:
    def plan_with(child: Child) -> ResourcePlan:
        return ResourcePlan(cluster="lab", mode="drill", kubernetes="1.30", kubeconfig_from=None,
                            components=(ComponentResources(name="c", layer="app", depends_on=(), children=(child,)),))

    playbook = Child(kind="playbook", name="p", inputs={"vars": {"prod.example.com": True}})
    helm = Child(kind="helm-release", name="h", inputs={"repo": "https://prod.example.com"})
    restore = Child(kind="host-restore", name="r", inputs={"repo": "prod.example.com:/vol",
                                                           "vars": {"target": "prod.example.com"}})
    for child in (playbook, helm, restore):
        assert find_object_leaks(plan_with(child), ("prod.example.com",)), child.kind
    source_only = Child(kind="host-restore", name="r", inputs={"repo": "prod.example.com:/vol",
                                                               "vars": {"repository": "prod.example.com:/copy"}})
    assert find_object_leaks(plan_with(source_only), ("prod.example.com",)) == [], "a restore source is read-only"
    restore_object = KubeObject(manifest={"kind": "Volume", "metadata": {"name": "v"},
                                          "spec": {"fromBackup": "prod.example.com/b", "other": "prod.example.com"}},
                                data_bearing=True, restore_sources=(("spec", "fromBackup"),))
    hits = find_object_leaks(plan_with(Child(kind="kube-object", name="k", inputs={"manifest": restore_object.manifest},
                                             objects=(restore_object,))), ("prod.example.com",))
    assert len(hits) == 1 and "spec.other" in hits[0][1]


def test_scanner_reads_keys_and_nested_lists_and_honours_only_exact_exemptions() -> None:
    value = {"a": [{"prod.example.com": 1}, "x prod.example.com y"], "b": "prod.example.com"}
    hits = {(h.path, h.marker) for h in find_markers(value, ["prod.example.com"], exempt=[("b",)])}
    assert hits == {(("a", 0, "prod.example.com"), "prod.example.com"), (("a", 1), "prod.example.com")}
    assert list(find_markers(value, [])) == []


def test_the_example_drill_plan_has_no_leak() -> None:
    from dr.graph_file import load_graph_file, read_text
    from tests.conftest import EXAMPLE_GRAPH

    spec = load_graph_file(EXAMPLE_GRAPH)
    plan = plan_for(spec, mode="drill", read_text=read_text)
    assert plan.mode == "drill"


@pytest.mark.parametrize("spelling", [
    "homelab-backups",                                   # Velero's bucket:
    "https://s3.eu-west-1.amazonaws.com/homelab-backups/velero",
    "s3:s3.example.com/homelab-backups/restic",          # restic
    "homelab-backups.s3.amazonaws.com",
    "s3://homelab-backups",
])
def test_the_production_bucket_is_found_however_it_is_spelt(spelling: str) -> None:
    assert [h.marker for h in find_markers({"bucket": spelling}, ["s3://homelab-backups/"])] == [
        "s3://homelab-backups/"], spelling


@pytest.mark.parametrize("other", ["homelab-backups-drill-replica", "s3://homelab-backups-copy", "my-homelab-backups"])
def test_a_different_bucket_is_not_the_production_one(other: str) -> None:
    assert list(find_markers({"bucket": other}, ["s3://homelab-backups"])) == []


def test_a_velero_location_on_the_production_bucket_is_refused_with_the_reason() -> None:
    graph = BASE.replace("prod_markers: [prod.example.com]", "prod_markers: [prod.example.com, s3://homelab-backups]")
    graph += """
  velero:
    layer: addon
    helm:
      chart: velero
      repo: https://charts.example.com
      version: "8.0.0"
      namespace: velero
      values: {configuration: {backupStorageLocation: [{name: default, bucket: homelab-backups, accessMode: ReadWrite}]}}
    drill: {values: {configuration: {backupStorageLocation: [{name: default, bucket: homelab-backups, accessMode: ReadOnly}]}}}
    estimate: 1m
"""
    with pytest.raises(GraphError) as caught:
        RecoveryGraph.build(GraphSpec.from_yaml(graph, path="g.yaml"), mode="drill")
    text = str(caught.value)
    assert "backupStorageLocation.0.bucket contains the production marker 's3://homelab-backups'" in text
    assert "even when it is ReadOnly" in text and "g.yaml:18:" in text, "points at the drill override's line"


@pytest.mark.parametrize("spelling", ["gs:homelab-backups:/restic", "azure:homelab-backups:/restic",
                                      "s3:homelab-backups/restic", "b2:homelab-backups"])
def test_restic_spellings_of_the_production_bucket_are_found(spelling: str) -> None:
    assert list(find_markers({"repository": spelling}, ["s3://homelab-backups"])), spelling


def test_only_a_boundary_after_the_bucket_counts_wherever_it_occurs() -> None:
    from dr.core.leaks import bucket_of, contains_marker

    assert bucket_of("s3://homelab-backups/restic/nfs") == "homelab-backups"
    assert bucket_of("https://example.com/x") is None
    assert not contains_marker("s3://homelab-backupsXX", "s3://homelab-backups")
    assert contains_marker("s3://homelab-backups/y then s3://homelab-backups-x", "s3://homelab-backups")
    assert contains_marker("s3://homelab-backups-x then s3://homelab-backups/y", "s3://homelab-backups")
    # A marker that names a path inside the bucket: other paths of the bucket are not that marker.
    assert contains_marker("s3://homelab-backups/restic/nfs/2026", "s3://homelab-backups/restic/")
    assert not contains_marker("s3://homelab-backups/velero", "s3://homelab-backups/restic")
