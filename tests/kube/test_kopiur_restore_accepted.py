"""A kopiur restore as dr renders it, on a real API server with kopiur's upstream CRDs.

The server accepts every object under strict field validation, and the completion condition dr
waits with (`kubectl wait`, `pulumi.com/waitFor`) really tells a finished Restore from an unfinished
one on the server. No kopiur operator runs here: the status a finished restore has is written by the
sandbox's stand-in (as in every sandbox drill), so this proves the objects and the wait, not kopia's
restore.
"""

from __future__ import annotations

import json

import pytest
import yaml

from dr.core.kube_objects import kubectl_resource
from dr.core.restore_tools import restore_done
from dr.drill.standin_operators import completion_status
from dr.kube.sandbox_cluster import SandboxCluster
from tests.restore_tools.test_kopiur import GRAPH, REPOSITORY, objects

pytestmark = pytest.mark.integration


def apply(cluster: SandboxCluster, manifest: dict) -> None:
    done = cluster.kubectl("apply", "--server-side", "--validate=strict", "-f", "-",
                           input_text=yaml.safe_dump(manifest), check=False)
    assert done.returncode == 0, f"{manifest['kind']} {manifest['metadata']['name']}: {done.stderr}"


def test_the_server_accepts_kopiur_restores_and_the_wait_tells_done_from_not(cluster: SandboxCluster,
                                                                            reference_crds) -> None:
    reference_crds("kopiur-0.1.0")  # no registry publishes kopiur's CRDs
    found = objects(GRAPH)
    installed = cluster.install_crds({(m["apiVersion"], m["kind"]) for m in found.values() if "." in m["apiVersion"]}
                                     | {("kopiur.home-operations.com/v1alpha1", "ClusterRepository")})
    assert any("kopiur-0.1.0" in path for path in installed)
    for manifest in sorted(found.values(), key=lambda m: m["kind"] != "Namespace"):
        apply(cluster, manifest)
    # A backend dr refuses (a URL where kopiur wants a bucket name) is one the server accepts: only dr's
    # check stands between it and a repository kopiur cannot open.
    apply(cluster, yaml.safe_load(REPOSITORY.replace("BUCKET", "s3://kopia").replace("ENDPOINT", "minio:9000")))

    restore = found["Restore/app-data-restore"]
    condition = restore_done(restore)
    assert condition is not None
    resource = f"{kubectl_resource(restore['apiVersion'], 'Restore')}/app-data-restore"
    waiting = cluster.kubectl("wait", resource, "-n", "apps", f"--for={condition}", "--timeout=2s", check=False)
    assert waiting.returncode != 0, "not done before kopiur says so"
    live = json.loads(cluster.kubectl("get", resource, "-n", "apps", "-o", "json").stdout)
    cluster.kubectl("patch", resource, "-n", "apps", "--subresource=status", "--type=merge",
                    "-p", json.dumps({"status": completion_status(live)}))
    done = cluster.kubectl("wait", resource, "-n", "apps", f"--for={condition}", "--timeout=30s", check=False)
    assert done.returncode == 0, done.stderr


def test_the_crd_refuses_a_restore_with_two_targets(cluster: SandboxCluster, reference_crds) -> None:
    reference_crds("kopiur-0.1.0")
    restore = objects(GRAPH)["Restore/app-data-restore"]
    cluster.install_crds({(restore["apiVersion"], "Restore")})
    cluster.kubectl("create", "namespace", "apps")
    bad = {**restore, "spec": {**restore["spec"], "target": {**restore["spec"]["target"], "populator": {}}}}
    done = cluster.kubectl("apply", "--server-side", "--validate=strict", "-f", "-",
                           input_text=yaml.safe_dump(bad), check=False)
    assert done.returncode != 0 and "target" in done.stderr, done.stderr
