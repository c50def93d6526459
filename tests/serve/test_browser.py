"""A real browser (Debian's chromium driven by Playwright) against `lstmkit serve` on 127.0.0.1:
type a review and predict with the keyboard alone, see a label, probability bars and the gate
heatmap; a long text; a Conv1D model whose inside cannot be inspected still shows its prediction
and word contributions. Every state is checked with axe-core (WCAG 2.2 A/AA: no serious or
critical violation, and no minor one either) at 1366x768 and at 390x844, where the page must not
scroll sideways. One browser and one page for the module."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import (
    CHROMIUM,
    PHONE,
    check_accessible,
    launch_chromium,
    running_server,
    settle,
)
from test_bundle import WORDS, make_run

from lstmkit.bundle import export_bundle
from lstmkit.serve import create_app

pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None,
    reason=f"{CHROMIUM} is not installed (.ci/run installs Debian's chromium)",
)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    root = tmp_path_factory.mktemp("browser")
    lstm = export_bundle(make_run(root / "run"), root / "bundle")
    # a Conv1D front (as the imdb-conv-lstm recipe's): /v1/inspect answers 422 for it
    conv = export_bundle(make_run(root / "conv", conv_filters=4, conv_kernel=3), root / "cb")
    with (
        running_server(create_app(lstm)) as lstm_url,
        running_server(create_app(conv, max_texts=8)) as conv_url,
    ):
        yield {"lstm": lstm_url, "conv": conv_url}


@pytest.fixture(scope="module")
def page() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            yield browser.new_page(viewport={"width": 1366, "height": 768})
        finally:
            browser.close()


def active_id(page: Any) -> str:
    return str(page.evaluate("document.activeElement ? document.activeElement.id : ''"))


def test_keyboard_predict_heatmap_long_text_accessible(
    servers: str, page: Any, tmp_path: Path
) -> None:
    url = servers["lstm"]
    icons: list[int] = []
    page.on("response", lambda r: icons.append(r.status) if "favicon" in r.url else None)
    page.goto(url)
    page.wait_for_function("!document.getElementById('model-info').textContent.includes('loading')")
    info = page.inner_text("#model-info")
    assert "LSTM (8 units)" in info and "negative, positive" in info, info
    check_accessible(page, "first load")

    # keyboard only: Tab to the text box, type, Tab to Predict, Enter; the focus stays there
    page.keyboard.press("Tab")
    assert active_id(page) == "text"
    page.keyboard.type("A wonderful film, the acting is great and the story moving.")
    page.keyboard.press("Tab")
    assert active_id(page) == "predict"
    page.keyboard.press("Enter")
    page.wait_for_selector("#result:not([hidden])", timeout=20000)
    page.wait_for_selector("#inspect:not([hidden])", timeout=20000)
    assert active_id(page) == "predict"  # not lost to <body>
    label = page.inner_text("#label").strip()
    assert label in {"negative", "positive"}
    assert page.inner_text("#announce").startswith(f"Prediction: {label}, ")
    assert page.get_attribute("#announce", "role") == "status"
    assert page.locator("#bars").inner_text().count("%") == 2
    heat = page.locator("#inspect table td")
    assert heat.count() >= 4 * 10  # contribution + 3 gate rows (+ cell norm) over the tokens
    # every value is text in the table and after each word, read by a screen reader
    assert all(t.strip() for t in page.locator("#heatmap td").all_inner_texts()[:12])
    assert "Hover" not in page.inner_text("#inspect")
    assert page.locator("#words .word .value").count() == page.locator("#words .word").count()
    check_accessible(page, "after a prediction")

    # "Show the numbers" by keyboard: the values on screen, in black or white on each colour
    page.focus("#show-numbers")
    page.keyboard.press("Space")
    assert page.get_attribute("#show-numbers", "aria-pressed") == "true"
    assert page.locator("#heatmap td .value").first.bounding_box()["width"] > 5  # type: ignore[index]
    check_accessible(page, "after a prediction, numbers shown")
    page.keyboard.press("Space")
    shot = tmp_path / "page.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # a long text: the heatmap scrolls inside its own focusable box, with a cue, not the page
    page.fill("#text", " ".join(WORDS[i % len(WORDS)] for i in range(150)))
    page.click("#predict")
    # the model reads the last maxlen (40) tokens: its last 40 words
    page.wait_for_function("document.querySelectorAll('#words .word').length === 40", timeout=20000)
    assert page.get_attribute("#heatmap-box", "tabindex") == "0"
    check_accessible(page, "a long text")
    page.set_viewport_size(PHONE)
    settle(page)
    assert page.is_visible("#scroll-cue")
    page.focus("#heatmap-box")
    page.keyboard.press("ArrowRight")
    page.wait_for_function("document.getElementById('heatmap-box').scrollLeft > 0")
    page.set_viewport_size({"width": 1366, "height": 768})

    assert page.request.get(url + "favicon.ico").status == 200
    assert page.request.get(url + "static/favicon.svg").status == 200
    assert icons and all(s == 200 for s in icons), icons  # the page's icon is no 404


def test_conv1d_model_shows_its_prediction(servers: dict[str, str], page: Any) -> None:
    url = servers["conv"]
    page.goto(url)
    page.wait_for_function("document.getElementById('model-info').textContent.includes('Conv1D')")
    assert "Conv1D (4 filters, width 3) + max-pool 4" in page.inner_text("#model-info")
    assert "LSTM model" not in page.inner_text("#model-info")
    text = "a good film great plot but boring acting"
    page.fill("#text", text)
    page.click("#predict")
    page.wait_for_selector("#result:not([hidden])", timeout=20000)
    assert page.inner_text("#label").strip() in {"negative", "positive"}
    assert page.inner_text("#bars").count("%") == 2
    # one calm line, and what the page can show: each word's effect, measured by leaving it out
    page.wait_for_selector("#inspect-note:not([hidden])", timeout=20000)
    note = page.inner_text("#inspect-note")
    assert "Conv1D front" in note and "leaving each word out" in note
    assert page.is_hidden("#error")
    page.wait_for_function(
        f"document.querySelectorAll('#words .word').length === {len(text.split())}"
    )
    values = page.locator("#words .value").all_inner_texts()
    assert any(v.strip() != "0" for v in values), values
    assert page.is_hidden("#gates-part")
    check_accessible(page, "a Conv1D model after a prediction")
