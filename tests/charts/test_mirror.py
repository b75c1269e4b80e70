"""The chart mirror: filled over HTTP from a loopback "upstream" Helm repository (stand-in charts dr
writes, under the example graph's chart names and versions), checked against the index's digests, and
served read-only. The provider's Helm pulling from the mirror is proven in tests/kube/test_engine_provider.py."""

from __future__ import annotations

import hashlib
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from dr.charts.mirror import MirrorError, Server, fill
from dr.charts.sandbox import OPERATOR_CRD_GROUPS, write_upstream
from dr.core.charts import ChartPin, chart_pins
from dr.graph_file import load_graph_file
from dr.kube.crds import default_dirs
from tests.conftest import EXAMPLE_GRAPH


@pytest.fixture
def upstream(tmp_path: Path):
    pins = chart_pins(load_graph_file(EXAMPLE_GRAPH))
    directory = write_upstream(pins, tmp_path / "upstream", default_dirs())
    with Server(directory) as server:
        yield pins, directory, server


def test_the_example_pins_every_helm_chart_once_in_both_modes() -> None:
    pins = chart_pins(load_graph_file(EXAMPLE_GRAPH))
    names = [p.name for p in pins]
    assert len(names) == len(set(names))
    # external-dns is prod_only: a drill does not install it, but production does, so it is mirrored.
    assert {"external-dns", "gitea", "cloudnative-pg", "longhorn"} <= set(names)
    assert ChartPin("cert-manager", "v1.16.1", "https://charts.jetstack.io") in pins


def test_fill_copies_every_pinned_chart_with_its_digest_and_an_index(upstream, tmp_path: Path) -> None:
    pins, _, server = upstream
    mirror = tmp_path / "mirror"
    done = fill(mirror, pins, upstream={p.repo: server.url for p in pins})
    assert [m.pin for m in done] == list(pins) and all(m.fetched for m in done)
    index = yaml.safe_load((mirror / "index.yaml").read_text())
    for pin in pins:
        (entry,) = index["entries"][pin.name]
        assert entry["version"] == pin.version and entry["urls"] == [pin.archive]  # relative: the mirror moves
        assert entry["digest"] == hashlib.sha256((mirror / pin.archive).read_bytes()).hexdigest()
        with tarfile.open(mirror / pin.archive) as tar:
            chart = yaml.safe_load(tar.extractfile(f"{pin.name}/Chart.yaml").read())  # type: ignore[union-attr]
            crds = [n for n in tar.getnames() if n.startswith(f"{pin.name}/crds/")]
        assert (chart["name"], chart["version"]) == (pin.name, pin.version)
        # An operator's chart carries the real upstream CRDs of its API groups.
        assert bool(crds) == (pin.name in OPERATOR_CRD_GROUPS), (pin.name, crds)
    again = fill(mirror, pins, upstream={p.repo: server.url for p in pins})
    assert not any(m.fetched for m in again), "a chart already mirrored with its digest is not fetched again"


def test_a_chart_whose_bytes_do_not_match_the_index_is_refused(upstream, tmp_path: Path) -> None:
    pins, directory, server = upstream
    target = next(p for p in pins if p.name == "gitea")
    (directory / target.archive).write_bytes((directory / target.archive).read_bytes() + b"tampered")
    with pytest.raises(MirrorError, match=r"gitea 10\.6\.0: sha256 .* does not match"):
        fill(tmp_path / "mirror", [target], upstream={target.repo: server.url})
    assert not (tmp_path / "mirror" / target.archive).exists()


def test_a_version_the_repository_does_not_have_is_named(upstream, tmp_path: Path) -> None:
    _, _, server = upstream
    wrong = ChartPin("gitea", "99.0.0", "https://dl.gitea.com/charts")
    with pytest.raises(MirrorError, match=r"gitea 99\.0\.0 is not in http://127\.0\.0\.1:\d+/index\.yaml"):
        fill(tmp_path / "mirror", [wrong], upstream={wrong.repo: server.url})


def test_an_unreachable_repository_is_a_clear_error(tmp_path: Path) -> None:
    pin = ChartPin("gitea", "10.6.0", "http://127.0.0.1:9/charts")  # discard port: nothing listens
    with pytest.raises(MirrorError, match=r"127\.0\.0\.1:9/charts/index\.yaml"):
        fill(tmp_path / "mirror", [pin], timeout=5)


def test_the_server_is_read_only_and_serves_nothing_outside_its_directory(upstream, tmp_path: Path) -> None:
    _, _, server = upstream
    (tmp_path / "secret.txt").write_text("outside")
    with urllib.request.urlopen(f"{server.url}/index.yaml", timeout=5) as response:
        assert yaml.safe_load(response.read())["apiVersion"] == "v1"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(urllib.request.Request(f"{server.url}/index.yaml", data=b"x", method="POST"), timeout=5)
    assert refused.value.code == 405
    with pytest.raises(urllib.error.HTTPError) as outside:
        urllib.request.urlopen(f"{server.url}/../secret.txt", timeout=5)
    assert outside.value.code == 404


def test_dr_mirror_fill_through_the_cli(upstream, tmp_path: Path, run_cli) -> None:
    pins, _, server = upstream
    args = [f"--upstream={p.repo}={server.url}" for p in pins]
    done = run_cli("mirror", "fill", "--graph", str(EXAMPLE_GRAPH), "--dir", str(tmp_path / "m"), *args)
    assert done.code == 0, done.err
    assert f"{len(pins)} charts in" in done.out and f"({len(pins)} fetched, 0 already there)" in done.out
    bad = run_cli("mirror", "fill", "--graph", str(EXAMPLE_GRAPH), "--dir", str(tmp_path / "m"), "--upstream", "nope")
    assert bad.code == 2 and "--upstream takes REPO=URL" in bad.err
    unreachable = run_cli("mirror", "fill", "--graph", str(EXAMPLE_GRAPH), "--dir", str(tmp_path / "n"),
                          *[f"--upstream={p.repo}=http://127.0.0.1:9" for p in pins])
    assert unreachable.code == 1 and "127.0.0.1:9/index.yaml" in unreachable.err
    missing = run_cli("mirror", "serve", "--dir", str(tmp_path / "empty"))
    assert missing.code == 2 and "has no index.yaml" in missing.err
