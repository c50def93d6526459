"""NumPy float64 reference GRU (one layer, one direction): forward and hand-written BPTT.

Gate order r, z, n (torch). With ``x_t`` the input at step t, ``h`` the previous state, ``m`` the
optional recurrent-dropout mask ``(B, H)`` and ``s = mask[:, t]`` (1 = real token)::

    gx = x_t W_ih^T + b_ih                                   # (B, 3H) -> gx_r, gx_z, gx_n
    reset_after=True (torch, Keras default):
        gh = (h * m) W_hh^T + b_hh                           # (B, 3H) -> gh_r, gh_z, gh_n
        r = rec_act(gx_r + gh_r) ;  z = rec_act(gx_z + gh_z)
        n = act(gx_n + r * gh_n)
    reset_after=False (Cho et al. 2014):
        r, z as above (only the r, z rows of W_hh, b_hh)
        n = act(gx_n + (r * h * m) W_hn^T + b_hn)             # W_hn = W_hh[2H:], b_hn = b_hh[2H:]
    h'  = (1 - z) * n + z * h
    y_t = s * h' ;  h = s * h' + (1 - s) * h                 # a padded step keeps the state

``reverse=True`` visits t = T-1 .. 0.

Backward (per step, in the reverse of the visiting order), ``dh`` flowing into the state after it::

    dh' = s * (dh + dy_t) ;  dh_prev = (1 - s) * dh + dh' * z
    da_n = dh' * (1 - z) * act'(.) ;  da_z = dh' * (h - n) * rec_act'(.)
    reset_after=True:  da_r = da_n * gh_n * rec_act'(.) ;  dgh = [da_r, da_z, da_n * r]
    reset_after=False: d(rhm) = da_n W_hn ;  da_r = d(rhm) * h * m * rec_act'(.) ;
                       dh_prev += d(rhm) * r * m
    dgx = [da_r, da_z, da_n] ;  dx_t = dgx W_ih ;  dh_prev += (dgh W_hh) * m
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

GRU_PARAM_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def _gru_params(params: dict[str, Any], d_in: int) -> tuple[Params, int]:
    """Validate ``params`` and return (float64 params, H)."""
    unknown = set(params) - set(GRU_PARAM_NAMES)
    if unknown:
        raise ValueError(f"unknown GRU parameters {sorted(unknown)}")
    p = {k: as_f64(v) for k, v in params.items()}
    three_h, d = p["weight_ih"].shape
    if three_h % 3 or d != d_in:
        raise ValueError(f"weight_ih must be (3H, {d_in}), got {p['weight_ih'].shape}")
    hidden = three_h // 3
    if p["weight_hh"].shape != (three_h, hidden):
        raise ValueError(f"weight_hh must be {(three_h, hidden)}, got {p['weight_hh'].shape}")
    for name in ("bias_ih", "bias_hh"):
        if name in p and p[name].shape != (three_h,):
            raise ValueError(f"{name} must be ({three_h},), got {p[name].shape}")
    return p, hidden


def gru_forward(
    x: Any,
    h0: Any | None,
    params: dict[str, Any],
    *,
    mask: Any | None = None,
    reverse: bool = False,
    reset_after: bool = True,
    activation: str = "tanh",
    recurrent_activation: str = "sigmoid",
    dropout_mask: Any | None = None,
) -> tuple[Array, Array, Cache]:
    """Run one GRU direction over ``x`` and return ``(y, hT, cache)``.

    Args:
        x: input ``(B, T, D)``.
        h0: initial state ``(B, H)`` (zeros when None).
        params: ``weight_ih (3H, D)``, ``weight_hh (3H, H)``, optional ``bias_ih``/``bias_hh (3H,)``.
        mask: optional ``(B, T)`` bool/float, 1 at real tokens.
        reverse: visit t = T-1 .. 0.
        reset_after: apply the reset gate after the recurrent matmul (torch) or before (Cho).
        activation: candidate activation (tanh by default).
        recurrent_activation: gate activation (sigmoid or hard_sigmoid).
        dropout_mask: optional fixed recurrent-dropout mask ``(B, H)``.

    Returns:
        ``y (B, T, H)``, ``hT (B, H)`` and the cache for ``gru_backward``.
    """
    check_activation(activation)
    check_activation(recurrent_activation, recurrent=True)
    x = as_f64(x)
    bsz, steps, d_in = x.shape
    p, H = _gru_params(params, d_in)
    h = prepare_state(h0, bsz, H, "h0")  # (B, H)
    s = prepare_mask(mask, bsz, steps)  # (B, T)
    m = prepare_state(dropout_mask, bsz, H, "dropout_mask") if dropout_mask is not None else None
    h_init = h
    b_ih = p.get("bias_ih", np.zeros(3 * H))  # (3H,)
    b_hh = p.get("bias_hh", np.zeros(3 * H))  # (3H,)
    w_hh = p["weight_hh"]

    hs_prev = np.zeros((steps, bsz, H))  # h entering step t
    gates = np.zeros((steps, bsz, 3 * H))  # r, z, n
    pre = np.zeros((steps, bsz, 3 * H))  # pre-activations of r, z, n
    ghn = np.zeros((steps, bsz, H))  # gh_n (reset_after) or (r * h * m) (not reset_after)
    y = np.zeros((steps, bsz, H))  # time-major while looping

    for t in time_order(steps, reverse):
        hs_prev[t] = h
        hm = h * m if m is not None else h  # (B, H)
        gx = x[:, t] @ p["weight_ih"].T + b_ih  # (B, 3H)
        rows = 3 * H if reset_after else 2 * H  # reset_before: n has its own matmul below
        gh = hm @ w_hh[:rows].T + b_hh[:rows]  # (B, 3H) or (B, 2H)
        a_r = gx[:, :H] + gh[:, :H]
        a_z = gx[:, H : 2 * H] + gh[:, H : 2 * H]
        r = apply_act(recurrent_activation, a_r)
        z = apply_act(recurrent_activation, a_z)
        if reset_after:
            ghn[t] = gh[:, 2 * H :]
            a_n = gx[:, 2 * H :] + r * ghn[t]
        else:
            ghn[t] = r * hm  # (B, H)
            a_n = gx[:, 2 * H :] + ghn[t] @ w_hh[2 * H :].T + b_hh[2 * H :]
        n = apply_act(activation, a_n)
        h_new = (1.0 - z) * n + z * h  # (B, H)
        pre[t] = np.concatenate([a_r, a_z, a_n], axis=1)
        gates[t] = np.concatenate([r, z, n], axis=1)
        st = s[:, t, None]  # (B, 1)
        y[t] = st * h_new
        h = st * h_new + (1.0 - st) * h

    cache: Cache = {
        "x": x,
        "p": p,
        "mask": s,
        "dropout_mask": m,
        "reverse": reverse,
        "reset_after": reset_after,
        "activation": activation,
        "recurrent_activation": recurrent_activation,
        "h0": h_init,
        "hs_prev": hs_prev,
        "gates": gates,
        "pre": pre,
        "ghn": ghn,
    }
    return y.transpose(1, 0, 2).copy(), h, cache


def gru_backward(dy: Any | None, dhT: Any | None, cache: Cache) -> tuple[Array, Array, Params]:
    """Backpropagate through :func:`gru_forward`.

    Args:
        dy: gradient w.r.t. ``y`` ``(B, T, H)`` (None = zeros).
        dhT: gradient w.r.t. the final ``hT`` ``(B, H)`` (None = zeros).
        cache: the cache returned by ``gru_forward``.

    Returns:
        ``dx (B, T, D)``, ``dh0 (B, H)`` and ``dparams`` with the same keys as ``params``.
    """
    x: Array = cache["x"]
    p: Params = cache["p"]
    s: Array = cache["mask"]
    m: Array | None = cache["dropout_mask"]
    act: str = cache["activation"]
    ract: str = cache["recurrent_activation"]
    reset_after: bool = cache["reset_after"]
    bsz, steps, _ = x.shape
    H = p["weight_hh"].shape[1]
    w_hh = p["weight_hh"]
    dy_ = np.zeros((bsz, steps, H)) if dy is None else as_f64(dy)
    dh = prepare_state(dhT, bsz, H, "dhT").copy()  # (B, H)

    grads = {k: np.zeros_like(v) for k, v in p.items()}
    dw_hh = np.zeros_like(w_hh)  # (3H, H)
    db_hh = np.zeros(3 * H)  # (3H,)
    dx = np.zeros_like(x)  # (B, T, D)

    for t in reversed(time_order(steps, cache["reverse"])):
        st = s[:, t, None]  # (B, 1)
        h_prev = cache["hs_prev"][t]
        hm = h_prev * m if m is not None else h_prev  # (B, H)
        a = cache["pre"][t]
        gt = cache["gates"][t]
        a_r, a_z, a_n = a[:, :H], a[:, H : 2 * H], a[:, 2 * H :]
        r, z, n = gt[:, :H], gt[:, H : 2 * H], gt[:, 2 * H :]
        ghn = cache["ghn"][t]

        dh_new = st * (dh + dy_[:, t])  # (B, H)
        dh_prev = (1.0 - st) * dh + dh_new * z
        da_n = dh_new * (1.0 - z) * act_grad(act, a_n, n)
        da_z = dh_new * (h_prev - n) * act_grad(ract, a_z, z)
        if reset_after:
            da_r = da_n * ghn * act_grad(ract, a_r, r)
            dgh = np.concatenate([da_r, da_z, da_n * r], axis=1)  # (B, 3H)
            dw_hh += dgh.T @ hm
            db_hh += dgh.sum(0)
            dhm = dgh @ w_hh  # (B, H)
        else:
            drhm = da_n @ w_hh[2 * H :]  # (B, H), grad of r * h * m
            dw_hh[2 * H :] += da_n.T @ ghn
            db_hh[2 * H :] += da_n.sum(0)
            da_r = drhm * hm * act_grad(ract, a_r, r)
            dgh = np.concatenate([da_r, da_z], axis=1)  # (B, 2H)
            dw_hh[: 2 * H] += dgh.T @ hm
            db_hh[: 2 * H] += dgh.sum(0)
            dhm = dgh @ w_hh[: 2 * H] + drhm * r  # (B, H)
        dgx = np.concatenate([da_r, da_z, da_n], axis=1)  # (B, 3H)
        grads["weight_ih"] += dgx.T @ x[:, t]
        if "bias_ih" in grads:
            grads["bias_ih"] += dgx.sum(0)
        dx[:, t] = dgx @ p["weight_ih"]
        dh = dh_prev + (dhm * m if m is not None else dhm)

    grads["weight_hh"] = dw_hh
    if "bias_hh" in grads:
        grads["bias_hh"] = db_hh
    return dx, dh, grads
