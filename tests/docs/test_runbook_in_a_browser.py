"""The runbook as a person opens it on a laptop, rendered by a real browser (issue 25): a table of contents
at the top, every step's name on the page, every link landing on something, the drawing legible at 1280 px
and each of its boxes a link to its step."""

from __future__ import annotations

from pathlib import Path

import pytest

from dr.core.plan import plan_for
from dr.docs.writer import generate
from dr.graph_file import load_graph_file
from tests.browser import needs_chromium, render
from tests.conftest import EXAMPLE_GRAPH

pytestmark = [pytest.mark.integration, needs_chromium]


@pytest.fixture(scope="module")
def runbook(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runbook")
    spec = load_graph_file(EXAMPLE_GRAPH)
    for generated in generate(spec, modes=["prod"], read_text=lambda p: p.read_text(), graph_path="cluster.yaml"):
        (out / generated.name).write_text(generated.content)
    return out / "recovery-order.html"


def test_the_first_screen_shows_the_contents_with_every_step(runbook: Path, tmp_path: Path) -> None:
    plan = plan_for(load_graph_file(EXAMPLE_GRAPH), mode="prod", read_text=lambda p: p.read_text())
    page = render(runbook, tmp_path)
    assert page.ink() > 0.03, f"the first screen is blank ({page.screenshot})"
    text = page.text()
    contents = text.index("Contents")
    assert contents < text.index("Summary") < text.index("Before you start"), "the contents come first"
    for step in plan.steps:
        assert f"{step.name} ★" in text if step.on_critical_path else step.name in text, step.name


def test_every_link_in_the_page_lands_on_something(runbook: Path, tmp_path: Path) -> None:
    page = render(runbook, tmp_path)
    links, ids = page.links(), page.ids()
    plan = plan_for(load_graph_file(EXAMPLE_GRAPH), mode="prod", read_text=lambda p: p.read_text())
    # Contents, "Why here" (needs and needed by), and the drawing's boxes: several links to every step.
    for step in plan.steps:
        assert links.count(f"#step-{step.name}") >= 2, step.name
    missing = sorted({link for link in links if link[1:] not in ids})
    assert not missing, f"links to nothing: {missing}"
    assert (runbook.parent / "recovery-order.svg").is_file(), "the full-size drawing the page links to"
    assert 'href="recovery-order.svg"' in page.dom


def test_the_drawing_is_legible_at_laptop_width(runbook: Path, tmp_path: Path) -> None:
    """At 1280 px the drawing used to be shrunk into the text column, its labels a few pixels high."""
    page = render(runbook, tmp_path, height=9000)
    from PIL import Image

    with Image.open(page.screenshot) as image:
        width, height = image.size
    text = page.text()
    assert "Legend: ★ (a yellow box in the drawing) marks the critical path" in text
    # The drawing spans the window, not the 60rem column: ink reaches both outer margins of the screenshot.
    top = _graph_top(page.screenshot)
    assert page.ink((0, top, 150, min(height, top + 700))) > 0.002, "nothing drawn left of the text column"
    assert page.ink((width - 220, top, width, min(height, top + 700))) > 0.002, "nothing drawn right of it"


def _graph_top(screenshot: Path) -> int:
    """The first row of the full-width rule above the drawing (the .graph box's top border)."""
    from PIL import Image

    with Image.open(screenshot) as image:
        gray = image.convert("L")
        width, height = gray.size
        for y in range(height):
            row = [gray.getpixel((x, y)) for x in (5, width // 2, width - 5)]
            if all(isinstance(v, int) and 200 < v < 240 for v in row):
                return y
    raise AssertionError("no full-width rule above the drawing")
