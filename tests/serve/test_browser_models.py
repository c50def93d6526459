"""A real browser against the forecast and the generation pages of `lstmkit serve`: paste (or
upload) a CSV and see each series' history with its forecast band, its numbers as a table; prime
a language model and watch the text stream in. Keyboard only, and every state checked with
axe-core (WCAG 2.2 A/AA) at 1366x768 and 390x844 without sideways scroll (check_accessible)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import CHROMIUM, check_accessible, launch_chromium, running_server
from served_runs import forecast_run, language_model_run, panel_run

from lstmkit.serve import create_app
from lstmkit.tasks.language_model import sample_text

pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None,
    reason=f"{CHROMIUM} is not installed (.ci/run installs Debian's chromium)",
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("browser-models")
    return {
        "series": forecast_run(root),
        "panel": panel_run(root),
        "lm": language_model_run(root),
        "root": root,
    }


@pytest.fixture(scope="module")
def page() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            yield browser.new_page(viewport={"width": 1366, "height": 768})
        finally:
            browser.close()


CHART_TICKS = """() => [...document.querySelectorAll('#charts svg')].map(svg => {
  const box = svg.getBoundingClientRect();
  const axis = a => [...svg.querySelectorAll(`text.tick[data-axis="${a}"]`)].map(t => {
    const r = t.getBoundingClientRect();
    return [t.textContent, r.left - box.left, r.top - box.top, r.right - box.left,
            r.bottom - box.top];
  });
  return {width: box.width, height: box.height, y: axis('y'), x: axis('x')};
})"""


def check_chart_ticks(page: Any) -> None:
    """Every forecast chart's axes: at least two tick labels each, pairwise distinct, every one
    inside the chart's box as the browser laid it out; the y labels are numbers in order."""
    charts = page.evaluate(CHART_TICKS)
    assert charts
    for chart in charts:
        for name in ("x", "y"):
            ticks = chart[name]
            labels = [t[0] for t in ticks]
            assert len(labels) >= 2 and len(set(labels)) == len(labels), (name, labels)
            for label, x0, y0, x1, y1 in ticks:
                inside = -0.5 <= x0 < x1 <= chart["width"] + 0.5
                inside = inside and -0.5 <= y0 < y1 <= chart["height"] + 0.5
                assert inside, (name, label, (x0, y0, x1, y1), chart["width"], chart["height"])
        values = [float(t[0].removesuffix("k")) for t in chart["y"]]
        assert values == sorted(values), values


def _loaded(page: Any) -> None:
    page.wait_for_function("!document.getElementById('model-info').textContent.includes('loading')")


def test_the_forecast_page_draws_history_and_band(
    runs: dict[str, Path], page: Any, tmp_path: Path
) -> None:
    lines = (runs["root"] / "sales.csv").read_text(encoding="utf-8").splitlines()
    with running_server(create_app(runs["series"])) as url:
        page.goto(url)
        _loaded(page)
        assert "forecasts sales of one series, 3 steps ahead from the last 24 rows" in (
            page.inner_text("#model-info")
        )
        check_accessible(page, "forecast page")
        # too short a history: the server's 422 in the alert, focus back on the box
        page.fill("#csv", "\n".join(lines[:5]))
        page.click("#go")
        page.wait_for_selector("#error:not([hidden])")
        assert "4 rows, but the model reads the last 24" in page.inner_text("#error")
        check_accessible(page, "forecast page with an error")
        # keyboard only: the box, then Forecast
        page.fill("#csv", "\n".join([lines[0], *lines[-30:]]))
        page.focus("#csv")
        page.keyboard.press("Tab")  # the file input
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == "go"
        page.keyboard.press("Enter")
        page.wait_for_selector("#result:not([hidden])")
        assert page.evaluate("document.activeElement.id") == "result-title"
        label = page.get_attribute("#charts svg", "aria-label") or ""
        assert label.startswith("history of 24 rows ending 2009-12 at "), label
        assert "forecast 2010-01 to 2010-03: median " in label and "band 0.1 to 0.9" in label
        assert page.locator("#charts polygon.band").count() == 1
        assert "Forecast ready: 3 steps for 1 series." in page.inner_text("#announce")
        check_chart_ticks(page)
        page.set_viewport_size({"width": 390, "height": 844})
        check_chart_ticks(page)
        page.set_viewport_size({"width": 1366, "height": 768})
        page.click("#show-table")
        rows = page.locator("#table tbody tr")
        assert rows.count() == 3 and rows.nth(0).inner_text().startswith("1\t2010-01")
        check_accessible(page, "forecast with its table")
    # a panel: a file upload of two series, one chart each
    upload = tmp_path / "two.csv"
    panel = (runs["root"] / "panel.csv").read_text(encoding="utf-8").splitlines()
    upload.write_text("\n".join([panel[0], *[ln for ln in panel[1:] if ln[:3] in ("S0,", "S2,")]]))
    with running_server(create_app(runs["panel"])) as url:
        page.goto(url)
        _loaded(page)
        page.set_input_files("#file", str(upload))
        page.wait_for_function("document.getElementById('csv').value.includes('S2,')")
        page.click("#go")
        page.wait_for_selector("#result:not([hidden])")
        assert page.locator("#charts svg").count() == 2
        assert page.locator("#charts h3").all_inner_texts() == ["Series S0", "Series S2"]
        check_chart_ticks(page)
        check_accessible(page, "panel forecast")


def test_the_generation_page_streams_the_text(runs: dict[str, Path], page: Any) -> None:
    with running_server(create_app(runs["lm"], max_length=400)) as url:
        page.goto(url)
        _loaded(page)
        assert "400 characters are generated" in page.inner_text("#prime-help")
        check_accessible(page, "generation page")
        page.fill("#prime", "the Z")
        page.click("#go")
        page.wait_for_selector("#error:not([hidden])")
        assert "character 'Z' at position 4" in page.inner_text("#error")
        check_accessible(page, "generation page with an error")
        page.fill("#prime", "the c")
        page.fill("#length", "300")
        page.fill("#seed", "5")
        page.focus("#seed")
        page.keyboard.press("Enter")  # submits the form
        page.wait_for_function("document.getElementById('announce').textContent.startsWith('Done')")
        assert page.inner_text("#announce") == "Done: 300 characters generated."
        text = page.evaluate("document.getElementById('output').textContent")
        assert text == sample_text(runs["lm"], "the c", 300, temperature=0.8, seed=5)
        assert "Seed 5" in page.inner_text("#seed-note")
        check_accessible(page, "generated text")
