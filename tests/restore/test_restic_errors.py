"""restic's failures told apart, against the real restic (issue 21, item 7): a wrong password, a server
that cannot be reached and a repository that is not there were all "repository does not exist"."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dr.errors import RestoreError
from dr.restore.restic import ResticRepository, _reason

pytestmark = [pytest.mark.integration, pytest.mark.skipif(shutil.which("restic") is None, reason="restic")]


@pytest.fixture
def repository(tmp_path: Path) -> str:
    ResticRepository(str(tmp_path / "repo"), "right").run("init")
    return str(tmp_path / "repo")


def failure(repository: str, password: str = "right") -> str:
    with pytest.raises(RestoreError) as caught:
        ResticRepository(repository, password).run("snapshots", "--json")
    return str(caught.value)


def test_wrong_password(repository: str) -> None:
    assert "wrong password" in failure(repository, "wrong")


def test_a_missing_repository(tmp_path: Path) -> None:
    assert "does not exist at this location" in failure(str(tmp_path / "nothing-here"))


@pytest.mark.parametrize("url", ["rest:http://127.0.0.1:1/", "s3:http://127.0.0.1:1/bucket"])
def test_an_unreachable_server_is_not_a_missing_repository(url: str) -> None:
    message = failure(url)
    assert "could not be reached" in message and "connection refused" in message
    assert "does not exist" not in message


def test_a_dns_failure_reads_as_unreachable() -> None:
    # restic's own text for a name that does not resolve (no DNS query is sent from a test).
    stderr = ('Fatal: unable to open config file: Stat: Get "https://backups.example.invalid/b/?location=": dial tcp: '
              'lookup backups.example.invalid: no such host\nIs there a repository at the following location?')
    assert "could not be reached" in _reason(stderr)
