"""lstmkit layers (loop and fused) against the NumPy reference with hand-written BPTT.

This is where the options torch.nn cannot check are verified: peephole, forget_bias, softsign,
hard_sigmoid, GRU reset-before, a fixed recurrent-dropout mask, with lengths, 'pre'/'post'
padding, several layers and both directions. Every gradient (inputs, initial state, all weights).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor

import lstmkit
from lstmkit.layers import Recurrent, _steps_mask
from lstmkit.reference import stack_backward, stack_forward
from lstmkit.reference.lstm import LSTM_PARAM_NAMES

CASES: list[tuple[str, int, bool, dict[str, Any]]] = [
    # kind, layers, bidirectional, options
    ("lstm", 1, False, {"forget_bias": 1.0}),
    ("lstm", 2, True, {"forget_bias": 1.0, "peephole": True}),
    ("lstm", 2, False, {"peephole": True, "proj_size": 3}),
    ("lstm", 1, True, {"activation": "softsign", "recurrent_activation": "hard_sigmoid"}),
    ("lstm", 2, True, {"bias": False, "forget_bias": 0.5}),
    ("gru", 2, True, {"reset_after": False}),
    ("gru", 1, False, {"reset_after": True, "recurrent_activation": "hard_sigmoid"}),
    ("rnn", 2, True, {"activation": "relu"}),
    ("rnn", 1, False, {"activation": "softsign"}),
]
REF_KEYS = LSTM_PARAM_NAMES  # every parameter the reference knows (GRU/RNN use a subset)


def _ref_opts(kind: str, opts: dict[str, Any]) -> dict[str, Any]:
    out = {
        k: v for k, v in opts.items() if k in ("activation", "recurrent_activation", "reset_after")
    }
    if kind == "lstm":
        out["forget_bias"] = opts.get("forget_bias", 1.0)
    if kind == "rnn":
        out.pop("recurrent_activation", None)
    return out


def _cell_params(layer: Recurrent) -> list[dict[str, np.ndarray]]:
    return [
        {n: p.detach().numpy() for n, p in cell.named_parameters() if n in REF_KEYS}
        for cell in layer.cells
    ]


def _ids(case: tuple[Any, ...]) -> str:
    kind, layers, bi, opts = case
    return f"{kind}-L{layers}-{'bi' if bi else 'uni'}-" + "-".join(
        f"{k}={v}" for k, v in opts.items()
    )


@pytest.mark.parametrize("case", CASES, ids=_ids)
@pytest.mark.parametrize("padding", [None, "post", "pre"])
@pytest.mark.parametrize("dropout_mask", [False, True])
def test_loop_equals_reference(
    case: tuple[Any, ...], padding: str | None, dropout_mask: bool
) -> None:
    kind, num_layers, bi, opts = case
    torch.manual_seed(0)
    cls = {"lstm": lstmkit.LSTM, "gru": lstmkit.GRU, "rnn": lstmkit.RNN}[kind]
    extra = {"recurrent_dropout": 0.4} if dropout_mask else {}
    layer = cls(3, 5, num_layers, bidirectional=bi, impl="loop", **opts, **extra).double().train()
    batch, steps = 3, 6
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(batch, steps, 3, dtype=torch.float64, generator=gen)
    lengths = torch.tensor([6, 2, 4]) if padding else None
    n = num_layers * layer.num_directions
    state = [torch.randn(n, batch, layer.output_size, dtype=torch.float64, generator=gen)]
    if kind == "lstm":
        state.append(torch.randn(n, batch, layer.hidden_size, dtype=torch.float64, generator=gen))
    masks = layer.draw_masks(batch, steps, x, torch.Generator().manual_seed(4))

    # ours: autograd through the per-step loop
    xg = x.clone().requires_grad_(True)
    sg = [s.clone().requires_grad_(True) for s in state]
    out, fin = layer(
        xg,
        tuple(sg) if kind == "lstm" else sg[0],
        lengths=lengths,
        padding=padding or "post",
        generator=torch.Generator().manual_seed(4),
    )
    fin_t = fin if isinstance(fin, tuple) else (fin,)
    dy = torch.randn(out.shape, dtype=torch.float64, generator=gen)
    dfin = [torch.randn(f.shape, dtype=torch.float64, generator=gen) for f in fin_t]
    loss = (out * dy).sum() + sum((f * d).sum() for f, d in zip(fin_t, dfin, strict=True))
    loss.backward()

    # reference: NumPy forward + hand-written BPTT
    np_mask = None if lengths is None else _steps_mask(lengths, steps, padding or "post").numpy()
    drop = [m.numpy() for m in masks.recurrent] if dropout_mask else None
    y, h_t, c_t, cache = stack_forward(
        kind,
        x.numpy(),
        _cell_params(layer),
        state[0].numpy(),
        state[1].numpy() if kind == "lstm" else None,
        num_layers=num_layers,
        bidirectional=bi,
        mask=np_mask,
        dropout_masks=drop,
        **_ref_opts(kind, opts),
    )
    dx, dh0, dc0, dparams = stack_backward(
        dy.numpy(), dfin[0].numpy(), dfin[1].numpy() if kind == "lstm" else None, cache
    )

    def close(a: Tensor, b: np.ndarray) -> float:
        return float(np.abs(a.detach().numpy() - b).max())

    tol = 1e-6
    assert close(out, y) <= tol
    assert close(fin_t[0], h_t) <= tol
    if kind == "lstm":
        assert c_t is not None and dc0 is not None
        assert close(fin_t[1], c_t) <= tol
        assert close(sg[1].grad, dc0) <= tol
    assert close(xg.grad, dx) <= tol
    assert close(sg[0].grad, dh0) <= tol
    checked = 0
    for cell, dp in zip(layer.cells, dparams, strict=True):
        for name, p in cell.named_parameters():
            if name in dp:
                assert close(p.grad, dp[name]) <= tol, name
                checked += 1
    assert checked == sum(len(d) for d in dparams) > 0


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_fused_equals_reference_with_forget_bias_and_lengths(kind: str) -> None:
    """The fused path too, with forget_bias folded into bias_hh (LSTM), in float32 (<= 1e-4)."""
    torch.manual_seed(1)
    cls = {"lstm": lstmkit.LSTM, "gru": lstmkit.GRU, "rnn": lstmkit.RNN}[kind]
    layer = cls(4, 6, 2, bidirectional=True, impl="fused").eval()
    x = torch.randn(3, 5, 4)
    lengths = torch.tensor([5, 1, 3])
    out, fin = layer(x, lengths=lengths)
    h_n = fin[0] if isinstance(fin, tuple) else fin
    opts = {"forget_bias": 1.0} if kind == "lstm" else {}
    y, h_t, _, _ = stack_forward(
        kind,
        x.numpy().astype(np.float64),
        _cell_params(layer),
        num_layers=2,
        bidirectional=True,
        mask=_steps_mask(lengths, 5, "post").numpy(),
        **opts,
    )
    assert float(np.abs(out.detach().numpy() - y).max()) <= 1e-4
    assert float(np.abs(h_n.detach().numpy() - h_t).max()) <= 1e-4
