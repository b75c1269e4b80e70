"""The incidents replayed (`dr drill --sandbox --scenario`): per scenario, time to detect, RTO, RPO, and
bytes recovered against bytes lost, as a table.

    python bench/scenarios.py                          # every built scenario on the example graph
    python bench/scenarios.py --graph my.yaml --scenario blank-volume
    python bench/scenarios.py --reports .dr/reports     # the table of drills already run

Each scenario is one real sandbox drill (minutes each on the example graph; namespace-delete waits the
pgBackRest backup's RPO with archiving really failing). Figures are measured, never assumed: the time to
detect is how long the audit took to say what it says before the incident (for namespace-delete: from
the first failing archive command to the freshness finding)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def rows(reports: Path) -> list[list[str]]:
    found = []
    for path in sorted(reports.glob("*/report.json")):
        report: dict[str, Any] = json.loads(path.read_text())
        for scenario in report.get("scenarios", []):
            checks = [c for c in report["checks"] if c["step"] == f"scenario {scenario['name']}"]
            rpo = max((r["measured_s"] for r in report["rpo"] if r["measured_s"] is not None), default=None)
            detect = scenario["detect_s"]
            found.append([scenario["name"], "passed" if all(c["ok"] for c in checks) else "FAILED",
                          "-" if detect is None else f"{detect:.1f}", f"{report['rto_s']:.1f}",
                          "-" if rpo is None else f"{rpo:.1f}", str(scenario["bytes_recovered"]),
                          str(scenario["bytes_lost"])])
    return found


def table(found: list[list[str]]) -> str:
    header = ["scenario", "result", "detect s", "RTO s", "worst RPO s", "bytes recovered", "bytes lost"]
    widths = [max(len(str(row[i])) for row in [header, *found]) for i in range(len(header))]
    return "\n".join("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
                     for row in [header, *found])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--graph", default=str(REPO / "stacks" / "cluster.yaml"))
    parser.add_argument("--scenario", default="all")
    parser.add_argument("--reports", type=Path, help="only print the table of the scenario drills in this directory")
    args = parser.parse_args()
    if args.reports is None:
        state = Path(tempfile.mkdtemp(prefix="dr-bench-scenarios-"))
        dr = [sys.executable, "-m", "dr"] if not (REPO / ".venv" / "bin" / "dr").exists() else [
            str(REPO / ".venv" / "bin" / "dr")]
        done = subprocess.run([*dr, "drill", "--sandbox", "--graph", args.graph, "--state-dir", str(state),
                               "--scenario", args.scenario], env={**os.environ}, check=False)
        args.reports = state / "reports"
        if done.returncode not in (0, 1):
            return done.returncode
    found = rows(args.reports)
    if not found:
        print(f"no scenario drills in {args.reports}", file=sys.stderr)
        return 1
    print(table(found))
    return 0


if __name__ == "__main__":
    sys.exit(main())
