"""A real browser (Debian's chromium driven by Playwright) against `lstmkit serve` on 127.0.0.1:
type a review, click Predict, see a label, probability bars and the gate heatmap; screenshot."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_support import CHROMIUM, launch_chromium, running_server
from test_bundle import make_run

from lstmkit.bundle import export_bundle
from lstmkit.serve import create_app

pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None,
    reason=f"{CHROMIUM} is not installed (.ci/run installs Debian's chromium)",
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("browser")
    bundle = export_bundle(make_run(root / "run"), root / "bundle")
    with running_server(create_app(bundle)) as url:
        yield url


def test_type_a_review_click_predict_see_label_and_heatmap(server: str, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 1000})
            page.goto(server)
            page.fill("#text", "A wonderful film, the acting is great and the story moving.")
            page.click("#predict")
            page.wait_for_selector("#result:not([hidden])", timeout=20000)
            page.wait_for_selector("#inspect:not([hidden])", timeout=20000)
            label = page.inner_text("#label").strip()
            assert label in {"negative", "positive"}
            assert page.locator("#bars").inner_text().count("%") == 2
            heat = page.locator("#inspect table td")
            assert (
                heat.count() >= 4 * 10
            )  # contribution + 3 gate rows (+ cell norm) over the tokens
            shot = tmp_path / "page.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        finally:
            browser.close()
