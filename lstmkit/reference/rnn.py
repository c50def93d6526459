"""NumPy float64 reference SimpleRNN (one layer, one direction): forward and hand-written BPTT.

With ``x_t`` the input at step t, ``h`` the previous state, ``m`` the optional recurrent-dropout
mask ``(B, H)`` and ``s = mask[:, t]`` (1 = real token)::

    a   = x_t W_ih^T + b_ih + (h * m) W_hh^T + b_hh          # (B, H)
    h'  = act(a)                                             # tanh by default, relu allowed
    y_t = s * h' ;  h = s * h' + (1 - s) * h                 # a padded step keeps the state

``reverse=True`` visits t = T-1 .. 0.

Backward (per step, in the reverse of the visiting order)::

    da = s * (dh + dy_t) * act'(a) ;  dx_t = da W_ih ;  dh_prev = (1 - s) * dh + (da W_hh) * m
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .common import (
    Array,
    Cache,
    Params,
    as_f64,
    check_activation,
    prepare_mask,
    prepare_state,
    time_order,
)
from .common import activation as apply_act
from .common import activation_grad as act_grad

RNN_PARAM_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def _rnn_params(params: dict[str, Any], d_in: int) -> tuple[Params, int]:
    """Validate ``params`` and return (float64 params, H)."""
    unknown = set(params) - set(RNN_PARAM_NAMES)
    if unknown:
        raise ValueError(f"unknown RNN parameters {sorted(unknown)}")
    p = {k: as_f64(v) for k, v in params.items()}
    hidden, d = p["weight_ih"].shape
    if d != d_in:
        raise ValueError(f"weight_ih must be (H, {d_in}), got {p['weight_ih'].shape}")
    if p["weight_hh"].shape != (hidden, hidden):
        raise ValueError(f"weight_hh must be {(hidden, hidden)}, got {p['weight_hh'].shape}")
    for name in ("bias_ih", "bias_hh"):
        if name in p and p[name].shape != (hidden,):
            raise ValueError(f"{name} must be ({hidden},), got {p[name].shape}")
    return p, hidden


def rnn_forward(
    x: Any,
    h0: Any | None,
    params: dict[str, Any],
    *,
    mask: Any | None = None,
    reverse: bool = False,
    activation: str = "tanh",
    dropout_mask: Any | None = None,
) -> tuple[Array, Array, Cache]:
    """Run one SimpleRNN direction over ``x`` and return ``(y, hT, cache)``.

    Args:
        x: input ``(B, T, D)``.
        h0: initial state ``(B, H)`` (zeros when None).
        params: ``weight_ih (H, D)``, ``weight_hh (H, H)``, optional ``bias_ih``/``bias_hh (H,)``.
        mask: optional ``(B, T)`` bool/float, 1 at real tokens.
        reverse: visit t = T-1 .. 0.
        activation: 'tanh' (default) or 'relu' (any name of docs/design.md is accepted).
        dropout_mask: optional fixed recurrent-dropout mask ``(B, H)``.

    Returns:
        ``y (B, T, H)``, ``hT (B, H)`` and the cache for ``rnn_backward``.
    """
    check_activation(activation)
    x = as_f64(x)
    bsz, steps, d_in = x.shape
    p, H = _rnn_params(params, d_in)
    h = prepare_state(h0, bsz, H, "h0")  # (B, H)
    s = prepare_mask(mask, bsz, steps)  # (B, T)
    m = prepare_state(dropout_mask, bsz, H, "dropout_mask") if dropout_mask is not None else None
    h_init = h
    bias = p.get("bias_ih", np.zeros(H)) + p.get("bias_hh", np.zeros(H))  # (H,)

    hs_prev = np.zeros((steps, bsz, H))  # h entering step t
    pre = np.zeros((steps, bsz, H))  # a
    out = np.zeros((steps, bsz, H))  # act(a)
    y = np.zeros((steps, bsz, H))  # time-major while looping
    for t in time_order(steps, reverse):
        hs_prev[t] = h
        hm = h * m if m is not None else h
        pre[t] = x[:, t] @ p["weight_ih"].T + hm @ p["weight_hh"].T + bias  # (B, H)
        out[t] = apply_act(activation, pre[t])
        st = s[:, t, None]  # (B, 1)
        y[t] = st * out[t]
        h = st * out[t] + (1.0 - st) * h

    cache: Cache = {
        "x": x,
        "p": p,
        "mask": s,
        "dropout_mask": m,
        "reverse": reverse,
        "activation": activation,
        "h0": h_init,
        "hs_prev": hs_prev,
        "pre": pre,
        "out": out,
    }
    return y.transpose(1, 0, 2).copy(), h, cache


def rnn_backward(dy: Any | None, dhT: Any | None, cache: Cache) -> tuple[Array, Array, Params]:
    """Backpropagate through :func:`rnn_forward`.

    Args:
        dy: gradient w.r.t. ``y`` ``(B, T, H)`` (None = zeros).
        dhT: gradient w.r.t. the final ``hT`` ``(B, H)`` (None = zeros).
        cache: the cache returned by ``rnn_forward``.

    Returns:
        ``dx (B, T, D)``, ``dh0 (B, H)`` and ``dparams`` with the same keys as ``params``.
    """
    x: Array = cache["x"]
    p: Params = cache["p"]
    s: Array = cache["mask"]
    m: Array | None = cache["dropout_mask"]
    bsz, steps, _ = x.shape
    H = p["weight_hh"].shape[0]
    dy_ = np.zeros((bsz, steps, H)) if dy is None else as_f64(dy)
    dh = prepare_state(dhT, bsz, H, "dhT").copy()  # (B, H)
    grads = {k: np.zeros_like(v) for k, v in p.items()}
    dx = np.zeros_like(x)  # (B, T, D)

    for t in reversed(time_order(steps, cache["reverse"])):
        st = s[:, t, None]  # (B, 1)
        h_prev = cache["hs_prev"][t]
        hm = h_prev * m if m is not None else h_prev
        da = st * (dh + dy_[:, t]) * act_grad(cache["activation"], cache["pre"][t], cache["out"][t])
        grads["weight_ih"] += da.T @ x[:, t]
        grads["weight_hh"] += da.T @ hm
        if "bias_ih" in grads:
            grads["bias_ih"] += da.sum(0)
        if "bias_hh" in grads:
            grads["bias_hh"] += da.sum(0)
        dx[:, t] = da @ p["weight_ih"]
        dhm = da @ p["weight_hh"]  # (B, H)
        dh = (1.0 - st) * dh + (dhm * m if m is not None else dhm)
    return dx, dh, grads
