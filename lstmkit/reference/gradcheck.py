"""Numeric gradient check of the hand-written NumPy backward passes.

The scalar loss is ``L = sum(y * R_y) + sum(hT * R_h) [+ sum(cT * R_c)]`` with fixed random
weights ``R`` so every output and final state matters; its analytic gradient is what
``stack_backward(R_y, R_h, R_c, cache)`` returns. Each input array is then perturbed element by
element and ``dL/da ~ (L(a + eps) - L(a - eps)) / (2 eps)`` (central differences).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .common import Array, as_f64
from .stack import stack_backward, stack_forward


def numeric_grad(f: Callable[[], float], array: Array, eps: float = 1e-6) -> Array:
    """Central-difference gradient of the scalar ``f()`` w.r.t. ``array``.

    ``array`` (float64, writable) is perturbed in place one element at a time and restored, so
    ``f`` must read it (e.g. close over it). Returns an array of ``array``'s shape.
    """
    grad = np.zeros_like(array)
    for idx in np.ndindex(array.shape):
        old = array[idx]
        array[idx] = old + eps
        f_plus = f()
        array[idx] = old - eps
        f_minus = f()
        array[idx] = old
        grad[idx] = (f_plus - f_minus) / (2.0 * eps)
    return grad


def _errors(analytic: Array, numeric: Array) -> tuple[float, float]:
    """(max |a - n|, max |a - n| / max(max|a|, max|n|, 1e-8)) of one array."""
    diff = float(np.max(np.abs(analytic - numeric), initial=0.0))
    scale = max(
        float(np.max(np.abs(analytic), initial=0.0)),
        float(np.max(np.abs(numeric), initial=0.0)),
        1e-8,
    )
    return diff, diff / scale


def gradient_errors(
    kind: str,
    x: Any,
    params_list: Sequence[dict[str, Any]],
    h0: Any | None = None,
    c0: Any | None = None,
    *,
    num_layers: int = 1,
    bidirectional: bool = False,
    mask: Any | None = None,
    dropout_masks: Sequence[Any | None] | None = None,
    seed: int = 0,
    eps: float = 1e-6,
    **cell_opts: Any,
) -> dict[str, tuple[float, float]]:
    """Compare ``stack_backward`` with numeric gradients for every array.

    Arguments are those of :func:`lstmkit.reference.stack.stack_forward` (``h0``/``c0`` default to
    zeros and are checked too). Nothing passed in is modified.

    Returns:
        ``{name: (max_abs_err, max_rel_err)}`` for ``'x'``, ``'h0'``, ``'c0'`` (LSTM) and
        ``'cell{k}.{param}'``; the relative error is scaled by the array's largest gradient.
    """
    dirs = 2 if bidirectional else 1
    n_cells = num_layers * dirs
    x_ = as_f64(x).copy()  # (B, T, D)
    bsz = x_.shape[0]
    plist = [{k: as_f64(v).copy() for k, v in p.items()} for p in params_list]
    h_out = [int(np.shape(p["weight_hh"])[1]) for p in plist]
    h0_ = as_f64(h0).copy() if h0 is not None else np.zeros((n_cells, bsz, h_out[0]))
    c0_: Array | None = None
    if kind == "lstm":
        hidden = plist[0]["weight_ih"].shape[0] // 4
        c0_ = as_f64(c0).copy() if c0 is not None else np.zeros((n_cells, bsz, hidden))

    opts: dict[str, Any] = dict(
        num_layers=num_layers,
        bidirectional=bidirectional,
        mask=mask,
        dropout_masks=dropout_masks,
        **cell_opts,
    )
    y, h_t, c_t, cache = stack_forward(kind, x_, plist, h0_, c0_, **opts)
    rng = np.random.default_rng(seed)
    r_y = rng.standard_normal(y.shape)  # (B, T, dirs * H_out)
    r_h = rng.standard_normal(h_t.shape)  # (L * dirs, B, H_out)
    r_c = rng.standard_normal(c_t.shape) if c_t is not None else None  # (L * dirs, B, H)

    def loss() -> float:
        y_, h_, c_, _ = stack_forward(kind, x_, plist, h0_, c0_, **opts)
        total = float(np.sum(y_ * r_y) + np.sum(h_ * r_h))
        if c_ is not None and r_c is not None:
            total += float(np.sum(c_ * r_c))
        return total

    dx, dh0, dc0, dparams = stack_backward(r_y, r_h, r_c, cache)
    errs = {
        "x": _errors(dx, numeric_grad(loss, x_, eps)),
        "h0": _errors(dh0, numeric_grad(loss, h0_, eps)),
    }
    if c0_ is not None and dc0 is not None:
        errs["c0"] = _errors(dc0, numeric_grad(loss, c0_, eps))
    for k, p in enumerate(plist):
        for name, value in p.items():
            errs[f"cell{k}.{name}"] = _errors(dparams[k][name], numeric_grad(loss, value, eps))
    return errs


def check_gradients(
    kind: str,
    x: Any,
    params_list: Sequence[dict[str, Any]],
    h0: Any | None = None,
    c0: Any | None = None,
    **kwargs: Any,
) -> float:
    """Max relative error of the hand-written backward against numeric gradients.

    Takes the arguments of :func:`gradient_errors` and returns the largest relative error over
    ``x``, ``h0``, ``c0`` and every parameter of every cell.
    """
    errs = gradient_errors(kind, x, params_list, h0, c0, **kwargs)
    return max(rel for _, rel in errs.values())
