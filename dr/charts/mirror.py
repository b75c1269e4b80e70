"""A chart mirror: the charts a graph pins, copied into a directory and served as a Helm repository.

`fill` reads each pinned chart's upstream `index.yaml`, downloads the archive of the pinned version,
checks it against the index's sha256 digest and writes the mirror's own `index.yaml`. `serve` answers
GET requests for that directory on loopback (Helm's HTTP repository protocol is plain files). The
pulumi-kubernetes provider's Helm has no `file://` getter, so a release pulls from the served URL.

Everything is hostile here: a chart name or version (from the graph) becomes a file name only when Helm
would accept it, an archive whose index entry has no sha256 digest is refused unless the caller allows
unverified charts (and then it is marked so in the mirror's index and in what fill reports), and the server
opens regular files under its directory only, never through a link, never a directory listing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import http.server
import os
import shutil
import stat
import tarfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dr.core.charts import ChartPin, find_entry, index_document, pin_problem, resolve_url, sha256_digest
from dr.core.yaml_source import load_bounded
from dr.errors import DrError

MAX_ARCHIVE_BYTES = 64 * 1024 * 1024  # a chart larger than this is not a chart
# The annotation of a mirrored chart whose upstream index gave no sha256 digest to check it against.
UNVERIFIED = "dr.mirror/unverified"


class MirrorError(DrError):
    """A chart could not be mirrored (unreachable repository, missing version, wrong digest)."""


@dataclass(frozen=True)
class Mirrored:
    pin: ChartPin
    digest: str
    size: int
    fetched: bool  # False: already in the mirror with the right digest
    verified: bool = True  # False: mirrored with --allow-unverified, the upstream index gave no sha256 digest


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


def _index(text: str | bytes, where: str) -> dict[str, Any]:
    """A Helm repository index read in bounded time and memory (an index is as hostile as its server)."""
    try:
        loaded = load_bounded(text.decode("utf-8") if isinstance(text, bytes) else text)
    except UnicodeDecodeError:
        raise MirrorError(f"{where}: not read (not UTF-8 text)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = getattr(exc, "line", None) or (mark.line + 1 if mark is not None else None)
        raise MirrorError(f"{where}: not read ({getattr(exc, 'problem', None) or exc}"
                          f"{f', at line {line}' if line else ''})") from None
    loaded = loaded or {}
    if not isinstance(loaded, dict):
        raise MirrorError(f"{where} is not a Helm repository index")
    return loaded


def read_index(directory: Path) -> dict[str, Any]:
    path = directory / "index.yaml"
    if not path.is_file():
        return {"apiVersion": "v1", "entries": {}}
    return _index(path.read_bytes(), str(path))


def _entries(index: Mapping[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """The mirror's own index entries by (name, version); one that is not a chart entry is dropped."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    versions_by_name = index.get("entries")
    for versions in (versions_by_name.values() if isinstance(versions_by_name, Mapping) else ()):
        for entry in versions if isinstance(versions, list) else ():
            if isinstance(entry, Mapping) and isinstance(entry.get("name"), str) and isinstance(
                    entry.get("version"), str):
                found[(entry["name"], entry["version"])] = dict(entry)
    return found


def _unverified(entry: Mapping[str, Any]) -> bool:
    annotations = entry.get("annotations")
    return isinstance(annotations, Mapping) and UNVERIFIED in annotations


def checked_pins(pins: Iterable[ChartPin]) -> list[ChartPin]:
    """The pins, once each is known to be a chart name and version Helm accepts (so a safe file name)."""
    pins = list(pins)
    for pin in pins:
        problem = pin_problem(pin)
        if problem is not None:
            raise MirrorError(f"{problem}; nothing was mirrored")
    return pins


def fill(directory: Path, pins: Iterable[ChartPin], *, upstream: Mapping[str, str] | None = None,
         timeout: float = 60, allow_unverified: bool = False,
         say: Callable[[str], None] = lambda _: None) -> list[Mirrored]:
    """Copy every pinned chart into `directory` and (re)write its `index.yaml`.

    `upstream` maps a graph's repository URL to where to fetch it from instead (a nearer copy, or a
    test's loopback repository). A chart already mirrored with its digest is not fetched again. A pin
    whose name or version Helm would not accept is refused before anything is written; a chart whose
    index entry has no sha256 digest is refused unless `allow_unverified` (then it is marked unverified).
    """
    pins = checked_pins(pins)
    directory.mkdir(parents=True, exist_ok=True)
    entries = _entries(read_index(directory))
    done: list[Mirrored] = []
    upstream_indexes: dict[str, dict[str, Any]] = {}
    for pin in pins:
        target = directory / pin.archive
        known = entries.get((pin.name, pin.version))
        if (known and (allow_unverified or not _unverified(known)) and target.is_file() and not target.is_symlink()
                and _digest(target.read_bytes()) == known.get("digest")):
            verified = not _unverified(known)
            say(f"{pin.name} {pin.version}: already mirrored{'' if verified else ' (UNVERIFIED)'}")
            done.append(Mirrored(pin, str(known["digest"]), target.stat().st_size, fetched=False, verified=verified))
            continue
        source = (upstream or {}).get(pin.repo, pin.repo)
        if source not in upstream_indexes:
            say(f"reading {source}/index.yaml")
            url = f"{source.rstrip('/')}/index.yaml"
            upstream_indexes[source] = _index(_get(url, timeout=timeout, limit=MAX_ARCHIVE_BYTES), url)
        entry = find_entry(upstream_indexes[source], pin)
        if entry is None or not entry.get("urls"):
            raise MirrorError(f"{pin.name} {pin.version} is not in {source}/index.yaml (the graph pins it: "
                              "check the chart name and version)")
        expected = sha256_digest(entry.get("digest"))
        if expected is None and not allow_unverified:
            raise MirrorError(f"{pin.name} {pin.version}: {source}/index.yaml gives no sha256 digest to check the "
                              f"archive against (digest: {entry.get('digest')!r}); refused. Mirror it anyway, "
                              "marked unverified, with --allow-unverified")
        urls = entry["urls"]
        if not isinstance(urls, list) or not isinstance(urls[0], str):
            raise MirrorError(f"{pin.name} {pin.version}: {source}/index.yaml gives no archive URL for it")
        data = _get(resolve_url(source, urls[0]), timeout=timeout, limit=MAX_ARCHIVE_BYTES)
        digest = _digest(data)
        if expected is not None and expected != digest:
            raise MirrorError(f"{pin.name} {pin.version}: sha256 {digest} does not match the index's {expected}")
        _write_atomically(target, data)
        fields: dict[str, Any] = {k: v for k, v in entry.items()
                                  if k in ("apiVersion", "appVersion", "description", "type") and isinstance(v, str)}
        if expected is None:
            say(f"{pin.name} {pin.version}: mirrored UNVERIFIED ({len(data)} bytes; the index gives no sha256 "
                "digest)")
            fields["annotations"] = {UNVERIFIED: "the upstream index gave no sha256 digest to check it against"}
        else:
            say(f"{pin.name} {pin.version}: mirrored ({len(data)} bytes)")
        entries[(pin.name, pin.version)] = {**fields, "name": pin.name, "version": pin.version,
                                            "urls": [pin.archive], "digest": digest,
                                            "created": dt.datetime.now(dt.UTC).isoformat()}
        done.append(Mirrored(pin, digest, len(data), fetched=True, verified=expected is not None))
    index = index_document(entries.values(), generated=dt.datetime.now(dt.UTC).isoformat())
    _write_atomically(directory / "index.yaml", yaml.safe_dump(index, sort_keys=False).encode())
    return done


def package(chart_dir: Path, out_dir: Path) -> tuple[Path, dict[str, Any]]:
    """A chart directory as Helm packages it (`<name>-<version>.tgz`, files under `<name>/`) and its
    index entry."""
    meta = yaml.safe_load((chart_dir / "Chart.yaml").read_text(encoding="utf-8"))
    name, version = str(meta["name"]), str(meta["version"])
    checked_pins([ChartPin(name, version, "")])
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


_CONTENT_TYPES = {".yaml": "application/x-yaml", ".tgz": "application/gzip", ".prov": "text/plain"}


def open_served_file(root_fd: int, request_path: str) -> int | None:
    """A descriptor of the regular file `request_path` names under the directory open as `root_fd`, or None.

    Each segment is opened relative to the one before without following a link, so neither a link nor
    `..` (plain or percent-encoded) leads out of the directory; a directory, a pipe or a device is not
    served, and there is no listing."""
    try:
        path = urllib.parse.unquote(request_path.split("?", 1)[0].split("#", 1)[0], errors="strict")
    except UnicodeDecodeError:
        return None
    if not path.startswith("/"):
        return None
    segments = path[1:].split("/")
    if any(s in ("", ".", "..") or "\x00" in s for s in segments):
        return None
    opened: list[int] = []
    try:
        parent = root_fd
        for segment in segments[:-1]:
            parent = os.open(segment, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent)
            opened.append(parent)
        fd = os.open(segments[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=parent)
    except (OSError, ValueError):
        return None
    finally:
        for directory_fd in opened:
            os.close(directory_fd)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return fd


class _FilesHandler(http.server.BaseHTTPRequestHandler):
    """GET and HEAD of the regular files under the served directory; 404 for anything else, 405 for writes."""

    root_fd: int

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_POST(self) -> None:
        self.send_error(405)

    do_PUT = do_DELETE = do_PATCH = do_POST

    def _answer(self, *, body: bool) -> None:
        fd = open_served_file(self.root_fd, self.path)
        if fd is None:
            self.send_error(404)
            return
        with os.fdopen(fd, "rb") as handle:
            self.send_response(200)
            self.send_header("Content-Type", _CONTENT_TYPES.get(os.path.splitext(self.path)[1],
                                                                "application/octet-stream"))
            self.send_header("Content-Length", str(os.fstat(fd).st_size))
            self.end_headers()
            if body:
                shutil.copyfileobj(handle, self.wfile)


class Server:
    """A Helm HTTP repository serving `directory` on 127.0.0.1 (read-only), in a background thread."""

    def __init__(self, directory: Path, port: int = 0) -> None:
        # The directory is opened once: replacing it by a link later changes nothing served.
        self._root_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        handler = type("_MirrorHandler", (_FilesHandler,), {"root_fd": self._root_fd})
        try:
            self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
        except OSError:
            os.close(self._root_fd)
            raise
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
        if self._root_fd >= 0:
            os.close(self._root_fd)
            self._root_fd = -1
