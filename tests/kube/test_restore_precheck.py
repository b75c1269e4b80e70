"""Before a restore, on the real API server: the credential Secrets its objects read are created from the
stack's secrets (or dr stops, naming them), and dr waits for the backup objects the backup target syncs
(Longhorn, Velero) instead of creating a restore that would be refused for good. No Longhorn or Velero
controller runs here: the test creates the Backup objects their controllers would sync."""

from __future__ import annotations

import json
import threading
import time

import pytest
import yaml

from dr.core.steps.restore import restore_needs
from dr.errors import DrError
from dr.hosts.host_steps import run_step
from dr.kube.sandbox_cluster import SandboxCluster

pytestmark = pytest.mark.integration

CLUSTER = {"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster",
           "metadata": {"name": "gitea-db", "namespace": "gitea"},
           "spec": {"externalClusters": [{"name": "origin", "barmanObjectStore": {
               "destinationPath": "s3://b/p", "s3Credentials": {
                   "accessKeyId": {"name": "gitea-db-s3", "key": "ACCESS_KEY_ID"},
                   "secretAccessKey": {"name": "gitea-db-s3", "key": "ACCESS_SECRET_KEY"}}}}]}}
VOLUME = {"apiVersion": "longhorn.io/v1beta2", "kind": "Volume",
          "metadata": {"name": "gitea-data-vol", "namespace": "longhorn-system"},
          "spec": {"fromBackup": "s3://b@r/longhorn?backup=backup-1a2b&volume=gitea-data"}}
CANARY = "canary-s3-secret-0c4f"


def step(cluster: SandboxCluster, manifests: list[dict[str, object]], timeout_s: int) -> dict[str, object]:
    return {"step": "gitea-restore", "step_kind": "restore-precheck", "precheck": restore_needs(manifests), "timeout_s": timeout_s,
            "cluster_kubeconfig": cluster.kubeconfig.read_text()}


def test_credentials_are_created_from_the_stack_secrets_or_named_when_missing(cluster: SandboxCluster) -> None:
    cluster.kubectl("create", "namespace", "gitea")
    inputs = step(cluster, [CLUSTER], 5)
    with pytest.raises(DrError) as caught:
        run_step(inputs, hosts={}, secrets={})
    assert "Secret gitea/gitea-db-s3 does not exist (needs keys ACCESS_KEY_ID, ACCESS_SECRET_KEY)" in str(caught.value)
    outputs = run_step(inputs, hosts={}, secrets={"gitea/gitea-db-s3": {"ACCESS_KEY_ID": "AKIA1",
                                                                        "ACCESS_SECRET_KEY": CANARY}})
    assert outputs["created_secrets"] == ["gitea/gitea-db-s3"] and CANARY not in json.dumps(outputs)
    data = json.loads(cluster.kubectl("get", "secret", "gitea-db-s3", "-n", "gitea", "-o", "json").stdout)["data"]
    assert sorted(data) == ["ACCESS_KEY_ID", "ACCESS_SECRET_KEY"]
    assert run_step(inputs, hosts={}, secrets={})["created_secrets"] == [], "an existing Secret is left alone"


def test_a_longhorn_restore_waits_for_its_backup_to_be_synced(cluster: SandboxCluster) -> None:
    cluster.install_crds([("longhorn.io/v1beta2", "Backup")])
    cluster.kubectl("create", "namespace", "longhorn-system")
    with pytest.raises(DrError, match="Backup backup-1a2b in longhorn-system has not appeared within 3s"):
        run_step(step(cluster, [VOLUME], 3), hosts={}, secrets={})

    syncing = threading.Event()

    def backup_target_syncs() -> None:
        time.sleep(3)
        syncing.set()
        cluster.kubectl("apply", "-f", "-", input_text=yaml.safe_dump(
            {"apiVersion": "longhorn.io/v1beta2", "kind": "Backup",
             "metadata": {"name": "backup-1a2b", "namespace": "longhorn-system"}, "spec": {}}))

    syncer = threading.Thread(target=backup_target_syncs)
    syncer.start()
    run_step(step(cluster, [VOLUME], 60), hosts={}, secrets={})
    assert syncing.is_set(), "the precheck returned before the backup existed"
    syncer.join()
