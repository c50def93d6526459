"""NumPy float64 reference LSTM (one layer, one direction): forward and hand-written BPTT.

Gate order i, f, g, o (torch). With ``x_t`` the input at step t, ``h, c`` the previous state,
``m`` the optional recurrent-dropout mask ``(B, H_out)`` and ``s = mask[:, t]`` (1 = real token)::

    z   = x_t W_ih^T + b_ih + (h * m) W_hh^T + b_hh        # (B, 4H) -> z_i, z_f, z_g, z_o
    i   = rec_act(z_i + w_ci * c)                          # peepholes only when given
    f   = rec_act(z_f + forget_bias + w_cf * c)
    g   = act(z_g)
    c'  = f * c + i * g
    o   = rec_act(z_o + w_co * c')                         # peephole on the NEW cell (TF1)
    h'  = o * act(c')                                      # (B, H)
    h'  = h' W_hr^T          if proj_size                  # (B, P)
    y_t = s * h'                                           # output is 0 at a padded step
    h   = s * h' + (1 - s) * h ;  c = s * c' + (1 - s) * c # a padded step keeps the state

``reverse=True`` visits t = T-1 .. 0. Layer norm / zoneout are not part of the reference.

Backward (per step, in the reverse of the visiting order), with ``dh, dc`` the gradients flowing
into the state after the step::

    dh'  = s * (dh + dy_t) ;  dh_prev = (1 - s) * dh ;  dc_prev = (1 - s) * dc
    dW_hr += dh'^T (o * act(c')) ;  dh' <- dh' W_hr                   (proj only)
    do   = dh' * act(c') ;  dc' = s * dc + dh' * o * act'(c')
    da_o = do * rec_act'(.) ;  dc' += da_o * w_co ;  dw_co += sum(da_o * c')
    da_i = dc' * g * rec_act'(.) ;  da_f = dc' * c * rec_act'(.) ;  da_g = dc' * i * act'(z_g)
    dc_prev += dc' * f + da_i * w_ci + da_f * w_cf
    dz = [da_i, da_f, da_g, da_o] ;  dx_t = dz W_ih ;  dh_prev += (dz W_hh) * m
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

LSTM_PARAM_NAMES = (
    "weight_ih",
    "weight_hh",
    "bias_ih",
    "bias_hh",
    "weight_hr",
    "weight_ci",
    "weight_cf",
    "weight_co",
)


def _lstm_params(params: dict[str, Any], d_in: int) -> tuple[Params, int, int]:
    """Validate ``params`` and return (float64 params, H, H_out)."""
    unknown = set(params) - set(LSTM_PARAM_NAMES)
    if unknown:
        raise ValueError(f"unknown LSTM parameters {sorted(unknown)}")
    p = {k: as_f64(v) for k, v in params.items()}
    four_h, d = p["weight_ih"].shape
    if four_h % 4 or d != d_in:
        raise ValueError(f"weight_ih must be (4H, {d_in}), got {p['weight_ih'].shape}")
    hidden = four_h // 4
    h_out = hidden
    if "weight_hr" in p:
        if p["weight_hr"].shape[1] != hidden:
            raise ValueError(f"weight_hr must be (P, {hidden}), got {p['weight_hr'].shape}")
        h_out = p["weight_hr"].shape[0]
    if p["weight_hh"].shape != (four_h, h_out):
        raise ValueError(f"weight_hh must be {(four_h, h_out)}, got {p['weight_hh'].shape}")
    for name in ("bias_ih", "bias_hh"):
        if name in p and p[name].shape != (four_h,):
            raise ValueError(f"{name} must be ({four_h},), got {p[name].shape}")
    peep = [n for n in ("weight_ci", "weight_cf", "weight_co") if n in p]
    if peep and len(peep) != 3:
        raise ValueError("peephole weights weight_ci, weight_cf, weight_co come together")
    for name in peep:
        if p[name].shape != (hidden,):
            raise ValueError(f"{name} must be ({hidden},), got {p[name].shape}")
    return p, hidden, h_out


def lstm_forward(
    x: Any,
    h0: Any | None,
    c0: Any | None,
    params: dict[str, Any],
    *,
    mask: Any | None = None,
    reverse: bool = False,
    forget_bias: float = 0.0,
    activation: str = "tanh",
    recurrent_activation: str = "sigmoid",
    dropout_mask: Any | None = None,
) -> tuple[Array, Array, Array, Cache]:
    """Run one LSTM direction over ``x`` and return ``(y, hT, cT, cache)``.

    Args:
        x: input ``(B, T, D)``.
        h0: initial hidden state ``(B, H_out)`` (zeros when None); ``H_out = P`` with projection.
        c0: initial cell state ``(B, H)`` (zeros when None).
        params: ``weight_ih (4H, D)``, ``weight_hh (4H, H_out)``, optional ``bias_ih``/``bias_hh``
            ``(4H,)``, optional ``weight_hr (P, H)``, optional ``weight_ci/cf/co (H,)``.
        mask: optional ``(B, T)`` bool/float, 1 at real tokens.
        reverse: visit t = T-1 .. 0.
        forget_bias: constant added to the forget-gate pre-activation.
        activation: cell/output activation (tanh by default).
        recurrent_activation: gate activation (sigmoid or hard_sigmoid).
        dropout_mask: optional fixed recurrent-dropout mask ``(B, H_out)`` multiplying ``h``
            before the recurrent matmul (already scaled by ``1/(1-p)``).

    Returns:
        ``y (B, T, H_out)``, ``hT (B, H_out)``, ``cT (B, H)`` and the cache for ``lstm_backward``.
    """
    act = activation
    check_activation(act)
    check_activation(recurrent_activation, recurrent=True)
    x = as_f64(x)
    bsz, steps, d_in = x.shape
    p, hidden, h_out = _lstm_params(params, d_in)
    h = prepare_state(h0, bsz, h_out, "h0")  # (B, H_out)
    c = prepare_state(c0, bsz, hidden, "c0")  # (B, H)
    s = prepare_mask(mask, bsz, steps)  # (B, T)
    m = (
        prepare_state(dropout_mask, bsz, h_out, "dropout_mask")
        if dropout_mask is not None
        else None
    )
    h_init, c_init = h, c

    bias = np.zeros(4 * hidden)  # (4H,)
    if "bias_ih" in p:
        bias = bias + p["bias_ih"]
    if "bias_hh" in p:
        bias = bias + p["bias_hh"]
    peephole = "weight_ci" in p
    proj = "weight_hr" in p
    zeros_h = np.zeros(hidden)

    hs_prev = np.zeros((steps, bsz, h_out))  # h entering step t
    cs_prev = np.zeros((steps, bsz, hidden))  # c entering step t
    gates = np.zeros((steps, bsz, 4 * hidden))  # activated i, f, g, o
    pre = np.zeros((steps, bsz, 4 * hidden))  # pre-activations of i, f, g, o (with peepholes)
    cs_new = np.zeros((steps, bsz, hidden))  # c' of step t
    tcs = np.zeros((steps, bsz, hidden))  # act(c')
    y = np.zeros((steps, bsz, h_out))  # time-major while looping

    w_ci = p.get("weight_ci", zeros_h)
    w_cf = p.get("weight_cf", zeros_h)
    w_co = p.get("weight_co", zeros_h)
    H = hidden
    for t in time_order(steps, reverse):
        hs_prev[t], cs_prev[t] = h, c
        hm = h * m if m is not None else h  # (B, H_out)
        z = x[:, t] @ p["weight_ih"].T + hm @ p["weight_hh"].T + bias  # (B, 4H)
        a_i = z[:, :H] + w_ci * c
        a_f = z[:, H : 2 * H] + forget_bias + w_cf * c
        a_g = z[:, 2 * H : 3 * H]
        i = apply_act(recurrent_activation, a_i)
        f = apply_act(recurrent_activation, a_f)
        g = apply_act(act, a_g)
        c_new = f * c + i * g  # (B, H)
        a_o = z[:, 3 * H :] + w_co * c_new
        o = apply_act(recurrent_activation, a_o)
        tc = apply_act(act, c_new)
        h_new = o * tc  # (B, H)
        if proj:
            h_new = h_new @ p["weight_hr"].T  # (B, P)
        pre[t] = np.concatenate([a_i, a_f, a_g, a_o], axis=1)
        gates[t] = np.concatenate([i, f, g, o], axis=1)
        cs_new[t], tcs[t] = c_new, tc
        st = s[:, t, None]  # (B, 1)
        y[t] = st * h_new
        h = st * h_new + (1.0 - st) * h
        c = st * c_new + (1.0 - st) * c

    cache: Cache = {
        "x": x,
        "p": p,
        "mask": s,
        "dropout_mask": m,
        "reverse": reverse,
        "activation": act,
        "recurrent_activation": recurrent_activation,
        "peephole": peephole,
        "proj": proj,
        "h0": h_init,
        "c0": c_init,
        "hs_prev": hs_prev,
        "cs_prev": cs_prev,
        "gates": gates,
        "pre": pre,
        "cs_new": cs_new,
        "tcs": tcs,
    }
    return y.transpose(1, 0, 2).copy(), h, c, cache


def lstm_backward(
    dy: Any | None, dhT: Any | None, dcT: Any | None, cache: Cache
) -> tuple[Array, Array, Array, Params]:
    """Backpropagate through :func:`lstm_forward`.

    Args:
        dy: gradient of the loss w.r.t. ``y`` ``(B, T, H_out)`` (None = zeros).
        dhT: gradient w.r.t. the final ``hT`` ``(B, H_out)`` (None = zeros).
        dcT: gradient w.r.t. the final ``cT`` ``(B, H)`` (None = zeros).
        cache: the cache returned by ``lstm_forward``.

    Returns:
        ``dx (B, T, D)``, ``dh0 (B, H_out)``, ``dc0 (B, H)`` and ``dparams`` with the same keys
        as the forward ``params``.
    """
    x: Array = cache["x"]
    p: Params = cache["p"]
    s: Array = cache["mask"]
    m: Array | None = cache["dropout_mask"]
    act: str = cache["activation"]
    ract: str = cache["recurrent_activation"]
    bsz, steps, _ = x.shape
    H = p["weight_ih"].shape[0] // 4
    h_out = p["weight_hh"].shape[1]
    dy_ = np.zeros((bsz, steps, h_out)) if dy is None else as_f64(dy)
    dh = prepare_state(dhT, bsz, h_out, "dhT").copy()  # (B, H_out)
    dc = prepare_state(dcT, bsz, H, "dcT").copy()  # (B, H)

    grads = {k: np.zeros_like(v) for k, v in p.items()}
    dx = np.zeros_like(x)  # (B, T, D)
    zeros_h = np.zeros(H)
    w_ci = p.get("weight_ci", zeros_h)
    w_cf = p.get("weight_cf", zeros_h)
    w_co = p.get("weight_co", zeros_h)

    for t in reversed(time_order(steps, cache["reverse"])):
        st = s[:, t, None]  # (B, 1)
        h_prev, c_prev = cache["hs_prev"][t], cache["cs_prev"][t]
        a = cache["pre"][t]  # (B, 4H)
        gt = cache["gates"][t]  # (B, 4H)
        a_i, a_f, a_g, a_o = (a[:, k * H : (k + 1) * H] for k in range(4))
        i, f, g, o = (gt[:, k * H : (k + 1) * H] for k in range(4))
        c_new, tc = cache["cs_new"][t], cache["tcs"][t]

        dh_new = st * (dh + dy_[:, t])  # (B, H_out)
        dh_prev = (1.0 - st) * dh
        dc_prev = (1.0 - st) * dc
        if cache["proj"]:
            grads["weight_hr"] += dh_new.T @ (o * tc)  # (P, H)
            dh_new = dh_new @ p["weight_hr"]  # (B, H)
        do = dh_new * tc
        dc_new = st * dc + dh_new * o * act_grad(act, c_new, tc)
        da_o = do * act_grad(ract, a_o, o)
        dc_new = dc_new + da_o * w_co
        da_i = dc_new * g * act_grad(ract, a_i, i)
        da_f = dc_new * c_prev * act_grad(ract, a_f, f)
        da_g = dc_new * i * act_grad(act, a_g, g)
        dc_prev = dc_prev + dc_new * f + da_i * w_ci + da_f * w_cf
        if cache["peephole"]:
            grads["weight_ci"] += (da_i * c_prev).sum(0)
            grads["weight_cf"] += (da_f * c_prev).sum(0)
            grads["weight_co"] += (da_o * c_new).sum(0)

        dz = np.concatenate([da_i, da_f, da_g, da_o], axis=1)  # (B, 4H)
        hm = h_prev * m if m is not None else h_prev  # (B, H_out)
        grads["weight_ih"] += dz.T @ x[:, t]
        grads["weight_hh"] += dz.T @ hm
        if "bias_ih" in grads:
            grads["bias_ih"] += dz.sum(0)
        if "bias_hh" in grads:
            grads["bias_hh"] += dz.sum(0)
        dx[:, t] = dz @ p["weight_ih"]
        dhm = dz @ p["weight_hh"]  # (B, H_out)
        dh = dh_prev + (dhm * m if m is not None else dhm)
        dc = dc_prev

    return dx, dh, dc, grads
