"""Runs one playbook through ansible-runner in its own process (see `dr.hosts.ansible.run_playbook`).

Reads the request as JSON on stdin (secrets included, so they never appear in argv or the
environment), prints progress and the result as JSON lines on stdout.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from dataclasses import asdict
from pathlib import Path

from dr.hosts.ansible import Inventory, PlaybookError, PlaybookResult, run_playbook_here


def _emit(message: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(message, default=str) + "\n")
    sys.stdout.flush()


def _result(result: PlaybookResult) -> dict[str, object]:
    return {"playbook": result.playbook, "rc": result.rc, "status": result.status, "duration_s": result.duration_s,
            "hosts": {h: asdict(c) for h, c in result.hosts.items()}, "failures": list(result.failures)}


_stopping = threading.Event()


def main() -> int:
    # dr stops a worker with SIGTERM when it is interrupted: ansible-runner then stops ansible-playbook,
    # which runs in a terminal session of its own that the signal to this process group never reaches.
    signal.signal(signal.SIGTERM, lambda signum, frame: _stopping.set())
    request = json.loads(sys.stdin.read())
    inventory = Inventory(hosts=request["inventory"]["hosts"],
                          groups={g: tuple(m) for g, m in request["inventory"]["groups"].items()})
    try:
        result = run_playbook_here(
            request["playbook"], inventory=inventory, run_dir=Path(request["run_dir"]),
            extravars=request["extravars"], secrets=request["secrets"], limit=request["limit"],
            check=request["check"], progress=lambda text: _emit({"progress": text}),
            playbook_dir=Path(request["playbook_dir"]), cancelled=_stopping.is_set)
    except PlaybookError as exc:
        _emit({"error": str(exc), **({"result": _result(exc.result)} if exc.result else {})})
        return 1  # the playbook failed: the exit status says so too
    _emit({"result": _result(result)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
