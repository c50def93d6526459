"""Tests of the NumPy reference (lstmkit.reference).

1. The hand-written backward passes against central differences (max abs error <= 1e-6).
2. Forward and backward against torch.nn.LSTM / nn.GRU / nn.RNN in float64 (<= 1e-8), including
   stacked bidirectional layers, LSTM projections and packed (post-padded) sequences.
3. Masking / direction semantics of docs/design.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from lstmkit.reference import (
    activation,
    activation_grad,
    check_gradients,
    gradient_errors,
    gru_forward,
    lengths_to_mask,
    lstm_backward,
    lstm_forward,
    numeric_grad,
    rnn_forward,
    stack_backward,
    stack_forward,
)

GATES = {"lstm": 4, "gru": 3, "rnn": 1}
GRAD_TOL = 1e-6  # analytic vs numeric (central differences, eps = 1e-6)
TORCH_TOL = 1e-8  # reference vs torch autograd, both float64


def make_cell(
    kind: str,
    d_in: int,
    hidden: int,
    rng: np.random.Generator,
    *,
    proj: int = 0,
    peephole: bool = False,
    bias: bool = True,
) -> dict[str, np.ndarray]:
    """Random parameters of one cell with the design.md names and shapes."""
    g = GATES[kind] * hidden
    h_out = proj or hidden
    p = {
        "weight_ih": rng.normal(0.0, 0.6, (g, d_in)),  # (gH, D)
        "weight_hh": rng.normal(0.0, 0.6, (g, h_out)),  # (gH, H_out)
    }
    if bias:
        p["bias_ih"] = rng.normal(0.0, 0.3, g)  # (gH,)
        p["bias_hh"] = rng.normal(0.0, 0.3, g)  # (gH,)
    if proj:
        p["weight_hr"] = rng.normal(0.0, 0.6, (proj, hidden))  # (P, H)
    if peephole:
        for name in ("weight_ci", "weight_cf", "weight_co"):
            p[name] = rng.normal(0.0, 0.5, hidden)  # (H,)
    return p


def make_stack(
    kind: str,
    d_in: int,
    hidden: int,
    num_layers: int,
    bidirectional: bool,
    rng: np.random.Generator,
    **cell_kw: Any,
) -> list[dict[str, np.ndarray]]:
    """Parameters of every cell k = layer * dirs + direction."""
    dirs = 2 if bidirectional else 1
    h_out = cell_kw.get("proj") or hidden
    return [
        make_cell(kind, d_in if layer == 0 else dirs * h_out, hidden, rng, **cell_kw)
        for layer in range(num_layers)
        for _ in range(dirs)
    ]


def max_abs(errs: dict[str, tuple[float, float]]) -> float:
    return max(a for a, _ in errs.values())


# --------------------------------------------------------------------------------------------
# 1. numeric gradient check of the reference itself
# --------------------------------------------------------------------------------------------

GRADCHECK_CASES: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
    # id, kind, make_cell kwargs, stack/cell options
    ("rnn-tanh", "rnn", {}, {"activation": "tanh"}),
    ("rnn-relu", "rnn", {}, {"activation": "relu"}),
    ("rnn-nobias", "rnn", {"bias": False}, {}),
    ("gru-reset-after", "gru", {}, {"reset_after": True}),
    ("gru-reset-before", "gru", {}, {"reset_after": False}),
    ("gru-hard-sigmoid", "gru", {}, {"recurrent_activation": "hard_sigmoid"}),
    ("lstm-plain", "lstm", {}, {}),
    ("lstm-forget-bias", "lstm", {}, {"forget_bias": 1.0}),
    ("lstm-peephole", "lstm", {"peephole": True}, {"forget_bias": 1.0}),
    ("lstm-proj", "lstm", {"proj": 3}, {}),
    ("lstm-peephole-proj", "lstm", {"peephole": True, "proj": 2}, {"forget_bias": 1.0}),
    ("lstm-softsign", "lstm", {}, {"activation": "softsign"}),
    ("lstm-nobias", "lstm", {"bias": False}, {}),
]


@pytest.mark.parametrize(
    ("kind", "cell_kw", "opts"),
    [pytest.param(k, c, o, id=i) for i, k, c, o in GRADCHECK_CASES],
)
def test_gradcheck_single_layer(kind: str, cell_kw: dict[str, Any], opts: dict[str, Any]) -> None:
    rng = np.random.default_rng(1)
    bsz, steps, d_in, hidden = 3, 4, 3, 4
    params = make_stack(kind, d_in, hidden, 1, False, rng, **cell_kw)
    h_out = cell_kw.get("proj") or hidden
    x = rng.normal(size=(bsz, steps, d_in))
    h0 = rng.normal(size=(1, bsz, h_out))
    c0 = rng.normal(size=(1, bsz, hidden)) if kind == "lstm" else None
    errs = gradient_errors(
        kind, x, params, h0, c0, num_layers=1, bidirectional=False, seed=2, **opts
    )
    n_expected = 2 + (kind == "lstm") + len(params[0])
    assert len(errs) == n_expected
    assert max_abs(errs) <= GRAD_TOL, errs


@pytest.mark.parametrize("padding", ["post", "pre"])
@pytest.mark.parametrize(
    ("kind", "opts"),
    [
        ("lstm", {"forget_bias": 1.0}),
        ("gru", {"reset_after": True}),
        ("gru", {"reset_after": False}),
        ("rnn", {}),
    ],
    ids=["lstm", "gru-after", "gru-before", "rnn"],
)
def test_gradcheck_masked_bidirectional(kind: str, opts: dict[str, Any], padding: str) -> None:
    rng = np.random.default_rng(3)
    bsz, steps, d_in, hidden = 3, 5, 3, 4
    params = make_stack(kind, d_in, hidden, 1, True, rng, peephole=kind == "lstm")
    mask = lengths_to_mask([5, 3, 1], steps, padding).astype(bool)  # bool masks are accepted
    x = rng.normal(size=(bsz, steps, d_in))
    h0 = rng.normal(size=(2, bsz, hidden))
    c0 = rng.normal(size=(2, bsz, hidden)) if kind == "lstm" else None
    errs = gradient_errors(
        kind, x, params, h0, c0, num_layers=1, bidirectional=True, mask=mask, **opts
    )
    assert max_abs(errs) <= GRAD_TOL, errs


@pytest.mark.parametrize(
    ("kind", "cell_kw", "opts"),
    [
        ("lstm", {"peephole": True, "proj": 3}, {"forget_bias": 1.0}),
        ("lstm", {}, {}),
        ("gru", {}, {"reset_after": True}),
        ("gru", {}, {"reset_after": False}),
        ("rnn", {}, {"activation": "relu"}),
    ],
    ids=["lstm-peephole-proj", "lstm", "gru-after", "gru-before", "rnn-relu"],
)
def test_gradcheck_stacked_bidirectional(
    kind: str, cell_kw: dict[str, Any], opts: dict[str, Any]
) -> None:
    rng = np.random.default_rng(4)
    bsz, steps, d_in, hidden = 2, 3, 3, 4
    params = make_stack(kind, d_in, hidden, 2, True, rng, **cell_kw)
    h_out = cell_kw.get("proj") or hidden
    x = rng.normal(size=(bsz, steps, d_in))
    h0 = rng.normal(size=(4, bsz, h_out))
    c0 = rng.normal(size=(4, bsz, hidden)) if kind == "lstm" else None
    mask = lengths_to_mask([3, 2], steps, "post")
    errs = gradient_errors(
        kind, x, params, h0, c0, num_layers=2, bidirectional=True, mask=mask, **opts
    )
    assert len([k for k in errs if k.startswith("cell")]) == sum(len(p) for p in params)
    assert max_abs(errs) <= GRAD_TOL, errs


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_gradcheck_recurrent_dropout_mask(kind: str) -> None:
    rng = np.random.default_rng(5)
    bsz, steps, d_in, hidden = 2, 4, 3, 4
    params = make_stack(kind, d_in, hidden, 1, True, rng)
    keep = rng.random((2, bsz, hidden)) > 0.3
    masks = [k / 0.7 for k in keep.astype(np.float64)]  # (B, H_out) per cell, scaled 1/(1-p)
    x = rng.normal(size=(bsz, steps, d_in))
    errs = gradient_errors(kind, x, params, num_layers=1, bidirectional=True, dropout_masks=masks)
    assert max_abs(errs) <= GRAD_TOL, errs
    # the mask matters: an all-ones mask gives a different output
    y_drop = stack_forward(kind, x, params, num_layers=1, bidirectional=True, dropout_masks=masks)
    y_full = stack_forward(kind, x, params, num_layers=1, bidirectional=True)
    assert np.max(np.abs(y_drop[0] - y_full[0])) > 1e-3


def test_gradcheck_lstm_reverse_single_cell() -> None:
    """lstm_forward(reverse=True) / lstm_backward directly, against numeric_grad."""
    rng = np.random.default_rng(6)
    bsz, steps, d_in, hidden = 2, 5, 3, 4
    p = make_cell("lstm", d_in, hidden, rng, peephole=True, proj=3)
    x = rng.normal(size=(bsz, steps, d_in))
    h0 = rng.normal(size=(bsz, 3))
    c0 = rng.normal(size=(bsz, hidden))
    mask = lengths_to_mask([5, 2], steps, "pre")
    opts: dict[str, Any] = {"mask": mask, "reverse": True, "forget_bias": 1.0}
    y, h_t, c_t, cache = lstm_forward(x, h0, c0, p, **opts)
    r_y, r_h, r_c = (rng.normal(size=a.shape) for a in (y, h_t, c_t))

    def loss() -> float:
        y_, h_, c_, _ = lstm_forward(x, h0, c0, p, **opts)
        return float(np.sum(y_ * r_y) + np.sum(h_ * r_h) + np.sum(c_ * r_c))

    dx, dh0, dc0, dp = lstm_backward(r_y, r_h, r_c, cache)
    worst = max(
        np.max(np.abs(dx - numeric_grad(loss, x))),
        np.max(np.abs(dh0 - numeric_grad(loss, h0))),
        np.max(np.abs(dc0 - numeric_grad(loss, c0))),
        *(np.max(np.abs(dp[k] - numeric_grad(loss, p[k]))) for k in p),
    )
    assert set(dp) == set(p)
    assert worst <= GRAD_TOL


def test_check_gradients_returns_small_relative_error() -> None:
    rng = np.random.default_rng(7)
    params = make_stack("gru", 3, 4, 1, False, rng)
    x = rng.normal(size=(2, 3, 3))
    rel = check_gradients("gru", x, params, num_layers=1, bidirectional=False)
    assert isinstance(rel, float)
    assert 0.0 <= rel < 1e-7


def test_gradcheck_detects_a_wrong_backward() -> None:
    """A perturbed analytic gradient must be reported (the check is not vacuous)."""
    rng = np.random.default_rng(8)
    w = rng.normal(size=(3, 2))

    def loss() -> float:
        return float(np.sum(np.tanh(w) ** 2))

    good = 2.0 * np.tanh(w) * (1.0 - np.tanh(w) ** 2)
    num = numeric_grad(loss, w)
    assert np.max(np.abs(good - num)) < 1e-9
    assert np.max(np.abs(1.01 * good - num)) > 1e-4


@pytest.mark.parametrize(
    "name", ["tanh", "softsign", "relu", "sigmoid", "hard_tanh", "identity", "hard_sigmoid"]
)
def test_activation_grad_matches_numeric(name: str) -> None:
    a = np.array([-3.7, -2.2, -0.8, -0.3, 0.4, 0.9, 1.6, 2.5, 3.3])
    y = activation(name, a)
    eps = 1e-6
    num = (activation(name, a + eps) - activation(name, a - eps)) / (2 * eps)
    assert np.max(np.abs(activation_grad(name, a, y) - num)) < 1e-8
    if name == "hard_sigmoid":
        assert np.allclose(y, np.clip(a + 3.0, 0.0, 6.0) / 6.0)


# --------------------------------------------------------------------------------------------
# 2. cross-check against torch.nn.LSTM / GRU / RNN (float64)
# --------------------------------------------------------------------------------------------


def torch_module(
    kind: str,
    d_in: int,
    hidden: int,
    num_layers: int,
    bidirectional: bool,
    proj: int,
    nonlinearity: str,
    params: list[dict[str, np.ndarray]],
) -> torch.nn.Module:
    """A float64 torch module carrying exactly ``params``."""
    common: dict[str, Any] = dict(
        input_size=d_in,
        hidden_size=hidden,
        num_layers=num_layers,
        bidirectional=bidirectional,
        batch_first=True,
        dtype=torch.float64,
    )
    mod: torch.nn.Module
    if kind == "lstm":
        mod = torch.nn.LSTM(proj_size=proj, **common)
    elif kind == "gru":
        mod = torch.nn.GRU(**common)
    else:
        mod = torch.nn.RNN(nonlinearity=nonlinearity, **common)
    dirs = 2 if bidirectional else 1
    with torch.no_grad():
        for k, p in enumerate(params):
            layer, direction = divmod(k, dirs)
            suffix = f"_l{layer}" + ("_reverse" if direction else "")
            for name, value in p.items():
                getattr(mod, name + suffix).copy_(torch.from_numpy(value))
    n_torch = sum(1 for _ in mod.parameters())
    assert n_torch == sum(len(p) for p in params)
    return mod


TORCH_CASES = [
    # kind, num_layers, bidirectional, proj, nonlinearity, packed
    ("lstm", 1, False, 0, "tanh", False),
    ("lstm", 1, True, 0, "tanh", True),
    ("lstm", 2, True, 0, "tanh", False),
    ("lstm", 2, True, 0, "tanh", True),
    ("lstm", 1, False, 3, "tanh", True),
    ("lstm", 2, True, 3, "tanh", False),
    ("lstm", 2, True, 3, "tanh", True),
    ("gru", 1, False, 0, "tanh", False),
    ("gru", 1, True, 0, "tanh", True),
    ("gru", 2, True, 0, "tanh", False),
    ("gru", 2, True, 0, "tanh", True),
    ("rnn", 1, False, 0, "tanh", False),
    ("rnn", 2, True, 0, "tanh", True),
    ("rnn", 1, False, 0, "relu", True),
    ("rnn", 2, True, 0, "relu", False),
]


def _case_id(case: tuple[str, int, bool, int, str, bool]) -> str:
    kind, layers, bi, proj, nl, packed = case
    parts = [kind if kind != "rnn" else f"rnn-{nl}", f"L{layers}", "bi" if bi else "uni"]
    if proj:
        parts.append(f"proj{proj}")
    if packed:
        parts.append("packed")
    return "-".join(parts)


@pytest.mark.parametrize(
    ("kind", "num_layers", "bidirectional", "proj", "nonlinearity", "packed"),
    TORCH_CASES,
    ids=[_case_id(c) for c in TORCH_CASES],
)
def test_matches_torch(
    kind: str, num_layers: int, bidirectional: bool, proj: int, nonlinearity: str, packed: bool
) -> None:
    rng = np.random.default_rng(11)
    bsz, steps, d_in, hidden = 3, 5, 3, 4
    dirs = 2 if bidirectional else 1
    h_out = proj or hidden
    params = make_stack(kind, d_in, hidden, num_layers, bidirectional, rng, proj=proj)
    x = rng.normal(size=(bsz, steps, d_in))
    h0 = rng.normal(size=(num_layers * dirs, bsz, h_out))
    c0 = rng.normal(size=(num_layers * dirs, bsz, hidden)) if kind == "lstm" else None
    lengths = np.array([3, 5, 2])  # unsorted on purpose
    mask = lengths_to_mask(lengths, steps, "post") if packed else None

    # reference
    opts: dict[str, Any] = {"activation": nonlinearity} if kind == "rnn" else {}
    y, h_t, c_t, cache = stack_forward(
        kind,
        x,
        params,
        h0,
        c0,
        num_layers=num_layers,
        bidirectional=bidirectional,
        mask=mask,
        **opts,
    )
    r_y = rng.normal(size=y.shape)
    r_h = rng.normal(size=h_t.shape)
    r_c = rng.normal(size=c_t.shape) if c_t is not None else None
    dx, dh0, dc0, dparams = stack_backward(r_y, r_h, r_c, cache)
    assert y.shape == (bsz, steps, dirs * h_out)

    # torch
    mod = torch_module(kind, d_in, hidden, num_layers, bidirectional, proj, nonlinearity, params)
    xt = torch.tensor(x, requires_grad=True)
    h0t = torch.tensor(h0, requires_grad=True)
    c0t = torch.tensor(c0, requires_grad=True) if c0 is not None else None
    state: Any = (h0t, c0t) if kind == "lstm" else h0t
    if packed:
        inp = pack_padded_sequence(
            xt, torch.from_numpy(lengths), batch_first=True, enforce_sorted=False
        )
        out_packed, st = mod(inp, state)
        out, _ = pad_packed_sequence(out_packed, batch_first=True, total_length=steps)
    else:
        out, st = mod(xt, state)
    hn, cn = st if kind == "lstm" else (st, None)
    loss = (out * torch.from_numpy(r_y)).sum() + (hn * torch.from_numpy(r_h)).sum()
    if cn is not None and r_c is not None:
        loss = loss + (cn * torch.from_numpy(r_c)).sum()
    loss.backward()

    def diff(a: np.ndarray | None, b: torch.Tensor | None) -> float:
        assert a is not None and b is not None
        return float(np.max(np.abs(a - b.detach().numpy())))

    errors = {
        "y": diff(y, out),
        "hT": diff(h_t, hn),
        "dx": diff(dx, xt.grad),
        "dh0": diff(dh0, h0t.grad),
    }
    if kind == "lstm":
        assert c0t is not None
        errors["cT"] = diff(c_t, cn)
        errors["dc0"] = diff(dc0, c0t.grad)
    for k, dp in enumerate(dparams):
        layer, direction = divmod(k, dirs)
        suffix = f"_l{layer}" + ("_reverse" if direction else "")
        for name, g in dp.items():
            errors[f"d{name}{suffix}"] = diff(g, getattr(mod, name + suffix).grad)
    assert len(errors) == 4 + 2 * (kind == "lstm") + sum(len(p) for p in params)
    assert max(errors.values()) <= TORCH_TOL, errors
    if packed:  # padded outputs are exactly zero in both
        assert np.all(y[lengths_to_mask(lengths, steps) == 0] == 0.0)


def test_forget_bias_equals_folded_bias_hh() -> None:
    """forget_bias is the same as adding it to bias_hh[H:2H] (what converters do)."""
    rng = np.random.default_rng(12)
    hidden = 4
    p = make_cell("lstm", 3, hidden, rng)
    folded = {k: v.copy() for k, v in p.items()}
    folded["bias_hh"][hidden : 2 * hidden] += 1.0
    x = rng.normal(size=(2, 4, 3))
    y1, h1, c1, _ = lstm_forward(x, None, None, p, forget_bias=1.0)
    y2, h2, c2, _ = lstm_forward(x, None, None, folded, forget_bias=0.0)
    assert np.max(np.abs(y1 - y2)) < 1e-14
    assert np.max(np.abs(c1 - c2)) < 1e-14


def _sig(a: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-a))


def test_lstm_one_step_matches_design_equations() -> None:
    """Peephole (o on the NEW cell), forget_bias and projection, written out as in design.md."""
    rng = np.random.default_rng(17)
    hidden, proj = 4, 3
    p = make_cell("lstm", 3, hidden, rng, peephole=True, proj=proj)
    x = rng.normal(size=(2, 1, 3))
    h = rng.normal(size=(2, proj))
    c = rng.normal(size=(2, hidden))
    z = x[:, 0] @ p["weight_ih"].T + p["bias_ih"] + h @ p["weight_hh"].T + p["bias_hh"]
    z_i, z_f, z_g, z_o = np.split(z, 4, axis=1)
    i = _sig(z_i + p["weight_ci"] * c)
    f = _sig(z_f + 1.0 + p["weight_cf"] * c)
    c_new = f * c + i * np.tanh(z_g)
    o = _sig(z_o + p["weight_co"] * c_new)
    h_new = (o * np.tanh(c_new)) @ p["weight_hr"].T
    y, h_t, c_t, _ = lstm_forward(x, h, c, p, forget_bias=1.0)
    assert np.max(np.abs(c_t - c_new)) < 1e-14
    assert np.max(np.abs(h_t - h_new)) < 1e-14
    assert np.max(np.abs(y[:, 0] - h_new)) < 1e-14


def test_gru_reset_before_one_step_matches_design_equations() -> None:
    """reset_after=False (Cho et al.): n = tanh(gx_n + (r * h) W_hn^T + b_hn)."""
    rng = np.random.default_rng(18)
    hidden = 4
    p = make_cell("gru", 3, hidden, rng)
    x = rng.normal(size=(2, 1, 3))
    h = rng.normal(size=(2, hidden))
    w_r, w_z, w_n = np.split(p["weight_hh"], 3, axis=0)
    b_r, b_z, b_n = np.split(p["bias_hh"], 3)
    gx_r, gx_z, gx_n = np.split(x[:, 0] @ p["weight_ih"].T + p["bias_ih"], 3, axis=1)
    r = _sig(gx_r + h @ w_r.T + b_r)
    z = _sig(gx_z + h @ w_z.T + b_z)
    n = np.tanh(gx_n + (r * h) @ w_n.T + b_n)
    h_new = (1.0 - z) * n + z * h
    _, h_t, _ = gru_forward(x, h, p, reset_after=False)
    assert np.max(np.abs(h_t - h_new)) < 1e-14


# --------------------------------------------------------------------------------------------
# 3. masking and direction semantics
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("padding", ["post", "pre"])
@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_mask_equals_running_the_unpadded_sequence(kind: str, padding: str, reverse: bool) -> None:
    rng = np.random.default_rng(13)
    bsz, steps, d_in, hidden = 3, 6, 3, 4
    p = make_cell(kind, d_in, hidden, rng, peephole=kind == "lstm")
    x = rng.normal(size=(bsz, steps, d_in))
    h0 = rng.normal(size=(bsz, hidden))
    lengths = [6, 4, 1]
    mask = lengths_to_mask(lengths, steps, padding)

    def run(xx: np.ndarray, hh: np.ndarray, mm: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        if kind == "lstm":
            y, h, _, _ = lstm_forward(xx, hh, None, p, mask=mm, reverse=reverse, forget_bias=1.0)
        elif kind == "gru":
            y, h, _ = gru_forward(xx, hh, p, mask=mm, reverse=reverse)
        else:
            y, h, _ = rnn_forward(xx, hh, p, mask=mm, reverse=reverse)
        return y, h

    y, h_t = run(x, h0, mask)
    for b, n in enumerate(lengths):
        sl = slice(0, n) if padding == "post" else slice(steps - n, steps)
        y_b, h_b = run(x[b : b + 1, sl], h0[b : b + 1], None)
        assert np.max(np.abs(y[b, sl] - y_b[0])) < 1e-13
        assert np.max(np.abs(h_t[b] - h_b[0])) < 1e-13
        assert np.all(y[b][mask[b] == 0] == 0.0)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_reverse_is_forward_on_flipped_time(kind: str) -> None:
    rng = np.random.default_rng(14)
    p = make_cell(kind, 3, 4, rng)
    x = rng.normal(size=(2, 5, 3))
    if kind == "lstm":
        y_r, h_r, _, _ = lstm_forward(x, None, None, p, reverse=True)
        y_f, h_f, _, _ = lstm_forward(x[:, ::-1], None, None, p)
    elif kind == "gru":
        y_r, h_r, _ = gru_forward(x, None, p, reverse=True)
        y_f, h_f, _ = gru_forward(x[:, ::-1], None, p)
    else:
        y_r, h_r, _ = rnn_forward(x, None, p, reverse=True)
        y_f, h_f, _ = rnn_forward(x[:, ::-1], None, p)
    assert np.max(np.abs(y_r - y_f[:, ::-1])) < 1e-14
    assert np.max(np.abs(h_r - h_f)) < 1e-14


def test_gru_conventions_differ() -> None:
    """reset_after=True and False are different functions (same weights)."""
    rng = np.random.default_rng(15)
    p = make_cell("gru", 3, 4, rng)
    x = rng.normal(size=(2, 4, 3))
    h0 = rng.normal(size=(2, 4))
    y1, _, _ = gru_forward(x, h0, p, reset_after=True)
    y2, _, _ = gru_forward(x, h0, p, reset_after=False)
    assert np.max(np.abs(y1 - y2)) > 1e-3


def test_bad_shapes_raise() -> None:
    rng = np.random.default_rng(16)
    p = make_cell("lstm", 3, 4, rng)
    x = rng.normal(size=(2, 4, 3))
    with pytest.raises(ValueError):
        lstm_forward(x[:, :, :2], None, None, p)
    with pytest.raises(ValueError):
        lstm_forward(x, np.zeros((2, 5)), None, p)
    with pytest.raises(ValueError):
        lstm_forward(x, None, None, p, mask=np.ones((2, 3)))
    with pytest.raises(ValueError):
        lstm_forward(x, None, None, p, activation="gelu")
    with pytest.raises(ValueError):
        stack_forward("lstm", x, [p], num_layers=1, bidirectional=True)
