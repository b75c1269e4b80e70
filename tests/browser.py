"""What a person sees, rendered by a real browser: Debian's chromium-headless-shell (make system).

`render` loads a file, takes a screenshot at a laptop's width and dumps the DOM as the browser built it;
the checks read the screenshot (is anything drawn?) and the DOM (what text, which links)."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium-headless-shell") or shutil.which("chromium")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium-headless-shell is needed (make system)")


@dataclass
class Rendered:
    screenshot: Path
    dom: str

    def ink(self, box: tuple[int, int, int, int] | None = None) -> float:
        """The share of pixels that are not near-white (in `box`, else the whole screenshot)."""
        from PIL import Image

        with Image.open(self.screenshot) as image:
            gray = (image.crop(box) if box else image).convert("L")
            histogram = gray.histogram()
        return sum(histogram[:200]) / max(1, sum(histogram))

    def text(self) -> str:
        collector = _Text()
        collector.feed(self.dom)
        return " ".join(" ".join(collector.parts).split())

    def links(self) -> list[str]:
        return re.findall(r'href="(#[^"]*)"', self.dom)

    def ids(self) -> set[str]:
        return set(re.findall(r'\sid="([^"]+)"', self.dom))


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: object) -> None:
        self._skip += tag in ("style", "script")

    def handle_endtag(self, tag: str) -> None:
        self._skip -= tag in ("style", "script")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def render(page: Path, out: Path, *, width: int = 1280, height: int = 900) -> Rendered:
    assert CHROMIUM is not None
    argv = [CHROMIUM, "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--window-size={width},{height}"]
    shot = out / f"{page.stem}-{width}x{height}.png"
    subprocess.run([*argv, f"--screenshot={shot}", page.resolve().as_uri()], capture_output=True, check=True,
                   timeout=120)
    dom = subprocess.run([*argv, "--dump-dom", page.resolve().as_uri()], capture_output=True, text=True, check=True,
                         timeout=120).stdout
    assert shot.stat().st_size > 0
    return Rendered(shot, dom)
