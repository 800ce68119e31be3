"""`report.html` in a real browser: headless Chromium loads every figure; a screenshot is kept."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from petscale.report import gather, write
from test_report import planted_study

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)"
)
# Set PETSCALE_SCREENSHOT_DIR to keep the screenshot where you can look at it.
SCREENSHOT_DIR = os.environ.get("PETSCALE_SCREENSHOT_DIR")

# Appended to a copy of the page: once everything has loaded, it writes the image states into
# the DOM that --dump-dom prints. The report itself carries no script.
PROBE = """<script>
window.addEventListener("load", () => {
  const images = [...document.images];
  const broken = images.filter(img => !img.complete || img.naturalWidth === 0);
  document.body.setAttribute("data-images", images.length);
  document.body.setAttribute("data-broken", broken.map(img => img.alt).join("|"));
  document.body.setAttribute("data-widths", images.map(img => img.naturalWidth).join(","));
});
</script>"""


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ]
    return subprocess.run(
        [CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    study = planted_study(tmp_path_factory.mktemp("study"))
    return write(gather(study), study / "report")


def test_every_figure_loads_in_chromium(page, tmp_path):
    probed = tmp_path / "probed.html"
    probed.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    done = _chromium(tmp_path, "--virtual-time-budget=10000", "--dump-dom", probed.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", done.stdout)
    assert body, done.stdout[:500]
    attrs = dict(re.findall(r'(data-[a-z]+)="([^"]*)"', body.group(1)))
    figures = len(list((page.parent / "figures").glob("*.png")))
    assert figures >= 4
    assert int(attrs["data-images"]) == figures
    assert attrs["data-broken"] == ""
    assert all(int(w) > 100 for w in attrs["data-widths"].split(","))


def test_a_screenshot_of_the_report_is_saved(page, tmp_path):
    shot = Path(SCREENSHOT_DIR or tmp_path) / "report.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    done = _chromium(tmp_path, "--window-size=1280,4000", f"--screenshot={shot}", page.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 20_000  # a page with figures, not a blank one
