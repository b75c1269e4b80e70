"""Restore objects for the backups GitOps clusters use: VolSync (direct and populator) and CloudNativePG
with a custom S3 endpoint and credential key names, validated against the real upstream CRDs."""

from __future__ import annotations

import os
from typing import Any

import pytest

from dr.core.plan import plan_for
from dr.core.resources import resource_plan
from dr.core.restore_tools import restore_done
from dr.core.restore_tools.volsync import TRIGGER as VOLSYNC_TRIGGER
from dr.core.spec import GraphSpec
from dr.kube.validate import validate_object

GRAPH = """\
cluster: lab
backups:
  app-data: {tool: volsync, protects: [app], repo: "volsync:apps/app-data", schedule: "0 * * * *",
             retention: {within: 7d}, rpo: 2h}
  media: {tool: volsync, protects: [app], repo: "volsync:apps/media", schedule: "0 * * * *",
          retention: {daily: 7}, rpo: 2h}
  db: {tool: cnpg-barman, protects: [app], repo: "s3://lab/cnpg/db", schedule: "0 3 * * *",
       retention: {within: 30d}, rpo: 1h}
components:
  app-data-restore:
    layer: data
    restore: {backup: app-data, target_time: "2026-11-20T03:00:00Z"}
    vars: {namespace: apps, pvc: app-data, size: 5Gi, storage_class: ceph-block}
  media-restore:
    layer: data
    restore: {backup: media}
    vars: {namespace: apps, pvc: media, size: 50Gi, copy_method: populator, repository_secret: media-restic}
  db-restore:
    layer: data
    restore: {backup: db}
    vars: {namespace: apps, endpoint_url: "https://s3.lab.example:9000", s3_access_key_id_key: AWS_ACCESS_KEY_ID,
           s3_secret_access_key_key: AWS_SECRET_ACCESS_KEY}
  app: {layer: app, depends_on: [app-data-restore, media-restore, db-restore]}
"""


def objects(text: str) -> dict[str, dict[str, Any]]:
    spec = GraphSpec.from_yaml(text, path="g.yaml")
    plan = plan_for(spec, mode="prod")
    assert plan.graph is not None
    resources = resource_plan(plan, plan.graph.spec)
    return {f"{obj.manifest['kind']}/{obj.manifest['metadata']['name']}": dict(obj.manifest)
            for _, obj in resources.objects()}


def test_volsync_and_cnpg_restore_objects_are_accepted_by_the_real_crds() -> None:
    found = objects(GRAPH)
    for name, manifest in found.items():
        assert validate_object(manifest, kubernetes="1.30") == [], name
    direct = found["ReplicationDestination/app-data-restore"]["spec"]
    assert direct == {"trigger": {"manual": VOLSYNC_TRIGGER},
                      "restic": {"repository": "app-data-volsync", "restoreAsOf": "2026-11-20T03:00:00Z",
                                 "destinationPVC": "app-data", "copyMethod": "Direct"}}
    assert found["PersistentVolumeClaim/app-data"]["spec"]["storageClassName"] == "ceph-block"
    populator = found["ReplicationDestination/media"]
    assert populator["spec"]["restic"]["copyMethod"] == "Snapshot" and "PersistentVolumeClaim/media" not in found
    annotations = populator["metadata"]["annotations"]
    assert annotations["pulumi.com/waitFor"] == restore_done(populator) == \
        "jsonpath={.status.lastManualSync}=dr-restore"
    store = found["Cluster/db-restore"]["spec"]["externalClusters"][0]["barmanObjectStore"]
    assert store["endpointURL"] == "https://s3.lab.example:9000"
    assert store["s3Credentials"]["accessKeyId"]["key"] == "AWS_ACCESS_KEY_ID"
    assert store["s3Credentials"]["secretAccessKey"]["key"] == "AWS_SECRET_ACCESS_KEY"
    assert found["Cluster/db-restore"]["spec"]["backup"]["barmanObjectStore"]["endpointURL"] == \
        "https://s3.lab.example:9000"


def test_a_barman_plugin_restore_is_accepted_by_the_real_cloudnativepg_1_26_crd() -> None:
    """Recovery through the barman-cloud plugin is `externalClusters[].plugin`, new in CloudNativePG 1.26:
    validated against the upstream 1.26.1 CRD `make toolchain` reads from the release's Go module."""
    from dr.kube import crds

    cluster_crd = crds.find("postgresql.cnpg.io/v1", "Cluster")
    fetched = cluster_crd is not None and "cloudnative-pg-1.26" in str(cluster_crd.path)
    if not fetched:
        message = "the CloudNativePG 1.26 CRDs are not fetched (run `make toolchain`)"
        if os.environ.get("DR_TOOLCHAIN_BIN"):
            pytest.fail(message)
        pytest.skip(message)
    text = GRAPH.replace("tool: cnpg-barman,", "tool: cnpg-barman-plugin,").replace(
        "s3_secret_access_key_key: AWS_SECRET_ACCESS_KEY}", "s3_secret_access_key_key: AWS_SECRET_ACCESS_KEY,\n"
        "           image: ghcr.io/cloudnative-pg/postgresql:16.4, storage_class: ceph-block}")
    found = objects(text)
    for name, manifest in found.items():
        assert validate_object(manifest, kubernetes="1.30") == [], name
    cluster = found["Cluster/db-restore"]["spec"]
    assert cluster["externalClusters"] == [{"name": "origin", "plugin": {
        "name": "barman-cloud.cloudnative-pg.io", "parameters": {"barmanObjectName": "db-restore-origin",
                                                                  "serverName": "db-restore"}}}]
    assert cluster["plugins"][0]["parameters"] == {"barmanObjectName": "db-restore-archive",
                                                   "serverName": "db-restore-restored"}
    assert cluster["imageName"] == "ghcr.io/cloudnative-pg/postgresql:16.4"
    assert cluster["storage"]["storageClass"] == "ceph-block"
    origin = found["ObjectStore/db-restore-origin"]["spec"]["configuration"]
    assert origin["destinationPath"] == "s3://lab/cnpg/db" and origin["endpointURL"] == "https://s3.lab.example:9000"
    assert origin["s3Credentials"]["secretAccessKey"]["key"] == "AWS_SECRET_ACCESS_KEY"
