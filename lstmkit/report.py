"""Tables for the README, generated from the JSON that real runs wrote into ``results/``.

Nothing in the README's result or performance sections is typed by hand: ``lstmkit report``
rewrites the text between ``<!-- BEGIN GENERATED: name -->`` and ``<!-- END GENERATED: name -->``
markers, and a test fails when the README and ``results/`` disagree.

Inputs:

- ``results/bench-*.jsonl``: benchmark JSON lines (a header record with ``"bench": "<name>-run"``
  holding the command, then one record per case: ``case, impl, ours, peer, peer_name, ratio``).
- ``results/<recipe>.json``: ``{"recipe", "metric", "value", "seconds", "commit", "command",
  "machine", "seed_figure"?}`` written by ``lstmkit train``.

A figure whose recipe, model or training code changed since the commit it was measured at
(:func:`figure_changes`: git, that commit against the working tree) is marked ``†`` in its table
and named with the changed files in a footnote under it: it may no longer be what the code gives.
``benchmarks/results_check.py`` (``make results-check``) re-runs the quick ones.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
import subprocess
import tomllib
from functools import lru_cache
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
        peaks = [r for r in rows if r.get("bench") == "recurrent-peak"]
        if peaks:  # the machine's measured peak: every fixed-shape row's fraction of it
            parts.append(
                f"Peak of this run: a {peaks[0]['case']} GEMM at {peaks[0]['gflops']:.1f} GFLOP/s "
                f"({peaks[0].get('threads', '?')} threads); GFLOP/s columns count "
                "`flops_per_token` of benchmarks/recurrent.py.\n"
            )
        fractions = any("peak_fraction_ours" in r for r in cases)
        extra = " ours GFLOP/s (of peak) | peer GFLOP/s (of peak) |" if fractions else ""
        parts.append("| case | impl | ours | peer | ratio (ours vs peer, >1 = faster) |" + extra)
        parts.append("| --- | --- | ---: | ---: | ---: |" + (" ---: | ---: |" if fractions else ""))
        for r in cases:
            note = "" if r.get("correct", True) else " (wrong results, reference only)"
            unit = str(r.get("unit", "tok/s"))
            row = (
                f"| {r['case']} | {r.get('impl', '')}{note} | {_fmt_value(r['ours'], unit)} | "
                f"{_fmt_value(r['peer'], unit)} {r['peer_name']} | {r['ratio']:.2f}x |"
            )
            if fractions:
                row += (
                    f" {r['gflops_ours']:.1f} ({r['peak_fraction_ours']:.0%}) |"
                    f" {r['gflops_peer']:.1f} ({r['peak_fraction_peer']:.0%}) |"
                    if "peak_fraction_ours" in r
                    else " | |"
                )
            parts.append(row)
        parts.append("")
    return "\n".join(parts) if parts else "_No benchmark results recorded yet._\n"


# What sets a recorded figure beside its recipe: the model code, the training loop and the code of
# its task (the data readers included). Not the CLI, the config schema, plots, errors or serving.
MODEL_CODE = (
    "lstmkit/functional.py",
    "lstmkit/cells.py",
    "lstmkit/layers.py",
    "lstmkit/kernels/",
    "lstmkit/models.py",
    "lstmkit/ngrams.py",
)
TRAINING_CODE = (
    "lstmkit/train.py",
    "lstmkit/optim.py",
    "lstmkit/objectives.py",
    "lstmkit/adversarial.py",
    "lstmkit/experiment.py",
    "lstmkit/tasks/base.py",
    "lstmkit/data/batching.py",
)
TASK_CODE = {
    "classify": ("lstmkit/tasks/classify.py",),
    "language_model": ("lstmkit/tasks/language_model.py",),
    "text": (
        "lstmkit/tasks/classify.py",
        "lstmkit/tasks/text.py",
        "lstmkit/tasks/text_defaults.py",
        "lstmkit/tasks/defaults.py",
        "lstmkit/data/text.py",
        "lstmkit/data/tokenize.py",
        "lstmkit/data/encode_cache.py",
        "lstmkit/data/vectors.py",
    ),
    "forecast": (
        "lstmkit/tasks/forecast.py",
        "lstmkit/tasks/defaults.py",
        "lstmkit/data/series.py",
    ),
    "panel": (
        "lstmkit/tasks/forecast.py",
        "lstmkit/tasks/panel.py",
        "lstmkit/tasks/defaults.py",
        "lstmkit/data/series.py",
        "lstmkit/data/panel.py",
    ),
}
# the reader of a recipe's [data] dataset, and what a [pretrain] section adds
DATASET_CODE = {
    "imdb": ("lstmkit/data/keras_datasets.py", "lstmkit/data/vocabulary.py"),
    "reuters": ("lstmkit/data/keras_datasets.py", "lstmkit/data/vocabulary.py"),
    "mnist": ("lstmkit/data/keras_datasets.py",),
    "arrays": ("lstmkit/data/arrays.py",),
    "chars": ("lstmkit/data/chars.py",),
}
PRETRAIN_CODE = ("lstmkit/pretrain.py", "lstmkit/data/imdb_texts.py")
RECIPE_DIRS = ("lstmkit/recipes", "recipes")  # where a recipe of that name lived, newest first
STALE = "†"
NAMED_FILES = 4  # files named per marked figure in the footnote


def _git(root: Path, *args: str) -> str | None:
    """stdout of ``git args`` in ``root`` (None: no git, not a repository, or git failed)."""
    try:
        proc = subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


@lru_cache(maxsize=512)  # the same file text comes back for every figure
def _normalised_python(text: str) -> str:
    """The syntax tree of a module without its docstrings: what a comment, a docstring or a
    reformatting changes is not a change of the code."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return text
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, include_attributes=False)


def _normalised_recipe(text: str) -> str:
    """A recipe's settings, without what does not train (its name, description, seed figure)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return text
    for key in ("name", "description", "seed_figure"):
        data.pop(key, None)
    return json.dumps(data, sort_keys=True)


def _normalised(path: str, text: str | None) -> str | None:
    if text is None:
        return None
    if path.endswith(".py"):
        return _normalised_python(text)
    if path.endswith(".toml"):
        return _normalised_recipe(text)
    return text


def _at_commit(root: Path, commit: str, paths: list[str]) -> dict[str, str | None]:
    """The text of each of ``paths`` at ``commit`` (None: not there), read by one git process."""
    try:
        proc = subprocess.run(
            ["git", "cat-file", "--batch"],
            cwd=root,
            input="".join(f"{commit}:{p}\n" for p in paths).encode(),
            capture_output=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return dict.fromkeys(paths)
    out: dict[str, str | None] = {}
    data, pos = proc.stdout, 0
    for path in paths:  # "<sha> blob <size>\n<bytes>\n" or "<name> missing\n", one per line in
        end = data.find(b"\n", pos)
        head = data[pos:end].split() if end >= 0 else []
        pos = end + 1
        if len(head) == 3 and head[1] == b"blob":
            size = int(head[2])
            out[path] = data[pos : pos + size].decode("utf-8", errors="replace")
            pos += size + 1
        else:
            out[path] = None
            if len(head) == 3:  # a tree or another object: its content follows too
                pos += int(head[2]) + 1
    return out


def _now(root: Path, path: str) -> str | None:
    file = root / path
    return file.read_text(encoding="utf-8", errors="replace") if file.is_file() else None


def _code_of(result: dict[str, Any], recipe_text: str | None) -> list[str]:
    """The code files behind a figure: model, training, its task's (a ``--task`` in its
    command, else its recipe's dataset) and its data reader's."""
    words = shlex.split(str(result.get("command", "")))
    if words[:1] == ["python"] and len(words) > 1:  # a benchmark script (a peer's run): itself
        return [words[1]]
    paths = [*MODEL_CODE, *TRAINING_CODE]
    if "--task" in words[:-1]:
        task = words[words.index("--task") + 1]
        if task == "forecast" and "--id-column" in words:
            task = "panel"
        return [*paths, *TASK_CODE.get(task, ())]
    try:
        recipe = tomllib.loads(recipe_text) if recipe_text is not None else {}
    except tomllib.TOMLDecodeError:
        recipe = {}
    dataset = str(recipe.get("data", {}).get("dataset", ""))
    paths += TASK_CODE["language_model" if dataset == "chars" else "classify"]
    paths += DATASET_CODE.get(dataset, ())
    if recipe.get("pretrain"):
        paths += PRETRAIN_CODE
    return paths


def _recipe_files(result: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Where the figure's recipe was at its commit (the command's file first) and where it is
    now, as candidate paths."""
    name = str(result.get("recipe", ""))
    words = shlex.split(str(result.get("command", "")))
    given = [w for w in words[2:] if w.endswith(".toml") and not w.startswith("-")]
    named = [f"{d}/{name}.toml" for d in RECIPE_DIRS]
    return [*given, *named], named


def _changes(root: Path, commit: str, command: str, recipe: str) -> tuple[str, ...] | None:
    if _git(root, "cat-file", "-e", f"{commit}^{{commit}}") is None:
        return None
    result = {"command": command, "recipe": recipe}
    then_candidates, now_candidates = _recipe_files(result)
    then_texts = _at_commit(root, commit, then_candidates)
    then_recipe = next((p for p in then_candidates if then_texts[p] is not None), None)
    now_recipe = next((p for p in now_candidates if (root / p).is_file()), None)
    changed: list[str] = []
    if then_recipe is not None or now_recipe is not None:
        old = then_texts[then_recipe] if then_recipe else None
        new = _now(root, now_recipe) if now_recipe else None
        if _normalised(".toml", old) != _normalised(".toml", new):
            changed.append(now_recipe or str(then_recipe))
    paths = _code_of(result, _now(root, now_recipe) if now_recipe else None)
    listed = _git(root, "diff", "--name-only", commit, "--", *dict.fromkeys(paths))
    if listed is None:
        return None
    order = {p: i for i, p in enumerate(paths)}

    def rank(path: str) -> int:  # the order of ``paths``: model code first
        return min((i for p, i in order.items() if path.startswith(p)), default=len(order))

    candidates = sorted(listed.splitlines(), key=rank)
    then = _at_commit(root, commit, candidates)
    for path in candidates:
        if _normalised(path, then[path]) != _normalised(path, _now(root, path)):
            changed.append(path)
    return tuple(changed)


def reference_commit(result: dict[str, Any]) -> str:
    """The newest commit a recorded figure is known to hold at: where ``make results-check``
    last reproduced it (``"checked": {"commit", "value", "ok": true}``, written by
    ``benchmarks/results_check.py --stamp``), else where it was measured."""
    checked = result.get("checked")
    if isinstance(checked, dict) and checked.get("ok") is True and checked.get("commit"):
        return str(checked["commit"])
    return str(result.get("commit") or "")


def figure_changes(result: dict[str, Any], root: Path) -> tuple[str, ...] | None:
    """The recipe and code files behind a recorded figure that changed since the commit it was
    measured or last reproduced at (:func:`reference_commit`, a ``-dirty`` suffix dropped),
    compared with the working
    tree of the repository ``root``; comments, docstrings and formatting do not count. The code
    is :data:`MODEL_CODE`, :data:`TRAINING_CODE` and the :data:`TASK_CODE` of its task (a
    ``--task`` in its command, else its recipe's dataset). None: it cannot be told (no git, or
    the commit is not in this repository)."""
    commit = reference_commit(result).removesuffix("-dirty")
    if not re.fullmatch(r"[0-9a-f]{7,40}", commit):
        return None
    top = _git(root, "rev-parse", "--show-toplevel")
    if top is None:
        return None
    return _changes(
        Path(top.strip()), commit, str(result.get("command", "")), str(result.get("recipe", ""))
    )


def _stale_notes(stale: list[tuple[str, str, tuple[str, ...]]]) -> str:
    """The footnote under a table: each marked figure and the files that changed."""
    if not stale:
        return ""
    lines = [
        "",
        f"{STALE} Its recipe, model or training code changed since the commit it was measured "
        "at (comments and docstrings aside): the figure may no longer be what the code gives. "
        "Re-run it (`make results-check`) or record it again.",
        "",
    ]
    for name, commit, files in stale:
        shown = ", ".join(f"`{f}`" for f in files[:NAMED_FILES])
        more = len(files) - NAMED_FILES
        lines.append(
            f"- {name} (`{commit[:8]}`): {shown}" + (f" and {more} more" if more > 0 else "")
        )
    return "\n".join(lines) + "\n"


def _commit_cell(data: dict[str, Any]) -> str:
    """The commit a figure was measured at, and the one ``make results-check`` reproduced it at
    (with the figure it gave there)."""
    cell = f"`{str(data.get('commit', ''))[:8]}`"
    checked = data.get("checked")
    if reference_commit(data) != str(data.get("commit") or "") and isinstance(checked, dict):
        cell += f" (re-run `{str(checked['commit'])[:8]}`: {float(checked['value']):.4f})"
    return cell


def results_table(results: Path) -> str:
    """Markdown table of every ``results/<recipe>.json`` (accuracy runs); a figure whose code
    changed since its commit is marked (:func:`figure_changes`)."""
    rows = []
    stale: list[tuple[str, str, tuple[str, ...]]] = []
    for path in sorted(results.glob("*.json")):
        data = _read_json(path)
        if not isinstance(data, dict) or "recipe" not in data:
            continue
        seed = data.get("seed_figure")
        seed_txt = "" if seed is None else f"{seed:.4g}"
        value = f"{data['value']:.4f}"
        if "std" in data and "seeds" in data:  # a repeated run (lstmkit train --seeds N)
            value = f"{data['mean']:.4f} ± {data['std']:.4f} ({len(data['seeds'])} seeds)"
        changed = figure_changes(data, results)
        if changed:
            value += f" {STALE}"
            stale.append((data["recipe"], str(data.get("commit", "")), changed))
        rows.append(
            f"| {data['recipe']} | {data['metric']} | {seed_txt} | {value} | "
            f"{data['seconds'] / 60:.1f} | {_commit_cell(data)} |"
        )
    if not rows:
        return "_No training results recorded yet._\n"
    head = [
        "| recipe | metric | seed's figure | ours | minutes | commit |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    return "\n".join(head + rows) + "\n" + _stale_notes(stale)


def forecast_table(results: Path) -> str:
    """Markdown table of the forecasting runs in ``results/<recipe>.json`` (those written by
    ``lstmkit train --task forecast --record``): MAE / RMSE / MASE of the model beside the naive
    and seasonal-naive baselines on the same test windows."""
    rows = []
    stale: list[tuple[str, str, tuple[str, ...]]] = []
    for path in sorted(results.glob("*.json")):
        data = _read_json(path)
        test = data.get("test") if isinstance(data, dict) else None
        if not isinstance(test, dict) or "model" not in test or "naive" not in test:
            continue
        changed = figure_changes(data, results)
        if changed:
            stale.append((data["recipe"], str(data.get("commit", "")), changed))
        for name in ("model", "naive", "seasonal_naive"):
            if name not in test:
                continue
            m = test[name]
            label = {"seasonal_naive": f"seasonal naive (m={data.get('season')})"}.get(name, name)
            mark = f" {STALE}" if changed and name == "model" else ""
            rows.append(
                f"| {data['recipe']} | {label} | {m['mae']:.4g} | {m['rmse']:.4g} | "
                f"{m['mase']:.3f}{mark} | {_commit_cell(data)} |"
            )
    if not rows:
        return "_No forecasting results recorded yet._\n"
    head = [
        "| run | forecast | test MAE | test RMSE | test MASE | commit |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    return "\n".join(head + rows) + "\n" + _stale_notes(stale)


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
