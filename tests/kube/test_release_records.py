"""Setting aside Helm release records (the fast layer: a scripted kubectl; the real API server and
provider prove it in tests/kube/test_engine_example_stacks.py)."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from dr.kube.release_records import ReleaseRecordError, prepare_release, set_aside_copy

RECORD: dict[str, Any] = {"metadata": {"name": "sh.helm.release.v1.gitea.v1", "namespace": "gitea",
                       "labels": {"owner": "helm", "name": "gitea", "status": "deployed", "version": "1"}},
          "type": "helm.sh/release.v1", "data": {"release": "SDRzSUFBQUFBQUFBLw=="}}


class Kubectl:
    def __init__(self, items: list[dict[str, Any]], *, fail: str = "") -> None:
        self.items, self.fail = items, fail
        self.calls: list[tuple[str, ...]] = []
        self.created: dict[str, Any] = {}

    def __call__(self, *args: str, input_text: str | None = None, check: bool = True,
                 timeout: float = 60) -> subprocess.CompletedProcess[str]:
        self.calls.append(args)
        if args[0] == self.fail:
            return subprocess.CompletedProcess(args, 1, "", "Error from server (Forbidden)")
        if args[0] == "get":
            return subprocess.CompletedProcess(args, 0, json.dumps({"items": self.items}), "")
        if args[0] == "create":
            assert input_text is not None
            self.created = json.loads(input_text)
        return subprocess.CompletedProcess(args, 0, "", "")


def test_no_record_means_nothing_to_do_in_either_recovery() -> None:
    for adopt in (False, True):
        kubectl = Kubectl([])
        assert prepare_release(kubectl, namespace="gitea", release="gitea", adopt=adopt) == []
        assert [c[0] for c in kubectl.calls] == ["get"]
        assert "owner=helm,name=gitea" in kubectl.calls[0]


def test_a_record_in_a_cluster_that_should_be_empty_stops_and_changes_nothing() -> None:
    kubectl = Kubectl([RECORD])
    with pytest.raises(ReleaseRecordError, match=r"gitea/gitea already exists.*dr:recovery etcd-snapshot"):
        prepare_release(kubectl, namespace="gitea", release="gitea", adopt=False)
    assert [c[0] for c in kubectl.calls] == ["get"]


def test_set_aside_copies_then_removes_and_keeps_the_history() -> None:
    kubectl = Kubectl([RECORD])
    assert prepare_release(kubectl, namespace="gitea", release="gitea", adopt=True) == [
        "dr-set-aside.sh.helm.release.v1.gitea.v1"]
    assert [c[0] for c in kubectl.calls] == ["get", "create", "delete"]
    assert kubectl.created["data"] == RECORD["data"] and kubectl.created["metadata"]["labels"]["owner"] == "dr-set-aside"
    assert kubectl.calls[2][-2:] == ("sh.helm.release.v1.gitea.v1", "--ignore-not-found")


def test_a_failed_copy_never_removes_the_original() -> None:
    kubectl = Kubectl([RECORD], fail="create")
    with pytest.raises(ReleaseRecordError, match="could not set aside"):
        prepare_release(kubectl, namespace="gitea", release="gitea", adopt=True)
    assert "delete" not in [c[0] for c in kubectl.calls]


def test_the_copy_is_out_of_helms_sight() -> None:
    copy = set_aside_copy(RECORD)
    assert copy["metadata"]["labels"]["owner"] != "helm" and copy["metadata"]["name"] != RECORD["metadata"]["name"]
    assert RECORD["metadata"]["labels"]["owner"] == "helm", "the record itself is not modified"
