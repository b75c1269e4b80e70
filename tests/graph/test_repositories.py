"""Each backup tool's `repo`, checked as that tool reads it (issue 21, item 8)."""

from __future__ import annotations

import pytest

from dr.core.repositories import pgbackrest_options
from dr.core.restore_tools import repository_problem
from dr.core.spec import GraphSpec
from dr.errors import GraphError


@pytest.mark.parametrize(("tool", "repo"), [
    ("restic", "s3:https://s3.example/bucket/restic/nfs"), ("restic", "/srv/restic"), ("restic", "sftp:nas:/r"),
    ("pgbackrest", "s3://homelab-backups/pgbackrest"), ("pgbackrest", "/var/lib/pgbackrest"),
    ("pgbackrest", "gcs://bucket/pg"), ("pgbackrest", "azure://container/pg"),
    ("cnpg-barman", "s3://homelab-backups/cnpg/gitea"), ("cnpg-barman-plugin", "gs://bucket/cnpg"),
    ("cnpg-barman", "https://account.blob.core.windows.net/container/cnpg"),
    ("longhorn", "s3://homelab-backups@eu-west-1/longhorn"), ("longhorn", "nfs://nas:/export/longhorn"),
    ("etcd-snapshot", "s3://homelab-backups/etcd"), ("etcd-snapshot", "/var/backups/etcd"),
    ("velero", "velero:default"), ("volsync", "volsync:apps/app-data"),  # named inside the cluster
])
def test_each_tool_accepts_its_own_syntax(tool: str, repo: str) -> None:
    assert repository_problem(tool, repo) is None


@pytest.mark.parametrize(("tool", "repo", "says"), [
    ("restic", "s3://homelab-backups/restic", "a server named 'homelab-backups'"),
    ("pgbackrest", "s3:https://s3.example/bucket/pg", "restic's syntax"),
    ("pgbackrest", "backups/pg", "not a pgBackRest repository"),
    ("pgbackrest", "s3:///pg", "not a pgBackRest repository"),
    ("cnpg-barman", "s3:https://s3.example/bucket/cnpg", "restic's syntax"),
    ("cnpg-barman-plugin", "/srv/cnpg", "not a barman destinationPath"),
    ("longhorn", "s3://homelab-backups/longhorn", "names its region"),
    ("longhorn", "/srv/longhorn", "not a Longhorn backup target"),
    ("etcd-snapshot", "etcd-snapshots", "not where etcd snapshots can be"),
])
def test_another_tools_syntax_is_refused_with_the_right_form(tool: str, repo: str, says: str) -> None:
    problem = repository_problem(tool, repo)
    assert problem is not None and says in problem


def test_pgbackrest_options_name_repository_one() -> None:
    assert pgbackrest_options("s3://homelab-backups/pgbackrest/db0") == {
        "repo1-type": "s3", "repo1-s3-bucket": "homelab-backups", "repo1-path": "/pgbackrest/db0"}
    assert pgbackrest_options("/var/lib/pgbackrest") == {"repo1-type": "posix", "repo1-path": "/var/lib/pgbackrest"}
    assert pgbackrest_options("gcs://b/pg")["repo1-gcs-bucket"] == "b"


def test_the_graph_check_names_the_line_of_a_wrong_repository() -> None:
    text = ("cluster: lab\nbackups:\n"
            "  db: {tool: pgbackrest, repo: 's3:https://s3.example/b/pg', schedule: '@daily', retention: {daily: 7},"
            " rpo: 1d}\n"
            "  vols: {tool: longhorn, repo: 's3://b/longhorn', schedule: '@daily', retention: {daily: 7}, rpo: 1d}\n"
            "components:\n  c: {layer: app}\n")
    with pytest.raises(GraphError) as caught:
        GraphSpec.from_yaml(text, path="g.yaml")
    message = str(caught.value)
    assert "g.yaml:3" in message and "restic's syntax" in message
    assert "g.yaml:4" in message and "names its region" in message
