"""A real browser (Debian's chromium driven by Playwright) against ``lstmkit studio`` on
127.0.0.1: fill the new-run form (an invalid value is shown next to its field), start a run with
the keyboard alone and watch it live, cancel it; start a tiny run, see the charts update and the
run finish, tick runs and compare them, then "Use this model" and predict with it; upload a
long-format panel, forecast it, and read the baselines table and one series' chart; compare the
seeds of a repeated run (``lstmkit train --seeds 3``): its spread table and its ±1 std band.

Every view and state (the form, the form with an error, a live run, a finished run, Runs,
Compare, Use this model, a forecast, a repeated run's spread) is checked with axe-core (WCAG 2.2 A/AA: no violation of any
impact) at 1366x768 and at 390x844, where the page must not scroll sideways. One browser and one
page for the module."""

from __future__ import annotations

import os
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
from studio_support import SLOW_RECIPE, panel_csv

from lstmkit.studio import create_studio_app

pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None,
    reason=f"{CHROMIUM} is not installed (.ci/run installs Debian's chromium)",
)


@pytest.fixture(scope="module")
def studio_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("browser-home")


@pytest.fixture(scope="module")
def studio(
    tmp_path_factory: pytest.TempPathFactory,
    run_env: dict[str, str],
    recipes: Path,
    studio_home: Path,
) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("browser-recipes")
    shutil.copy(recipes / "tiny.toml", folder / "tiny.toml")
    (folder / "slow.toml").write_text(SLOW_RECIPE)
    app = create_studio_app(studio_home, recipes_dir=folder, env=run_env, poll_s=0.1)
    with running_server(app, "the studio") as url:
        yield url


@pytest.fixture(scope="module")
def page(studio: str) -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 768})
            external: list[str] = []
            page.on(
                "request",
                lambda req: None if req.url.startswith(studio) else external.append(req.url),
            )
            missing: list[str] = []
            page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
            yield page
            assert external == []  # everything came from the studio itself
            assert missing == []  # no 404, /favicon.ico included
        finally:
            browser.close()


def active_id(page: Any) -> str:
    return str(page.evaluate("document.activeElement ? document.activeElement.id : ''"))


def tab_to(page: Any, element_id: str, most: int = 60) -> None:
    """Press Tab until ``element_id`` has the focus (keyboard only)."""
    for _ in range(most):
        if active_id(page) == element_id:
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"{element_id} not reached in {most} tabs (at {active_id(page)!r})")


TICKS = """id => {
  const el = document.getElementById(id);
  const canvas = el.querySelector('canvas');
  const box = canvas ? canvas.getBoundingClientRect() : null;
  return {ticks: JSON.parse(el.dataset.ticks || 'null'), box: box && [box.width, box.height]};
}"""


def label_value(label: str) -> float:
    """The number a tick label writes: 0.0015, 100.5k (SI), 5e-4 (scientific)."""
    scale = {"k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
    if label[-1] in scale:
        return float(label[:-1]) * scale[label[-1]]
    return float(label)


def check_ticks(page: Any, chart_id: str) -> list[list[str]]:
    """Every axis of the chart: at least two tick labels, pairwise distinct, each inside the
    chart's canvas (its size read from the page, not from the chart's own record); the y axes'
    labels are numbers in order. Returns each axis's labels."""
    got = page.evaluate(TICKS, chart_id)
    ticks, (width, height) = got["ticks"], got["box"]
    assert ticks is not None, f"{chart_id} recorded no ticks"
    assert abs(ticks["width"] - width) <= 1 and abs(ticks["height"] - height) <= 1, (ticks, got)
    out = []
    for axis in ticks["axes"]:
        labels = axis["labels"]
        where = f"{chart_id} axis {axis['axis']}: {labels}"
        assert len(labels) >= 2, where
        assert len(set(labels)) == len(labels), where  # no two ticks read the same
        for label, (x0, y0, x1, y1) in zip(labels, axis["boxes"], strict=True):
            inside = 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
            assert inside, f"{where}: {label!r} at {(x0, y0, x1, y1)} outside {width}x{height}"
        if axis["side"] == 3:  # the y axis: numbers, in order from the top (largest) down
            values = [label_value(v) for v in labels]
            assert values == sorted(values) or values == sorted(values, reverse=True), where
        out.append(labels)
    return out


def check_synthetic_ticks(page: Any) -> None:
    """The tick formatter on the series that read badly: a learning rate decaying 0.002 -> 0
    (uPlot's own labels read "0.002, 0.002, 0.001") and tokens/s near 100,000 (its labels were
    cut at the left edge), at the desktop and the phone width; then the run's own rows again."""
    formatted = page.evaluate(
        "[tickLabels([0, 0.0005, 0.001, 0.0015, 0.002]), tickLabels([99500, 100000, 100500]),"
        " tickLabels([0.00025, 0.0005, null, 0.001]), tickLabels([1.5, 2.5, 3.5]),"
        " tickLabels([0.00001, 0.000025, 0.00004]),"
        " tickLabels([0, 2500000, 5000000])]"
    )
    assert formatted == [
        ["0", "0.0005", "0.001", "0.0015", "0.002"],
        ["99.5k", "100k", "100.5k"],
        ["0.00025", "0.0005", None, "0.001"],  # a null: a tick uPlot leaves unlabelled
        ["1.5", "2.5", "3.5"],  # not "2, 3, 4": each label writes its tick exactly
        ["1e-5", "2.5e-5", "4e-5"],
        ["0", "2.5M", "5M"],
    ]
    steps = list(range(1, 201))
    lr = [0.002 * (1 - i / 199) for i in range(200)]
    tps = [100_000 + 1_500 * ((i * 37) % 11 - 5) / 5 for i in range(200)]
    for size in (PHONE, {"width": 1366, "height": 768}):
        page.set_viewport_size(size)
        page.evaluate(
            "([xs, lr, tps]) => { plot('chart-lr', ['learning rate'], xs, [lr]);"
            " plot('chart-tps', ['tokens/s'], xs, [tps]); }",
            [steps, lr, tps],
        )
        settle(page)
        _, lr_labels = check_ticks(page, "chart-lr")
        assert label_value(lr_labels[0]) <= 0 and 0.0015 <= label_value(lr_labels[-1]) <= 0.0025
        assert len(lr_labels) >= 3
        _, tps_labels = check_ticks(page, "chart-tps")
        assert all(98_000 <= label_value(v) <= 102_000 for v in tps_labels), tps_labels
    page.evaluate("renderCharts()")
    settle(page)


def status_is(page: Any, *statuses: str, timeout: float = 90000) -> None:
    page.wait_for_function(
        f"{list(statuses)!r}.includes(document.getElementById('run-status').textContent)",
        timeout=timeout,
    )


def test_fill_the_form_train_watch_and_predict(studio: str, page: Any, tmp_path: Path) -> None:
    page.goto(studio)
    page.wait_for_selector("#f-hidden_size")
    # the dataset's name is not cut (the widest option fits its select)
    for size in ({"width": 1366, "height": 768}, PHONE):
        page.set_viewport_size(size)
        settle(page)
        fits = page.evaluate(
            """() => {
              const s = document.getElementById('f-dataset');
              const ctx = document.createElement('canvas').getContext('2d');
              ctx.font = getComputedStyle(s).font;
              const text = s.options[s.selectedIndex].text;
              return [ctx.measureText(text).width, s.clientWidth - 28, text];
            }"""
        )
        assert fits[0] <= fits[1], fits
    check_accessible(page, "the form")

    page.select_option("#f-dataset", "reuters")
    page.select_option("#f-recipe", "slow")
    assert page.input_value("#f-hidden_size") == "96"  # the recipe's values fill the form
    assert page.input_value("#f-evaluate_every") == "2"

    # an invalid value comes back next to its field, with the reason; the field says so too
    page.fill("#f-hidden_size", "1000000000")
    page.click("#start")
    error = page.locator('.field-error[data-for="hidden_size"]')
    page.wait_for_function(
        "document.querySelector('.field-error[data-for=\"hidden_size\"]').textContent !== ''"
    )
    assert "less than or equal to 1024" in error.inner_text()
    assert "invalid" in (page.get_attribute("#f-hidden_size", "class") or "")
    assert page.get_attribute("#f-hidden_size", "aria-invalid") == "true"
    assert page.get_attribute("#f-hidden_size", "aria-describedby") == error.get_attribute("id")
    assert active_id(page) == "f-hidden_size"  # the focus goes where the fix is
    assert "hidden_size" in page.inner_text("#form-status")
    check_accessible(page, "the form with an error")

    # keyboard only: a long run (2000 steps), started with Enter on "Start training"
    page.fill("#f-hidden_size", "48")
    page.fill("#f-max_steps", "2000")
    page.focus("#f-name")
    page.keyboard.type("live run")
    tab_to(page, "start")
    page.keyboard.press("Enter")
    page.wait_for_url("**/#/run/*", timeout=10000)
    assert error.inner_text() == ""
    page.wait_for_function("document.activeElement.id === 'run-heading'")
    assert "live run" in page.inner_text("#run-heading")
    page.wait_for_function(
        "Number(document.getElementById('chart-loss').dataset.points) >= 2", timeout=90000
    )
    log_head = page.inner_text("#run-log").splitlines()[0]
    assert log_head.startswith("$ /") and " -m lstmkit train " in log_head, log_head
    assert page.get_attribute("#run-announce", "role") == "status"
    assert page.get_attribute("#chart-loss", "role") == "img"
    assert "latest, at step" in (page.get_attribute("#chart-loss", "aria-label") or "")
    check_accessible(page, "a live run")
    page.click("#cancel")
    status_is(page, "cancelled", "interrupted")
    page.wait_for_function(  # the change is announced
        "document.getElementById('run-announce').textContent"
        ".includes('is ' + document.getElementById('run-status').textContent)"
    )

    # a tiny configuration: 48 hidden units, 20 steps, evaluate every 2
    page.click("#nav-new")
    page.wait_for_function("document.activeElement.id === 'new-heading'")
    page.fill("#f-hidden_size", "48")
    page.fill("#f-max_steps", "")
    page.fill("#f-name", "browser run")
    page.click("#start")
    page.wait_for_url("**/#/run/*", timeout=10000)
    # note every number of points the loss chart shows while the run trains
    page.evaluate(
        """() => {
          window.seen = [];
          const el = document.getElementById('chart-loss');
          new MutationObserver(() => window.seen.push(Number(el.dataset.points)))
            .observe(el, { attributes: true, attributeFilter: ['data-points'] });
        }"""
    )
    status_is(page, "finished")
    seen = page.evaluate("window.seen")
    assert len({n for n in seen if n > 0}) >= 2, seen  # the chart grew while it ran
    assert page.evaluate("Number(document.getElementById('chart-loss').dataset.points)") == 10
    assert page.locator("#chart-loss canvas").count() == 1
    assert page.locator("#chart-ratio canvas").count() == 1  # per-layer update ratios
    assert "step 20 / 20" in page.inner_text("#run-progress")
    assert "test accuracy" in page.inner_text("#test-metrics")
    assert "test accuracy" in page.inner_text("#run-log")
    params = page.inner_text("#run-params")
    assert "48  (set in the form)" in params or "48 (set in the form)" in params
    assert "learn_rate" in params and "0.003" in params  # the recipe's own values too
    page.wait_for_function(
        "document.getElementById('queue-info').textContent.includes('0 running, 0 queued')"
    )
    # the charts in words: the label, the legend (not "--"), a y-axis title and a table
    label = page.get_attribute("#chart-loss", "aria-label") or ""
    assert "Loss chart, 10 steps; latest, at step 20: train " in label, label
    assert "validation " in label
    legend = page.inner_text("#chart-loss .u-legend")
    assert "--" not in legend and "20" in legend, legend
    # y-axis titles (uPlot draws them on its canvas)
    titles = page.evaluate("Object.keys(state.charts).map(k => state.charts[k].plot.axes[1].label)")
    assert "loss" in titles and "accuracy" in titles and "tokens / s" in titles, titles
    page.click("#chart-loss-toggle")
    assert page.get_attribute("#chart-loss-toggle", "aria-expanded") == "true"
    rows = page.locator("#chart-loss-table tbody tr")
    assert rows.count() == 10 and rows.first.locator("th").inner_text() == "20"
    # every axis of every chart: distinct tick labels, inside the chart, desktop and phone
    charts = page.evaluate("Object.keys(state.charts)")
    assert {"chart-loss", "chart-lr", "chart-tps", "chart-ratio"} <= set(charts), charts
    for size in (PHONE, {"width": 1366, "height": 768}):
        page.set_viewport_size(size)
        page.wait_for_function(
            "Math.abs(state.charts['chart-loss'].plot.width"
            " - document.getElementById('chart-loss').clientWidth) <= 1"
        )
        settle(page)
        for chart in charts:
            check_ticks(page, chart)
    check_synthetic_ticks(page)
    check_accessible(page, "a finished run")
    # the charts follow their container's width (a phone, a narrower window)
    widths = []
    for size in (PHONE, {"width": 1366, "height": 768}):
        page.set_viewport_size(size)
        page.wait_for_function(
            "Math.abs(state.charts['chart-loss'].plot.width"
            " - document.getElementById('chart-loss').clientWidth) <= 1"
        )
        widths.append(page.evaluate("state.charts['chart-loss'].plot.width"))
    assert widths[0] < 360 < widths[1], widths
    page.screenshot(path=str(tmp_path / "run.png"), full_page=True)
    if os.environ.get("STUDIO_SHOTS"):
        shutil.copy(tmp_path / "run.png", os.environ["STUDIO_SHOTS"])

    # Runs: the table is updated in place, so the focus and a tick stay through the refreshes
    run_url = page.url
    page.click("#nav-runs")
    page.wait_for_function("document.querySelectorAll('#runs-table tbody tr').length === 2")
    assert "finished" in page.inner_text("#runs-table tbody tr:first-child")
    first = page.locator("#runs-table tbody tr:first-child input[type=checkbox]")
    assert first.get_attribute("aria-label") == "compare browser run"
    first.focus()
    page.keyboard.press("Space")
    page.evaluate("document.activeElement.dataset.mark = 'kept'")
    refreshed = int(page.get_attribute("#runs-table", "data-refreshed") or 0)
    page.wait_for_function(
        f"Number(document.getElementById('runs-table').dataset.refreshed) >= {refreshed + 2}",
        timeout=20000,
    )
    assert page.evaluate("document.activeElement.dataset.mark") == "kept"  # the same element
    assert first.is_checked()
    check_accessible(page, "Runs")
    # one run is refused, with the reason
    page.click("#compare-selected")
    assert "two or more" in page.inner_text("#compare-help")
    assert "#/runs" in page.url
    page.check("#runs-table tbody tr:nth-child(2) input[type=checkbox]")
    page.click("#compare-selected")
    page.wait_for_selector("#cmp-table tbody tr")
    table = page.inner_text("#cmp-table")
    assert "browser run" in table and "live run" in table and "hidden_size\t48" in table
    assert page.locator("#cmp-accuracy canvas").count() == 1
    for chart in ("cmp-accuracy", "cmp-loss", "cmp-train-loss"):
        check_ticks(page, chart)
    check_accessible(page, "Compare")
    page.goto(studio + "#/compare/" + run_url.rsplit("/", 1)[1])
    page.wait_for_function("document.getElementById('compare-hint').textContent.includes('two')")
    assert page.is_hidden("#cmp-charts")

    # "Use this model" opens the serving page of the run's bundle: its name, a way back, predict
    page.goto(run_url)
    status_is(page, "finished")
    page.click("#use-model")
    page.wait_for_url("**/models/*/", timeout=20000)
    page.wait_for_selector("#studio-nav:not([hidden])")
    assert "browser run" in page.inner_text("#model-info")
    assert "browser run" in page.inner_text("h1")
    back = page.get_attribute("#studio-link", "href") or ""
    assert back.endswith("#/run/" + run_url.rsplit("/", 1)[1]), back
    page.fill("#text", " ".join(f"w{i}" for i in range(20)))  # the words of grain
    page.click("#predict")
    page.wait_for_selector("#result:not([hidden])", timeout=20000)
    assert page.inner_text("#label").strip() == "grain"
    page.wait_for_selector("#inspect:not([hidden])", timeout=20000)
    check_accessible(page, "Use this model after a prediction")
    page.screenshot(path=str(tmp_path / "model.png"), full_page=True)
    assert (tmp_path / "model.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page.click("#studio-link")
    page.wait_for_selector("#run-title")
    status_is(page, "finished")


def test_forecast_an_uploaded_panel(studio: str, page: Any, tmp_path: Path) -> None:
    data = tmp_path / "panel.csv"
    data.write_bytes(panel_csv(series=4, points=40))
    page.goto(studio + "#/new")
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
    assert page.get_attribute("#f-horizon", "aria-invalid") == "true"
    page.fill("#f-horizon", "4")
    page.fill("#f-max_steps", "10")  # a short run: 10 steps
    page.fill("#f-name", "panel forecast")
    page.click("#start")
    page.wait_for_url("**/#/run/*", timeout=10000)
    page.wait_for_function("document.getElementById('run-title').textContent === 'panel forecast'")
    status_is(page, "finished", "failed")
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
    settle(page)
    check_ticks(page, "chart-forecast")
    assert "AutoETS MAE" in page.inner_text("#forecast-caption")
    params = page.inner_text("#run-params")
    assert "target_column" in params and "forecast" in params
    check_accessible(page, "a finished forecast")
    page.screenshot(path=str(tmp_path / "forecast.png"), full_page=True)
    if os.environ.get("STUDIO_SHOTS"):
        shutil.copy(tmp_path / "forecast.png", os.environ["STUDIO_SHOTS"] + ".forecast.png")


def test_compare_a_repeated_runs_seeds(
    studio: str, studio_home: Path, page: Any, recipes: Path, tiny_data: Path
) -> None:
    """A repeated run of 3 seeds written into the studio's runs folder by
    lstmkit.repeat.repeat_recipe: the Runs page lists its seeds and the group with its spread;
    the group's link compares the seeds: the spread table holds each seed's figure and
    lstmkit.repeat.spread's mean ± std, min, max; the validation charts show the mean with a
    ±1 std band, or each seed's curve (the toggle)."""
    from lstmkit.config import load_recipe
    from lstmkit.repeat import repeat_recipe, spread

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LSTMKIT_DATA", str(tiny_data))
        recipe, raw = load_recipe(str(recipes / "tiny.toml"), ["train.lr=0.002"])
        summary = repeat_recipe(recipe, raw, studio_home / "runs" / "rep", 3, progress=False)
    figures = [float(s["value"]) for s in summary["seeds"]]
    want = spread(figures)
    page.goto(studio + "#/runs")
    page.wait_for_selector("#repeats-table tbody tr[data-repeat=rep]", timeout=20000)
    names = page.eval_on_selector_all("#runs-table tbody tr a", "as => as.map(a => a.textContent)")
    assert {"rep seed 0", "rep seed 1", "rep seed 2"} <= set(names)
    group = page.inner_text("#repeats-table tbody tr[data-repeat=rep]")
    assert f"{want['mean']:.4f} ± {want['std']:.4f}" in group and "test_accuracy" in group
    check_accessible(page, "Runs with a repeated run")
    page.click("#repeats-table a.compare-group")
    page.wait_for_selector("#cmp-spread tfoot tr")
    assert page.is_visible("#cmp-spread-box")
    cells = page.eval_on_selector_all(
        "#cmp-spread tbody tr",
        "trs => trs.map(tr => [tr.dataset.seed, tr.querySelector('td').dataset.value,"
        " tr.querySelector('td').textContent])",
    )
    assert [(int(a), float(b), c) for a, b, c in cells] == [
        (s["seed"], float(s["value"]), f"{s['value']:.4f}") for s in summary["seeds"]
    ]
    stat = "k => document.querySelector(`#cmp-spread tr[data-stat=${k}] td`).dataset.value"
    mean, std = map(float, page.evaluate(stat, "mean-std").split())
    assert (mean, std) == (want["mean"], want["std"])  # the server's spread(), unrounded
    assert float(page.evaluate(stat, "min")) == want["min"]
    assert float(page.evaluate(stat, "max")) == want["max"]
    foot = page.inner_text("#cmp-spread tfoot")
    assert f"{want['mean']:.4f} ± {want['std']:.4f}" in foot
    assert "test_accuracy of 3 seeds" in page.inner_text("#cmp-spread caption")
    # the band: the mean over the seeds between mean - std and mean + std, on both val charts
    assert page.is_checked("#cmp-curves-band")
    for chart in ("cmp-accuracy", "cmp-loss"):
        assert page.get_attribute(f"#{chart}", "data-band") == "std"
        got = page.evaluate(
            "id => { const p = state.charts[id].plot;"
            " return {bands: p.bands.length, labels: p.series.slice(1).map(s => s.label),"
            " data: p.data.slice(1)}; }",
            chart,
        )
        assert got["bands"] == 1
        assert got["labels"] == ["mean of 3 seeds", "mean − 1 std", "mean + 1 std"]
        mean_line, lo, hi = got["data"]
        assert all(a < m < b for a, m, b in zip(lo, mean_line, hi, strict=True))
        assert "mean of 3 seeds" in (page.get_attribute(f"#{chart}", "aria-label") or "")
        check_ticks(page, chart)
    check_accessible(page, "Compare a repeated run (band)")
    # the toggle, by keyboard: each seed's own curve, no band
    page.focus("#cmp-curves-band")
    page.keyboard.press("ArrowDown")
    assert page.is_checked("#cmp-curves-seeds")
    page.wait_for_function("document.getElementById('cmp-accuracy').dataset.band === undefined")
    labels = page.evaluate("state.charts['cmp-accuracy'].plot.series.slice(1).map(s => s.label)")
    assert labels == ["rep seed 0", "rep seed 1", "rep seed 2"]
    assert page.evaluate("state.charts['cmp-accuracy'].plot.bands.length") == 0
    check_accessible(page, "Compare a repeated run (each seed)")
