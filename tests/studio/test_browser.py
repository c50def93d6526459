"""A real browser (Debian's chromium driven by Playwright) against ``lstmkit studio`` on
127.0.0.1: fill the new-run form (an invalid value is shown next to its field), start a tiny run,
see the charts update live and the run finish, then "Use this model" and predict with it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_support import CHROMIUM, launch_chromium, running_server
from studio_support import SLOW_RECIPE

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
