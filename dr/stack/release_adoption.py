"""A dynamic resource registered in front of every Helm release: it makes way for creating the release
when the release's record came back from an etcd snapshot and the Pulumi state did not
(`dr.kube.release_records`).

The engine calls `create` only for a resource its state does not hold, so this step acts exactly when
the stack lost (or never had) the release: with the state surviving, `pulumi refresh` and `up` find it
in the state and nothing runs. It never updates (a new kubeconfig after a rebuild must not run it again
for a release the stack holds) and deleting it does nothing in the cluster.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ResourceProvider, UpdateResult


def _prepare(props: Mapping[str, Any]) -> list[str]:
    from dr.kube.gitops_gate import cluster_kubectl
    from dr.kube.release_records import prepare_release

    with cluster_kubectl(props) as kubectl:
        return prepare_release(kubectl, namespace=str(props["namespace"]), release=str(props["release"]),
                               adopt=bool(props.get("adopt")))


class ReleaseAdoptionProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        moved = _prepare(props)
        return CreateResult(id_=f"{props['namespace']}/{props['release']}", outs={**props, "set_aside": moved})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return DiffResult(changes=False, replaces=[], delete_before_replace=False)

    def update(self, _id: str, olds: dict[str, Any], _news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=olds)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        return None  # the release records (set aside or not) stay in the cluster


class ReleaseAdoption(pulumi.dynamic.Resource):
    set_aside: pulumi.Output[list[str]]

    def __init__(self, name: str, *, release: str, namespace: str, adopt: bool,
                 cluster_kubeconfig: pulumi.Input[str], opts: pulumi.ResourceOptions | None = None) -> None:
        props = {"step": name, "release": release, "namespace": namespace, "adopt": adopt,
                 "cluster_kubeconfig": pulumi.Output.secret(cluster_kubeconfig), "set_aside": None}
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
            additional_secret_outputs=["cluster_kubeconfig"]))
        super().__init__(ReleaseAdoptionProvider(), name, props, opts)
