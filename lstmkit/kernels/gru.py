"""GRU kernel for the variants torch's fused op cannot run (reset-before, hard_sigmoid, zoneout,
recurrent dropout, other activations), any device; the same design as :mod:`lstmkit.kernels.lstm`.

Equations (gate order r, z, n; :func:`lstmkit.functional.gru_step`), ``gx_t = x_t W_ih^T + b_ih``
with the ``b_hh`` parts that are not multiplied by ``r`` already added::

    reset_after=True:   gh = (h * m) W_hh^T + [0, 0, b_hn]
                        r = ract(gx_r + gh_r) ; z = ract(gx_z + gh_z) ; n = act(gx_n + r * gh_n)
    reset_after=False:  r, z as above with gh_rz = (h * m) W_rz^T
                        n = act(gx_n + (r * h * m) W_n^T)
    h' = (1 - z) * n + z * h = lerp(n, h, z)
    h  = lerp(h', h, k)                         # zoneout / padding keep-old weight
    y_t = s_t * h

One ``autograd.Function`` per layer and direction; the backward (BPTT) is hand-written, the
recurrent weight gradients are one GEMM each over all steps at the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from lstmkit.kernels.lstm import _ACT, _ACT_GRAD, check_activations


@dataclass(frozen=True)
class GRUKernelSpec:
    """The non-tensor options of one GRU kernel call (see :class:`LSTMKernelSpec`)."""

    activation: str = "tanh"
    recurrent_activation: str = "sigmoid"
    reset_after: bool = True
    reverse: bool = False

    def __post_init__(self) -> None:
        check_activations(self.activation, self.recurrent_activation)


_INPUTS = ("gx", "h0", "w_hh", "b_hn", "h_mask", "keep", "out_mask")


def _gru_forward(
    gx: Tensor,
    h0: Tensor,
    w_hh: Tensor,
    b_hn: Tensor | None,
    h_mask: Tensor | None,
    keep: Tensor | None,
    out_mask: Tensor | None,
    spec: GRUKernelSpec,
) -> tuple[Tensor, Tensor, tuple[Tensor, ...]]:
    """The recurrence: ``y (B, T, H)``, ``h_T`` and what backward reads."""
    steps, batch, g3 = gx.shape
    hidden = g3 // 3
    act, ract = _ACT[spec.activation], _ACT[spec.recurrent_activation]
    w_t = w_hh.t()
    w_rz_t, w_n_t = w_t[:, : 2 * hidden], w_t[:, 2 * hidden :]
    bias3 = None
    if spec.reset_after and b_hn is not None:
        bias3 = torch.cat([b_hn.new_zeros(2 * hidden), b_hn])
    h_all = gx.new_empty(steps + 1, batch, hidden)
    first = steps if spec.reverse else 0
    h_all[first] = h0
    rz_all = gx.new_empty(steps, batch, 2, hidden)  # r, z
    n_all = gx.new_empty(steps, batch, hidden)
    side_all = gx.new_empty(steps, batch, hidden)  # gh_n (reset_after) or r * h * m (before)
    hs, gxs, rzs, ns, sides = (
        h_all.unbind(0), gx.unbind(0), rz_all.unbind(0), n_all.unbind(0), side_all.unbind(0)
    )  # fmt: skip
    keeps = keep.unbind(0) if keep is not None else None
    shift = 1 if spec.reverse else 0
    for t in range(steps - 1, -1, -1) if spec.reverse else range(steps):
        h = hs[t + shift]
        hm = h if h_mask is None else h * h_mask
        gx3 = gxs[t].view(batch, 3, hidden)
        rz = rzs[t]
        if spec.reset_after:
            gh = torch.mm(hm, w_t) if bias3 is None else torch.addmm(bias3, hm, w_t)
            gh3 = gh.view(batch, 3, hidden)
            ract(gx3[:, :2] + gh3[:, :2], rz)
            sides[t].copy_(gh3[:, 2])
            n = act(torch.addcmul(gx3[:, 2], rz[:, 0], gh3[:, 2]), ns[t])
        else:
            gh_rz = torch.mm(hm, w_rz_t).view(batch, 2, hidden)
            ract(gx3[:, :2] + gh_rz, rz)
            rh = torch.mul(rz[:, 0], hm, out=sides[t])
            n = act(torch.addmm(gx3[:, 2], rh, w_n_t), ns[t])
        dest = hs[t + 1 - shift]
        if keeps is None:
            torch.lerp(n, h, rz[:, 1], out=dest)
        else:
            torch.lerp(torch.lerp(n, h, rz[:, 1]), h, keeps[t], out=dest)
    states = slice(0, steps) if spec.reverse else slice(1, steps + 1)
    y = h_all[states].transpose(0, 1)
    y = y * out_mask if out_mask is not None else y.contiguous()
    h_t = h_all[0 if spec.reverse else steps].clone()
    return y, h_t, (h_all, rz_all, n_all, side_all)


class _GRUSequence(torch.autograd.Function):
    """The recurrence of one GRU layer and direction with a hand-written BPTT."""

    @staticmethod
    def forward(ctx: Any, *args: Any) -> tuple[Tensor, Tensor]:
        gx, h0, w_hh, b_hn, h_mask, keep, out_mask, spec = args
        y, h_t, saved = _gru_forward(gx, h0, w_hh, b_hn, h_mask, keep, out_mask, spec)
        if any(ctx.needs_input_grad):
            inputs = [gx, h0, w_hh, b_hn, h_mask, keep, out_mask]
            ctx.present = [n for n, v in zip(_INPUTS, inputs, strict=True) if v is not None]
            ctx.spec = spec
            ctx.save_for_backward(*saved, *[v for v in inputs if v is not None])
        return y, h_t

    @staticmethod
    def backward(ctx: Any, *grads: Any) -> tuple[Tensor | None, ...]:
        if torch.is_grad_enabled():
            raise RuntimeError(
                "impl='kernel' has no second derivatives (its BPTT is hand-written and not "
                "differentiable); use impl='loop' for double backward (create_graph=True)"
            )
        d_y, d_ht = grads
        h_all, rz_all, n_all, side_all, *stored = ctx.saved_tensors
        inp: dict[str, Tensor | None] = dict.fromkeys(_INPUTS)
        inp.update(zip(ctx.present, stored, strict=True))
        need = dict(zip(_INPUTS, ctx.needs_input_grad, strict=False))
        spec: GRUKernelSpec = ctx.spec
        w_hh, h_mask, keep, out_mask = inp["w_hh"], inp["h_mask"], inp["keep"], inp["out_mask"]
        assert w_hh is not None
        steps, batch, _, hidden = rz_all.shape
        w_rz, w_n = w_hh[: 2 * hidden], w_hh[2 * hidden :]
        before = slice(1, steps + 1) if spec.reverse else slice(0, steps)
        h_prev = h_all[before]
        hm = h_prev if h_mask is None else h_prev * h_mask
        d_ract = _ACT_GRAD[spec.recurrent_activation](rz_all)  # (T, B, 2, H)
        d_n = _ACT_GRAD[spec.activation](n_all)
        dys = None
        if d_y is not None:
            dy_t = d_y.transpose(0, 1)
            dy_t = (dy_t * out_mask.transpose(0, 1) if out_mask is not None else dy_t).contiguous()
            dys = dy_t.unbind(0)
        dgx_all = rz_all.new_empty(steps, batch, 3, hidden)
        dgh_n_all = rz_all.new_empty(steps, batch, hidden)  # gradient reaching W_n's output
        dh = d_ht if d_ht is not None else rz_all.new_zeros(batch, hidden)
        for t in range(steps) if spec.reverse else range(steps - 1, -1, -1):
            dht = dh if dys is None else dh + dys[t]
            carry = None
            if keep is not None:
                carry = dht * keep[t]
                dht = dht * (1.0 - keep[t])
            r, z = rz_all[t, :, 0], rz_all[t, :, 1]
            n, h = n_all[t], h_prev[t]
            dgx = dgx_all[t]  # (B, 3, H): r, z, n pre-activation gradients
            dn_pre = torch.mul(dht * (1.0 - z), d_n[t], out=dgx[:, 2])
            torch.mul(dht * (h - n), d_ract[t, :, 1], out=dgx[:, 1])  # dz_pre
            direct = dht * z
            if spec.reset_after:
                torch.mul(dn_pre * side_all[t], d_ract[t, :, 0], out=dgx[:, 0])  # dr_pre
                torch.mul(dn_pre, r, out=dgh_n_all[t])
                dhm = torch.mm(
                    torch.cat([dgx[:, :2], dgh_n_all[t].unsqueeze(1)], 1).view(batch, -1), w_hh
                )
            else:
                d_rh = torch.mm(dn_pre, w_n)  # (B, H)
                torch.mul(d_rh * hm[t], d_ract[t, :, 0], out=dgx[:, 0])
                dhm = torch.addcmul(torch.mm(dgx[:, :2].reshape(batch, -1), w_rz), d_rh, r)
            dh = (dhm * h_mask if h_mask is not None else dhm) + direct
            if carry is not None:
                dh = dh + carry
        out: dict[str, Tensor] = {}
        dgx_flat = dgx_all.view(steps, batch, 3 * hidden)
        if need["gx"]:
            out["gx"] = dgx_flat
        if need["h0"]:
            out["h0"] = dh
        hm_flat = hm.reshape(-1, hidden)
        if need["w_hh"]:
            if spec.reset_after:
                dgh = torch.cat([dgx_all[:, :, :2], dgh_n_all.unsqueeze(2)], 2)
                out["w_hh"] = dgh.reshape(-1, 3 * hidden).t().mm(hm_flat)
            else:
                d_rz = dgx_all[:, :, :2].reshape(-1, 2 * hidden).t().mm(hm_flat)
                d_n_w = dgx_all[:, :, 2].reshape(-1, hidden).t().mm(side_all.reshape(-1, hidden))
                out["w_hh"] = torch.cat([d_rz, d_n_w], 0)
        if inp["b_hn"] is not None and need["b_hn"]:
            out["b_hn"] = dgh_n_all.sum((0, 1))
        return (*[out.get(n) for n in _INPUTS], None)


def gru_sequence(
    gx: Tensor,
    h0: Tensor,
    w_hh: Tensor,
    *,
    b_hn: Tensor | None = None,
    h_mask: Tensor | None = None,
    keep: Tensor | None = None,
    out_mask: Tensor | None = None,
    spec: GRUKernelSpec = GRUKernelSpec(),
) -> tuple[Tensor, Tensor]:
    """Run the GRU recurrence of one layer and direction with the kernel.

    Args:
        gx: ``(T, B, 3H)`` time-major, ``x W_ih^T + b_ih`` plus ``b_hh`` (all of it with
            ``reset_after=False``; its r and z parts with ``reset_after=True``).
        h0: ``(B, H)``. w_hh: ``(3H, H)`` (weight_drop already applied).
        b_hn: the n part of ``b_hh`` ``(H,)`` (``reset_after=True`` only: it is scaled by r).
        h_mask: recurrent-dropout mask ``(B, H)``. keep: per-step keep-old weights
            ``(T, B, H | 1)`` (zoneout and padding). out_mask: ``(B, T, 1)``, 0 at padded steps.

    Returns:
        ``y (B, T, H)`` and ``h_T (B, H)``.
    """
    if gx.dim() != 3 or gx.shape[2] != w_hh.shape[0] or gx.shape[2] % 3:
        raise ValueError(
            f"gx must be (T, B, 3H) with 3H = w_hh.shape[0] = {w_hh.shape[0]}, got {tuple(gx.shape)}"
        )
    if b_hn is not None and not spec.reset_after:
        raise ValueError("b_hn is only for reset_after=True; fold b_hh into gx otherwise")
    if not torch.is_grad_enabled():  # no_grad / inference_mode: nothing to keep for backward
        y, h, _ = _gru_forward(gx, h0, w_hh, b_hn, h_mask, keep, out_mask, spec)
        return y, h
    y, h = _GRUSequence.apply(gx, h0, w_hh, b_hn, h_mask, keep, out_mask, spec)
    return y, h


def gru_direction(
    cell: Any,
    x: Tensor,
    state: tuple[Tensor, ...],
    step_mask: Tensor | None,
    h_mask: Tensor | None,
    w_hh: Tensor,
    zone: tuple[Tensor, ...] | None,
    *,
    reverse: bool,
) -> tuple[Tensor, tuple[Tensor]]:
    """One layer and direction of a :class:`lstmkit.cells.GRUCell` over ``x`` (B, T, D) with
    the kernel; arguments as :func:`lstmkit.kernels.lstm.lstm_direction`."""
    hidden = cell.hidden_size
    bias: Tensor | None = cell.bias_ih
    b_hn = None
    if cell.bias_hh is not None:
        if cell.reset_after:
            folded = torch.cat([cell.bias_hh[: 2 * hidden], cell.bias_hh.new_zeros(hidden)])
            b_hn = cell.bias_hh[2 * hidden :]
        else:
            folded = cell.bias_hh
        bias = folded if bias is None else bias + folded
    x_tm = x.transpose(0, 1)
    steps, batch, _ = x_tm.shape
    if bias is None:
        gx = torch.matmul(x_tm, cell.weight_ih.t())
    else:
        gx = torch.addmm(bias, x_tm.reshape(steps * batch, -1), cell.weight_ih.t())
        gx = gx.view(steps, batch, -1)
    keep = None
    if zone is not None:
        keep = zone[0]
    elif cell.zoneout:
        keep = gx.new_full((steps, batch, 1), cell.zoneout)
    out_mask = None
    if step_mask is not None:
        real = step_mask.transpose(0, 1)  # (T, B, 1)
        keep = torch.where(real, keep if keep is not None else 0.0, gx.new_ones(()))
        out_mask = step_mask.to(gx.dtype)
    spec = GRUKernelSpec(
        cell.activation_name, cell.recurrent_activation_name, cell.reset_after, reverse
    )
    y, h = gru_sequence(
        gx, state[0], w_hh, b_hn=b_hn, h_mask=h_mask, keep=keep, out_mask=out_mask, spec=spec
    )
    return y, (h,)
