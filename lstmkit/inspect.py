"""Look inside a text classifier: gate activations per token and each token's contribution.

:func:`inspect_text` reruns the recurrent stack of a loaded :class:`~lstmkit.bundle.Predictor`
one step at a time with each cell's own parameters and the equations of
:mod:`lstmkit.functional` (gate order i, f, g, o for LSTM; r, z, n for GRU), keeping what the
fused layers never return: the gate activations and the cell state at every step. The recomputed
hidden states reproduce the layer's outputs (tested to 1e-5).

Contributions are measured by **occlusion**: a token's contribution is the probability of the
predicted class for the text minus that probability when the token (and only it) is replaced by
the OOV id. Positive values support the prediction, negative ones speak against it; a token that
already reads as OOV contributes 0. Occlusion needs no gradient and works for every pooling.

:func:`plot_inspection` draws the result as a heatmap PNG (matplotlib, Agg backend).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from lstmkit.data.vocabulary import imdb_words
from lstmkit.errors import UnsupportedModelError

if TYPE_CHECKING:
    from lstmkit.bundle import Predictor
    from lstmkit.cells import RecurrentCell
    from lstmkit.models import SequenceClassifier

MAX_PLOT_TOKENS = 200
MAX_UNIT_TOKENS = 256  # the per-unit activations of inspect_text cover at most this many tokens
UNIT_DIGITS = 4  # ... rounded to this many decimals (gates lie in [0, 1])
OCCLUSION_BATCH = 256
GATE_NAMES = {"lstm": ("input", "forget", "output"), "gru": ("reset", "update"), "rnn": ()}


@dataclass
class DirectionTrace:
    """What one cell (one layer, one direction) did at every step of one sequence.

    Attributes:
        layer: layer index (0 = next to the embedding). direction: 'forward' or 'backward'.
        h: hidden states (T, H_out), in time order (also for the backward direction).
        c: cell states (T, H) for LSTM, None otherwise.
        gates: gate name -> activations (T, H): input/forget/output (LSTM), reset/update (GRU).
    """

    layer: int
    direction: str
    h: Tensor
    c: Tensor | None = None
    gates: dict[str, Tensor] = field(default_factory=dict)


def trace_recurrent(model: SequenceClassifier, feats: Tensor) -> list[DirectionTrace]:
    """Rerun ``model.rnn`` (eval mode) over ``feats`` (1, T, D) step by step; one
    :class:`DirectionTrace` per cell, in the order of ``model.rnn.cells`` (layer-major).

    The top layer's ``h`` (directions concatenated) equals ``model.rnn(feats)[0][0]``.
    """
    if feats.dim() != 3 or feats.shape[0] != 1:
        raise ValueError(f"expected features of shape (1, T, D), got {tuple(feats.shape)}")
    if len(getattr(model, "more_rnn", ())):
        raise UnsupportedModelError(
            f"inspection reads uniform recurrent stacks; this model has layer_sizes={model.config.layer_sizes}"
        )
    rnn = model.rnn
    kind = model.config.cell
    steps = feats.shape[1]
    traces: list[DirectionTrace] = []
    layer_in = feats
    with torch.no_grad():
        for layer in range(rnn.num_layers):
            outs = []
            for d in range(rnn.num_directions):
                cell: RecurrentCell = rnn.cells[layer * rnn.num_directions + d]  # type: ignore[assignment]
                gx = cell.input_projection(layer_in)[0]  # (T, G*H)
                state = [s[0] for s in cell.zero_state(1, feats)]  # h (and c), each (H,)
                rows: dict[str, list[Tensor]] = {}
                order = range(steps - 1, -1, -1) if d == 1 else range(steps)
                for t in order:
                    # the cell's own step (lstmkit.functional), which also reports its gates
                    gates: dict[str, Tensor] = {}
                    nxt = [
                        s[0]
                        for s in cell.step(
                            gx[t : t + 1],
                            tuple(s[None] for s in state),
                            cell.weight_hh,
                            None,
                            gates,
                        )
                    ]
                    new = {"h": nxt[0], **({"c": nxt[1]} if kind == "lstm" else {})}
                    new.update({k: v[0] for k, v in gates.items()})
                    if cell.zoneout:  # eval-mode zoneout: the expectation of the mixing
                        p = cell.zoneout
                        nxt = [p * o + (1 - p) * n for o, n in zip(state, nxt, strict=True)]
                        new["h"] = nxt[0]
                        if kind == "lstm":
                            new["c"] = nxt[1]
                    state = nxt
                    for name, value in new.items():
                        rows.setdefault(name, []).append(value)
                if d == 1:
                    rows = {k: v[::-1] for k, v in rows.items()}
                stacked = {k: torch.stack(v, 0) for k, v in rows.items()}
                h = stacked.pop("h")
                c = stacked.pop("c", None)
                traces.append(
                    DirectionTrace(layer, "backward" if d == 1 else "forward", h, c, stacked)
                )
                outs.append(h)
            layer_in = torch.cat(outs, -1)[None]
    return traces


def _token_names(predictor: Predictor, ids: list[int]) -> list[str]:
    """The vocabulary's word for each id; '<pad>', '<start>', '<oov>' for the special ids."""
    if predictor.tokenizer is not None:  # a run on your own texts: the tokenizer's tokens
        return [predictor.tokenizer.id_to_token(i) for i in ids]
    assert predictor.vocab is not None
    vocab = predictor.vocab
    inverse = {i: w for w, i in vocab.word_to_id.items()}
    special = {0: "<pad>", vocab.start_char: "<start>", vocab.oov_char: "<oov>"}
    return [special.get(i) or inverse.get(i, "<oov>") for i in ids]


def _source_words(text: str, count: int) -> list[str]:
    """The words of ``text`` behind the last ``count`` ids (the start marker first)."""
    words = ["<start>", *imdb_words(text)]
    return words[-count:]


def occlusion(
    model: SequenceClassifier, ids: list[int], oov: int, target: int
) -> tuple[list[float], list[float]]:
    """Probabilities of the text and each token's occlusion contribution to class ``target``.

    Returns ``(proba, contributions)``: proba (C,) of the text; contribution t = p(target) -
    p(target with token t replaced by ``oov``) (0 for a token that is already ``oov``).
    """
    base = torch.tensor([ids], dtype=torch.long)
    with torch.inference_mode():
        proba = model.predict_proba(base)[0]
        contrib: list[float] = []
        for start in range(0, len(ids), OCCLUSION_BATCH):
            pos = torch.arange(start, min(start + OCCLUSION_BATCH, len(ids)))
            batch = base.repeat(len(pos), 1)
            batch[torch.arange(len(pos)), pos] = oov
            p = model.predict_proba(batch)[:, target]
            contrib += (proba[target] - p).tolist()
    return proba.tolist(), [0.0 if i == oov else c for i, c in zip(ids, contrib, strict=True)]


def inspect_text(predictor: Predictor, text: str) -> dict[str, Any]:
    """Gates, states and token contributions of ``predictor``'s model on ``text`` (JSON-safe).

    Returns a dict with:

    - ``label``, ``probability`` (of the label), ``scores`` (label -> probability);
    - ``cell`` ('lstm' | 'gru' | 'rnn') and ``contribution_method`` ('occlusion');
    - ``tokens``: the vocabulary's word of each id ('<start>', '<oov>' for the markers), ``ids``
      and ``words`` (the text's own words behind the ids, so an OOV word keeps its spelling);
    - ``contributions``: one float per token (see the module docstring);
    - ``layers``: one entry per layer and direction: ``layer``, ``direction``, ``gates`` (gate
      name -> mean activation over the units at each step: input/forget/output for LSTM,
      reset/update for GRU, none for SimpleRNN), ``cell_norm`` (L2 norm of c per step, LSTM
      only, else None), ``hidden_norm`` (L2 norm of h per step) and ``units`` (gate name ->
      one list per unit of its activation at each of the first ``unit_tokens`` steps, rounded
      to :data:`UNIT_DIGITS` decimals: units x tokens, as char-RNN visualisations show them);
    - ``unit_tokens``: how many tokens (the first ones) ``units`` covers: at most
      :data:`MAX_UNIT_TOKENS`, so the answer stays below ~3 MB even for 2 bidirectional
      layers of 256 units.

    Raises:
        ValueError: an empty text, a model without vocabulary, or a model with a Conv1D front
            (its recurrent steps are not tokens).
    """
    model = predictor.model
    if model.conv is not None:
        raise UnsupportedModelError(
            "inspect needs a model whose recurrent steps are tokens; this one has a Conv1D front"
        )
    ids = predictor.encode([text])[0]
    oov = predictor.oov_id
    model.eval()
    with torch.inference_mode():
        first = model.predict_proba(torch.tensor([ids], dtype=torch.long))[0].tolist()
    k = max(range(len(first)), key=first.__getitem__)
    proba, contributions = occlusion(model, ids, oov, target=k)
    with torch.no_grad():
        feats, _ = model.features(torch.tensor([ids], dtype=torch.long))
        traces = trace_recurrent(model, feats)
    unit_tokens = min(len(ids), MAX_UNIT_TOKENS)
    layers = []
    for tr in traces:
        layers.append(
            {
                "layer": tr.layer,
                "direction": tr.direction,
                "gates": {name: g.mean(-1).tolist() for name, g in tr.gates.items()},
                "cell_norm": tr.c.norm(dim=-1).tolist() if tr.c is not None else None,
                "hidden_norm": tr.h.norm(dim=-1).tolist(),
                "units": {name: unit_rows(g, unit_tokens) for name, g in tr.gates.items()},
            }
        )
    return {
        "label": predictor.labels[k],
        "probability": proba[k],
        "scores": dict(zip(predictor.labels, proba, strict=True)),
        "cell": model.config.cell,
        "contribution_method": "occlusion",
        "tokens": _token_names(predictor, ids),
        "ids": list(ids),
        "words": (
            _token_names(predictor, ids)
            if predictor.tokenizer is not None
            else _source_words(text, len(ids))
        ),
        "contributions": contributions,
        "layers": layers,
        "unit_tokens": unit_tokens,
    }


def unit_rows(gate: Tensor, tokens: int) -> list[list[float]]:
    """A gate's activations (T, H) as H rows (one per unit) of its first ``tokens`` steps,
    rounded to :data:`UNIT_DIGITS` decimals."""
    return [[round(v, UNIT_DIGITS) for v in row] for row in gate[:tokens].T.tolist()]


def _heatmap_rows(result: dict[str, Any], n: int) -> tuple[list[str], list[list[float]]]:
    """Row labels and values (each cut to ``n`` tokens) of the gate/norm part of the heatmap.

    Gates lie in [0, 1]; each norm row is divided by its maximum so it fits the same scale.
    """
    labels: list[str] = []
    rows: list[list[float]] = []
    bidir = any(lay["direction"] == "backward" for lay in result["layers"])
    for lay in result["layers"]:
        tag = f"L{lay['layer']}" + (" bwd" if lay["direction"] == "backward" else " fwd") * bidir
        for name, values in lay["gates"].items():
            labels.append(f"{tag} {name}")
            rows.append(list(values[:n]))
        norm = lay["cell_norm"] if lay["cell_norm"] is not None else lay["hidden_norm"]
        top = max(max(norm[:n], default=0.0), 1e-12)
        labels.append(f"{tag} {'|c|' if lay['cell_norm'] is not None else '|h|'} (scaled)")
        rows.append([v / top for v in norm[:n]])
    return labels, rows


def plot_inspection(
    result: dict[str, Any], path: str | Path, *, max_tokens: int = MAX_PLOT_TOKENS
) -> Path:
    """Write a heatmap PNG of :func:`inspect_text`'s ``result`` to ``path``; return the path.

    Rows: the gates of each layer (and direction), the cell-state norm (hidden-state norm for
    GRU/SimpleRNN), and the token contributions (diverging colours, red = for the label);
    columns: the first ``max_tokens`` tokens.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    n = min(len(result["tokens"]), max_tokens)
    words = result.get("words") or result["tokens"]
    words = [str(w)[:14] for w in words[:n]]
    labels, rows = _heatmap_rows(result, n)
    contrib = list(result["contributions"][:n])
    width = min(max(6.0, 0.28 * n + 2.5), 60.0)
    height = 1.2 + 0.32 * (len(rows) + 1)
    fig, (ax_g, ax_c) = plt.subplots(
        2,
        1,
        figsize=(width, height + 1.2),
        sharex=True,
        gridspec_kw={"height_ratios": [max(len(rows), 1), 1]},
        squeeze=True,
    )
    try:
        if rows:
            im = ax_g.imshow(rows, aspect="auto", cmap="viridis", vmin=0.0, vmax=1.0)
            fig.colorbar(im, ax=ax_g, fraction=0.02, pad=0.01)
        ax_g.set_yticks(range(len(labels)), labels, fontsize=8)
        bound = max(max((abs(c) for c in contrib), default=0.0), 1e-9)
        im_c = ax_c.imshow([contrib], aspect="auto", cmap="RdBu_r", vmin=-bound, vmax=bound)
        fig.colorbar(im_c, ax=ax_c, fraction=0.02, pad=0.01)
        ax_c.set_yticks([0], ["contribution"], fontsize=8)
        ax_c.set_xticks(range(n), words, rotation=90, fontsize=7)
        prob = float(result.get("probability", 0.0))
        ax_g.set_title(
            f"{result.get('cell', '').upper()} -> {result['label']} (p = {prob:.3f})"
            + (
                f", first {n} of {len(result['tokens'])} tokens"
                if n < len(result["tokens"])
                else ""
            ),
            fontsize=10,
        )
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
    return path


def summarize(result: dict[str, Any], top: int = 5) -> str:
    """A few lines for the terminal: label and probability, the ``top`` tokens with the largest
    contribution, and the mean forget gate (LSTM) of each layer and direction."""
    lines = [f"label: {result['label']}  (p = {result['probability']:.4f})"]
    words = result.get("words") or result["tokens"]
    order = sorted(range(len(words)), key=lambda t: -result["contributions"][t])[:top]
    best = ", ".join(f"{words[t]} ({result['contributions'][t]:+.4f})" for t in order)
    lines.append(f"top {len(order)} tokens: {best}")
    for lay in result["layers"]:
        forget = lay["gates"].get("forget")
        if forget:
            lines.append(
                f"layer {lay['layer']} {lay['direction']}: mean forget gate "
                f"{sum(forget) / len(forget):.4f}"
            )
    return "\n".join(lines)
