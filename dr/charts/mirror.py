"""A chart mirror: the charts a graph pins, copied into a directory and served as a Helm repository.

`fill` reads each pinned chart's upstream `index.yaml`, downloads the archive of the pinned version,
checks it against the index's sha256 digest and writes the mirror's own `index.yaml`. `serve` answers
GET requests for that directory on loopback (Helm's HTTP repository protocol is plain files). The
pulumi-kubernetes provider's Helm has no `file://` getter, so a release pulls from the served URL.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import http.server
import os
import tarfile
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from dr.core.charts import ChartPin, find_entry, index_document, resolve_url
from dr.errors import DrError

MAX_ARCHIVE_BYTES = 64 * 1024 * 1024  # a chart larger than this is not a chart


class MirrorError(DrError):
    """A chart could not be mirrored (unreachable repository, missing version, wrong digest)."""


@dataclass(frozen=True)
class Mirrored:
    pin: ChartPin
    digest: str
    size: int
    fetched: bool  # False: already in the mirror with the right digest


def _get(url: str, *, timeout: float, limit: int) -> bytes:
    if not url.startswith(("http://", "https://")):
        raise MirrorError(f"{url}: only http(s) chart repositories can be mirrored")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body: bytes = response.read(limit + 1)
    except urllib.error.HTTPError as exc:
        raise MirrorError(f"{url}: HTTP {exc.code}") from None
    except OSError as exc:
        raise MirrorError(f"{url}: {getattr(exc, 'reason', exc)}") from None
    if len(body) > limit:
        raise MirrorError(f"{url}: larger than {limit // (1024 * 1024)} MiB")
    return body


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    tmp.replace(path)


def read_index(directory: Path) -> dict[str, Any]:
    path = directory / "index.yaml"
    if not path.is_file():
        return {"apiVersion": "v1", "entries": {}}
    loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(loaded, dict):
        raise MirrorError(f"{path}: not a Helm repository index")
    return loaded


def fill(directory: Path, pins: Iterable[ChartPin], *, upstream: Mapping[str, str] | None = None,
         timeout: float = 60, say: Callable[[str], None] = lambda _: None) -> list[Mirrored]:
    """Copy every pinned chart into `directory` and (re)write its `index.yaml`.

    `upstream` maps a graph's repository URL to where to fetch it from instead (a nearer copy, or a
    test's loopback repository). A chart already mirrored with its digest is not fetched again.
    """
    directory.mkdir(parents=True, exist_ok=True)
    current = read_index(directory)
    entries = {(str(e["name"]), str(e["version"])): dict(e)
               for versions in (current.get("entries") or {}).values() for e in versions or ()}
    done: list[Mirrored] = []
    upstream_indexes: dict[str, dict[str, Any]] = {}
    for pin in pins:
        target = directory / pin.archive
        known = entries.get((pin.name, pin.version))
        if known and target.is_file() and not target.is_symlink() and _digest(target.read_bytes()) == known.get(
                "digest"):
            say(f"{pin.name} {pin.version}: already mirrored")
            done.append(Mirrored(pin, str(known["digest"]), target.stat().st_size, fetched=False))
            continue
        source = (upstream or {}).get(pin.repo, pin.repo)
        if source not in upstream_indexes:
            say(f"reading {source}/index.yaml")
            loaded = yaml.safe_load(_get(f"{source.rstrip('/')}/index.yaml", timeout=timeout, limit=MAX_ARCHIVE_BYTES))
            if not isinstance(loaded, dict):
                raise MirrorError(f"{source}/index.yaml is not a Helm repository index")
            upstream_indexes[source] = loaded
        entry = find_entry(upstream_indexes[source], pin)
        if entry is None or not entry.get("urls"):
            raise MirrorError(f"{pin.name} {pin.version} is not in {source}/index.yaml (the graph pins it: "
                              "check the chart name and version)")
        data = _get(resolve_url(source, str(entry["urls"][0])), timeout=timeout, limit=MAX_ARCHIVE_BYTES)
        digest = _digest(data)
        expected = str(entry.get("digest") or "")
        if expected and expected != digest:
            raise MirrorError(f"{pin.name} {pin.version}: sha256 {digest} does not match the index's {expected}")
        _write_atomically(target, data)
        say(f"{pin.name} {pin.version}: mirrored ({len(data)} bytes)")
        fields = {k: v for k, v in entry.items() if k in ("apiVersion", "appVersion", "description", "type")}
        entries[(pin.name, pin.version)] = {**fields, "name": pin.name, "version": pin.version,
                                            "urls": [pin.archive], "digest": digest,
                                            "created": dt.datetime.now(dt.UTC).isoformat()}
        done.append(Mirrored(pin, digest, len(data), fetched=True))
    index = index_document(entries.values(), generated=dt.datetime.now(dt.UTC).isoformat())
    _write_atomically(directory / "index.yaml", yaml.safe_dump(index, sort_keys=False).encode())
    return done


def package(chart_dir: Path, out_dir: Path) -> tuple[Path, dict[str, Any]]:
    """A chart directory as Helm packages it (`<name>-<version>.tgz`, files under `<name>/`) and its
    index entry."""
    meta = yaml.safe_load((chart_dir / "Chart.yaml").read_text(encoding="utf-8"))
    name, version = str(meta["name"]), str(meta["version"])
    out_dir.mkdir(parents=True, exist_ok=True)
    archive = out_dir / f"{name}-{version}.tgz"

    def reset(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
        return info

    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(chart_dir.rglob("*")):
            if path.is_file():
                tar.add(path, arcname=f"{name}/{path.relative_to(chart_dir)}", filter=reset)
    entry = {"apiVersion": "v2", "name": name, "version": version, "appVersion": str(meta.get("appVersion", version)),
             "description": str(meta.get("description", "")), "urls": [archive.name],
             "digest": _digest(archive.read_bytes()), "created": "1970-01-01T00:00:00Z"}
    return archive, entry


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None

    def do_POST(self) -> None:
        self.send_error(405)

    do_PUT = do_DELETE = do_POST


class Server:
    """A Helm HTTP repository serving `directory` on 127.0.0.1 (read-only), in a background thread."""

    def __init__(self, directory: Path, port: int = 0) -> None:
        handler = partial(_QuietHandler, directory=str(directory))
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True, name="chart-mirror")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> Server:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    def close(self) -> None:
        if self._thread.is_alive():
            self._httpd.shutdown()
        self._httpd.server_close()
