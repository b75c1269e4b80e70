"""The chart mirror against a hostile graph, a hostile upstream index and a hostile mirror directory: a
chart name or version becomes a path only when Helm would accept it, an archive is mirrored only when the
index gives a sha256 digest it matches (or the user said --allow-unverified, and the report says so), and
the server serves regular files inside its directory and nothing else."""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from dr.charts.mirror import MirrorError, Server, fill
from dr.core.charts import ChartPin, pin_problem

ARCHIVE = b"not really a chart, but bytes with a digest"


def _upstream(directory: Path, entries: dict[str, list[dict[str, Any]]], text: str | None = None) -> Path:
    """A hand-written Helm repository: an index.yaml (these entries, or this raw text) and the archive
    every entry names."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "x.tgz").write_bytes(ARCHIVE)
    (directory / "index.yaml").write_text(text if text is not None else
                                          yaml.safe_dump({"apiVersion": "v1", "entries": entries}), encoding="utf-8")
    return directory


def _entry(name: str, version: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "version": version, "urls": ["x.tgz"], **extra}


SHA = hashlib.sha256(ARCHIVE).hexdigest()


@pytest.mark.parametrize(("name", "version"), [
    ("../../x", "1.0.0"), ("x", "../../../1.0.0"), ("a/b", "1.0.0"), ("..", "1.0.0"), (".hidden", "1.0.0"),
    ("x", "1.0.0/../../y"), ("x\x00y", "1.0.0"), ("x", "not-a-version"), ("", "1.0.0"), ("x", ""),
])
def test_a_chart_name_or_version_helm_would_refuse_never_becomes_a_path(tmp_path: Path, name: str,
                                                                        version: str) -> None:
    source = _upstream(tmp_path / "up", {name: [_entry(name, version, digest=SHA)]})
    mirror = tmp_path / "a" / "b" / "mirror"
    with Server(source) as server, pytest.raises(MirrorError, match="not a chart") as refused:
        fill(mirror, [ChartPin(name, version, "https://charts.example.com")],
             upstream={"https://charts.example.com": server.url})
    assert repr(name) in str(refused.value) or repr(version) in str(refused.value)
    written = [p for p in tmp_path.rglob("*") if p.is_file() and not p.is_relative_to(tmp_path / "up")]
    assert written == [], f"nothing is written for a refused pin: {written}"


def test_names_and_versions_helm_accepts_are_valid() -> None:
    for name, version in (("cert-manager", "v1.16.1"), ("kube-prometheus-stack", "65.1.0"), ("c", "1"),
                          ("app_template", "3.5.1-rc.1+build.7"), ("victoria.metrics", "0.12")):
        assert pin_problem(ChartPin(name, version, "https://r")) is None, (name, version)


@pytest.mark.parametrize("digest", [None, 0, "", 12345, "sha256:abc", "f" * 63, "z" * 64])
def test_an_index_entry_without_a_verifiable_sha256_is_refused(tmp_path: Path, digest: Any) -> None:
    entry = _entry("gitea", "10.6.0") if digest is None else _entry("gitea", "10.6.0", digest=digest)
    source = _upstream(tmp_path / "up", {"gitea": [entry]})
    pin = ChartPin("gitea", "10.6.0", "https://dl.gitea.com/charts")
    with Server(source) as server, pytest.raises(MirrorError, match=r"gitea 10\.6\.0: .*no sha256 digest"):
        fill(tmp_path / "mirror", [pin], upstream={pin.repo: server.url})
    assert not (tmp_path / "mirror" / pin.archive).exists()


def test_a_digest_yaml_reads_as_a_number_is_refused(tmp_path: Path) -> None:
    # 64 decimal digits: YAML reads an int, which str() would turn back into "digits" that never match a
    # real sha256 hex digest, or `0`, which is falsy and used to mean "no digest, no check".
    source = _upstream(tmp_path / "up", {}, text="apiVersion: v1\nentries:\n  gitea:\n  - name: gitea\n"
                                                  "    version: 10.6.0\n    urls: [x.tgz]\n    digest: 0\n")
    pin = ChartPin("gitea", "10.6.0", "https://dl.gitea.com/charts")
    with Server(source) as server, pytest.raises(MirrorError, match="no sha256 digest"):
        fill(tmp_path / "mirror", [pin], upstream={pin.repo: server.url})


def test_allow_unverified_mirrors_it_and_says_so_every_time(tmp_path: Path) -> None:
    source = _upstream(tmp_path / "up", {"gitea": [_entry("gitea", "10.6.0")]})
    pin = ChartPin("gitea", "10.6.0", "https://dl.gitea.com/charts")
    said: list[str] = []
    with Server(source) as server:
        (done,) = fill(tmp_path / "mirror", [pin], upstream={pin.repo: server.url}, allow_unverified=True,
                       say=said.append)
        assert done.fetched and not done.verified
        assert any("gitea 10.6.0" in line and "UNVERIFIED" in line for line in said), said
        (again,) = fill(tmp_path / "mirror", [pin], upstream={pin.repo: server.url}, allow_unverified=True)
    assert not again.fetched and not again.verified, "the mark survives a second fill"
    index = yaml.safe_load((tmp_path / "mirror" / "index.yaml").read_text())
    (entry,) = index["entries"]["gitea"]
    assert "unverified" in str(entry.get("annotations", {})).lower()


def test_a_verified_chart_is_marked_verified(tmp_path: Path) -> None:
    source = _upstream(tmp_path / "up", {"gitea": [_entry("gitea", "10.6.0", digest=SHA.upper())]})
    pin = ChartPin("gitea", "10.6.0", "https://dl.gitea.com/charts")
    with Server(source) as server:
        (done,) = fill(tmp_path / "mirror", [pin], upstream={pin.repo: server.url})
    assert done.verified and done.digest == SHA


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_server_serves_only_regular_files_inside_its_directory(tmp_path: Path) -> None:
    served = tmp_path / "served"
    served.mkdir()
    (served / "index.yaml").write_text("apiVersion: v1\nentries: {}\n")
    (served / "sub").mkdir()
    (served / "sub" / "inner.tgz").write_bytes(b"inner")
    secret = tmp_path / "shadow"
    secret.write_text("root only")
    secret.chmod(0o600)
    outside = tmp_path / "outside-dir"
    outside.mkdir()
    (outside / "f.tgz").write_bytes(b"outside")
    os.symlink(secret, served / "link.tgz")
    os.symlink(outside, served / "linked-dir")
    os.symlink("index.yaml", served / "inner-link.yaml")  # even a link inside: a regular file is served, not a link
    os.mkfifo(served / "pipe.tgz")
    with Server(served) as server:
        assert _status(f"{server.url}/index.yaml") == 200
        assert _status(f"{server.url}/sub/inner.tgz") == 200
        for path in ("/link.tgz", "/linked-dir/f.tgz", "/linked-dir/", "/inner-link.yaml", "/", "/sub/",
                     "/sub", "/../shadow", "/%2e%2e/shadow", "/sub/..%2f..%2fshadow", "/pipe.tgz",
                     "/index.yaml/", "//etc/passwd", "/%00"):
            assert _status(f"{server.url}{path}") == 404, path
        with urllib.request.urlopen(f"{server.url}/index.yaml", timeout=10) as response:
            assert response.read().startswith(b"apiVersion: v1")
        request = urllib.request.Request(f"{server.url}/sub/inner.tgz", method="HEAD")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.headers["Content-Length"] == "5" and response.read() == b""


def test_dr_mirror_fill_refuses_a_hostile_chart_name_with_exit_2(tmp_path: Path, write_graph, run_cli) -> None:
    graph = write_graph("""\
        cluster: lab
        components:
          c:
            layer: addon
            helm: {chart: "../../x", repo: "https://charts.example.com", version: "1.0.0", namespace: n}
            estimate: 1m
        """)
    done = run_cli("mirror", "fill", "--graph", str(graph), "--dir", str(tmp_path / "m"))
    assert done.code == 2, done.err
    assert str(graph) in done.err and "'../../x'" in done.err and "Traceback" not in done.err
    assert not (tmp_path / "m").exists()


def test_dr_mirror_fill_allow_unverified_through_the_cli(tmp_path: Path, write_graph, run_cli) -> None:
    source = _upstream(tmp_path / "up", {"gitea": [_entry("gitea", "10.6.0")]})
    graph = write_graph("""\
        cluster: lab
        components:
          c:
            layer: addon
            helm: {chart: gitea, repo: "https://dl.gitea.com/charts", version: "10.6.0", namespace: n}
            estimate: 1m
        """)
    with Server(source) as server:
        refused = run_cli("mirror", "fill", "--graph", str(graph), "--dir", str(tmp_path / "m"),
                          f"--upstream=https://dl.gitea.com/charts={server.url}")
        assert refused.code == 1 and "no sha256 digest" in refused.err and "--allow-unverified" in refused.err
        allowed = run_cli("mirror", "fill", "--graph", str(graph), "--dir", str(tmp_path / "m"), "--allow-unverified",
                          f"--upstream=https://dl.gitea.com/charts={server.url}")
    assert allowed.code == 0, allowed.err
    assert "1 unverified" in allowed.out and "gitea 10.6.0" in allowed.err
    serve = run_cli("mirror", "serve", "--dir", str(tmp_path / "m"), "--allow-unverified")
    assert serve.code == 2 and "--allow-unverified only works with fill" in serve.err


@pytest.mark.parametrize("text", [
    "entries: " + "[" * 20_000 + "]" * 20_000 + "\n",  # a RecursionError in the YAML parser, unbounded
    "".join(f"{chr(97 + n)}: &{chr(97 + n)} [" + ",".join(["lol"] * 9 if n == 0 else [f"*{chr(96 + n)}"] * 9) + "]\n"
            for n in range(9)) + "entries: {gitea: [*i]}\n",  # an alias bomb
])
def test_an_upstream_index_written_to_stop_the_reader_is_a_clear_error(tmp_path: Path, text: str) -> None:
    source = _upstream(tmp_path / "up", {}, text=text)
    pin = ChartPin("gitea", "10.6.0", "https://dl.gitea.com/charts")
    with Server(source) as server, pytest.raises(MirrorError, match=r"index\.yaml: not read \("):
        fill(tmp_path / "mirror", [pin], upstream={pin.repo: server.url})


def test_a_damaged_mirror_index_is_a_clear_error(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "index.yaml").write_text("entries: " + "[" * 20_000 + "]" * 20_000 + "\n")
    with pytest.raises(MirrorError, match=r"mirror/index\.yaml: not read \("):
        fill(mirror, [ChartPin("gitea", "10.6.0", "https://dl.gitea.com/charts")])
