"""A real browser (Debian's chromium driven by Playwright) against `lstmkit serve` on 127.0.0.1:
type a review, click Predict, see a label, probability bars and the gate heatmap; screenshot."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_bundle import make_run

from lstmkit.bundle import export_bundle
from lstmkit.serve import create_app

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None,
    reason=f"{CHROMIUM} is not installed (.ci/run installs Debian's chromium)",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import uvicorn

    root = tmp_path_factory.mktemp("browser")
    bundle = export_bundle(make_run(root / "run"), root / "bundle")
    port = _free_port()
    config = uvicorn.Config(create_app(bundle), host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the server did not start within 30 s")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/"
    srv.should_exit = True
    thread.join(timeout=10)


def test_type_a_review_click_predict_see_label_and_heatmap(server: str, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
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
