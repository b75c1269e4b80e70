"""Flux objects as current repositories write them are checked against a current Flux's CRDs (2.7, read
by `make toolchain` from the controllers' Go modules), not only the shared 2.4 ones, which refuse a
Kustomization's `healthCheckExprs` and `deletionPolicy`: the real API server accepts them under 2.7's CRD."""

from __future__ import annotations

import copy

import pytest
import yaml

from dr.kube import crds
from dr.kube.sandbox_cluster import SandboxCluster
from dr.kube.validate import validate_object

pytestmark = pytest.mark.integration

KUSTOMIZATION = {
    "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
    "metadata": {"name": "jellyfin", "namespace": "media"},
    "spec": {"interval": "1h", "path": "./apps/media/jellyfin/app", "prune": True,
             "sourceRef": {"kind": "GitRepository", "name": "flux-system", "namespace": "flux-system"},
             "deletionPolicy": "Orphan",
             "healthCheckExprs": [{"apiVersion": "kopiur.home-operations.com/v1alpha1", "kind": "Restore",
                                   "current": "status.phase == 'Completed'", "failed": "status.phase == 'Failed'"}]}}


def test_current_flux_fields_are_checked_against_a_current_flux(cluster: SandboxCluster) -> None:
    found = crds.find("kustomize.toolkit.fluxcd.io/v1", "Kustomization")
    assert found is not None and "kustomize-controller-1.7.3" in str(found.path), \
        "make toolchain reads Flux 2.7's CRDs"
    assert validate_object(KUSTOMIZATION, kubernetes="1.34") == []
    cluster.install_crds({("kustomize.toolkit.fluxcd.io/v1", "Kustomization")})
    cluster.kubectl("create", "namespace", "media")
    done = cluster.kubectl("apply", "--server-side", "--validate=strict", "-f", "-",
                           input_text=yaml.safe_dump(KUSTOMIZATION), check=False)
    assert done.returncode == 0, done.stderr
    bad = copy.deepcopy(KUSTOMIZATION)
    bad["spec"]["deletionPolicy"] = "Sometimes"
    assert validate_object(bad, kubernetes="1.34"), "an unknown policy is still refused"


def test_flux_2_4s_crd_refuses_what_2_7_accepts(reference_crds) -> None:
    """Why the toolchain reads a current Flux: 2.4's Kustomization CRD (a reference copy) refuses both fields."""
    old_release = reference_crds("flux-kustomize-controller-1.4.0")
    old = validate_object(KUSTOMIZATION, kubernetes="1.34", crd_dirs=[old_release])
    assert any("deletionPolicy" in p or "healthCheckExprs" in p for p in old), old
