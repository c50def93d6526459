"""A real browser (Debian's chromium driven by Playwright) against ``lstmkit studio`` on
127.0.0.1: fill the new-run form (an invalid value is shown next to its field), start a tiny run,
see the charts update live and the run finish, then "Use this model" and predict with it; upload a
long-format panel, forecast it, and read the baselines table and one series' chart."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_support import CHROMIUM, launch_chromium, running_server
from studio_support import SLOW_RECIPE, panel_csv

from lstmkit.studio import create_studio_app

pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None,
    reason=f"{CHROMIUM} is not installed (.ci/run installs Debian's chromium)",
)


@pytest.fixture(scope="module")
def studio(
    tmp_path_factory: pytest.TempPathFactory, run_env: dict[str, str], recipes: Path
) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("browser-recipes")
    shutil.copy(recipes / "tiny.toml", folder / "tiny.toml")
    (folder / "slow.toml").write_text(SLOW_RECIPE)
    app = create_studio_app(
        tmp_path_factory.mktemp("browser-home"), recipes_dir=folder, env=run_env, poll_s=0.1
    )
    with running_server(app, "the studio") as url:
        yield url


def test_fill_the_form_train_watch_and_predict(studio: str, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 1100})
            external: list[str] = []
            page.on(
                "request",
                lambda req: None if req.url.startswith(studio) else external.append(req.url),
            )
            page.goto(studio)
            page.wait_for_selector("#f-hidden_size")
            page.select_option("#f-dataset", "reuters")
            page.select_option("#f-recipe", "slow")
            assert page.input_value("#f-hidden_size") == "96"  # the recipe's values fill the form
            assert page.input_value("#f-evaluate_every") == "2"

            # an invalid value comes back next to its field, with the reason
            page.fill("#f-hidden_size", "1000000000")
            page.click("#start")
            error = page.locator('.field-error[data-for="hidden_size"]')
            error.wait_for(state="visible")
            page.wait_for_function(
                "document.querySelector('.field-error[data-for=\"hidden_size\"]').textContent !== ''"
            )
            assert "less than or equal to 1024" in error.inner_text()
            assert "invalid" in (page.get_attribute("#f-hidden_size", "class") or "")

            # a tiny configuration: 48 hidden units, 20 steps, evaluate every 2
            page.fill("#f-hidden_size", "48")
            page.fill("#f-name", "browser run")
            page.click("#start")
            page.wait_for_url("**/#/run/*", timeout=10000)
            assert error.inner_text() == ""
            # note every number of points the loss chart shows while the run trains
            page.evaluate(
                """() => {
                  window.seen = [];
                  const el = document.getElementById('chart-loss');
                  new MutationObserver(() => window.seen.push(Number(el.dataset.points)))
                    .observe(el, { attributes: true, attributeFilter: ['data-points'] });
                }"""
            )
            page.wait_for_function(
                "document.getElementById('run-status').textContent === 'finished'",
                timeout=90000,
            )
            seen = page.evaluate("window.seen")
            assert len({n for n in seen if n > 0}) >= 2, seen  # the chart grew while it ran
            assert (
                page.evaluate("Number(document.getElementById('chart-loss').dataset.points)") == 10
            )
            assert page.locator("#chart-loss canvas").count() == 1
            assert page.locator("#chart-ratio canvas").count() == 1  # per-layer update ratios
            assert "step 20 / 20" in page.inner_text("#run-progress")
            assert "test accuracy" in page.inner_text("#test-metrics")
            assert "test accuracy" in page.inner_text("#run-log")
            params = page.inner_text("#run-params")
            assert "48  (set in the form)" in params or "48 (set in the form)" in params
            assert "learn_rate" in params and "0.003" in params  # the recipe's own values too
            assert "0 running, 0 queued" in page.inner_text("#queue-info")
            page.screenshot(path=str(tmp_path / "run.png"), full_page=True)
            if os.environ.get("STUDIO_SHOTS"):
                shutil.copy(tmp_path / "run.png", os.environ["STUDIO_SHOTS"])

            # compare: tick the run on the Runs page; its curves and its parameters in a table
            run_url = page.url
            page.click("#nav-runs")
            page.wait_for_selector("#runs-table tbody tr")
            assert "finished" in page.inner_text("#runs-table tbody tr")
            page.check("#runs-table tbody tr input[type=checkbox]")
            page.click("#compare-selected")
            page.wait_for_selector("#cmp-table tbody tr")
            table = page.inner_text("#cmp-table")
            assert "browser run" in table and "hidden_size\t48" in table
            assert page.locator("#cmp-accuracy canvas").count() == 1
            page.goto(run_url)
            page.wait_for_function(
                "document.getElementById('run-status').textContent === 'finished'"
            )

            # "Use this model" opens the serving page of the run's bundle: predict there
            page.click("#use-model")
            page.wait_for_url("**/models/*/", timeout=20000)
            page.fill("#text", " ".join(f"w{i}" for i in range(20)))  # the words of grain
            page.click("#predict")
            page.wait_for_selector("#result:not([hidden])", timeout=20000)
            assert page.inner_text("#label").strip() == "grain"
            page.screenshot(path=str(tmp_path / "model.png"), full_page=True)
            assert (tmp_path / "model.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert external == []  # everything came from the studio itself
        finally:
            browser.close()


def test_forecast_an_uploaded_panel(studio: str, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    data = tmp_path / "panel.csv"
    data.write_bytes(panel_csv(series=4, points=40))
    with sync_api.sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 1100})
            page.goto(studio)
            page.wait_for_selector("#f-hidden_size")
            page.select_option("#f-dataset", "upload")
            page.select_option("#f-task", "forecast")
            assert page.is_hidden("#f-text_column") and page.is_visible("#f-target_column")
            assert page.input_value("#f-hidden_size") == ""  # the data chooses
            assert page.is_disabled("#f-vocab_size")
            page.set_input_files("#f-file", str(data))
            page.wait_for_function(
                "document.getElementById('upload-info').textContent.includes('160 rows')"
            )
            # the long format's columns are preselected
            assert page.input_value("#f-target_column") == "y"
            assert page.input_value("#f-time_column") == "ds"
            assert page.input_value("#f-id_column") == "unique_id"
            page.fill("#f-horizon", "0")
            page.click("#start")
            error = page.locator('.field-error[data-for="horizon"]')
            page.wait_for_function(
                "document.querySelector('.field-error[data-for=\"horizon\"]').textContent !== ''"
            )
            assert "greater than or equal to 1" in error.inner_text()
            page.fill("#f-horizon", "4")
            page.fill("#f-max_steps", "10")  # a short run: 10 steps
            page.fill("#f-name", "panel forecast")
            page.click("#start")
            page.wait_for_url("**/#/run/*", timeout=10000)
            page.wait_for_function(
                "['finished', 'failed'].includes(document.getElementById('run-status').textContent)",
                timeout=90000,
            )
            assert page.inner_text("#run-status") == "finished", page.inner_text("#run-log")
            page.wait_for_selector("#forecast-results:not([hidden])")
            page.wait_for_selector("#forecast-table tbody tr")
            rows = page.locator("#forecast-table tbody tr")
            assert rows.count() == 5
            names = [rows.nth(i).locator("th").inner_text() for i in range(5)]
            assert [n.split(" (")[0] for n in names] == [
                "model", "AutoETS", "AutoTheta", "SeasonalNaive", "Naive"
            ]  # fmt: skip
            assert sum("(winner" in n for n in names) == 1  # the winner in words
            assert page.locator("#forecast-table th[scope=col]").count() == 3
            assert "over 4 series" in page.inner_text("#forecast-table caption")
            assert "nominal 80.0%" in page.inner_text("#forecast-coverage")
            assert "test MASE of the model" in page.inner_text("#test-metrics")
            assert page.is_hidden("#use-model")  # the prediction page classifies texts
            # the series picker: the chart and its caption follow it
            page.wait_for_function(
                "document.getElementById('forecast-caption').textContent.startsWith('Series S0')"
            )
            ids = page.eval_on_selector_all("#forecast-series option", "os => os.map(o => o.value)")
            assert ids == ["S0", "S1", "S2", "S3"]
            assert page.locator("#chart-forecast canvas").count() == 1
            assert "4 test steps" in page.inner_text("#forecast-caption")
            page.select_option("#forecast-series", "S2")
            page.wait_for_function(
                "document.getElementById('forecast-caption').textContent.startsWith('Series S2')"
            )
            assert page.get_attribute("#chart-forecast", "data-series") == "S2"
            assert "AutoETS MAE" in page.inner_text("#forecast-caption")
            params = page.inner_text("#run-params")
            assert "target_column" in params and "forecast" in params
            page.screenshot(path=str(tmp_path / "forecast.png"), full_page=True)
            if os.environ.get("STUDIO_SHOTS"):
                shutil.copy(tmp_path / "forecast.png", os.environ["STUDIO_SHOTS"] + ".forecast.png")
        finally:
            browser.close()
