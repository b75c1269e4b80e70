"""Graph text never becomes script or a link in the runbook's and the drill report's HTML.

The Markdown-to-HTML of `dr.core.docmodel` turned `[text](url)` into a link with any scheme, its URL in an
attribute without its quotes escaped: a description `[notes](javascript:...)` or `[w](x"onmouseover="...)`,
or a cluster named like that, ran script in the page. Now a link goes only to `#...`, a relative path or
http(s), every attribute is quoted and escaped, and text from the graph (names, descriptions, details) is
text: never a link, never markup, in the HTML and in the Markdown alike.
"""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from markdown_it import MarkdownIt

from dr.core.docmodel import Bullets, Heading, Para, Table, to_html, to_markdown
from dr.core.drill_report import CheckResult, DrillReport, ScenarioResult, StepResult
from dr.core.drill_report import to_markdown as report_markdown
from dr.core.plan import plan_for
from dr.core.resources import resource_plan
from dr.core.spec import GraphSpec
from dr.docs.runbook import build_runbook
from dr.drill.report_html import report_html

HOSTILE = ["[notes](javascript:alert(document.domain))", '[w](x"onmouseover="alert(1))',
           "<script>alert(1)</script>", '<img src=x onerror="alert(1)">', "[x](JaVaScRiPt:alert(1))",
           "[x](data:text/html,<script>alert(1)</script>)", "[x](//evil.example/a)", "**b** `c` \\[d](e)",
           "![i](javascript:alert(1))", "<javascript:alert(1)>", "&lt;script&gt;alert(1)&lt;/script&gt;"]


class Elements(HTMLParser):
    """Every element and attribute of a page, and its text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def elements(page: str) -> Elements:
    parsed = Elements()
    parsed.feed(page)
    return parsed


def allowed(href: str | None) -> bool:
    """A link dr makes: to an anchor, a relative path, or http(s)."""
    return href is not None and (href.startswith(("#", "http://", "https://")) or (
        ":" not in href.split("/")[0] and not href.startswith(("/", "\\"))))


def assert_no_script(page: str, *, links_to: set[str] | None = None) -> None:
    found = elements(page)
    for tag, attrs in found.tags:
        assert tag not in ("script", "img", "iframe", "object", "embed"), (tag, attrs)
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        if tag == "a" and "href" in attrs:
            assert allowed(attrs["href"]), attrs
            if links_to is not None:
                assert attrs["href"] in links_to, attrs
        for value in attrs.values():
            assert not (value or "").lower().lstrip().startswith(("javascript:", "data:", "vbscript:")), attrs


@pytest.mark.parametrize(("markup", "href"), [
    ("[the step](#step-etcd)", "#step-etcd"), ("[the drawing](recovery-order.svg)", "recovery-order.svg"),
    ("[docs](https://example.org/a?b=1&c=2)", "https://example.org/a?b=1&c=2"),
    ("[docs](docs/gitops.md#the-gate)", "docs/gitops.md#the-gate")])
def test_a_link_dr_writes_to_an_anchor_a_relative_path_or_http_is_a_link(markup: str, href: str) -> None:
    (link,) = [attrs for tag, attrs in elements(to_html([Para(markup)], title="t")).tags if tag == "a"]
    assert link == {"href": href}


@pytest.mark.parametrize("markup", [
    "[notes](javascript:alert(1))", "[x](JAVASCRIPT:alert(1))", "[x](data:text/html,x)", "[x](vbscript:x)",
    "[x](//evil.example/)", "[x](/etc/passwd)", '[w](x"onmouseover="alert(1))', "[w](x'onmouseover='alert(1))",
    "`[x](javascript:alert(1))`", "**[x](javascript:alert(1))**"])
def test_any_other_link_is_not_made_and_no_attribute_is_left_open(markup: str) -> None:
    page = to_html([Para(markup), Heading(2, markup), Bullets((markup,)), Table(("h",), ((markup,),))], title=markup)
    assert_no_script(page)
    label = markup.split("[", 1)[1].split("]", 1)[0]
    assert label in "".join(elements(page).text)  # what the link said is still shown, as text


def graph(description: str, cluster: str) -> str:
    return yaml.safe_dump({"cluster": cluster, "components": {
        "etcd": {"layer": "etcd", "description": description, "estimate": "1m"},
        "app": {"layer": "app", "depends_on": ["etcd"], "description": description, "estimate": "1m"}}})


def runbook(description: str, cluster: str, tmp_path: Path) -> tuple[str, str]:
    spec = GraphSpec.from_yaml(graph(description, cluster), path=str(tmp_path / "graph.yaml"))
    plan = plan_for(spec)
    assert plan.graph is not None
    blocks = build_runbook(plan, plan.graph.spec, resource_plan(plan, plan.graph.spec), graph_path="graph.yaml",
                           mode_diff="", mermaid="", svg="")
    return to_markdown(blocks), to_html(blocks, title=f"Recovery order of {cluster}")


STEP_LINKS = {"#step-etcd", "#step-app", "recovery-order.svg"}


@pytest.mark.parametrize("value", HOSTILE, ids=repr)
def test_a_description_or_a_cluster_name_is_text_in_the_runbook(value: str, tmp_path: Path) -> None:
    markdown, page = runbook(value, value, tmp_path)
    assert_no_script(page, links_to=STEP_LINKS)
    # The text itself is there, as written, for a person to read.
    assert value in "".join(elements(page).text)
    # The Markdown too, as a CommonMark renderer shows it (raw HTML allowed, as GitHub's is before sanitising).
    assert_no_script(MarkdownIt("commonmark").render(markdown), links_to=STEP_LINKS)
    assert value in "".join(elements(MarkdownIt("commonmark").render(markdown)).text)


@pytest.mark.parametrize("value", HOSTILE, ids=repr)
def test_every_field_of_a_drill_report_is_text_in_its_html_and_markdown(value: str) -> None:
    report = DrillReport(
        run_id="r1", cluster=value, kind="sandbox", started_at=0.0, disaster_at=0.0, verified_at=2.0, rto_target_s=60,
        steps=(StepResult("etcd", "etcd", "failed", 1, 0.5, detail=value),
               StepResult("app", "app", "skipped", 0, 0.0, detail=value, depends_on=("etcd",))),
        checks=(CheckResult("etcd", "etcd", False, value), CheckResult("scenario s", "http", False, value)),
        rpo=(), scenarios=(ScenarioResult(name="s", incident=value, disaster=value, detected=(value,), detect_s=None,
                                          prevented=value, recovered=value, lost=value),))
    page = report_html(report)
    assert_no_script(page)
    assert value in "".join(elements(page).text)
    rendered = MarkdownIt("commonmark").enable("table").render(report_markdown(report))
    assert_no_script(rendered)
