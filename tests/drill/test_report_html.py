"""The drill report as HTML: what it tells a person to do next."""

from __future__ import annotations

from dr.core.drill_report import DrillReport, StepResult
from dr.drill.report_html import report_html


def test_the_html_report_says_what_to_type_next_for_its_kind_of_drill() -> None:
    """A stack drill cannot be resumed: its report must not tell a person to type `--resume`."""
    def failed(kind: str) -> str:
        return report_html(DrillReport(run_id="r", cluster="c", kind=kind, started_at=0.0, disaster_at=0.0,
                                       verified_at=1.0, rto_target_s=0, steps=(StepResult("etcd", "etcd", "failed", 1,
                                                                                          0.5),), checks=(), rpo=()))
    assert "dr drill --stack &lt;name&gt;" in failed("stack") and "--resume" not in failed("stack")
    assert "dr drill --hosts --resume" in failed("hosts")
    assert "<code>dr drill --resume</code>" in failed("sandbox")
