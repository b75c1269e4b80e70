"""The `repo` of a backup, checked as the tool that reads it would read it.

Each tool writes its repository its own way, and the same string means different things to different
tools: `s3://bucket/path` is a bucket to CloudNativePG's barman and to pgBackRest's configuration, but a
*server* named `bucket` to restic (whose syntax is `s3:https://endpoint/bucket/path`); Longhorn's backup
target needs the region inside it (`s3://bucket@region/path`). dr puts `repo` into the restore objects it
renders (a CloudNativePG `destinationPath`, a Longhorn backup URL) and into the runbook's commands, so a
repository written in another tool's syntax would fail on the night it is needed.

Velero and VolSync name their repository inside the cluster (a BackupStorageLocation, a Secret): their
`repo` is a description dr never passes to the tool, and is not checked.
"""

from __future__ import annotations

from collections.abc import Mapping

RESTIC_SCHEMES: tuple[str, ...] = ("sftp", "rest", "s3", "b2", "azure", "gs", "swift", "rclone")
# pgBackRest's repository types (repo1-type) and how each is written here.
PGBACKREST_SCHEMES: Mapping[str, str] = {"s3": "s3", "gcs": "gcs", "azure": "azure", "sftp": "sftp"}
BARMAN_SCHEMES: tuple[str, ...] = ("s3://", "gs://", "https://")  # https: Azure Blob Storage
LONGHORN_SCHEMES: tuple[str, ...] = ("s3://", "nfs://", "cifs://", "azblob://")


def restic_problem(repo: str) -> str | None:
    """Why restic would not read `repo` as the repository it names, or None: restic's own syntax is a
    local path or a backend prefix like `s3:` (`s3:https://host/bucket/path`), and `s3://bucket/path`,
    which other tools write, names a *server* called `bucket` to restic."""
    if repo.startswith(("/", "~")):
        return None
    if repo.startswith("s3://"):
        bucket, _, path = repo.removeprefix("s3://").partition("/")
        bucket = bucket.split("@")[0]
        return (f"restic reads {repo!r} as a server named {bucket!r}, not a bucket; write "
                f"s3:https://<endpoint>/{bucket}{'/' + path if path else ''} (restic's syntax)")
    scheme, colon, rest = repo.partition(":")
    if colon and scheme in RESTIC_SCHEMES and rest:
        return None
    return (f"{repo!r} is not a restic repository: an absolute path or one of "
            f"{', '.join(s + ':' for s in RESTIC_SCHEMES)}")


def _bucket_and_path(repo: str) -> tuple[str, str, str]:
    scheme, _, rest = repo.partition("://")
    bucket, _, path = rest.partition("/")
    return scheme, bucket, path.strip("/")


def _restic_syntax(repo: str, written: str) -> str | None:
    scheme, colon, rest = repo.partition(":")
    if colon and scheme in RESTIC_SCHEMES and not rest.startswith("//"):
        return f"{repo!r} is restic's syntax; this tool reads {written}"
    return None


def pgbackrest_options(repo: str) -> dict[str, str]:
    """The pgbackrest.conf options of repository 1 that `repo` names (the endpoint, region and keys are
    the host's own configuration: dr does not hold them). `repo` must be valid (`pgbackrest_problem`)."""
    if repo.startswith("/"):
        return {"repo1-type": "posix", "repo1-path": repo}
    scheme, bucket, path = _bucket_and_path(repo)
    kind = PGBACKREST_SCHEMES[scheme]
    where = {"s3": "repo1-s3-bucket", "gcs": "repo1-gcs-bucket", "azure": "repo1-azure-container",
             "sftp": "repo1-sftp-host"}[kind]
    return {"repo1-type": kind, where: bucket, "repo1-path": f"/{path}"}


def pgbackrest_problem(repo: str) -> str | None:
    written = ("an absolute path (a posix repository) or " +
               ", ".join(f"{scheme}://<bucket>/<path>" for scheme in PGBACKREST_SCHEMES) +
               " (repo1-type and its bucket, with repo1-path)")
    if repo.startswith("/"):
        return None
    scheme, bucket, _ = _bucket_and_path(repo)
    if "://" not in repo or scheme not in PGBACKREST_SCHEMES or not bucket:
        return _restic_syntax(repo, written) or f"{repo!r} is not a pgBackRest repository: write {written}"
    return None


def barman_problem(repo: str) -> str | None:
    """CloudNativePG's barmanObjectStore.destinationPath (it becomes one in the restore objects)."""
    written = "s3://<bucket>/<path>, gs://<bucket>/<path> or https://<account>.blob.core.windows.net/<container>/<path>"
    if not repo.startswith(BARMAN_SCHEMES) or not _bucket_and_path(repo)[1]:
        return _restic_syntax(repo, written) or f"{repo!r} is not a barman destinationPath: write {written}"
    return None


def longhorn_problem(repo: str) -> str | None:
    """Longhorn's backup target (dr writes backup URLs on it into the restore objects)."""
    written = "s3://<bucket>@<region>/<path>, nfs://<server>:/<path>, cifs://<server>/<share> or azblob://..."
    if not repo.startswith(LONGHORN_SCHEMES):
        return _restic_syntax(repo, written) or f"{repo!r} is not a Longhorn backup target: write {written}"
    if repo.startswith("s3://"):
        bucket = _bucket_and_path(repo)[1]
        if "@" not in bucket or not bucket.split("@")[0] or not bucket.split("@")[1]:
            return f"{repo!r}: Longhorn's S3 backup target names its region: s3://<bucket>@<region>/<path>"
    return None


def etcd_snapshot_problem(repo: str) -> str | None:
    """Where etcd snapshots are kept: a directory, or an S3 bucket (k3s's `--etcd-s3-bucket`, or copied
    from it with `aws s3 cp`, which both read s3://<bucket>/<path>)."""
    if repo.startswith("/"):
        return None
    written = "an absolute path or s3://<bucket>/<path>"
    if not repo.startswith("s3://") or not _bucket_and_path(repo)[1]:
        return _restic_syntax(repo, written) or f"{repo!r} is not where etcd snapshots can be: write {written}"
    return None
