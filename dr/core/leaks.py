"""The one production-marker scanner: what a drill would deploy must not name production.

Used twice over the same function: on every declared field of every kept component (`dr.core.modes`,
with the graph file's lines) and on every rendered object and input (`dr.core.resources`). Every
string is read, mapping keys included; the only exemptions are the paths a caller names as
read-only restore sources (a drill reads production backups, it never writes them).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, fields, is_dataclass
from typing import Any

from dr.core.spec import walk_strings

JsonPath = tuple[str | int, ...]

# Where a host-level restore reads its backup: a drill may read production there, never write.
RESTORE_SOURCES: tuple[JsonPath, ...] = (("repo",), ("vars", "repository"), ("vars", "snapshot_dir"))


@dataclass(frozen=True)
class MarkerHit:
    path: JsonPath
    marker: str


OBJECT_STORE_SCHEMES = ("s3://", "gs://", "gcs://", "azure://", "b2://", "r2://", "swift://", "minio://")


def bucket_of(marker: str) -> str | None:
    """The bucket a production object-store marker names (`s3://homelab-backups/x` -> `homelab-backups`)."""
    for scheme in OBJECT_STORE_SCHEMES:
        if marker.startswith(scheme):
            bucket = marker[len(scheme):].split("/", 1)[0]
            return bucket or None
    return None


def contains_marker(text: str, marker: str) -> bool:
    """The marker itself, or — for a production bucket — the bucket however it is spelt: the bare name
    (Velero's `bucket:`), a path-style URL (`https://host/bucket/...`, restic's `s3:host/bucket`), restic's
    `gs:bucket:/path` and `azure:container:/path`, or a virtual-hosted one (`bucket.s3.amazonaws.com`)."""
    bucket = bucket_of(marker)
    if bucket is None:
        return marker in text
    scheme = marker.split("://", 1)[0] + "://"
    root = f"{scheme}{bucket}"
    # After the bucket comes its end, a path, or Longhorn's @region: never more of a longer name.
    if any(rest == "" or rest[0] in "/@?:" for rest in _after_each(text, root)):
        return marker.rstrip("/") in text  # the bucket itself, or the marker's path within it
    return (text == bucket or f"/{bucket}/" in text or text.endswith(f"/{bucket}") or text.startswith(f"{bucket}.")
            or f"//{bucket}." in text or f":{bucket}/" in text or f":{bucket}:" in text
            or text.endswith(f":{bucket}"))


def _after_each(text: str, needle: str) -> Iterator[str]:
    start = text.find(needle)
    while start != -1:
        yield text[start + len(needle):]
        start = text.find(needle, start + 1)


def find_markers(value: Any, markers: Collection[str], *, exempt: Collection[JsonPath] = ()) -> Iterator[MarkerHit]:
    """Every (path, marker) where a string in `value`, or a mapping key, contains a production marker."""
    if not markers:
        return
    for path, text in walk_strings(value, keys=True):
        if path in exempt:
            continue
        for marker in markers:
            if contains_marker(text, marker):
                yield MarkerHit(path, marker)


def as_data(value: Any) -> Any:
    """A frozen dataclass tree (an action, a check) as plain nested data, field names as keys."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: as_data(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Mapping):
        return {k: as_data(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [as_data(v) for v in value]
    return value
