"""LSTM training kernel for the variants torch's fused op cannot run (CPU first, any device).

What it runs: one layer, one direction of :class:`lstmkit.cells.LSTMCell` with any combination
of peephole, layer_norm, zoneout, recurrent_dropout, weight_drop, activation /
recurrent_activation, forget_bias and proj_size, over a batch with lengths ('pre' or 'post'
padding) or without. :class:`lstmkit.layers.Recurrent` stacks layers and directions around it
exactly as its loop does, so masks drawn by ``draw_masks`` give the same numbers on both paths.

How it is fast (the loop runs ~25 small autograd ops per step forward and ~60 backward):

- the input projection of all steps, ``b_hh`` and ``forget_bias`` are one GEMM + one add
  before the recurrence (:func:`lstm_direction`), time-major ``(T, B, 4H)``;
- the recurrence is one ``autograd.Function`` (:class:`_LSTMSequence`): per step one ``addmm``
  and ~8 element-wise ops, writing gate activations straight into one ``(T, B, 4, H)`` buffer,
  no autograd graph;
- the backward (BPTT) is hand-written: every local derivative (``i * act'(g)``, ``c * f'``, ...)
  is computed once for all steps in bulk, so a backward step is ~8 element-wise ops and one
  ``mm`` for ``dh``; the weight gradients (``W_hh``, ``W_hr``, peepholes, LN gains) are one GEMM
  / one reduction over all steps at the end; ``dgx`` flows back through autograd into the
  input projection (one more GEMM);
- for the tanh / sigmoid LSTM without projection (float32 / float64 on CPU) the whole recurrence,
  forward and backward, is one call of a compiled C++ op (:mod:`lstmkit.kernels.compiled`, built
  with ``torch.utils.cpp_extension`` on first use; :func:`_forward_compiled`,
  :func:`_backward_compiled`), so a step is the recurrent GEMM plus one pass over the rows;
  :func:`step_path` says which path a cell takes. ``LSTMKernelSpec(compiled=...)``: ``'auto'``
  (default) runs the torch-op steps (:func:`_forward`, :func:`_backward`), with one warning, where
  the op cannot be built (no compiler); ``True`` raises
  :class:`~lstmkit.errors.CompiledKernelError` there instead (what ``impl='kernel'`` asks for);
  ``False`` always runs the torch-op steps.

Zoneout and padding are one thing here: a per-step "keep the old state" weight ``k`` with
``state = lerp(new, old, k)``; ``k`` is the zoneout mask (0/1) in training, ``p`` in eval, and 1
at a padded step. ``torch.lerp`` returns ``old`` exactly for ``k = 1`` and ``new`` exactly for
``k = 0``, so a padded step leaves the state bit-for-bit unchanged, as the loop's
``torch.where`` does.

Equations (gate order i, f, g, o; :func:`lstmkit.functional.lstm_step`)::

    z  = gx_t + [LN]((h * m) W_hh^T)                 # gx_t = [LN](x_t W_ih^T) + b_ih + b_hh + fb
    i  = ract(z_i + w_ci * c) ; f = ract(z_f + w_cf * c) ; g = act(z_g)
    c' = f * c + i * g ; o = ract(z_o + w_co * c')
    h' = (o * act([LN](c'))) [W_hr^T]
    h  = lerp(h', h, k_h) ; c = lerp(c', c, k_c)     # zoneout / padding
    y_t = s_t * h                                     # 0 at padded steps
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from lstmkit import functional as Fn
from lstmkit.kernels import compiled as C

EPS = Fn.LN_EPS
# compiled step with layer_norm: up to this H the backward recomputes h W_hh^T per step instead of
# the forward keeping it for every step (see _forward_compiled)
RECOMPUTE_RAW_MAX_HIDDEN = 64
CHUNK_ELEMENTS = 1 << 18  # backward: local derivatives of ~this many gate values at a time
OutFn = Callable[[Tensor, Tensor], Tensor]
GradFn = Callable[[Tensor], Tensor]


def _softsign(x: Tensor, out: Tensor) -> Tensor:
    return torch.div(x, x.abs().add_(1.0), out=out)


# activation(x, out) writing into ``out`` (no extra copy), and its derivative from the OUTPUT y
_ACT: dict[str, OutFn] = {
    "tanh": lambda x, out: torch.tanh(x, out=out),
    "sigmoid": lambda x, out: torch.sigmoid(x, out=out),
    "softsign": _softsign,
    "relu": lambda x, out: torch.clamp_min(x, 0.0, out=out),
    "hard_tanh": lambda x, out: torch.clamp(x, -1.0, 1.0, out=out),
    "identity": lambda x, out: out.copy_(x),
    "hard_sigmoid": lambda x, out: out.copy_(F.hardsigmoid(x)),
}
_ACT_GRAD: dict[str, GradFn] = {  # one pass each for tanh / sigmoid (addcmul: a + v * b * c)
    "tanh": lambda y: torch.addcmul(y.new_ones(()), y, y, value=-1.0),
    "sigmoid": lambda y: torch.addcmul(y, y, y, value=-1.0),
    "softsign": lambda y: (1.0 - y.abs()) ** 2,
    "relu": lambda y: (y > 0).to(y.dtype),
    "hard_tanh": lambda y: (y.abs() < 1.0).to(y.dtype),
    "identity": lambda y: torch.ones_like(y),
    "hard_sigmoid": lambda y: ((y > 0) & (y < 1)).to(y.dtype) / 6.0,
}


def check_activations(activation: str, recurrent_activation: str) -> None:
    """ValueError naming the valid choices unless both activation names are known."""
    if activation not in Fn.activation_names():
        raise ValueError(
            f"activation must be one of {list(Fn.activation_names())}, got {activation!r}"
        )
    if recurrent_activation not in Fn.recurrent_activation_names():
        raise ValueError(
            "recurrent_activation must be one of "
            f"{list(Fn.recurrent_activation_names())}, got {recurrent_activation!r}"
        )


@dataclass(frozen=True)
class LSTMKernelSpec:
    """The non-tensor options of one kernel call.

    Attributes:
        activation: name of the candidate / cell-output function (:func:`lstmkit.functional.activation_names`).
        recurrent_activation: name of the gate function ('sigmoid' or 'hard_sigmoid').
        reverse: visit the steps T-1 .. 0 (the reverse direction of a bidirectional layer).
        compiled: run the recurrence in the compiled C++ op (:mod:`lstmkit.kernels.compiled`)
            where the configuration allows it (:func:`step_blockers`). ``'auto'``: where it
            cannot be built either, the torch-op steps run, after one warning; ``True``: a failed
            build raises :class:`~lstmkit.errors.CompiledKernelError`; ``False``: the torch-op
            steps always.
    """

    activation: str = "tanh"
    recurrent_activation: str = "sigmoid"
    reverse: bool = False
    compiled: bool | Literal["auto"] = "auto"

    def __post_init__(self) -> None:
        check_activations(self.activation, self.recurrent_activation)
        if self.compiled not in (True, False, "auto"):
            raise ValueError(f"compiled must be True, False or 'auto', got {self.compiled!r}")


def _forward(
    gx: Tensor,
    h0: Tensor,
    c0: Tensor,
    w_hh: Tensor,
    w_ci: Tensor | None,
    w_cf: Tensor | None,
    w_co: Tensor | None,
    ln_hh_weight: Tensor | None,
    ln_c_weight: Tensor | None,
    ln_c_bias: Tensor | None,
    w_hr: Tensor | None,
    h_mask: Tensor | None,
    keep_h: Tensor | None,
    keep_c: Tensor | None,
    out_mask: Tensor | None,
    *,
    spec: LSTMKernelSpec,
    save: bool,
) -> tuple[Tensor, Tensor, Tensor, dict[str, Tensor]]:
    """The recurrence; returns ``y (B, T, H_out), h_T, c_T`` and (when ``save``) what backward needs."""
    steps, batch, g4 = gx.shape
    hidden = g4 // 4
    h_out = h0.shape[1]
    act, ract = _ACT[spec.activation], _ACT[spec.recurrent_activation]
    peep = w_ci is not None
    w_cif = torch.stack([w_ci, w_cf]) if peep else None  # type: ignore[list-item]  # (2, H)
    w_hh_t = w_hh.t()
    w_hr_t = w_hr.t() if w_hr is not None else None
    zone = keep_h is not None
    # States live in (T+1)-long time-major buffers: the state entering step t is at slot
    # t (forward) / t+1 (reverse), the state after it at t+1 / t; no stacking afterwards.
    h_all = gx.new_empty(steps + 1, batch, h_out)
    c_all = gx.new_empty(steps + 1, batch, hidden)
    first = steps if spec.reverse else 0
    h_all[first], c_all[first] = h0, c0
    # What backward reads is kept for every step; without gradients one step's worth is reused
    # (no (T, B, 4H) buffers to allocate and fault in).
    kept = steps if save else 1
    gates_all = gx.new_empty(kept, batch, 4, hidden)  # (T, B, 4, H): i, f, g, o activations
    c_new_all = gx.new_empty(kept, batch, hidden) if zone else None  # c' before zoneout
    a_c_all = gx.new_empty(kept, batch, hidden)  # act([LN](c'))
    raw_all = gx.new_empty(kept, batch, g4) if ln_hh_weight is not None else None
    ln_hh_stats: list[Tensor] = [h0] * (2 * steps)
    ln_c_stats: list[Tensor] = [h0] * (2 * steps)
    h_pre_all = gx.new_empty(kept, batch, hidden) if w_hr is not None else None
    order = range(steps - 1, -1, -1) if spec.reverse else range(steps)
    shift = 1 if spec.reverse else 0
    reuse = 1 if save else steps  # a list of ``steps`` views either way

    def views(buf: Tensor | None) -> list[Tensor] | None:
        return None if buf is None else list(buf.unbind(0)) * reuse

    # per-step views made once (one op each) instead of ~15 indexing ops per step
    hs, cs, gxs = h_all.unbind(0), c_all.unbind(0), gx.unbind(0)
    gs, a_cs = list(gates_all.unbind(0)) * reuse, list(a_c_all.unbind(0)) * reuse
    i_s, f_s, g_s, o_s = (list(gates_all[:, :, k].unbind(0)) * reuse for k in range(4))
    if_s = list(gates_all[:, :, :2].unbind(0)) * reuse
    c_news, h_pres, raws = views(c_new_all), views(h_pre_all), views(raw_all)
    keep_hs = keep_h.unbind(0) if keep_h is not None else None
    keep_cs = keep_c.unbind(0) if keep_c is not None else None
    for t in order:
        t_in, t_out = t + shift, t + 1 - shift
        h, c = hs[t_in], cs[t_in]
        hm = h if h_mask is None else h * h_mask
        if raws is not None:
            raw = torch.mm(hm, w_hh_t, out=raws[t])  # (B, 4H)
            ln, mu, rstd = torch.native_layer_norm(raw, [g4], ln_hh_weight, None, EPS)
            z = ln.add_(gxs[t])
            ln_hh_stats[2 * t], ln_hh_stats[2 * t + 1] = mu, rstd
        else:
            z = torch.addmm(gxs[t], hm, w_hh_t)  # (B, 4H)
        z4 = z.view(batch, 4, hidden)
        if w_cif is not None:
            z4[:, :2].addcmul_(c.unsqueeze(1), w_cif)
            ract(z4[:, :2], if_s[t])
        else:
            ract(z4, gs[t])  # the g slot is overwritten just below
        g = act(z4[:, 2], g_s[t])
        c_new = torch.addcmul(
            f_s[t] * c, i_s[t], g, out=c_news[t] if c_news is not None else cs[t_out]
        )
        o = o_s[t]
        if w_co is not None:
            ract(torch.addcmul(z4[:, 3], w_co, c_new), o)
        if ln_c_weight is not None:
            c_out, mu_c, rstd_c = torch.native_layer_norm(
                c_new, [hidden], ln_c_weight, ln_c_bias, EPS
            )
            ln_c_stats[2 * t], ln_c_stats[2 * t + 1] = mu_c, rstd_c
        else:
            c_out = c_new
        a_c = act(c_out, a_cs[t])
        h_dest = hs[t_out] if not zone else None
        if w_hr_t is not None:
            assert h_pres is not None
            h_new = torch.mm(torch.mul(o, a_c, out=h_pres[t]), w_hr_t, out=h_dest)  # (B, P)
        else:
            h_new = torch.mul(o, a_c, out=h_dest)
        if keep_hs is not None and keep_cs is not None:
            torch.lerp(h_new, h, keep_hs[t], out=hs[t_out])
            torch.lerp(c_new, c, keep_cs[t], out=cs[t_out])
    states = slice(0, steps) if spec.reverse else slice(1, steps + 1)  # state after step t
    y = h_all[states].transpose(0, 1)  # (B, T, H_out)
    y = y * out_mask if out_mask is not None else y.contiguous()
    last = 0 if spec.reverse else steps
    h_t, c_t = h_all[last].clone(), c_all[last].clone()
    saved: dict[str, Tensor] = {}
    if save:
        saved = {"gates": gates_all, "a_c": a_c_all, "h_all": h_all, "c_all": c_all}
        if c_new_all is not None:
            saved["c_new"] = c_new_all
        if h_pre_all is not None:
            saved["h_pre"] = h_pre_all
        if raw_all is not None:
            saved["raw"] = raw_all
            saved["mu_hh"] = torch.stack(ln_hh_stats[0::2])
            saved["rstd_hh"] = torch.stack(ln_hh_stats[1::2])
        if ln_c_weight is not None:
            saved["mu_c"] = torch.stack(ln_c_stats[0::2])
            saved["rstd_c"] = torch.stack(ln_c_stats[1::2])
    return y, h_t, c_t, saved


_SAVED_NAMES = (
    "gates",
    "c_new",
    "a_c",
    "h_all",
    "c_all",
    "h_pre",
    "raw",
    "mu_hh",
    "rstd_hh",
    "mu_c",
    "rstd_c",
)
_INPUT_NAMES = (
    "gx", "h0", "c0", "w_hh", "w_ci", "w_cf", "w_co", "ln_hh_weight", "ln_c_weight", "ln_c_bias",
    "w_hr", "h_mask", "keep_h", "keep_c", "out_mask",
)  # fmt: skip


def step_blockers(
    spec: LSTMKernelSpec, *, projection: bool, dtype: torch.dtype, device: str
) -> list[str]:
    """What keeps a kernel call off the compiled C++ op (empty: the op runs it, once built)."""
    if spec.compiled is False:
        return ["compiled=False was requested"]
    return C.compiled_blockers(
        activation=spec.activation,
        recurrent_activation=spec.recurrent_activation,
        projection=projection,
        dtype=dtype,
        device=device,
    )


def step_path(cell: Any) -> str:
    """Which per-step path the kernel runs for an :class:`lstmkit.cells.LSTMCell` (its weights'
    dtype and device), as words that follow "runs it": 'with the compiled C++ step ...' or 'with
    torch-op steps, as the compiled C++ step cannot run <what>' (or could not be built, once a
    build failed in this process; this starts no build)."""
    spec = LSTMKernelSpec(cell.activation_name, cell.recurrent_activation_name)
    weight = cell.weight_hh
    blockers = step_blockers(
        spec,
        projection=cell.weight_hr is not None,
        dtype=weight.dtype,
        device=weight.device.type,
    )
    if blockers:
        return f"with torch-op steps, as the compiled C++ step cannot run {', '.join(blockers)}"
    failed = C.failure()
    if failed is not None:
        return f"with torch-op steps, as the compiled C++ step could not be built ({failed})"
    return "with the compiled C++ step of lstmkit.kernels.compiled"


def _compiled_ops(spec: LSTMKernelSpec, gx: Tensor, w_hr: Tensor | None) -> Any | None:
    """The compiled op's namespace when it runs this call, else None (the torch-op steps run).

    Raises:
        CompiledKernelError: ``spec.compiled is True`` and the op cannot be built.
    """
    if step_blockers(spec, projection=w_hr is not None, dtype=gx.dtype, device=gx.device.type):
        return None
    return C.load() if spec.compiled is True else C.try_load()


def _forward_compiled(
    gx: Tensor,
    h0: Tensor,
    c0: Tensor,
    w_hh: Tensor,
    w_ci: Tensor | None,
    w_cf: Tensor | None,
    w_co: Tensor | None,
    ln_hh_weight: Tensor | None,
    ln_c_weight: Tensor | None,
    ln_c_bias: Tensor | None,
    w_hr: Tensor | None,
    h_mask: Tensor | None,
    keep_h: Tensor | None,
    keep_c: Tensor | None,
    out_mask: Tensor | None,
    *,
    spec: LSTMKernelSpec,
    save: bool,
    ops: Any,
) -> tuple[Tensor, Tensor, Tensor, dict[str, Tensor]]:
    """:func:`_forward` with the recurrence in the compiled op ``ops.lstm_forward``: per step
    one ``mm`` (``h W_hh^T``) and one pass over the rows, all in C++; same results and saved
    tensors."""
    assert w_hr is None
    steps, batch, g4 = gx.shape
    hidden = g4 // 4
    gx = gx.contiguous()
    h_all = gx.new_empty(steps + 1, batch, hidden)
    c_all = gx.new_empty(steps + 1, batch, hidden)
    first = steps if spec.reverse else 0
    h_all[first], c_all[first] = h0, c0
    kept = steps if save else 1
    ln = ln_hh_weight is not None
    dt = gx.dtype
    gates_all = gx.new_empty(kept, batch, 4, hidden)
    a_c_all = gx.new_empty(kept, batch, hidden)
    c_new_all = gx.new_empty(kept, batch, hidden) if keep_h is not None else None
    # h W_hh^T: with layer norm the backward needs it; up to H = RECOMPUTE_RAW_MAX_HIDDEN it goes
    # to one (B, 4H) scratch, in cache, and the backward recomputes it (a small GEMM beats writing
    # and re-reading a (T, B, 4H) buffer), above it is kept for every step
    keep_raw = ln and save and hidden > RECOMPUTE_RAW_MAX_HIDDEN
    raw_all = gx.new_empty(steps if keep_raw else 1, batch, g4)
    stats_hh = gx.new_empty(2, kept, batch) if ln else None  # mean, rstd of the LN on h W_hh^T
    stats_c = gx.new_empty(2, kept, batch) if ln_c_weight is not None else None
    hm = gx.new_empty(batch, hidden) if h_mask is not None else None  # h * h_mask: the GEMM's input
    if keep_h is not None and keep_c is not None:
        keep_h, keep_c = keep_h.to(dt).contiguous(), keep_c.to(dt).contiguous()
    zero = gx.new_zeros(hidden)  # absent peepholes / LN bias: zeros, so the loops have no branches
    lnc_b = None if ln_c_weight is None else zero if ln_c_bias is None else ln_c_bias.contiguous()
    if hm is not None and h_mask is not None:
        torch.mul(h0, h_mask, out=hm)  # the first GEMM's input; the op writes the next ones
    ops.lstm_forward(
        gx, w_hh.t(), h_all.unbind(0), raw_all.unbind(0), hm, _c(ln_hh_weight),
        _c(w_ci, zero), _c(w_cf, zero), _c(w_co, zero), _c(ln_c_weight), lnc_b, keep_h, keep_c,
        _c(h_mask), raw_all,
        stats_hh[0] if stats_hh is not None else None,
        stats_hh[1] if stats_hh is not None else None,
        stats_c[0] if stats_c is not None else None,
        stats_c[1] if stats_c is not None else None,
        gates_all, c_new_all, a_c_all, h_all, c_all, EPS, spec.reverse, save, keep_raw,
    )  # fmt: skip
    states = slice(0, steps) if spec.reverse else slice(1, steps + 1)
    y = h_all[states].transpose(0, 1)
    y = y * out_mask if out_mask is not None else y.contiguous()
    last = 0 if spec.reverse else steps
    h_t, c_t = h_all[last].clone(), c_all[last].clone()
    saved: dict[str, Tensor] = {}
    if save:
        saved = {"gates": gates_all, "a_c": a_c_all, "h_all": h_all, "c_all": c_all}
        if c_new_all is not None:
            saved["c_new"] = c_new_all
        if stats_hh is not None:
            saved.update(mu_hh=stats_hh[0], rstd_hh=stats_hh[1])
            if keep_raw:
                saved["raw"] = raw_all
        if stats_c is not None:
            saved.update(mu_c=stats_c[0], rstd_c=stats_c[1])
    return y, h_t, c_t, saved


def _c(x: Tensor | None, default: Tensor | None = None) -> Tensor | None:
    return default if x is None else x.contiguous()


def _backward_compiled(
    s: dict[str, Tensor],
    inp: dict[str, Tensor | None],
    need: dict[str, bool],
    spec: LSTMKernelSpec,
    d_y: Tensor | None,
    d_ht: Tensor | None,
    d_ct: Tensor | None,
    ops: Any,
) -> dict[str, Tensor]:
    """:func:`_backward` with the recurrence in the compiled op ``ops.lstm_backward``: per step
    one pass over the rows and one ``mm`` for dh, all in C++; with layer norm also ``h W_hh^T``
    recomputed (one ``mm``, unless the forward kept it) and one ``addmm`` for dW_hh (without,
    dW_hh is one GEMM at the end)."""
    gates, a_c, h_all, c_all = s["gates"], s["a_c"], s["h_all"], s["c_all"]
    steps, batch, _, hidden = gates.shape
    before = slice(1, steps + 1) if spec.reverse else slice(0, steps)
    after = slice(0, steps) if spec.reverse else slice(1, steps + 1)
    w_hh = inp["w_hh"]
    assert w_hh is not None
    w_ci, w_cf, w_co = inp["w_ci"], inp["w_cf"], inp["w_co"]
    h_mask, keep_h, keep_c, out_mask = inp["h_mask"], inp["keep_h"], inp["keep_c"], inp["out_mask"]
    ln_hh_w, ln_c_w, ln_c_b = inp["ln_hh_weight"], inp["ln_c_weight"], inp["ln_c_bias"]
    dt = gates.dtype
    dy_t = None
    if d_y is not None:
        dy_t = d_y.transpose(0, 1)
        dy_t = (dy_t * out_mask.transpose(0, 1) if out_mask is not None else dy_t).contiguous()
    if keep_h is not None and keep_c is not None:
        keep_h, keep_c = keep_h.to(dt).contiguous(), keep_c.to(dt).contiguous()
    dz_all = gates.new_empty(steps, batch, 4 * hidden)
    dh = d_ht.contiguous().clone() if d_ht is not None else gates.new_zeros(batch, hidden)
    dc = d_ct.contiguous().clone() if d_ct is not None else gates.new_zeros(batch, hidden)
    carry_h = gates.new_zeros(batch, hidden)  # zoneout / padding: the part of dh kept past a step
    mmres = gates.new_empty(batch, hidden)  # d(raw) W_hh of the step just done
    ln = ln_hh_w is not None
    d_raw = gates.new_empty(batch, 4 * hidden) if ln else None
    # h W_hh^T: kept by the forward (large H) or recomputed per step into a scratch
    raw = gates.new_empty(batch, 4 * hidden) if ln and "raw" not in s else None
    f64 = torch.float64  # the LN gain gradients are sums over T * B rows: accumulated in float64
    g_lnhh = gates.new_zeros(4 * hidden, dtype=f64) if ln else None
    g_lnc_w = gates.new_zeros(hidden, dtype=f64) if ln_c_w is not None else None
    g_lnc_b = gates.new_zeros(hidden, dtype=f64) if ln_c_b is not None else None
    zero = gates.new_zeros(hidden)
    hm = h_all[before] if h_mask is None else h_all[before] * h_mask  # (T, B, H)
    dw_hh_t = gates.new_zeros(hidden, 4 * hidden) if ln else None
    ops.lstm_backward(
        w_hh, w_hh.t(), hm.unbind(0), hm.transpose(1, 2).unbind(0), dz_all.unbind(0), raw,
        s.get("raw"), _c(ln_hh_w), s.get("mu_hh"), s.get("rstd_hh"), _c(w_ci, zero),
        _c(w_cf, zero), _c(w_co, zero), _c(ln_c_w), s.get("mu_c"), s.get("rstd_c"), keep_h,
        keep_c, _c(h_mask), gates, s.get("c_new"), c_all, a_c, dy_t, mmres, dh, dc, carry_h,
        dz_all, d_raw, g_lnhh, g_lnc_w, g_lnc_b, dw_hh_t, spec.reverse,
    )  # fmt: skip
    dh0 = (mmres * h_mask if h_mask is not None else mmres) + carry_h
    out: dict[str, Tensor] = {"gx": dz_all, "h0": dh0, "c0": dc}
    if need["w_hh"]:
        out["w_hh"] = (
            dw_hh_t.t().contiguous()
            if dw_hh_t is not None
            else dz_all.reshape(-1, 4 * hidden).t().mm(hm.reshape(-1, hidden))
        )
    if w_ci is not None:
        dz4 = dz_all.view(steps, batch, 4, hidden)
        c_prev = c_all[before]
        c_new = s["c_new"] if "c_new" in s else c_all[after]
        out["w_ci"] = (dz4[:, :, 0] * c_prev).sum((0, 1))
        out["w_cf"] = (dz4[:, :, 1] * c_prev).sum((0, 1))
        out["w_co"] = (dz4[:, :, 3] * c_new).sum((0, 1))
    if g_lnhh is not None:
        out["ln_hh_weight"] = g_lnhh.to(dt)
    if g_lnc_w is not None:
        out["ln_c_weight"] = g_lnc_w.to(dt)
    if g_lnc_b is not None:
        out["ln_c_bias"] = g_lnc_b.to(dt)
    return {k: v for k, v in out.items() if need.get(k, False)}


class _LSTMSequence(torch.autograd.Function):
    """The recurrence of one layer and direction with a hand-written BPTT (see the module doc)."""

    @staticmethod
    def forward(ctx: Any, *args: Any) -> tuple[Tensor, Tensor, Tensor]:
        *tensors, spec = args
        save = any(ctx.needs_input_grad)
        ops = _compiled_ops(spec, tensors[0], tensors[10])
        if ops is not None:
            y, h, c, saved = _forward_compiled(*tensors, spec=spec, save=save, ops=ops)
        else:
            y, h, c, saved = _forward(*tensors, spec=spec, save=save)
        if save:
            ctx.ops = ops
            names = [n for n in _SAVED_NAMES if n in saved]
            inputs = [n for n, v in zip(_INPUT_NAMES, tensors, strict=True) if v is not None]
            ctx.names = names
            ctx.inputs = inputs
            ctx.spec = spec
            ctx.save_for_backward(
                *[saved[n] for n in names],
                *[v for v in tensors if v is not None],
            )
        return y, h, c

    @staticmethod
    def backward(ctx: Any, *grads: Any) -> tuple[Tensor | None, ...]:
        if torch.is_grad_enabled():  # backward(create_graph=True): a silent constant would be wrong
            raise RuntimeError(
                "impl='kernel' has no second derivatives (its BPTT is hand-written and not "
                "differentiable); use impl='loop' for double backward (create_graph=True)"
            )
        d_y, d_ht, d_ct = grads
        stored = ctx.saved_tensors
        n_saved = len(ctx.names)
        s = dict(zip(ctx.names, stored[:n_saved], strict=True))
        inp: dict[str, Tensor | None] = dict.fromkeys(_INPUT_NAMES)
        inp.update(zip(ctx.inputs, stored[n_saved:], strict=True))
        need = dict(zip(_INPUT_NAMES, ctx.needs_input_grad, strict=False))
        if ctx.ops is not None:
            grads_out = _backward_compiled(s, inp, need, ctx.spec, d_y, d_ht, d_ct, ctx.ops)
        else:
            grads_out = _backward(s, inp, need, ctx.spec, d_y, d_ht, d_ct)
        return (*[grads_out.get(n) for n in _INPUT_NAMES], None)


def _backward(
    s: dict[str, Tensor],
    inp: dict[str, Tensor | None],
    need: dict[str, bool],
    spec: LSTMKernelSpec,
    d_y: Tensor | None,
    d_ht: Tensor | None,
    d_ct: Tensor | None,
) -> dict[str, Tensor]:
    gates, a_c, h_all, c_all = s["gates"], s["a_c"], s["h_all"], s["c_all"]
    steps, batch, _, hidden = gates.shape
    before = slice(1, steps + 1) if spec.reverse else slice(0, steps)  # state entering step t
    after = slice(0, steps) if spec.reverse else slice(1, steps + 1)  # state after step t
    c_prev = c_all[before]
    c_new = s["c_new"] if "c_new" in s else c_all[after]
    w_hh = inp["w_hh"]
    assert w_hh is not None
    h_out = w_hh.shape[1]
    w_ci, w_cf, w_co = inp["w_ci"], inp["w_cf"], inp["w_co"]
    w_hr, h_mask = inp["w_hr"], inp["h_mask"]
    keep_h, keep_c, out_mask = inp["keep_h"], inp["keep_c"], inp["out_mask"]
    ln_hh_w, ln_c_w, ln_c_b = inp["ln_hh_weight"], inp["ln_c_weight"], inp["ln_c_bias"]
    d_ract, d_act = _ACT_GRAD[spec.recurrent_activation], _ACT_GRAD[spec.activation]

    dy_t = None
    if d_y is not None:  # time-major and contiguous once, so each step reads one block
        dy_t = d_y.transpose(0, 1)
        dy_t = (dy_t * out_mask.transpose(0, 1) if out_mask is not None else dy_t).contiguous()
    drop_h = drop_c = None
    if keep_h is not None:
        assert keep_c is not None
        drop_h, drop_c = 1.0 - keep_h, 1.0 - keep_c
    dz_all = gates.new_empty(steps, batch, 4, hidden)
    hm = h_all[before] if h_mask is None else h_all[before] * h_mask  # (T, B, H_out)
    # with layer_norm dz is not what reaches W_hh: its gradient is summed per step (in cache)
    # (accumulated transposed, so the per-step addmm_ needs no transposed view of dz)
    dw_hh_t = gates.new_zeros(h_out, 4 * hidden) if ln_hh_w is not None else None
    hm_t_s = hm.transpose(1, 2).unbind(0)  # (H_out, B) per step
    dcn_buf = gates.new_empty(batch, 1, hidden)  # dc' of the current step; its (B, H) view below
    dcn_2d = dcn_buf.view(batch, hidden)
    ln_c_s = ln_hh_s = None  # per-step (input, mean, rstd) of each layer norm
    if ln_c_w is not None:
        ln_c_s = list(zip(c_new.unbind(0), s["mu_c"].unbind(0), s["rstd_c"].unbind(0), strict=True))
    if ln_hh_w is not None:
        ln_hh_s = list(
            zip(s["raw"].unbind(0), s["mu_hh"].unbind(0), s["rstd_hh"].unbind(0), strict=True)
        )
    dh_pre_all = gates.new_empty(steps, batch, h_out) if w_hr is not None else None
    ln_bwd = torch.ops.aten.native_layer_norm_backward.default
    dln: dict[str, list[Tensor]] = {"hh_w": [], "c_w": [], "c_b": []}  # per-step LN gain grads
    dh = d_ht if d_ht is not None else gates.new_zeros(batch, h_out)
    dc = d_ct if d_ct is not None else gates.new_zeros(batch, hidden)
    # The local derivatives (i * act'(g), c * f', ...) are computed for a chunk of steps at a
    # time: few ops per step, and the chunk (~1 MB) is still in cache when the steps read it.
    chunk = max(1, CHUNK_ELEMENTS // (batch * 4 * hidden))
    starts = (
        range(0, steps, chunk) if spec.reverse else range((steps - 1) // chunk * chunk, -1, -chunk)
    )
    # per-step views made once (one op each) instead of indexing inside the loop
    dz2_s = dz_all.view(steps, batch, 4 * hidden).unbind(0)
    dz_i_s, dz_f_s, dz_o_s = (dz_all[:, :, k].unbind(0) for k in (0, 1, 3))
    dz3_s = dz_all[:, :, :3].unbind(0)
    dys = dy_t.unbind(0) if dy_t is not None else None
    keep_hs = keep_h.unbind(0) if keep_h is not None else None
    keep_cs = keep_c.unbind(0) if keep_c is not None else None
    drop_hs = drop_h.unbind(0) if drop_h is not None else None
    drop_cs = drop_c.unbind(0) if drop_c is not None else None
    dy_in = False  # whether dh already holds dy of the step about to be processed
    for a in starts:
        b = min(a + chunk, steps)
        i, f, g, o = gates[a:b].unbind(2)  # (K, B, H) each
        d3 = gates.new_empty(b - a, batch, 3, hidden)
        torch.mul(g, d_ract(i), out=d3[:, :, 0])  # dz_i = dc' * d3_i
        torch.mul(c_prev[a:b], d_ract(f), out=d3[:, :, 1])  # dz_f = dc' * d3_f
        torch.mul(i, d_act(g), out=d3[:, :, 2])  # dz_g = dc' * d3_g
        d_os = d_ract(o).mul_(a_c[a:b]).unbind(0)  # dz_o = dh_pre * d_o
        qs = d_act(a_c[a:b]).mul_(o).unbind(0)  # d(c_out) = dh_pre * q
        d3s, fs = d3.unbind(0), f.unbind(0)
        for t in range(a, b) if spec.reverse else range(b - 1, a - 1, -1):
            k = t - a
            nxt = t + 1 if spec.reverse else t - 1  # the step processed after this one
            # dy of the next step is folded into this step's dh GEMM (addmm) when it can be
            fold_dy = dys is not None and 0 <= nxt < steps and h_mask is None
            dht = dh if dys is None or dy_in else dh + dys[t]
            dh_carry = dc_carry = None
            if keep_hs is not None and keep_cs is not None and drop_hs is not None:
                assert drop_cs is not None
                dh_carry = (
                    torch.addcmul(dys[nxt], dht, keep_hs[t])  # type: ignore[index]
                    if fold_dy
                    else dht * keep_hs[t]
                )
                dc_carry = dc * keep_cs[t]
                dht, dc = dht * drop_hs[t], dc * drop_cs[t]
            if w_hr is not None:
                assert dh_pre_all is not None
                dh_pre_all[t] = dht
                dht = torch.mm(dht, w_hr)  # (B, H)
            torch.mul(dht, d_os[k], out=dz_o_s[t])
            if ln_c_s is not None:
                c_in, mu, rstd = ln_c_s[t]
                dco, dw_c, db_c = ln_bwd(
                    dht * qs[k], c_in, [hidden], mu, rstd, ln_c_w,
                    ln_c_b, [True, True, True],
                )  # fmt: skip
                dln["c_w"].append(dw_c)  # the per-step reduction over B, in cache
                dln["c_b"].append(db_c)
                dcn = torch.add(dc, dco, out=dcn_2d)
            else:
                dcn = torch.addcmul(dc, dht, qs[k], out=dcn_2d)
            if w_co is not None:
                dcn.addcmul_(dz_o_s[t], w_co)
            torch.mul(dcn_buf, d3s[k], out=dz3_s[t])
            dc = dcn * fs[k]
            if w_ci is not None and w_cf is not None:
                dc.addcmul_(dz_i_s[t], w_ci).addcmul_(dz_f_s[t], w_cf)
            dz2 = dz2_s[t]
            if ln_hh_s is not None:
                assert dw_hh_t is not None
                raw, mu, rstd = ln_hh_s[t]
                dz2, dw_hh_ln, _ = ln_bwd(
                    dz2, raw, [4 * hidden], mu, rstd, ln_hh_w,
                    None, [True, True, False],
                )  # fmt: skip
                dln["hh_w"].append(dw_hh_ln)
                dw_hh_t.addmm_(hm_t_s[t], dz2)
            if h_mask is not None:
                dh = torch.mm(dz2, w_hh).mul_(h_mask)  # (B, H_out)
                if dh_carry is not None:
                    dh += dh_carry
            elif dh_carry is not None:
                dh = torch.addmm(dh_carry, dz2, w_hh)
            elif fold_dy:
                dh = torch.addmm(dys[nxt], dz2, w_hh)  # type: ignore[index]
            else:
                dh = torch.mm(dz2, w_hh)
            dy_in = fold_dy
            if dc_carry is not None:
                dc += dc_carry

    out: dict[str, Tensor] = {}
    dz_flat = dz_all.view(steps, batch, 4 * hidden)
    if need["gx"]:
        out["gx"] = dz_flat
    if need["h0"]:
        out["h0"] = dh
    if need["c0"]:
        out["c0"] = dc
    if need["w_hh"]:  # one GEMM over all steps (accumulated per step with layer_norm)
        out["w_hh"] = (
            dw_hh_t.t().contiguous()
            if dw_hh_t is not None
            else dz_flat.reshape(-1, 4 * hidden).t().mm(hm.reshape(-1, h_out))
        )
    if w_ci is not None:
        if need["w_ci"]:
            out["w_ci"] = (dz_all[:, :, 0] * c_prev).sum((0, 1))
        if need["w_cf"]:
            out["w_cf"] = (dz_all[:, :, 1] * c_prev).sum((0, 1))
        if need["w_co"]:
            out["w_co"] = (dz_all[:, :, 3] * c_new).sum((0, 1))
    if ln_hh_w is not None and need["ln_hh_weight"]:
        out["ln_hh_weight"] = torch.stack(dln["hh_w"]).sum(0)
    if ln_c_w is not None:
        if need["ln_c_weight"]:
            out["ln_c_weight"] = torch.stack(dln["c_w"]).sum(0)
        if need["ln_c_bias"]:
            out["ln_c_bias"] = torch.stack(dln["c_b"]).sum(0)
    if w_hr is not None and need["w_hr"]:
        assert dh_pre_all is not None
        out["w_hr"] = dh_pre_all.reshape(-1, h_out).t().mm(s["h_pre"].reshape(-1, hidden))
    return out


def lstm_sequence(
    gx: Tensor,
    h0: Tensor,
    c0: Tensor,
    w_hh: Tensor,
    *,
    w_ci: Tensor | None = None,
    w_cf: Tensor | None = None,
    w_co: Tensor | None = None,
    ln_hh_weight: Tensor | None = None,
    ln_c_weight: Tensor | None = None,
    ln_c_bias: Tensor | None = None,
    w_hr: Tensor | None = None,
    h_mask: Tensor | None = None,
    keep_h: Tensor | None = None,
    keep_c: Tensor | None = None,
    out_mask: Tensor | None = None,
    spec: LSTMKernelSpec = LSTMKernelSpec(),
) -> tuple[Tensor, Tensor, Tensor]:
    """Run the LSTM recurrence of one layer and direction with the kernel.

    Args:
        gx: input part of the gates, time-major ``(T, B, 4H)``, with ``b_ih``, ``b_hh`` and
            ``forget_bias`` already added (see :func:`lstm_direction`).
        h0: ``(B, H_out)``. c0: ``(B, H)``. w_hh: ``(4H, H_out)`` (weight_drop already applied).
        w_ci, w_cf, w_co: peephole weights ``(H,)`` (all three or none).
        ln_hh_weight: LN gain on ``h W_hh^T`` ``(4H,)``; ln_c_weight / ln_c_bias: LN on c' ``(H,)``.
        w_hr: projection ``(P, H)``. h_mask: recurrent-dropout mask ``(B, H_out)``, scaled.
        keep_h, keep_c: per-step keep-old weights ``(T, B, H_out | 1)`` / ``(T, B, H | 1)``
            (zoneout and padding; both or none). out_mask: ``(B, T, 1)``, 0 at padded steps.
        spec: activations and direction.

    Returns:
        ``y (B, T, H_out)``, ``h_T (B, H_out)``, ``c_T (B, H)``; differentiable w.r.t. every
        tensor argument except the masks.
    """
    if (w_ci is None) != (w_cf is None) or (w_ci is None) != (w_co is None):
        raise ValueError("peephole weights w_ci, w_cf, w_co must be given together")
    if (keep_h is None) != (keep_c is None):
        raise ValueError("keep_h and keep_c must be given together")
    if gx.dim() != 3 or gx.shape[2] != w_hh.shape[0] or gx.shape[2] % 4:
        raise ValueError(
            f"gx must be (T, B, 4H) with 4H = w_hh.shape[0] = {w_hh.shape[0]}, got {tuple(gx.shape)}"
        )
    args = (
        gx, h0, c0, w_hh, w_ci, w_cf, w_co, ln_hh_weight, ln_c_weight, ln_c_bias, w_hr,
        h_mask, keep_h, keep_c, out_mask,
    )  # fmt: skip
    if not torch.is_grad_enabled():
        # no_grad / inference_mode: parameters still say requires_grad, so the Function would
        # keep every step for a backward that never comes (measured 1.8x slower at H=128)
        ops = _compiled_ops(spec, gx, w_hr)
        if ops is not None:
            y, h, c, _ = _forward_compiled(*args, spec=spec, save=False, ops=ops)
        else:
            y, h, c, _ = _forward(*args, spec=spec, save=False)
        return y, h, c
    out = _LSTMSequence.apply(*args, spec)
    return out[0], out[1], out[2]


def lstm_sequence_loop(
    gx: Tensor,
    h0: Tensor,
    c0: Tensor,
    w_hh: Tensor,
    *,
    w_ci: Tensor | None = None,
    w_cf: Tensor | None = None,
    w_co: Tensor | None = None,
    ln_hh_weight: Tensor | None = None,
    ln_c_weight: Tensor | None = None,
    ln_c_bias: Tensor | None = None,
    w_hr: Tensor | None = None,
    h_mask: Tensor | None = None,
    keep_h: Tensor | None = None,
    keep_c: Tensor | None = None,
    out_mask: Tensor | None = None,
    spec: LSTMKernelSpec = LSTMKernelSpec(),
) -> tuple[Tensor, Tensor, Tensor]:
    """The plain reference loop of :func:`lstm_sequence` (same arguments and results): one
    :func:`lstmkit.functional.lstm_step` per step, gradients by autograd. Slow; for checking."""
    act = Fn.get_activation(spec.activation)
    ract = Fn.get_activation(spec.recurrent_activation, recurrent=True)
    steps = gx.shape[0]
    h, c = h0, c0
    ys: list[Tensor] = [h0] * steps
    for t in range(steps - 1, -1, -1) if spec.reverse else range(steps):
        h_new, c_new = Fn.lstm_step(
            gx[t], h, c, w_hh, None,
            weight_ci=w_ci, weight_cf=w_cf, weight_co=w_co, weight_hr=w_hr,
            ln_hh_weight=ln_hh_weight, ln_c_weight=ln_c_weight, ln_c_bias=ln_c_bias,
            activation=act, recurrent_activation=ract, h_mask=h_mask,
        )  # fmt: skip
        if keep_h is not None and keep_c is not None:
            h_new = keep_h[t] * h + (1 - keep_h[t]) * h_new
            c_new = keep_c[t] * c + (1 - keep_c[t]) * c_new
        h, c = h_new, c_new
        ys[t] = h
    y = torch.stack(ys, 1)
    return (y * out_mask if out_mask is not None else y), h, c


def lstm_direction(
    cell: Any,
    x: Tensor,
    state: tuple[Tensor, ...],
    step_mask: Tensor | None,
    h_mask: Tensor | None,
    w_hh: Tensor,
    zone: tuple[Tensor, ...] | None,
    *,
    reverse: bool,
    require_compiled: bool = False,
) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """One layer and direction of an :class:`lstmkit.cells.LSTMCell` over ``x`` (B, T, D) with
    the kernel; the arguments are those of ``Recurrent._run_direction`` (``step_mask`` (B, T, 1)
    bool, True at real tokens; ``zone`` the training zoneout masks (T, B, S) or None, in which
    case ``cell.zoneout`` is applied as its expectation); ``require_compiled`` (a forced
    ``impl='kernel'``): a compiled op that cannot be built raises instead of the torch-op steps
    running after one warning (``LSTMKernelSpec.compiled`` True / 'auto'). Returns
    ``(y (B, T, H_out), (h, c))``."""
    gx = _input_projection(cell, x)  # (T, B, 4H): one GEMM for all steps, all biases folded in
    keep_h = keep_c = None
    steps, batch = gx.shape[0], gx.shape[1]
    if zone is not None:
        keep_h, keep_c = zone
    elif cell.zoneout:
        keep_h = keep_c = gx.new_full((steps, batch, 1), cell.zoneout)
    out_mask = None
    if step_mask is not None:
        real = step_mask.transpose(0, 1)  # (T, B, 1)
        one = gx.new_ones(())
        keep_h = torch.where(real, keep_h if keep_h is not None else 0.0, one)
        keep_c = torch.where(real, keep_c if keep_c is not None else 0.0, one)
        out_mask = step_mask.to(gx.dtype)
    y, h, c = lstm_sequence(
        gx, state[0], state[1], w_hh,
        w_ci=cell.weight_ci, w_cf=cell.weight_cf, w_co=cell.weight_co,
        ln_hh_weight=cell.ln_hh_weight, ln_c_weight=cell.ln_c_weight, ln_c_bias=cell.ln_c_bias,
        w_hr=cell.weight_hr, h_mask=h_mask, keep_h=keep_h, keep_c=keep_c, out_mask=out_mask,
        spec=LSTMKernelSpec(
            cell.activation_name,
            cell.recurrent_activation_name,
            reverse,
            compiled=True if require_compiled else "auto",
        ),
    )  # fmt: skip
    return y, (h, c)


def _input_projection(cell: Any, x: Tensor) -> Tensor:
    """``[LN](x W_ih^T) + b_ih + b_hh + forget_bias`` (f block) for every step, time-major
    ``(T, B, 4H)``: one GEMM, then the biases in the same pass as the layer norm, or in the
    ``addmm`` without one."""
    bias: Tensor | None = cell.bias_ih
    if cell.bias_hh is not None:
        bias = cell.bias_hh if bias is None else bias + cell.bias_hh
    if cell.forget_bias:
        hidden = cell.hidden_size
        fb = torch.zeros(4 * hidden, dtype=x.dtype, device=x.device)
        fb[hidden : 2 * hidden] = cell.forget_bias
        bias = fb if bias is None else bias + fb
    x_tm = x.transpose(0, 1)  # (T, B, D)
    if cell.ln_ih_weight is not None:  # LN gain and every bias in the one layer_norm pass
        gx = torch.matmul(x_tm, cell.weight_ih.t())
        return F.layer_norm(gx, gx.shape[-1:], cell.ln_ih_weight, bias, EPS)
    if bias is None:
        return torch.matmul(x_tm, cell.weight_ih.t())
    steps, batch, _ = x_tm.shape
    gx = torch.addmm(bias, x_tm.reshape(steps * batch, -1), cell.weight_ih.t())
    return gx.view(steps, batch, -1)
