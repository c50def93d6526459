"""ONNX export of a :class:`~lstmkit.models.SequenceClassifier` and of the forecasters
(:class:`~lstmkit.models.Forecaster`, :class:`~lstmkit.models.PanelForecaster`).

**Classifiers.** The exported graph takes ``tokens`` int64 ``(B, T)`` (post-padded with 0, as
:func:`lstmkit.data.batching.collate_tokens` makes them) and ``lengths`` int64 ``(B,)``
(``1 <= lengths <= T``), both with dynamic ``B`` and ``T``, and returns ``probabilities``
float32 ``(B, C)`` — what :meth:`SequenceClassifier.predict_proba` returns (``C = 2`` for the
sigmoid head: ``[1 - p, p]``).

How: torch's TorchScript exporter (``torch.onnx.export(..., dynamo=False)``) maps the fused
recurrent op (``aten::lstm`` / ``aten::gru`` / ``aten::rnn_*``) to ONNX's LSTM / GRU / RNN op,
whose loop over time is dynamic. (The dynamo exporter traces ``torch.export``, which unrolls the
recurrence over the example's length, so its graph is fixed to one ``T``.) The model's own
variable-length path (``pack_padded_sequence`` / the 'split' strategy) does not trace, so the
export runs an equivalent, trace-friendly computation (:class:`lstmkit.models.PaddedClassifier`,
also the inference forward of serving):

- every layer and every direction is one fused call over the whole post-padded batch, without
  packing. For the forward direction the output at a real step ``t < lengths[b]`` depends on real
  tokens only, so it is exact; the padded steps hold garbage that nothing reads.
- the reverse direction runs forward over each row's real tokens reversed in place (pads stay
  at the end), then is reversed back — the same trick as the layer's 'split' strategy — so its
  outputs at real steps are exact too.
- pooling 'last' gathers the last layer's output at ``lengths - 1`` (forward direction; the
  reverse direction's final state is its output at step 0); the other poolings run the model's
  own :meth:`SequenceClassifier.pool` with the lengths mask, which only reads real steps.

Before the file replaces the destination, onnxruntime runs it on batches of random tokens of
mixed lengths and it is compared with the model's own :meth:`SequenceClassifier.predict_proba`
(:func:`check_classifier_onnx`, the tolerance as for the forecasters below).

Refused, with a ``ValueError`` naming the option: real-valued input (``vocab_size=None``),
``conv_filters > 0``, recurrent layers the fused op cannot run in eval mode (peephole,
layer_norm, zoneout, non-default activations, ... — see ``Recurrent.fused_blockers``),
``proj_size`` (ONNX's LSTM has no projection), and ``padding='pre'`` layers.

**Forecasters** (:func:`export_forecaster_onnx`; ``lstmkit export RUN --onnx F`` on a
forecasting run, one series or many). The graph takes ``window`` float32 ``(B, lookback, F)``:
the last ``lookback`` rows of the history in the series' own units, dynamic ``B``, the run's
``lookback`` fixed (the in-window baseline indexes it). It returns ``forecast`` float32
``(B, horizon)`` and ``quantiles`` ``(B, horizon, Q)`` (absent for a single-series run without a
band), what :meth:`Forecaster.predict` / :meth:`Forecaster.predict_quantiles` (the forecast is
the median of :meth:`PanelForecaster.predict`) return. Everything the torch model does is in
the graph: the log, each window's normalisation (its last value, the scale), the in-window
baseline, the network, the band and the de-normalisation back to the series' units. (A
forecasting model of lstmkit has no per-series scaler: every window is normalised on its own.)
Columns of ``window``: single series ``[target, *features]`` (the run's ``columns``); panel
``[target, *features, *calendar, series index]`` — the calendar columns (``config.json``
``calendar``, sin/cos of the position in the year, from the rows' times) and, for a model with a
series embedding, the index of the id in ``ids`` as a float in every row: those two come from
the times and the id, not from the values, so they are built outside the graph by
:func:`forecast_windows` (what the ONNX file's ``inputs`` metadata describes). The file's
metadata (``metadata_props``) holds ``lstmkit`` (JSON: task, columns, window columns, lookback,
horizon, quantiles, ids).

The export of a run checks the graph with onnxruntime against torch before it replaces the
destination (:func:`check_forecaster_onnx`): on windows of the run's own data file (up to
:data:`CHECK_WINDOWS`, evenly spread; synthetic windows around the training data's mean and
spread when the file is gone, said so), every output within :data:`CHECK_RTOL` of that window's
largest absolute value (float32 arithmetic in two orders). Beyond it the export fails with an
:class:`~lstmkit.errors.ExportError` naming the window, and no file is written.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from lstmkit.bundle import verify_bundle
from lstmkit.data.panel import Panel, calendar_columns, read_panel
from lstmkit.data.series import Series, read_series
from lstmkit.errors import BundleError, DataError, ExportError, LstmkitError
from lstmkit.extras import needs
from lstmkit.forecasting import is_panel_config, load_forecast_run, load_panel_run
from lstmkit.layers import Recurrent
from lstmkit.models import (
    Forecaster,
    PaddedClassifier,
    PanelForecaster,
    SequenceClassifier,
)
from lstmkit.models import padded_blockers as export_blockers
from lstmkit.runs import is_classifier_run, load_run, read_run_config, task_of_run
from lstmkit.version import __version__

INPUT_NAMES = ("tokens", "lengths")
OUTPUT_NAMES = ("probabilities",)
FORECAST_INPUT = "window"
FORECAST_OUTPUTS = ("forecast", "quantiles")
DEFAULT_OPSET = 17
CHECK_WINDOWS = 256  # most windows of the run's data the onnxruntime check compares
CHECK_RTOL = 1e-4  # |onnxruntime - torch| <= CHECK_RTOL * the window's largest |value|
METADATA_KEY = "lstmkit"


def check_exportable(model: SequenceClassifier) -> None:
    """Raise :class:`ExportError` naming every option :func:`export_onnx` cannot export."""
    if not isinstance(model, SequenceClassifier):
        raise TypeError(f"expected a SequenceClassifier, got {type(model).__name__}")
    blockers = export_blockers(model)
    if blockers:
        raise ExportError(
            f"cannot export this model to ONNX exactly: {'; '.join(blockers)} "
            "is not supported by lstmkit.export"
        )


def _example_inputs(model: SequenceClassifier) -> tuple[Tensor, Tensor]:
    """A small post-padded batch (B=3, T=7) with distinct lengths for tracing."""
    vocab = int(model.config.vocab_size or 2)
    lengths = torch.tensor([7, 4, 1], dtype=torch.int64)
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(1, vocab, (3, 7), generator=gen, dtype=torch.int64)
    tokens = tokens * (torch.arange(7)[None, :] < lengths[:, None])
    return tokens, lengths


def _write_onnx(
    graph: nn.Module,
    example: tuple[Tensor, ...],
    dest: Path,
    *,
    inputs: list[str],
    outputs: list[str],
    dynamic_axes: dict[str, dict[int, str]],
    opset: int | None,
    metadata: dict[str, Any] | None = None,
    check: Callable[[Path], object] | None = None,
) -> Path:
    """Trace ``graph`` into a temporary file beside ``dest``, check it (``onnx.checker``, then
    ``check(tmp)`` when given), and rename it to ``dest``: a failed check leaves no file."""
    with needs("export", "the ONNX export"):
        import onnx  # optional dependency: pip install 'lstmkit[export]'

    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # TorchScript-exporter deprecation / tracer notes
            torch.onnx.export(
                graph,
                example,
                str(tmp),
                input_names=inputs,
                output_names=outputs,
                dynamic_axes=dynamic_axes,
                opset_version=opset or DEFAULT_OPSET,
                dynamo=False,
                do_constant_folding=True,
            )
        proto = onnx.load(str(tmp))
        if metadata is not None:
            entry = proto.metadata_props.add()
            entry.key, entry.value = METADATA_KEY, json.dumps(metadata)
            onnx.save(proto, str(tmp))
        onnx.checker.check_model(proto, full_check=True)
        if check is not None:
            check(tmp)
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return dest


def export_onnx(
    model: SequenceClassifier, path: str | os.PathLike[str], *, opset: int | None = None
) -> Path:
    """Export ``model`` to an ONNX file at ``path`` (written atomically) and return the path.

    Inputs ``tokens`` int64 (B, T), post-padded with 0, and ``lengths`` int64 (B,) with
    ``1 <= lengths <= T``; output ``probabilities`` float32 (B, C). ``B`` and ``T`` are dynamic.
    The graph is checked with ``onnx.checker``, and run with onnxruntime against the model's own
    :meth:`SequenceClassifier.predict_proba` (:func:`check_classifier_onnx`), before it replaces
    ``path``.

    Args:
        model: the classifier; exported in eval mode on CPU in float32 (a copy: ``model`` is
            left as it was).
        path: destination ``.onnx`` file; its directory is created.
        opset: ONNX opset version (default :data:`DEFAULT_OPSET`).

    Raises:
        ExportError: (a ``ValueError``) naming the options that cannot be exported exactly
            (see :func:`export_blockers`), or the sequence where onnxruntime and torch differ.
    """
    check_exportable(model)
    net = copy.deepcopy(model).float().cpu().eval()
    graph = PaddedClassifier(net).eval()
    return _write_onnx(
        graph,
        _example_inputs(model),
        Path(path),
        inputs=list(INPUT_NAMES),
        outputs=list(OUTPUT_NAMES),
        dynamic_axes={
            "tokens": {0: "batch", 1: "length"},
            "lengths": {0: "batch"},
            "probabilities": {0: "batch"},
        },
        opset=opset,
        check=lambda tmp: check_classifier_onnx(tmp, net),
    )


def check_classifier_onnx(path: Path, model: SequenceClassifier) -> tuple[float, float]:
    """Run the classifier's ONNX file ``path`` with onnxruntime on post-padded batches of random
    tokens (lengths 1 to 40, mixed, batch sizes other than the trace's) and compare with
    :meth:`SequenceClassifier.predict_proba` (its packed variable-length path): ``(max ratio to
    the tolerance, max |difference|)``, the tolerance :data:`CHECK_RTOL` of each row's largest
    probability; :class:`ExportError` beyond it."""
    with needs("export", "the onnxruntime check of the ONNX export"):
        import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    vocab = int(model.config.vocab_size or 2)
    gen = torch.Generator().manual_seed(1)
    worst = (0.0, 0.0)
    for lengths in ([40, 1, 17, 3, 40], list(range(1, 13)), [2]):
        lens = torch.tensor(lengths, dtype=torch.int64)
        tokens = torch.randint(1, vocab, (len(lengths), max(lengths)), generator=gen)
        tokens = tokens * (torch.arange(max(lengths))[None, :] < lens[:, None])
        with torch.no_grad():
            want = model.predict_proba(tokens, lens).numpy()
        (got,) = sess.run(None, {"tokens": tokens.numpy(), "lengths": lens.numpy()})
        ratio, error = _check_tolerance((np.asarray(got),), (want,), list(OUTPUT_NAMES), "row")
        worst = (max(worst[0], ratio), max(worst[1], error))
    return worst


# -- forecasters --------------------------------------------------------------------------------
AnyForecaster = Forecaster | PanelForecaster


def _recurrent_layers(model: AnyForecaster) -> list[Recurrent]:
    if isinstance(model, Forecaster):
        return [model.rnn]
    return [member.rnn for member in model._members()]


def forecaster_blockers(model: AnyForecaster) -> list[str]:
    """Options of a forecaster the ONNX export cannot express exactly (empty: it can): cell
    options torch's fused recurrent op (ONNX's LSTM / GRU / RNN op) cannot run in eval mode, and
    ``proj_size``."""
    if not isinstance(model, Forecaster | PanelForecaster):
        raise TypeError(f"expected a Forecaster or PanelForecaster, got {type(model).__name__}")
    rnn = _recurrent_layers(model)[0]
    out = [f"cell option {b}" for b in rnn.fused_blockers(training=False)]
    proj = getattr(model.config, "cell_options", {}).get("proj_size")
    if proj:
        out.append(f"cell option proj_size={proj} (ONNX's LSTM op has no projection)")
    return out


class ForecasterGraph(nn.Module):
    """``window (B, L, F) -> forecast (B, H)[, quantiles (B, H, Q)]`` of an eval-mode
    forecaster in the series' units, written so that it traces with a dynamic batch:
    :meth:`Forecaster.predict` and :meth:`Forecaster.predict_quantiles` from one forward (the
    model's own methods); for a :class:`PanelForecaster`, :meth:`PanelForecaster.predict` and its
    median. The onnxruntime check compares the graph with the models' own methods
    (:func:`torch_forecasts`)."""

    def __init__(self, model: AnyForecaster) -> None:
        super().__init__()
        self.model = model

    @property
    def has_quantiles(self) -> bool:
        return bool(self.model.config.quantiles)

    def forward(self, window: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        m = self.model
        if isinstance(m, PanelForecaster):
            quantiles = m.predict(window)
            return quantiles[..., m.median], quantiles
        out = m.forward(window)
        forecast = m.denormalise(window, out)
        band = getattr(m, "band", None)
        if not isinstance(band, Tensor):
            return forecast
        z = m.level(window)[..., None] + m.config.scale * (out[..., None] + band.to(window.dtype))
        return forecast, torch.exp(z) if m.config.log else z


def torch_forecasts(model: AnyForecaster, windows: np.ndarray) -> tuple[np.ndarray, ...]:
    """What the graph of :func:`export_forecaster_onnx` must compute, by the torch model's own
    methods: ``(forecast, quantiles)`` float32 (``(forecast,)`` without a band) for windows
    (n, L, F) -- :meth:`Forecaster.predict` and :meth:`Forecaster.predict_quantiles`, or
    :meth:`PanelForecaster.predict` and its median."""
    was = model.training
    model.eval()
    x = torch.from_numpy(np.ascontiguousarray(windows, np.float32))
    with torch.no_grad():
        if isinstance(model, PanelForecaster):
            q = model.predict(x)
            outs: tuple[Tensor, ...] = (q[..., model.median], q)
        elif model.config.quantiles:
            outs = (model.predict(x), model.predict_quantiles(x))
        else:
            outs = (model.predict(x),)
    model.train(was)
    return tuple(o.numpy() for o in outs)


def _check_tolerance(
    got: tuple[np.ndarray, ...],
    want: tuple[np.ndarray, ...],
    names: list[str],
    what: str = "window",
) -> tuple[float, float]:
    """``(largest |got - want| / bound, largest |got - want|)`` where a window's bound is
    :data:`CHECK_RTOL` times its largest |value| over every output; raises ExportError naming
    the window and the output beyond it."""
    n = len(want[0])
    scale = np.zeros(n)
    for w in want:
        scale = np.maximum(scale, np.abs(w.reshape(n, -1)).max(1))
    bound = CHECK_RTOL * np.maximum(scale, 1e-30)
    worst, worst_abs = 0.0, 0.0
    for name, g, w in zip(names, got, want, strict=True):
        if g.shape != w.shape:
            raise ExportError(f"onnxruntime's {name!r} has shape {g.shape}, torch's {w.shape}")
        diff = np.abs(g.astype(np.float64) - w).reshape(n, -1)
        bad = ~np.isfinite(diff) | (diff > bound[:, None])
        if bad.any():
            i, j = (int(k) for k in np.argwhere(bad)[0])
            raise ExportError(
                f"the ONNX graph does not compute what the torch model does: {name!r} of {what} "
                f"{i} (flat index {j}) is {g.reshape(n, -1)[i, j]!r} in onnxruntime and "
                f"{w.reshape(n, -1)[i, j]!r} in torch, beyond the tolerance {bound[i]:.3g} "
                f"({CHECK_RTOL:g} x the {what}'s largest |value| {scale[i]:.4g})"
            )
        worst = max(worst, float((diff / bound[:, None]).max()))
        worst_abs = max(worst_abs, float(diff.max()))
    return worst, worst_abs


@dataclass(frozen=True)
class OnnxCheck:
    """What the onnxruntime check of an exported forecaster compared.

    Attributes:
        path: the ONNX file. windows: how many windows. source: where they came from (the run's
        data file, or synthetic windows and why). max_error: the largest |onnxruntime - torch|.
        max_ratio: the largest error over its window's tolerance (the check needs <= 1).
    """

    path: Path
    windows: int
    source: str
    max_error: float
    max_ratio: float

    def summary(self) -> str:
        """One line for the CLI."""
        return (
            f"checked with onnxruntime against torch on {self.windows} windows of "
            f"{self.source}: largest difference {self.max_error:.3g} "
            f"({self.max_ratio:.2g} of the tolerance, {CHECK_RTOL:g} x each window's largest "
            "|value|)"
        )


def check_forecaster_onnx(
    path: Path, model: AnyForecaster, windows: np.ndarray
) -> tuple[float, float]:
    """Run the ONNX file ``path`` with onnxruntime on ``windows`` (n, L, F) and compare with
    torch (:func:`torch_forecasts`): ``(max ratio to the tolerance, max |difference|)``;
    ExportError beyond the tolerance."""
    with needs("export", "the onnxruntime check of the ONNX export"):
        import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    x = np.ascontiguousarray(windows, dtype=np.float32)
    got = tuple(np.asarray(o) for o in sess.run(None, {FORECAST_INPUT: x}))
    return _check_tolerance(got, torch_forecasts(model, x), names)


def _graph_metadata(model: AnyForecaster, config: dict[str, Any] | None) -> dict[str, Any]:
    c = config or {}
    panel = isinstance(model, PanelForecaster)
    inputs = list(c.get("columns", []))
    if isinstance(model, PanelForecaster):
        inputs += list(c.get("calendar", []))
        if model.config.num_series:
            inputs.append("series index (of ids)")
    return {
        "lstmkit_version": __version__,
        "task": "forecast",
        "panel": panel,
        "columns": list(c.get("columns", [])),
        "inputs": inputs,
        "time_column": c.get("time_column"),
        "id_column": c.get("id_column") if panel else None,
        "ids": list(c.get("ids", [])) if panel else None,
        "frequency": c.get("frequency"),
        "lookback": c.get("lookback"),
        "horizon": model.config.horizon,
        "quantiles": list(model.config.quantiles),
    }


def export_forecaster_onnx(
    model: AnyForecaster,
    path: str | os.PathLike[str],
    *,
    lookback: int,
    windows: np.ndarray | None = None,
    config: dict[str, Any] | None = None,
    opset: int | None = None,
) -> tuple[Path, tuple[float, float] | None]:
    """Export a forecaster to an ONNX file at ``path`` (see the module docstring): input
    ``window`` float32 (B, lookback, input_size), outputs ``forecast`` (B, H) and ``quantiles``
    (B, H, Q). With ``windows`` (n, lookback, input_size), the graph is run with onnxruntime on
    them and compared with torch before it replaces ``path`` (:func:`check_forecaster_onnx`).
    ``config`` (the run's config.json) fills the file's metadata. ``model`` is left as it was
    (a float32 CPU eval copy is exported). Returns the path and the check's ``(ratio, error)``
    (None without ``windows``).

    Raises:
        ExportError: naming the options that cannot be exported exactly
            (:func:`forecaster_blockers`), or the window where onnxruntime and torch differ.
    """
    blockers = forecaster_blockers(model)
    if blockers:
        raise ExportError(
            f"cannot export this forecaster to ONNX exactly: {'; '.join(blockers)} "
            "is not supported by lstmkit.export"
        )
    net = copy.deepcopy(model).float().cpu().eval()
    for rnn in _recurrent_layers(net):
        rnn.impl = "fused"  # no blockers: the fused op is exact, and it is what traces to ONNX
    graph = ForecasterGraph(net).eval()
    size = net.config.input_size
    if windows is not None and (windows.ndim != 3 or windows.shape[1:] != (lookback, size)):
        raise ExportError(
            f"check windows must be (n, {lookback}, {size}), got {tuple(windows.shape)}"
        )
    gen = torch.Generator().manual_seed(0)
    example = 1.0 + torch.rand(3, lookback, size, generator=gen)
    if windows is not None and len(windows):
        example = torch.from_numpy(np.asarray(windows[:3], np.float32))
    outputs = list(FORECAST_OUTPUTS if graph.has_quantiles else FORECAST_OUTPUTS[:1])
    axes = {name: {0: "batch"} for name in [FORECAST_INPUT, *outputs]}
    result: list[tuple[float, float]] = []

    def check(tmp: Path) -> None:
        if windows is not None:
            result.append(check_forecaster_onnx(tmp, net, windows))

    dest = _write_onnx(
        graph,
        (example,),
        Path(path),
        inputs=[FORECAST_INPUT],
        outputs=outputs,
        dynamic_axes=axes,
        opset=opset,
        metadata=_graph_metadata(net, config),
        check=check,
    )
    return dest, (result[0] if result else None)


# -- the windows of a history -------------------------------------------------------------------
def _windows_at(values: np.ndarray, lookback: int, starts: np.ndarray) -> np.ndarray:
    return np.stack([values[s : s + lookback] for s in starts]).astype(np.float32)


def _starts(counts: list[int], last_only: bool, most: int | None) -> list[np.ndarray]:
    """Per series (``counts[i]`` windows), the window starts to take: its last one
    (``last_only``), every one, or at most ``most`` in all, evenly spread over the whole
    history (chosen before any window is made)."""
    if last_only:
        return [np.array([c - 1]) for c in counts]
    if most is None or sum(counts) <= most:
        return [np.arange(c) for c in counts]
    chosen = np.unique(np.linspace(0, sum(counts) - 1, most).round().astype(np.int64))
    offsets = np.concatenate([[0], np.cumsum(counts)])
    bounds = zip(offsets[:-1], offsets[1:], strict=True)
    return [chosen[(chosen >= a) & (chosen < b)] - a for a, b in bounds]


def forecast_windows(
    config: dict[str, Any],
    history: Series | Panel,
    *,
    last_only: bool = True,
    most: int | None = None,
) -> tuple[list[str | None], np.ndarray]:
    """The graph's ``window`` rows (float32 (n, lookback, F)) of a history read with the run's
    columns (:func:`lstmkit.data.series.read_series` / :func:`lstmkit.data.panel.read_panel`),
    and the id of each (None for a single series): the last ``lookback`` rows of each series
    (with ``last_only``; else every window, or at most ``most`` evenly spread). For a panel
    this is the part that is not in the graph: the calendar columns of the rows' times at the
    run's frequency and, with a series embedding, the id's index in ``config["ids"]`` appended
    to the values, as :func:`lstmkit.forecasting.forecast_panel` does; series shorter than the
    lookback and ids the model does not know are left out. No checks of the times here (a gap):
    that is :func:`lstmkit.forecasting.check_window_times`' job."""
    lookback = int(config["lookback"])
    width = int((config.get("model") or {}).get("input_size", 1))
    rows: list[tuple[str | None, np.ndarray]] = []
    if isinstance(history, Series):
        if len(history.values) >= lookback:
            rows.append((None, history.values))
    else:
        frequency = config.get("frequency", "rows")
        known = {sid: k for k, sid in enumerate(config.get("ids", []))}
        embedding = bool((config.get("model") or {}).get("num_series"))
        for sid, ser in zip(history.ids, history.series, strict=True):
            if len(ser.values) < lookback or (embedding and sid not in known):
                continue
            cal, _ = calendar_columns(ser.times or [], frequency)
            vals = np.concatenate([ser.values, cal], 1) if cal.shape[1] else ser.values
            if embedding:
                vals = np.concatenate([vals, np.full((len(vals), 1), known[sid])], 1)
            rows.append((sid, vals))
    starts = _starts([len(v) - lookback + 1 for _, v in rows], last_only, most)
    ids: list[str | None] = []
    parts = [np.zeros((0, lookback, width), np.float32)]
    for (name, vals), at in zip(rows, starts, strict=True):
        if len(at):
            ids += [name] * len(at)
            parts.append(_windows_at(vals, lookback, at))
    return ids, np.concatenate(parts)


@dataclass(frozen=True)
class _Run:
    model: AnyForecaster
    config: dict[str, Any]

    @property
    def panel(self) -> bool:
        return isinstance(self.model, PanelForecaster)


def _load_forecaster(run_dir: Path) -> _Run:
    """The forecaster and config of a forecasting run directory or bundle (a bundle's files
    checked against its ``bundle.json`` first)."""
    verify_bundle(run_dir)
    config = read_run_config(run_dir, "forecast")
    try:
        if is_panel_config(config):
            return _Run(*load_panel_run(run_dir))
        model, config, _ = load_forecast_run(run_dir)
    except BundleError:
        raise
    except (LstmkitError, OSError, ValueError, KeyError) as err:
        raise BundleError(f"{run_dir}: cannot load the forecasting run: {err}") from None
    return _Run(model, config)


def _synthetic_windows(fp: _Run, n: int) -> np.ndarray:
    """Windows around the training data's mean and spread (``config.json`` ``scaler``), kept
    positive for a model in logs; calendar columns in [-1, 1] and valid series indices."""
    c = fp.config
    lookback, size = int(c["lookback"]), int(fp.model.config.input_size)
    rng = np.random.default_rng(0)
    scaler = c.get("scaler") or {}
    mean = np.array(scaler.get("mean") or [10.0] * size, dtype=np.float64)[:size]
    std = np.array(scaler.get("std") or [1.0] * size, dtype=np.float64)[:size]
    if len(mean) < size:
        mean = np.concatenate([mean, np.zeros(size - len(mean))])
        std = np.concatenate([std, np.ones(size - len(std))])
    walk = np.cumsum(rng.normal(0, 0.3, (n, lookback, size)), 1)
    x = mean + std * walk
    if fp.model.config.log:
        x[..., 0] = np.abs(mean[0]) * np.exp(0.1 * walk[..., 0]) + 1e-3
    if isinstance(fp.model, PanelForecaster):
        ncal = len(c.get("calendar", []))
        nfeat = len(c.get("columns", [])) - 1
        x[..., 1 + nfeat : 1 + nfeat + ncal] = rng.uniform(-1, 1, (n, lookback, ncal))
        if fp.model.config.num_series:
            x[..., -1] = rng.integers(0, fp.model.config.num_series, n)[:, None]
    return x.astype(np.float32)


def run_check_windows(fp: _Run, run_dir: Path) -> tuple[np.ndarray, str]:
    """Up to :data:`CHECK_WINDOWS` windows of the run's training file (``config.json``
    ``recipe.data.series.train``), evenly spread over it, and what they are; synthetic windows
    (:func:`_synthetic_windows`) when the file cannot be read, said so."""
    c = fp.config
    data = ((c.get("recipe") or {}).get("data") or {}).get("series") or {}
    train = data.get("train")
    columns: list[str] = c["columns"]
    why = f"{run_dir / 'config.json'} names no training file"
    if train:
        try:
            if fp.panel:
                history: Series | Panel = read_panel(
                    train,
                    columns[0],
                    c["id_column"],
                    columns[1:],
                    c.get("time_column"),
                    encoding=data.get("encoding", "utf-8"),
                )
            else:
                history = read_series(
                    train,
                    columns[0],
                    columns[1:],
                    c.get("time_column"),
                    encoding=data.get("encoding", "utf-8"),
                )
            _, windows = forecast_windows(c, history, last_only=False, most=CHECK_WINDOWS)
            if len(windows):
                return windows, f"the run's data {train}"
            why = f"the run's data {train} holds no window of {c['lookback']} rows"
        except (DataError, OSError) as err:
            why = f"the run's data cannot be read ({err})"
    return _synthetic_windows(fp, 64), f"synthetic data ({why})"


def export_forecast_run_onnx(
    run_dir: str | os.PathLike[str], path: str | os.PathLike[str], *, opset: int | None = None
) -> OnnxCheck:
    """Export the forecaster of a finished forecasting run (or its bundle) to ONNX, checked with
    onnxruntime against torch on windows of the run's data (:func:`run_check_windows`) before
    it replaces ``path``."""
    run_dir = Path(run_dir)
    fp = _load_forecaster(run_dir)
    windows, source = run_check_windows(fp, run_dir)
    dest, result = export_forecaster_onnx(
        fp.model,
        path,
        lookback=int(fp.config["lookback"]),
        windows=windows,
        config=fp.config,
        opset=opset,
    )
    assert result is not None
    ratio, error = result
    return OnnxCheck(dest, len(windows), source, error, ratio)


def export_run_onnx(
    run_dir: str | os.PathLike[str], path: str | os.PathLike[str], *, opset: int | None = None
) -> Path:
    """Export the model of a finished run directory (or bundle): a classifier
    (:func:`lstmkit.runs.load_run`, :func:`export_onnx`) or a forecaster
    (:func:`export_forecast_run_onnx`, checked with onnxruntime). Another kind of run is one
    :class:`ExportError` naming it."""
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    task = task_of_run(config)
    if task == "forecast":
        return export_forecast_run_onnx(run_dir, path, opset=opset).path
    if not is_classifier_run(config):
        raise ExportError(
            f"{run_dir / 'config.json'}: task {task!r} cannot be exported to ONNX; lstmkit "
            "export --onnx takes classifier (classify, text) and forecasting (forecast) runs"
        )
    model, _, _ = load_run(run_dir)
    return export_onnx(model, path, opset=opset)
