"""Stacked, optionally bidirectional recurrent layers built from the one-direction references.

The composition is the one of ``torch.nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` (docs/design.md):

- cell ``k = layer * dirs + direction`` (direction 0 = forward, 1 = reverse);
- layer 0 reads ``x (B, T, D)``; layer ``l > 0`` reads ``concat(y_fwd, y_rev)`` of layer ``l - 1``
  along the feature axis, forward first, i.e. ``(B, T, dirs * H_out)``;
- states are stacked as ``(L * dirs, B, H_out)`` (and ``(L * dirs, B, H)`` for the LSTM cell);
- the same ``mask`` applies to every layer and direction. No dropout between layers.

Backward runs the layers top-down: the gradient w.r.t. a layer's input is the sum over its
directions of each direction's ``dx``, and it is the ``dy`` of the layer below.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .common import Array, Cache, Params, as_f64
from .gru import gru_backward, gru_forward
from .lstm import lstm_backward, lstm_forward
from .rnn import rnn_backward, rnn_forward

KINDS = ("lstm", "gru", "rnn")


def _h_out(params: dict[str, Any]) -> int:
    """Size of the hidden state ``h`` (and of the output) of one cell."""
    return int(np.shape(params["weight_hh"])[1])


def _state_slice(state: Any | None, k: int) -> Array | None:
    return None if state is None else as_f64(state)[k]


def stack_forward(
    kind: str,
    x: Any,
    params_list: Sequence[dict[str, Any]],
    h0: Any | None = None,
    c0: Any | None = None,
    *,
    num_layers: int,
    bidirectional: bool,
    mask: Any | None = None,
    dropout_masks: Sequence[Any | None] | None = None,
    **cell_opts: Any,
) -> tuple[Array, Array, Array | None, Cache]:
    """Run ``num_layers`` layers of ``kind`` ('lstm', 'gru', 'rnn'), one or two directions each.

    Args:
        kind: 'lstm', 'gru' or 'rnn'.
        x: input ``(B, T, D)``.
        params_list: ``L * dirs`` parameter dicts, cell ``k = layer * dirs + direction``.
        h0: initial hidden states ``(L * dirs, B, H_out)`` (zeros when None).
        c0: initial LSTM cell states ``(L * dirs, B, H)`` (zeros when None; must be None otherwise).
        num_layers: number of layers ``L``.
        bidirectional: two directions per layer when True.
        mask: optional ``(B, T)`` bool/float, 1 at real tokens, shared by every layer.
        dropout_masks: optional per-cell recurrent-dropout masks ``(B, H_out)`` (or None entries).
        **cell_opts: passed to every cell, e.g. ``forget_bias``, ``activation``, ``reset_after``.

    Returns:
        ``y (B, T, dirs * H_out)`` of the last layer, ``hT (L * dirs, B, H_out)``,
        ``cT (L * dirs, B, H)`` (None unless LSTM) and the cache for ``stack_backward``.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if kind != "lstm" and c0 is not None:
        raise ValueError("c0 is only for kind='lstm'")
    dirs = 2 if bidirectional else 1
    n_cells = num_layers * dirs
    if len(params_list) != n_cells:
        raise ValueError(f"expected {n_cells} parameter dicts, got {len(params_list)}")
    if dropout_masks is not None and len(dropout_masks) != n_cells:
        raise ValueError(f"expected {n_cells} dropout masks, got {len(dropout_masks)}")

    layer_in = as_f64(x)  # (B, T, D_in of layer 0)
    cell_caches: list[Cache] = []
    hs: list[Array] = []
    cs: list[Array] = []
    for layer in range(num_layers):
        outs = []
        for direction in range(dirs):
            k = layer * dirs + direction
            dm = None if dropout_masks is None else dropout_masks[k]
            common: dict[str, Any] = dict(
                mask=mask, reverse=direction == 1, dropout_mask=dm, **cell_opts
            )
            if kind == "lstm":
                y, h, c, cache = lstm_forward(
                    layer_in, _state_slice(h0, k), _state_slice(c0, k), params_list[k], **common
                )
                cs.append(c)
            elif kind == "gru":
                y, h, cache = gru_forward(layer_in, _state_slice(h0, k), params_list[k], **common)
            else:
                y, h, cache = rnn_forward(layer_in, _state_slice(h0, k), params_list[k], **common)
            outs.append(y)  # (B, T, H_out)
            hs.append(h)
            cell_caches.append(cache)
        layer_in = np.concatenate(outs, axis=-1)  # (B, T, dirs * H_out)

    cache_all: Cache = {
        "kind": kind,
        "num_layers": num_layers,
        "dirs": dirs,
        "cells": cell_caches,
        "h_out": [_h_out(p) for p in params_list],
    }
    h_t = np.stack(hs)  # (L * dirs, B, H_out)
    c_t = np.stack(cs) if kind == "lstm" else None  # (L * dirs, B, H)
    return layer_in, h_t, c_t, cache_all


def stack_backward(
    dy: Any | None, dhT: Any | None, dcT: Any | None, cache: Cache
) -> tuple[Array, Array, Array | None, list[Params]]:
    """Backpropagate through :func:`stack_forward`.

    Args:
        dy: gradient w.r.t. ``y (B, T, dirs * H_out)`` (None = zeros).
        dhT: gradient w.r.t. ``hT (L * dirs, B, H_out)`` (None = zeros).
        dcT: gradient w.r.t. ``cT (L * dirs, B, H)`` (None = zeros; LSTM only).
        cache: the cache returned by ``stack_forward``.

    Returns:
        ``dx (B, T, D)``, ``dh0 (L * dirs, B, H_out)``, ``dc0 (L * dirs, B, H)`` (None unless
        LSTM) and the list of per-cell ``dparams`` (same order and keys as ``params_list``).
    """
    kind: str = cache["kind"]
    dirs: int = cache["dirs"]
    num_layers: int = cache["num_layers"]
    cells: list[Cache] = cache["cells"]
    n_cells = len(cells)
    top = cells[n_cells - dirs :]
    bsz, steps, _ = top[0]["x"].shape
    dlayer = (
        np.zeros((bsz, steps, sum(cache["h_out"][n_cells - dirs :]))) if dy is None else as_f64(dy)
    )  # (B, T, dirs * H_out)

    dh0: list[Array] = [np.zeros(0)] * n_cells
    dc0: list[Array] = [np.zeros(0)] * n_cells
    dparams: list[Params] = [{} for _ in range(n_cells)]
    for layer in reversed(range(num_layers)):
        dx_layer = np.zeros_like(cells[layer * dirs]["x"])  # (B, T, D_in of this layer)
        offset = 0
        for direction in range(dirs):
            k = layer * dirs + direction
            width = cache["h_out"][k]
            dy_k = dlayer[:, :, offset : offset + width]  # (B, T, H_out)
            offset += width
            dh_k = _state_slice(dhT, k)
            if kind == "lstm":
                dx, dh, dc, dp = lstm_backward(dy_k, dh_k, _state_slice(dcT, k), cells[k])
                dc0[k] = dc
            elif kind == "gru":
                dx, dh, dp = gru_backward(dy_k, dh_k, cells[k])
            else:
                dx, dh, dp = rnn_backward(dy_k, dh_k, cells[k])
            dx_layer += dx
            dh0[k] = dh
            dparams[k] = dp
        dlayer = dx_layer

    dc0_arr = np.stack(dc0) if kind == "lstm" else None
    return dlayer, np.stack(dh0), dc0_arr, dparams
