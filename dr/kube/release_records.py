"""Helm release records that came back with the control plane, and what a rebuild does with them.

When the control plane is restored from an etcd snapshot and the Pulumi state is lost, the cluster
holds each Helm release's record (`sh.helm.release.v1.NAME.vN` Secrets, labelled `owner=helm`) and
its objects, but the stack knows none of them. Measured with pulumi-kubernetes 4.25.0 against a real
API server: creating the release then fails ("cannot re-use a name that is still in use", or "release:
already exists" when only the label is changed), and once the records are out of Helm's sight, Helm's
install adopts the objects the release owns (their `meta.helm.sh/release-*` annotations name it) and
patches them in place: same uids, nothing recreated.

So, when a release is about to be created (it is not in the stack's state):

- no record: nothing to do (a rebuild from scratch);
- records and `dr:recovery: etcd-snapshot`: each record is *set aside*: copied to
  `dr-set-aside.<record>` (labelled `owner=dr-set-aside`, so Helm never reads it; the release history
  stays in the cluster) and then removed under its own name;
- records and any other recovery: refused. A cluster that should be empty holds a release, so the
  kubeconfig may point at the wrong cluster; dr names the release and the two ways on.

Only Helm's default storage (Secrets) is handled: a release stored in ConfigMaps is not seen.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from dr.errors import DrError
from dr.kube.gitops_gate import Kubectl

SET_ASIDE_PREFIX = "dr-set-aside."
SET_ASIDE_OWNER = "dr-set-aside"
SET_ASIDE_NOTE = ("dr set this Helm release record aside: the release came back from an etcd snapshot without "
                  "its Pulumi state, and the rebuild installs it again over the same objects")


class ReleaseRecordError(DrError):
    pass


def records(kubectl: Kubectl, *, namespace: str, release: str) -> list[dict[str, Any]]:
    """The release's records in its namespace (none when the namespace does not exist)."""
    done = kubectl("get", "secrets", "-n", namespace, "-l", f"owner=helm,name={release}", "-o", "json",
                   check=False)
    if done.returncode != 0:
        raise ReleaseRecordError(f"could not list the records of Helm release {namespace}/{release}: "
                                 f"{done.stderr.strip() or done.stdout.strip()}")
    items: list[dict[str, Any]] = json.loads(done.stdout or "{}").get("items", [])
    return sorted(items, key=lambda item: str(item["metadata"]["name"]))


def set_aside_copy(record: Mapping[str, Any]) -> dict[str, Any]:
    """The copy a record is kept as: same data and type, out of Helm's sight. Pure."""
    metadata = record["metadata"]
    labels = {**(metadata.get("labels") or {}), "owner": SET_ASIDE_OWNER}
    return {"apiVersion": "v1", "kind": "Secret", "type": record.get("type", "helm.sh/release.v1"),
            "data": dict(record.get("data") or {}),
            "metadata": {"name": SET_ASIDE_PREFIX + str(metadata["name"]), "namespace": metadata["namespace"],
                         "labels": labels, "annotations": {"dr/set-aside": SET_ASIDE_NOTE}}}


def prepare_release(kubectl: Kubectl, *, namespace: str, release: str, adopt: bool) -> list[str]:
    """Make way for creating `release`; returns the names of the records set aside."""
    found = records(kubectl, namespace=namespace, release=release)
    if not found:
        return []
    if not adopt:
        raise ReleaseRecordError(
            f"Helm release {namespace}/{release} already exists in the cluster ({len(found)} record(s)) but not in "
            "this stack's state. If the control plane came back from an etcd snapshot, set `pulumi config set "
            "dr:recovery etcd-snapshot` and run again: dr then sets the records aside and Helm adopts the release's "
            "objects in place. Otherwise check that the kubeconfig points at the cluster you mean to rebuild")
    moved: list[str] = []
    for record in found:
        copy = set_aside_copy(record)
        created = kubectl("create", "-f", "-", "-o", "name", input_text=json.dumps(copy), check=False)
        if created.returncode != 0 and "AlreadyExists" not in created.stderr:  # a rerun after a partial one
            raise ReleaseRecordError(f"could not set aside Helm release record {namespace}/"
                                     f"{record['metadata']['name']}: {created.stderr.strip()}")
        name = str(record["metadata"]["name"])
        removed = kubectl("delete", "secret", "-n", namespace, name, "--ignore-not-found", check=False)
        if removed.returncode != 0:
            raise ReleaseRecordError(f"set aside {namespace}/{name} as {copy['metadata']['name']} but could not "
                                     f"remove the original: {removed.stderr.strip()}")
        moved.append(str(copy["metadata"]["name"]))
    return moved
