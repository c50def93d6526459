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

UNIT_TABLE = """() => [...document.querySelectorAll('#units tbody tr')].map(tr => [
  Number(tr.dataset.unit),
  [...tr.querySelectorAll('td')].map(td => [Number(td.dataset.t), Number(td.dataset.value)]),
])"""

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
    # two bidirectional layers: four layer/direction choices in the per-unit view
    bidir = make_run(root / "bidir", seed=3, num_layers=2, bidirectional=True, pooling="mean")
    bidir_bundle = export_bundle(bidir, root / "bb")
    with (
        running_server(create_app(lstm)) as lstm_url,
        running_server(create_app(conv, max_texts=8)) as conv_url,
        running_server(create_app(bidir_bundle)) as bidir_url,
    ):
        yield {"lstm": lstm_url, "conv": conv_url, "bidir": bidir_url}


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


def _variance(xs: list[float]) -> float:
    m = sum(xs) / len(xs)
    return sum((x - m) ** 2 for x in xs) / len(xs)


def _expected_order(rows: list[list[float]], by: str) -> list[int]:
    if by == "unit":
        return list(range(len(rows)))
    key = [_variance(r) if by == "variance" else sum(r) / len(r) for r in rows]
    return sorted(range(len(rows)), key=lambda u: (-key[u], u))


def test_per_unit_gate_view(servers: dict[str, str], page: Any) -> None:
    """Each unit's gate per token (units x tokens): the values /v1/inspect returned, sorted as
    chosen, for each layer and direction; every cell reachable with the arrow keys."""
    url = servers["bidir"]
    text = "a good film, great plot but boring acting and a bad ending"
    page.goto(url)
    page.wait_for_function("!document.getElementById('model-info').textContent.includes('loading')")
    page.fill("#text", text)
    page.click("#predict")
    page.wait_for_selector("#units-part:not([hidden])", timeout=20000)
    answer = page.request.post(url + "v1/inspect", data={"text": text}).json()
    layers = answer["layers"]
    tokens = answer["unit_tokens"]
    assert tokens == len(answer["tokens"]) > 5
    options = page.locator("#units-layer option").all_inner_texts()
    assert options == [
        "layer 0 forward",
        "layer 0 backward",
        "layer 1 forward",
        "layer 1 backward",
    ]
    assert page.locator("#units-gate option").all_inner_texts() == ["input", "forget", "output"]

    def check(index: int, gate: str, by: str) -> None:
        rows = layers[index]["units"][gate]
        table = page.evaluate(UNIT_TABLE)
        assert [u for u, _ in table] == _expected_order(rows, by)
        assert len(table) == len(rows) == 8  # every unit ...
        for unit, cells in table:  # ... at every token, with the value the API returned
            assert cells == [[t, rows[unit][t]] for t in range(tokens)]
        assert page.locator("#units td").count() == 8 * tokens
        assert page.get_attribute("#units", "data-gate") == gate
        assert page.get_attribute("#units", "data-direction") == layers[index]["direction"]

    check(0, "input", "variance")
    variances = [_variance(r) for r in layers[0]["units"]["input"]]
    assert max(variances) > min(variances)  # the order is not the identity by accident
    page.select_option("#units-layer", "3")
    page.select_option("#units-gate", "forget")
    check(3, "forget", "variance")
    page.select_option("#units-sort", "mean")
    check(3, "forget", "mean")
    page.select_option("#units-sort", "unit")
    check(3, "forget", "unit")
    page.select_option("#units-sort", "variance")
    check_accessible(page, "the per-unit view")

    # keyboard: Tab from the sort choice into the table; the arrows move from cell to cell
    page.focus("#units-sort")
    page.keyboard.press("Tab")
    active = "document.activeElement.dataset"
    assert page.evaluate(f"[{active}.row, {active}.t]") == ["0", "0"]
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowDown")
    assert page.evaluate(f"[{active}.row, {active}.t]") == ["1", "1"]
    order = _expected_order(layers[3]["units"]["forget"], "variance")
    want = layers[3]["units"]["forget"][order[1]][1]
    shown = page.inner_text("#units-focus")
    assert shown.startswith(f"Unit {order[1]} at ") and shown.endswith(f"{want:.4f}"), shown
    page.keyboard.press("End")
    page.keyboard.press("PageDown")
    assert page.evaluate(f"[{active}.row, {active}.t]") == ["7", str(tokens - 1)]
    assert page.locator("#units td[tabindex='0']").count() == 1  # one Tab stop, where it is
    page.keyboard.press("Shift+Tab")
    assert page.evaluate("document.activeElement.id") == "units-sort"
    page.click("#show-numbers")
    check_accessible(page, "the per-unit view, numbers shown")
    page.click("#show-numbers")
