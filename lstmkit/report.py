"""Tables for the README, generated from the JSON that real runs wrote into ``results/``.

Nothing in the README's result or performance sections is typed by hand: ``lstmkit report``
rewrites the text between ``<!-- BEGIN GENERATED: name -->`` and ``<!-- END GENERATED: name -->``
markers, and a test fails when the README and ``results/`` disagree.

Inputs:

- ``results/bench-*.jsonl``: benchmark JSON lines (a header record with ``"bench": "<name>-run"``
  holding the command, then one record per case: ``case, impl, ours, peer, peer_name, ratio``).
- ``results/<recipe>.json``: ``{"recipe", "metric", "value", "seconds", "commit", "command",
  "machine", "seed_figure"?}`` written by ``lstmkit train``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from lstmkit.errors import ConfigError, DataError
from lstmkit.files import atomic_write_text

MARKER = re.compile(
    r"(<!-- BEGIN GENERATED: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- END GENERATED: (?P=name) -->)",
    re.S,
)


def read_text(path: Path) -> str:
    """A README or results file as UTF-8 text; :class:`DataError` naming it when it cannot be."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{path} is not UTF-8 text (byte {err.start})") from None
    except OSError as err:
        raise DataError(f"cannot read {path}: {err.strerror or err}") from None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err.msg}, line {err.lineno})") from None


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for i, line in enumerate(read_text(path).splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise DataError(f"{path}:{i}: not a JSON object ({err.msg})") from None
    return rows


def _fmt_value(value: float, unit: str) -> str:
    if unit.startswith("tok/s"):
        return f"{value / 1e3:,.1f}k tok/s"
    if unit.startswith("s/"):
        return f"{value:,.1f} {unit.split(' ')[0]}"
    return f"{value:,.4g} {unit}"


def _serve_table(head: dict[str, Any], rows: list[dict[str, Any]], name: str) -> str:
    """The load test of ``lstmkit serve`` (benchmarks/serve_load.py): one row per case."""
    load = head.get("load_avg_1min")
    lines = [
        f"`{head.get('command', name)}` — {head.get('machine', '?')}"
        + (f", load average {load[0]} -> {load[1]}" if load else "")
        + f" ({name})\n",
        "| case | requests/s | predictions/s | p50 ms | p99 ms | errors | server CPU | "
        "client CPU |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['ours']:,.0f} | {r['predictions_per_s']:,.0f} | {r['p50_ms']} | "
            f"{r['p99_ms']} | {r['errors']} | {r['server_cpu']} | {r['client_cpu']} |"
        )
    return "\n".join(lines) + "\n"


def _fraction_table(head: dict[str, Any], rows: list[dict[str, Any]], name: str) -> str:
    """A pipeline timed as a fraction of the training it feeds (``fraction`` <= ``goal``)."""
    lines = [
        f"`{head.get('command', name)}` — {head.get('goal', '')}; {head.get('machine', '?')} "
        f"({name})\n",
        "| case | pipeline | training it feeds | fraction of the training | goal met |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['ours']:.2f} s | {r['peer']:.1f} s | {r['fraction']:.1%} | "
            f"{'yes' if r['fraction'] <= r['goal'] else 'no'} (<= {r['goal']:.0%}) |"
        )
    return "\n".join(lines) + "\n"


def _own_data_table(head: dict[str, Any], rows: list[dict[str, Any]], name: str) -> str:
    """The default CLI on your own data beside the classic baseline measured in the same run
    (benchmarks/own_data.py): text accuracy, series MAE on the rolling protocol; the panels
    (``"metric": "mase"``) in a second table: mean MASE beside statsforecast, sMAPE, coverage."""
    panels = [r for r in rows if r.get("metric") == "mase"]
    rows = [r for r in rows if r.get("metric") != "mase"]
    lines = [
        f"`python benchmarks/own_data.py` — {head.get('machine', '?')}; each case at the commit "
        f"in its line ({name})\n",
        "| case | metric | lstmkit default | in-run baseline | seasonal naive | naive | "
        "minutes | default wins | command |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['case']} | failed | | | | | | | |")
            continue
        mae = r["metric"] == "mae"

        def num(v: Any, mae: bool = mae) -> str:
            if v is None:
                return "—"
            return f"{v:,.4g}" if mae else f"{v:.2%}"

        base = r.get("baseline")
        if base is None:
            wins = "—"
        elif mae:
            wins = "yes" if r["ours"] <= base else "no"
        else:
            wins = "yes" if r["ours"] >= base else "no"
        lines.append(
            f"| {r['case']} | {r['metric']} | {num(r['ours'])} | {num(base)} "
            f"{r.get('baseline_name') or ''} | {num(r.get('seasonal_naive'))} | "
            f"{num(r.get('naive'))} | {r['minutes']:.1f} | {wins} | `{r['command']}` "
            f"({str(r.get('commit', '?'))[:7]}) |"
        )
    if panels:
        lines += _panel_rows(panels)
    return "\n".join(lines) + "\n"


def _panel_rows(rows: list[dict[str, Any]]) -> list[str]:
    """The panel cases: one global model over all the series of a long-format file, M4 protocol
    (the last H of every series), mean MASE over series beside statsforecast fitted per series."""

    def num(v: Any, fmt: str = ".3f") -> str:
        return "—" if v is None else format(v, fmt)

    def pct(v: Any) -> str:
        return "—" if v is None else f"{v:.0%}"

    lines = [
        "",
        "Panels (long format, one global model over all the series; test = the last H of every "
        "series; MASE = mean over series, lower is better; statsforecast fitted per series in the "
        "same run):\n",
        "| case | series | MASE lstmkit | AutoETS | AutoTheta | SeasonalNaive | Naive | "
        "sMAPE lstmkit / AutoETS | 80% interval covers (lstmkit / AutoETS) | minutes | "
        "beats AutoETS | command |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for r in rows:
        base = r.get("baseline")
        wins = "—" if base is None else ("yes" if r["ours"] <= base else "no")
        lines.append(
            f"| {r['case']} | {r.get('series', '—')} | {num(r['ours'])} | {num(base)} | "
            f"{num(r.get('auto_theta'))} | {num(r.get('seasonal_naive'))} | "
            f"{num(r.get('naive'))} | {num(r.get('smape'), '.2f')} / "
            f"{num(r.get('baseline_smape'), '.2f')} | {pct(r.get('coverage_80'))} / "
            f"{pct(r.get('baseline_coverage_80'))} | {r['minutes']:.1f} | {wins} | "
            f"`{r['command']}` ({str(r.get('commit', '?'))[:7]}) |"
        )
    return lines


def _panel_scale_table(rows: list[dict[str, Any]], name: str) -> str:
    """The panel forecast path at scale (``benchmarks/panel_scale.py``): one row per run."""
    out = [
        f"`python benchmarks/panel_scale.py` — one epoch through the default CLI ({name})\n",
        "| series x points | rows | training windows | peak RSS | read + windows | training "
        "(steps, validations) | total | test MASE | commit |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        steps = r.get("steps")
        full = steps is not None and steps * r.get("batch_size", 0) >= r["windows"]
        part = "" if steps is None else f" ({steps:,} steps{'' if full else ', stopped early'}"
        part += (
            f", {r['validations']} validations)" if "validations" in r else (")" if part else "")
        )
        out.append(
            f"| {r['series']:,} x {r['points']} | {r['rows']:,} | {r['windows']:,} | "
            f"{r['peak_rss_gb']:.2f} GB | {r['read_seconds']:.0f} s | {r['epoch_seconds']:.0f} s"
            f"{part} | {r['total_seconds']:.0f} s | {r['test_mase']:.3f} | "
            f"`{str(r['commit'])[:8]}` |"
        )
    return "\n".join(out) + "\n"


def benchmark_table(results: Path) -> str:
    """Markdown table(s) of every ``results/bench-*.jsonl`` file, one section per file."""
    parts = []
    for path in sorted(results.glob("bench-*.jsonl")):
        rows = _read_jsonl(path)
        headers = [r for r in rows if str(r.get("bench", "")).endswith("-run")]
        cases = [r for r in rows if "ratio" in r]
        own = list({r["case"]: r for r in rows if r.get("bench") == "own_data"}.values())
        if own:  # the newest line of each case
            parts.append(_own_data_table(headers[-1] if headers else {}, own, path.name))
            continue
        scale = [r for r in rows if r.get("bench") == "panel_scale"]
        if scale:
            parts.append(_panel_scale_table(scale, path.name))
            continue
        if not cases:
            served = [r for r in rows if r.get("bench") == "serve"]
            if served:
                parts.append(_serve_table(headers[0] if headers else {}, served, path.name))
            continue
        head = headers[0] if headers else {}
        if all("fraction" in r for r in cases):
            parts.append(_fraction_table(head, cases, path.name))
            continue
        parts.append(
            f"`{head.get('command', path.name)}` — torch {head.get('torch', '?')}, "
            f"{head.get('threads', '?')} threads, {head.get('machine', '?')} ({path.name})\n"
        )
        parts.append("| case | impl | ours | peer | ratio (ours vs peer, >1 = faster) |")
        parts.append("| --- | --- | ---: | ---: | ---: |")
        for r in cases:
            note = "" if r.get("correct", True) else " (wrong results, reference only)"
            unit = str(r.get("unit", "tok/s"))
            parts.append(
                f"| {r['case']} | {r.get('impl', '')}{note} | {_fmt_value(r['ours'], unit)} | "
                f"{_fmt_value(r['peer'], unit)} {r['peer_name']} | {r['ratio']:.2f}x |"
            )
        parts.append("")
    return "\n".join(parts) if parts else "_No benchmark results recorded yet._\n"


def results_table(results: Path) -> str:
    """Markdown table of every ``results/<recipe>.json`` (accuracy runs)."""
    rows = []
    for path in sorted(results.glob("*.json")):
        data = _read_json(path)
        if not isinstance(data, dict) or "recipe" not in data:
            continue
        seed = data.get("seed_figure")
        seed_txt = "" if seed is None else f"{seed:.4g}"
        value = f"{data['value']:.4f}"
        if "std" in data and "seeds" in data:  # a repeated run (lstmkit train --seeds N)
            value = f"{data['mean']:.4f} ± {data['std']:.4f} ({len(data['seeds'])} seeds)"
        rows.append(
            f"| {data['recipe']} | {data['metric']} | {seed_txt} | {value} | "
            f"{data['seconds'] / 60:.1f} | `{str(data.get('commit', ''))[:8]}` |"
        )
    if not rows:
        return "_No training results recorded yet._\n"
    head = [
        "| recipe | metric | seed's figure | ours | minutes | commit |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    return "\n".join(head + rows) + "\n"


def forecast_table(results: Path) -> str:
    """Markdown table of the forecasting runs in ``results/<recipe>.json`` (those written by
    ``lstmkit train --task forecast --record``): MAE / RMSE / MASE of the model beside the naive
    and seasonal-naive baselines on the same test windows."""
    rows = []
    for path in sorted(results.glob("*.json")):
        data = _read_json(path)
        test = data.get("test") if isinstance(data, dict) else None
        if not isinstance(test, dict) or "model" not in test or "naive" not in test:
            continue
        for name in ("model", "naive", "seasonal_naive"):
            if name not in test:
                continue
            m = test[name]
            label = {"seasonal_naive": f"seasonal naive (m={data.get('season')})"}.get(name, name)
            rows.append(
                f"| {data['recipe']} | {label} | {m['mae']:.4g} | {m['rmse']:.4g} | "
                f"{m['mase']:.3f} | `{str(data.get('commit', ''))[:8]}` |"
            )
    if not rows:
        return "_No forecasting results recorded yet._\n"
    head = [
        "| run | forecast | test MAE | test RMSE | test MASE | commit |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    return "\n".join(head + rows) + "\n"


def reliability_table(results: Path) -> str:
    """The fault-injection benchmark (benchmarks/faults.py, ``results/bench-faults.jsonl``): one
    row per case (its newest line): what was injected, how many times, what was lost (0 is the
    goal; a case that could not run here says why in its detail)."""
    path = results / "bench-faults.jsonl"
    if not path.exists():
        return "_No fault-injection results recorded yet._\n"
    rows = list({r["case"]: r for r in _read_jsonl(path) if r.get("bench") == "faults"}.values())
    if not rows:
        return "_No fault-injection results recorded yet._\n"

    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    machine = rows[-1].get("machine", "?")
    lines = [
        f"`python benchmarks/faults.py` — {machine}; each case at the commit in its line "
        f"({path.name})\n",
        "| case | injected | times | lost | detail |",
        "| --- | --- | ---: | ---: | --- |",
    ]
    for r in rows:
        lost = "not run" if r.get("lost") is None else str(r["lost"])
        lines.append(
            f"| {cell(r['case'])} | {cell(r.get('injected', ''))} | {r.get('times', 0)} | {lost} | "
            f"{cell(r.get('detail', ''))} ({str(r.get('commit', '?'))[:7]}) |"
        )
    return "\n".join(lines) + "\n"


GENERATORS = {
    "benchmarks": benchmark_table,
    "results": results_table,
    "forecasts": forecast_table,
    "reliability": reliability_table,
}


def render(text: str, results: Path) -> str:
    """Return ``text`` with every generated section rewritten from ``results``."""

    def repl(m: re.Match[str]) -> str:
        name = m.group("name")
        if name not in GENERATORS:
            raise ConfigError(f"unknown generated section {name!r}; known: {sorted(GENERATORS)}")
        body = GENERATORS[name](results)
        return f"{m.group(1)}{body}{m.group(4)}"

    return MARKER.sub(repl, text)


def update_readme(readme: Path, results: Path) -> bool:
    """Rewrite the generated sections of ``readme`` in place (atomically). True if it changed."""
    old = read_text(readme)
    new = render(old, results)
    if new == old:
        return False
    atomic_write_text(readme, new)
    return True
