"""dr stands alone on a fresh machine: nothing it reads at run time comes from beside the checkout, and the
toolchain script finds every Go module's source by downloading it (a cold module cache is what a new
user's machine has)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from dr.kube import crds
from tests.conftest import REFERENCE_CRDS, REPO


def test_dr_reads_no_crd_from_beside_the_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no CRD fetched and no DR_CRDS_DIR, dr finds no CRD at all, even where the project's reference
    copies sit beside the checkout (they are building material, not part of dr)."""
    monkeypatch.setenv("DR_TOOLCHAIN_DIR", str(tmp_path / "empty-toolchain"))
    monkeypatch.delenv("DR_CRDS_DIR", raising=False)
    assert crds.default_dirs() == []
    for api_version, kind in (("cert-manager.io/v1", "ClusterIssuer"), ("velero.io/v1", "Restore"),
                              ("kopiur.home-operations.com/v1alpha1", "Restore")):
        assert crds.find(api_version, kind) is None, f"{kind} found beside the checkout"
    where = " ".join(crds.searched())
    assert "make toolchain" in where and "shared" not in where
    if REFERENCE_CRDS.is_dir():  # the case that failed before: they are there, and still not read
        assert any(REFERENCE_CRDS.rglob("*.yaml"))


def test_no_part_of_dr_names_a_directory_beside_the_checkout() -> None:
    offenders = [str(path.relative_to(REPO)) for path in (REPO / "dr").rglob("*.py")
                 if "../shared" in path.read_text() or '"shared"' in path.read_text()]
    assert offenders == []


def test_a_file_of_many_crds_and_template_labels_gives_each_crd_installable(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Longhorn ships every CRD in one file, cert-manager's are Helm templates whose label values the API
    server refuses: each CRD is found, and the one to install keeps only labels a server takes."""
    def crd(group: str, kind: str, labels: dict[str, str]) -> dict:
        plural = kind.lower() + "s"
        return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                "metadata": {"name": f"{plural}.{group}", "labels": labels,
                             "annotations": {"helm.sh/resource-policy": "keep", "x": "{{ .Values.y }}"}},
                "spec": {"group": group, "scope": "Namespaced",
                         "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
                         "versions": [{"name": "v1", "served": True, "storage": True,
                                       "schema": {"openAPIV3Schema": {"type": "object"}}}]}}

    documents = [crd("a.example.com", "Apple", {"app": "{{ template \"x.name\" . }}", "tier": "crds"}),
                 {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "not-a-crd"}},
                 crd("a.example.com", "Pear", {"app.kubernetes.io/instance": "{{ .Release.Name }}"})]
    (tmp_path / "all.yaml").write_text(yaml.safe_dump_all(documents))
    (tmp_path / "broken.yaml").write_text("{{- if .Values.crds.enabled }}\n: [\n")  # not YAML: holds none
    monkeypatch.setenv("DR_TOOLCHAIN_DIR", str(tmp_path / "empty-toolchain"))
    monkeypatch.setenv("DR_CRDS_DIR", str(tmp_path))
    apple, pear = crds.find("a.example.com/v1", "Apple"), crds.find("a.example.com/v1", "Pear")
    assert apple is not None and pear is not None
    assert apple.definition["metadata"] == {"name": "apples.a.example.com", "labels": {"tier": "crds"},
                                            "annotations": {"helm.sh/resource-policy": "keep"}}
    assert "labels" not in pear.definition["metadata"]
    assert [c.name for c in crds.of_group("a.example.com")] == ["apples.a.example.com", "pears.a.example.com"]


def _go() -> str:
    found = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if found is None:
        pytest.skip("Go is not installed (make toolchain needs it)")
    return found


@pytest.mark.integration
def test_the_toolchain_finds_a_module_on_an_empty_module_cache(tmp_path: Path) -> None:
    """The defect of a new user's machine: `go list -m -f '{{.Dir}}'` printed nothing on a cold module cache,
    and the provider's source path became `/cmd/...`. The script's module_dir downloads instead; here
    against an empty GOMODCACHE, for a small module the proxy serves, by version and from a go.mod."""
    go = _go()
    cache = tmp_path / "gomodcache"
    project = tmp_path / "wrapper"
    project.mkdir()
    (project / "go.mod").write_text("module dr.invalid/test\n\ngo 1.22\n\nrequire github.com/google/uuid v1.6.0\n")
    env = {**os.environ, "GOMODCACHE": str(cache), "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local",
           "PATH": f"{Path(go).parent}{os.pathsep}{os.environ.get('PATH', '')}", "HOME": str(tmp_path / "home"),
           "GOCACHE": str(tmp_path / "gocache")}
    script = (f"source {REPO / 'toolchain' / 'modules.sh'}\n"
              f"module_dir {project} github.com/google/uuid\n"
              f"module_dir {tmp_path} github.com/google/uuid@v1.6.0\n"
              f"module_dir {tmp_path} example.invalid/no-such-module@v1.0.0\n")
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=300)
    dirs = done.stdout.split()
    assert len(dirs) == 2 and all(Path(d, "uuid.go").is_file() for d in dirs), (done.stdout, done.stderr)
    assert all(Path(d).is_relative_to(cache) for d in dirs), "downloaded into the empty cache"
    assert "could not download example.invalid/no-such-module@v1.0.0" in done.stderr, done.stderr
    assert done.returncode != 0, "a module that cannot be downloaded stops the script"
    subprocess.run(["chmod", "-R", "u+w", str(cache)], check=False)  # the module cache is read-only


def test_the_toolchain_script_never_asks_go_list_for_a_directory() -> None:
    for script in (REPO / "toolchain").glob("*.sh"):
        lines = [line for line in script.read_text().splitlines()
                 if "go list" in line and not line.lstrip().startswith("#")]
        assert lines == [], f"{script.name}: {lines}"
