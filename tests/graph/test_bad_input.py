"""Every way a user can get the graph wrong: one clear `path:line: message`, exit 2, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from dr.core.graph import RecoveryGraph
from dr.core.spec import GraphSpec
from dr.errors import GraphError


def diagnostics(text: str, *, mode: str = "prod") -> list[tuple[int, str]]:
    with pytest.raises(GraphError) as caught:
        spec = GraphSpec.from_yaml(text, path="g.yaml")
        RecoveryGraph.build(spec, mode=mode)
    return [(d.line, d.message) for d in caught.value.diagnostics]


CASES = {
    "empty file": ("", 1, "the file is empty"),
    "only a comment": ("# nothing here\n", 1, "the file is empty"),
    "root is a list": ("- a\n- b\n", 1, "top level must be a mapping"),
    "root is a scalar": ("hello\n", 1, "top level must be a mapping"),
    "no components": ("cluster: lab\n", 1, "needs a 'components' mapping"),
    "estimate banana": (
        "cluster: lab\ncomponents:\n  os:\n    layer: os\n    estimate: banana\n", 5,
        "'banana' is not a duration"),
    "estimate without unit": (
        "cluster: lab\ncomponents:\n  os: {layer: os, estimate: 90}\n", 3, "needs a unit: write 90s"),
    "depends_on a number": (
        "cluster: lab\ncomponents:\n  os: {layer: os}\n  k3s:\n    layer: control-plane\n    depends_on: 7\n", 6,
        "must be a list of names"),
    "depends_on lists a mapping": (
        "cluster: lab\ncomponents:\n  os: {layer: os}\n  k3s:\n    layer: os\n    depends_on:\n      - {a: 1}\n", 7,
        "must list names, not a mapping"),
    "unknown top-level field": ("cluster: lab\ncomponent:\n  os: {layer: os}\n", 2,
                                "unknown field 'component' in the recovery graph (did you mean 'components'?)"),
    "unknown component field": (
        "cluster: lab\ncomponents:\n  os:\n    layer: os\n    dependson: []\n", 5,
        "unknown field 'dependson' in component 'os' (did you mean 'depends_on'?)"),
    "unknown field far from any": (
        "cluster: lab\ncomponents:\n  os:\n    layer: os\n    zzzz: 1\n", 5, "known fields: layer"),
    "unknown layer": ("cluster: lab\ncomponents:\n  os: {layer: cnii}\n", 3, "unknown layer 'cnii' (did you mean 'cni'?)"),
    "missing layer": ("cluster: lab\ncomponents:\n  os: {estimate: 1m}\n", 3, "'layer' is required"),
    "tab indentation": ("cluster: lab\ncomponents:\n\tos: {layer: os}\n", 3, "tab character"),
    "duplicate component": (
        "cluster: lab\ncomponents:\n  os: {layer: os}\n  os: {layer: etcd}\n", 4,
        "duplicate key 'os' (first on line 3)"),
    "duplicate backup": (
        "cluster: lab\nbackups:\n  b: {tool: restic, repo: /r, schedule: '@daily', retention: {daily: 7}, rpo: 1d}\n"
        "  b: {tool: restic, repo: /r, schedule: '@daily', retention: {daily: 7}, rpo: 1d}\n"
        "components:\n  os: {layer: os}\n", 4, "duplicate key 'b'"),
    "duplicate field": ("cluster: lab\ncluster: other\ncomponents:\n  os: {layer: os}\n", 2, "duplicate key 'cluster'"),
    "unknown dependency": (
        "cluster: lab\ncomponents:\n  etcd: {layer: etcd}\n  k3s:\n    layer: control-plane\n    depends_on: [etdc]\n",
        6, "depends on unknown component 'etdc' (did you mean 'etcd'?)"),
    "self dependency": ("cluster: lab\ncomponents:\n  os: {layer: os, depends_on: [os]}\n", 3, "cycle os -> os"),
    "two actions": (
        "cluster: lab\ncomponents:\n  os:\n    layer: os\n    playbook: a.yml\n    manifests: b.yaml\n", 6,
        "has 2 actions (playbook, manifests)"),
    "restore of unknown backup": (
        "cluster: lab\nbackups:\n  gitea-data: {tool: restic, repo: /r, schedule: '0 * * * *', retention: {daily: 7},"
        " rpo: 1h}\ncomponents:\n  r:\n    layer: data\n    restore: {backup: gitea-dat}\n", 7,
        "restores unknown backup 'gitea-dat' (did you mean 'gitea-data'?)"),
    "unquoted kubernetes version": ("cluster: lab\nkubernetes: 1.30\ncomponents:\n  os: {layer: os}\n", 2,
                                    "YAML reads it as the number 1.3"),
    "unquoted helm version": (
        "cluster: lab\ncomponents:\n  c:\n    layer: cni\n    helm: {chart: c, repo: r, version: 1.16, namespace: n}\n",
        5, "must be a quoted string"),
    "bad cron": (
        "cluster: lab\nbackups:\n  b: {tool: restic, repo: /r, schedule: 'every hour', retention: {daily: 7}, rpo: 1h}\n"
        "components:\n  os: {layer: os}\n", 3, "cron expression with five fields"),
    "unknown backup tool": (
        "cluster: lab\nbackups:\n  b: {tool: resticc, repo: r, schedule: '@daily', retention: {daily: 7}, rpo: 1d}\n"
        "components:\n  os: {layer: os}\n", 3, "unknown tool 'resticc' (did you mean 'restic'?)"),
    "negative retention": (
        "cluster: lab\nbackups:\n  b: {tool: restic, repo: /r, schedule: '@daily', retention: {daily: -1}, rpo: 1d}\n"
        "components:\n  os: {layer: os}\n", 3, "whole number of 0 or more"),
    "missing rpo": (
        "cluster: lab\nbackups:\n  b: {tool: restic, repo: /r, schedule: '@daily', retention: {daily: 7}}\n"
        "components:\n  os: {layer: os}\n", 3, "'rpo' is required"),
    "naive target time": (
        "cluster: lab\nbackups:\n  b: {tool: restic, repo: /r, schedule: '@daily', retention: {daily: 7}, rpo: 1d}\n"
        "components:\n  r:\n    layer: data\n    restore: {backup: b, target_time: '2026-01-02T03:04:05'}\n", 7,
        "has no UTC offset"),
    "bad component name": ("cluster: lab\ncomponents:\n  Gitea_App: {layer: app}\n", 3, "must be lowercase letters"),
    "boolean that is not": ("cluster: lab\ncomponents:\n  os: {layer: os, stateful: 'yes please'}\n", 3,
                            "must be true or false"),
    "flow mapping not closed": ("cluster: lab\ncomponents:\n  os: {layer: os\n", 4, "invalid YAML"),
    "two documents": ("cluster: a\ncomponents: {os: {layer: os}}\n---\ncluster: b\n", 4, "more than one YAML document"),
    "recursive alias": ("cluster: lab\ncomponents: &c\n  os: {layer: os, vars: *c}\n", 2, "recursive"),
    "control character": ("cluster: lab\x07\ncomponents: {}\n", 1, "control character"),
    "hosts not known": (
        "cluster: lab\nhosts:\n  cp0: {address: 10.0.0.1, groups: [servers]}\ncomponents:\n"
        "  os:\n    layer: os\n    playbook: os.yml\n    hosts: [server]\n", 8,
        "runs on 'server', which is neither a host nor a group in 'hosts' (did you mean 'servers'?)"),
    "helm takes no vars": (
        "cluster: lab\ncomponents:\n  c:\n    layer: cni\n    helm: {chart: c, repo: r, version: '1', namespace: n}\n"
        "    vars: {a: 1}\n", 6, "only applies to playbook and restore actions"),
    "restic repository of an unknown scheme": (
        "cluster: lab\nbackups:\n  b: {tool: restic, repo: 'ftp://nas/backups', schedule: '@daily', retention: {daily: 7},"
        " rpo: 1d}\ncomponents:\n  a: {layer: os}\n", 3, "is not a restic repository: an absolute path or one of sftp:"),
    # A backup's repository as its tool reads it: restic reads s3://bucket/... as a server named bucket.
    "restic repository in s3:// form": (
        "cluster: lab\nbackups:\n  b:\n    tool: restic\n    repo: s3://homelab-backups/restic/nfs\n"
        "    schedule: '@daily'\n    retention: {daily: 7}\n    rpo: 1d\ncomponents:\n  os: {layer: os}\n", 5,
        "restic reads 's3://homelab-backups/restic/nfs' as a server named 'homelab-backups', not a bucket; write "
        "s3:https://<endpoint>/homelab-backups/restic/nfs"),
    "restic repository that is relative": (
        "cluster: lab\nbackups:\n  b: {tool: restic, repo: backups/nfs, schedule: '@daily', retention: {daily: 7}, "
        "rpo: 1d}\ncomponents:\n  os: {layer: os}\n", 3, "'backups/nfs' is not a restic repository"),
    # Values that reach ssh, Ansible and the runbook's commands are validated as what they name.
    "host address with a shell command": (
        "cluster: lab\nhosts:\n  n1: {address: '10.0.0.30;touch x'}\ncomponents:\n  os: {layer: os}\n", 3,
        "'10.0.0.30;touch x' is not an IP address or a host name"),
    "host address with a space": (
        "cluster: lab\nhosts:\n  n1: {address: 'node 1'}\ncomponents:\n  os: {layer: os}\n", 3,
        "is not an IP address or a host name"),
    "host name with a dollar": (
        "cluster: lab\nhosts:\n  n1: {address: 10.0.0.1, hostname: '$(id)'}\ncomponents:\n  os: {layer: os}\n", 3,
        "'hostname' '$(id)' is not an IP address"),
    "restore path that is relative": (
        "cluster: lab\nbackups:\n  b: {tool: restic, repo: /r, schedule: '@daily', retention: {daily: 7}, rpo: 1d}\n"
        "components:\n  r:\n    layer: data\n    restore: {backup: b}\n    vars: {restore_path: srv/nfs}\n", 7,
        "vars.restore_path 'srv/nfs' must be an absolute path"),
    "restore path that climbs out": (
        "cluster: lab\nbackups:\n  b: {tool: restic, repo: /r, schedule: '@daily', retention: {daily: 7}, rpo: 1d}\n"
        "components:\n  r:\n    layer: data\n    restore: {backup: b}\n    vars: {restore_path: /srv/../etc}\n", 7,
        "must not contain '..'"),
    "restore path with a newline": (
        "cluster: lab\nbackups:\n  b: {tool: restic, repo: /r, schedule: '@daily', retention: {daily: 7}, rpo: 1d}\n"
        "components:\n  r:\n    layer: data\n    restore: {backup: b}\n    vars: {restore_path: \"/srv/a\\nb\"}\n",
        7, "holds a control character"),
}


@pytest.mark.parametrize("case", sorted(CASES), ids=sorted(CASES))
def test_bad_input_is_one_located_message(case: str) -> None:
    text, line, fragment = CASES[case]
    found = diagnostics(text)
    assert any(fragment in message and found_line == line for found_line, message in found), found


def test_binary_garbage_is_refused_with_a_line(tmp_path: Path) -> None:
    from dr.graph_file import load_graph_file

    path = tmp_path / "g.yaml"
    path.write_bytes(b"cluster: lab\n\x00\x01\x02\xff\xfe garbage")
    with pytest.raises(GraphError) as caught:
        load_graph_file(path)
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.line == 2
    assert "binary file" in diagnostic.message


def test_latin1_text_is_refused_as_not_utf8(tmp_path: Path) -> None:
    from dr.graph_file import load_graph_file

    path = tmp_path / "g.yaml"
    path.write_bytes("cluster: lab\n# caf\u00e9\n".encode("latin-1"))
    with pytest.raises(GraphError, match="not UTF-8"):
        load_graph_file(path)


def test_all_errors_are_reported_together() -> None:
    found = diagnostics("cluster: lab\ncomponents:\n  a: {layer: nope}\n  b: {layer: os, estimate: soon}\n")
    assert [line for line, _ in found] == [3, 4]


def test_alias_bomb_is_refused() -> None:
    lines = ["cluster: lab", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 10)}]")
    found = diagnostics("\n".join(lines) + "\n")
    assert any("expands to more than" in message for _, message in found)


def test_anchors_and_merge_keys_work() -> None:
    text = (
        "cluster: lab\n"
        "components:\n"
        "  os: &base {layer: os, estimate: 2m}\n"
        "  etcd:\n"
        "    <<: *base\n"
        "    layer: etcd\n"
        "    depends_on: [os]\n"
    )
    graph = RecoveryGraph.build(GraphSpec.from_yaml(text, path="g.yaml"))
    etcd = graph.spec.components["etcd"]
    assert (etcd.layer, etcd.estimate_s) == ("etcd", 120)


def test_null_components_are_as_empty_as_an_empty_mapping() -> None:
    from dr.core.spec import GraphSpec
    from dr.errors import GraphError

    for text in ("cluster: x\ncomponents:\n", "cluster: x\ncomponents: {}\n", "cluster: x\ncomponents: null\n"):
        with pytest.raises(GraphError, match="'components' is empty"):
            GraphSpec.from_yaml(text, path="g.yaml")


def test_keys_like_on_and_yes_stay_names() -> None:
    from dr.core.spec import GraphSpec

    spec = GraphSpec.from_yaml("cluster: x\ncomponents:\n  on: {layer: os}\n  yes: {layer: app, depends_on: ['on']}\n"
                               "  null: {layer: app}\n", path="g.yaml")
    assert set(spec.components) == {"on", "yes", "null"}
    assert spec.components["yes"].depends_on == ("on",)


@pytest.mark.parametrize(("schedule", "ok"), [("*/1x * * * *", False), ("0 3 * * 0", True), ("0 0 3 * * 0", True),
                                               ("0 3 * * mon-fri", True), ("*/15 * * * *", True), ("0 3 ** * *", False),
                                               ("0 3 * *", False), ("@daily", True), ("1,2-5/2 * * * *", True)])
def test_backup_schedules_are_real_cron(schedule: str, ok: bool) -> None:
    from dr.core.spec import GraphSpec
    from dr.errors import GraphError

    text = ("cluster: x\nbackups:\n  b: {tool: restic, protects: a, repo: /r, schedule: '" + schedule +
            "', rpo: 1h, retention: {daily: 7}}\ncomponents:\n  a: {layer: app}\n")
    if ok:
        GraphSpec.from_yaml(text, path="g.yaml")
    else:
        with pytest.raises(GraphError, match="must be a cron expression"):
            GraphSpec.from_yaml(text, path="g.yaml")


def test_an_alias_bomb_of_long_strings_is_refused_by_bytes_not_only_by_count() -> None:
    from dr.core.spec import GraphSpec
    from dr.errors import GraphError

    text = 'cluster: bomb\na: &a "' + "x" * 1000 + '"\n'
    previous = "a"
    for level in range(1, 5):  # 9**4 = 6,561 copies of 1 kB: few values, 6.5 MB of text
        text += f"l{level}: &l{level} [" + ",".join([f"*{previous}"] * 9) + "]\n"
        previous = f"l{level}"
    text += "components:\n  c: {layer: os}\n"
    with pytest.raises(GraphError, match="expands to more than"):
        GraphSpec.from_yaml(text, path="g.yaml")
    shared = "cluster: x\ncomponents:\n  a: &d {layer: os, estimate: 1m}\n  b: *d\n"
    assert set(GraphSpec.from_yaml(shared, path="g.yaml").components) == {"a", "b"}, "honest anchors still work"


def test_a_components_own_timeout_is_read_and_must_be_positive(write_graph) -> None:
    """`timeout:` overrides the timeout a step gets from its estimate; 0s would fail every step at once."""
    from dr.core.plan import plan_for
    from dr.graph_file import load_graph_file

    path = write_graph("cluster: x\ncomponents:\n  a: {layer: os, estimate: 1h, timeout: 90s}\n"
                       "  b: {layer: os, estimate: 1h}\n  c: {layer: os, estimate: 10s}\n")
    steps = {s.name: s for s in plan_for(load_graph_file(path)).steps}
    assert (steps["a"].timeout_s, steps["a"].timeout_reason) == (90, "its own timeout")
    assert (steps["b"].timeout_s, steps["b"].timeout_reason) == (3 * 3600, "3 x its estimate of 1h00m")
    assert steps["c"].timeout_s == 120 and "floor" in steps["c"].timeout_reason
    with pytest.raises(GraphError, match="'timeout' must be longer than 0s"):
        GraphSpec.from_yaml("cluster: x\ncomponents:\n  a: {layer: os, timeout: 0s}\n", path="g.yaml")
