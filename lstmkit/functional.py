"""Gate math as pure functions: one time step of LSTM, GRU and SimpleRNN.

Every function here is stateless: parameters and state come in, the new state goes out. The
layers (:mod:`lstmkit.layers`) hoist the input projection of all time steps into one matrix
product (:func:`input_projection`) and then call a ``*_step`` function once per step with the
precomputed input part ``gx`` of that step. The exact equations, gate orders and parameter shapes
are in ``docs/design.md``; they are repeated in each docstring below.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

Activation = Callable[[Tensor], Tensor]

LN_EPS = 1e-5


def _hard_tanh(x: Tensor) -> Tensor:
    return torch.clamp(x, -1.0, 1.0)


def _identity(x: Tensor) -> Tensor:
    return x


def activation_names() -> tuple[str, ...]:
    """Names accepted for ``activation`` (the candidate/output squashing function)."""
    return ("tanh", "softsign", "relu", "sigmoid", "hard_tanh", "identity")


def recurrent_activation_names() -> tuple[str, ...]:
    """Names accepted for ``recurrent_activation`` (the gate function)."""
    return ("sigmoid", "hard_sigmoid")


def get_activation(name: str, *, recurrent: bool = False) -> Activation:
    """Return the activation function called ``name``.

    ``hard_sigmoid(x) = relu6(x + 3) / 6`` — Keras 3's and torch's definition (Keras 2 used
    ``clip(0.2 x + 0.5, 0, 1)``).

    Raises:
        ValueError: ``name`` is not one of :func:`activation_names` (or
            :func:`recurrent_activation_names` when ``recurrent=True``).
    """
    table: dict[str, Activation] = (
        {"sigmoid": torch.sigmoid, "hard_sigmoid": F.hardsigmoid}
        if recurrent
        else {
            "tanh": torch.tanh,
            "softsign": F.softsign,
            "relu": torch.relu,
            "sigmoid": torch.sigmoid,
            "hard_tanh": _hard_tanh,
            "identity": _identity,
        }
    )
    if name not in table:
        field = "recurrent_activation" if recurrent else "activation"
        raise ValueError(f"{field} must be one of {sorted(table)}, got {name!r}")
    return table[name]


def layer_norm(x: Tensor, weight: Tensor | None = None, bias: Tensor | None = None) -> Tensor:
    """Layer normalisation over the last dimension: ``(x - mean) / sqrt(var + 1e-5) * w + b``."""
    return F.layer_norm(x, x.shape[-1:], weight, bias, LN_EPS)


def input_projection(
    x: Tensor, weight_ih: Tensor, bias_ih: Tensor | None, ln_weight: Tensor | None = None
) -> Tensor:
    """Input part of the gates for all time steps at once: ``gx = [LN](x W_ih^T) + b_ih``.

    Shapes: ``x`` (B, T, D), ``weight_ih`` (G*H, D) -> (B, T, G*H). One GEMM for the whole
    sequence instead of one per step.
    """
    gx = torch.matmul(x, weight_ih.t())  # (B, T, GH)
    if ln_weight is not None:
        gx = layer_norm(gx, ln_weight)
    if bias_ih is not None:
        gx = gx + bias_ih
    return gx


def _recurrent(
    h: Tensor, weight_hh: Tensor, h_mask: Tensor | None, ln_weight: Tensor | None = None
) -> Tensor:
    if h_mask is not None:
        h = h * h_mask
    gh = torch.matmul(h, weight_hh.t())
    if ln_weight is not None:
        gh = layer_norm(gh, ln_weight)
    return gh


def lstm_step(
    gx: Tensor,
    h: Tensor,
    c: Tensor,
    weight_hh: Tensor,
    bias_hh: Tensor | None,
    *,
    forget_bias: float = 0.0,
    weight_ci: Tensor | None = None,
    weight_cf: Tensor | None = None,
    weight_co: Tensor | None = None,
    weight_hr: Tensor | None = None,
    ln_hh_weight: Tensor | None = None,
    ln_c_weight: Tensor | None = None,
    ln_c_bias: Tensor | None = None,
    activation: Activation = torch.tanh,
    recurrent_activation: Activation = torch.sigmoid,
    h_mask: Tensor | None = None,
    gates: dict[str, Tensor] | None = None,
) -> tuple[Tensor, Tensor]:
    """One LSTM step. Gate order **i, f, g, o** (torch's; Keras' i, f, c, o is the same).

    ::

        gh = LN((h * m) W_hh^T) * ln_hh_weight         (LN only with layer_norm)
        z  = gx + gh + b_hh                              # (B, 4H) -> z_i, z_f, z_g, z_o
        i  = rec_act(z_i + w_ci * c)
        f  = rec_act(z_f + forget_bias + w_cf * c)
        g  = act(z_g)
        c' = f * c + i * g
        o  = rec_act(z_o + w_co * c')                    # peephole on the new cell, as TF1
        h' = o * act(LN(c') * ln_c_weight + ln_c_bias)   # o * act(c') without layer_norm
        h' = h' W_hr^T                                   # only with proj_size

    Args:
        gx: input part of the gates for this step, ``x W_ih^T + b_ih``, (B, 4H).
        h: previous hidden state (B, H) or (B, P) with projection.
        c: previous cell state (B, H).
        weight_hh: (4H, H) or (4H, P).
        h_mask: variational recurrent-dropout mask for ``h`` (B, H_out), already scaled.
        gates: when given, filled with the activations ``input``, ``forget``, ``output`` (B, H)
            (for inspection; the math is unchanged).

    Returns:
        ``(h', c')``.
    """
    z = gx + _recurrent(h, weight_hh, h_mask, ln_hh_weight)  # (B, 4H)
    if bias_hh is not None:
        z = z + bias_hh
    z_i, z_f, z_g, z_o = z.chunk(4, dim=-1)
    if weight_ci is not None:
        z_i = z_i + weight_ci * c
    if weight_cf is not None:
        z_f = z_f + weight_cf * c
    if forget_bias:
        z_f = z_f + forget_bias
    i = recurrent_activation(z_i)
    f = recurrent_activation(z_f)
    g = activation(z_g)
    c_new = f * c + i * g
    if weight_co is not None:
        z_o = z_o + weight_co * c_new
    o = recurrent_activation(z_o)
    if gates is not None:
        gates.update(input=i, forget=f, output=o)
    c_out = layer_norm(c_new, ln_c_weight, ln_c_bias) if ln_c_weight is not None else c_new
    h_new = o * activation(c_out)
    if weight_hr is not None:
        h_new = torch.matmul(h_new, weight_hr.t())
    return h_new, c_new


def gru_step(
    gx: Tensor,
    h: Tensor,
    weight_hh: Tensor,
    bias_hh: Tensor | None,
    *,
    reset_after: bool = True,
    activation: Activation = torch.tanh,
    recurrent_activation: Activation = torch.sigmoid,
    h_mask: Tensor | None = None,
    gates: dict[str, Tensor] | None = None,
) -> Tensor:
    """One GRU step. Gate order **r, z, n** (torch's; Keras stores z, r, h).

    ::

        gx = x W_ih^T + b_ih                             # (B, 3H), precomputed
        reset_after=True  (torch, Keras default):
            gh = (h * m) W_hh^T + b_hh
            r = rec_act(gx_r + gh_r) ; z = rec_act(gx_z + gh_z)
            n = act(gx_n + r * gh_n)
        reset_after=False (Cho et al. 2014, "reset before"):
            r, z as above
            n = act(gx_n + (r * h * m) W_hn^T + b_hn)
        h' = (1 - z) * n + z * h

    Args:
        gx: (B, 3H). h: (B, H). weight_hh: (3H, H). h_mask: (B, H) recurrent-dropout mask.
        gates: when given, filled with the activations ``reset`` and ``update`` (B, H).
    """
    hm = h if h_mask is None else h * h_mask
    hidden = h.shape[-1]
    gx_r, gx_z, gx_n = gx.chunk(3, dim=-1)
    if reset_after:
        gh = torch.matmul(hm, weight_hh.t())
        if bias_hh is not None:
            gh = gh + bias_hh
        gh_r, gh_z, gh_n = gh.chunk(3, dim=-1)
        r = recurrent_activation(gx_r + gh_r)
        z = recurrent_activation(gx_z + gh_z)
        n = activation(gx_n + r * gh_n)
    else:
        w_rz, w_n = weight_hh[: 2 * hidden], weight_hh[2 * hidden :]
        gh_rz = torch.matmul(hm, w_rz.t())
        if bias_hh is not None:
            gh_rz = gh_rz + bias_hh[: 2 * hidden]
        gh_r, gh_z = gh_rz.chunk(2, dim=-1)
        r = recurrent_activation(gx_r + gh_r)
        z = recurrent_activation(gx_z + gh_z)
        gh_n = torch.matmul(r * hm, w_n.t())
        if bias_hh is not None:
            gh_n = gh_n + bias_hh[2 * hidden :]
        n = activation(gx_n + gh_n)
    if gates is not None:
        gates.update(reset=r, update=z)
    return (1.0 - z) * n + z * h


def rnn_step(
    gx: Tensor,
    h: Tensor,
    weight_hh: Tensor,
    bias_hh: Tensor | None,
    *,
    activation: Activation = torch.tanh,
    h_mask: Tensor | None = None,
) -> Tensor:
    """One SimpleRNN (Elman) step: ``h' = act(gx + (h * m) W_hh^T + b_hh)``, ``gx = x W_ih^T + b_ih``.

    Shapes: gx (B, H), h (B, H), weight_hh (H, H).
    """
    z = gx + _recurrent(h, weight_hh, h_mask)
    if bias_hh is not None:
        z = z + bias_hh
    return activation(z)
