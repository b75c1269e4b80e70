"""The Kubernetes layer's small parts that need no cluster: how an engine error reaches the report, and
which stack locks a resumed drill may remove."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

from dr.drill.kube_layer import _short_error
from dr.kube.toolchain import Toolchain
from dr.stack.engine import Engine


def test_an_engine_error_reaches_the_report_whole() -> None:
    """It was cut to its first character whenever the text held `error:`."""
    text = ("Updating (kubernetes-layer):\n  pulumi:pulumi:Stack dr-sandbox-kubernetes-layer running\n"
            "error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end")
    assert _short_error(text) == ("the stack is currently locked by 1 lock(s). Either wait for the other "
                                  "process(es) to end")
    assert _short_error("no colon here\nlast line") == "last line"
    assert _short_error("") == ""
    assert len(_short_error("error: " + "x" * 5000)) == 600


def _engine(tmp_path: Path) -> Engine:
    return Engine(tmp_path / "engine", Toolchain((tmp_path / "bin",)))


def _lock(engine: Engine, name: str, **content: object) -> Path:
    locks = engine.state_dir / "pulumi-state" / ".pulumi" / "locks" / "organization" / "p" / "s"
    locks.mkdir(parents=True, exist_ok=True)
    path = locks / f"{name}.json"
    path.write_text(json.dumps(content))
    return path


def test_only_locks_whose_engine_is_dead_on_this_host_are_removed(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid that no longer runs
    dead = _lock(engine, "dead", pid=gone.pid, hostname=socket.gethostname(), username="root")
    reused = _lock(engine, "reused", pid=os.getpid(), hostname=socket.gethostname())  # a live pid, not pulumi
    elsewhere = _lock(engine, "elsewhere", pid=gone.pid, hostname="another-host")
    garbage = _lock(engine, "garbage")
    garbage.write_text("{not json")
    removed = engine.clear_dead_locks("p", "s")
    assert sorted(removed) == sorted([dead, reused])
    assert elsewhere.exists() and garbage.exists(), "a lock dr cannot judge is left for a person"
    assert not dead.exists() and not reused.exists()


def test_a_users_own_backend_is_never_touched(tmp_path: Path) -> None:
    engine = Engine(tmp_path / "project" / ".dr", Toolchain(()), project_dir=tmp_path / "project")
    lock = _lock(engine, "theirs", pid=999_999_999, hostname=socket.gethostname())
    assert engine.clear_dead_locks("p", "s") == [] and lock.exists()
