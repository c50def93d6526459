"""lstmkit.kernels (impl='kernel') against the per-step loop and the NumPy reference.

Every comparison is exact up to rounding: the layer draws its dropout/zoneout masks once per call
from the generator (``draw_masks``), so the kernel and the loop see the same masks. Compared:
outputs, final (h, c) and every gradient (input, initial state, every parameter).

Which option combinations (a covering set, not the full product; every option appears with
lengths and 'pre'/'post' padding, multi-layer and bidirectional, in training and eval):

- ``REF_CASES`` (kernel vs loop vs NumPy reference, float64 <= 1e-6): the options the reference
  knows — peephole, forget_bias, activation / recurrent_activation, proj_size, no bias — each
  with and without a recurrent-dropout mask, x {no lengths, 'post', 'pre'}.
- ``LOOP_CASES`` (kernel vs loop, float64 <= 1e-6, train and eval): layer_norm, zoneout,
  recurrent_dropout, weight_drop, and all of them at once with peephole + proj_size + softsign +
  hard_sigmoid, x {no lengths, 'post', 'pre'}; the reference has no layer norm / zoneout, so
  ``test_kernel_gradcheck`` checks the kernel's backward against central differences for those.
- float32 (<= 1e-4 relative to the magnitude: see test_kernel_float32_within_1e4): the
  LayerNorm, peephole and zoneout LSTMs of the benchmark, with the compiled step built at the
  portable -march and at -march=native.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor

import lstmkit
from lstmkit.kernels import (
    GRUKernelSpec,
    LSTMKernelSpec,
    compiled,
    gru_sequence,
    lstm_sequence,
    lstm_sequence_loop,
)
from lstmkit.layers import GRU, LSTM, _steps_mask
from lstmkit.reference import stack_backward, stack_forward
from lstmkit.reference.lstm import LSTM_PARAM_NAMES

LENGTHS = torch.tensor([6, 2, 4])
PADDINGS = [None, "post", "pre"]


def _run(
    layer: LSTM, impl: str, x: Tensor, padding: str | None, dtype: torch.dtype = torch.float64
) -> tuple[dict[str, Tensor], tuple[Tensor, Tensor, Tensor]]:
    """Forward + backward of a fixed random loss; returns every result and gradient by name,
    and the (dy, dh_T, dc_T) used."""
    layer.impl = impl
    gen = torch.Generator().manual_seed(9)
    batch = x.shape[0]
    n = layer.num_layers * layer.num_directions
    xg = x.clone().requires_grad_(True)
    h0 = torch.randn(n, batch, layer.output_size, dtype=dtype, generator=gen).requires_grad_(True)
    c0 = torch.randn(n, batch, layer.hidden_size, dtype=dtype, generator=gen).requires_grad_(True)
    out, (h_n, c_n) = layer(
        xg,
        (h0, c0),
        lengths=LENGTHS if padding else None,
        padding=padding or "post",
        generator=torch.Generator().manual_seed(4),
    )
    dy = torch.randn(out.shape, dtype=dtype, generator=gen)
    dh = torch.randn(h_n.shape, dtype=dtype, generator=gen)
    dc = torch.randn(c_n.shape, dtype=dtype, generator=gen)
    layer.zero_grad(set_to_none=True)
    ((out * dy).sum() + (h_n * dh).sum() + (c_n * dc).sum()).backward()
    res = {"out": out.detach(), "h_n": h_n.detach(), "c_n": c_n.detach()}
    res.update(dx=xg.grad, dh0=h0.grad, dc0=c0.grad)  # type: ignore[arg-type]
    for name, p in layer.named_parameters():
        assert p.grad is not None, name
        res[name] = p.grad.clone()
    return res, (dy, dh, dc)


def _max_diff(a: dict[str, Tensor], b: dict[str, Tensor]) -> tuple[float, str]:
    assert a.keys() == b.keys()
    diffs = {k: float((a[k] - b[k]).abs().max()) for k in a}
    worst = max(diffs, key=diffs.__getitem__)
    return diffs[worst], worst


def _layer(opts: dict[str, Any], layers: int, bi: bool, dtype: torch.dtype) -> LSTM:
    torch.manual_seed(0)
    return LSTM(3, 5, layers, bidirectional=bi, **opts).to(dtype)


REF_CASES: list[tuple[int, bool, dict[str, Any]]] = [
    (2, True, {"peephole": True, "forget_bias": 1.0}),
    (1, True, {"activation": "softsign", "recurrent_activation": "hard_sigmoid"}),
    (2, False, {"peephole": True, "proj_size": 3, "forget_bias": 0.0}),
    (1, False, {"activation": "relu", "bias": False, "forget_bias": 0.5}),
]


def _ids(case: tuple[Any, ...]) -> str:
    layers, bi, opts = case
    return f"L{layers}-{'bi' if bi else 'uni'}-" + "-".join(f"{k}={v}" for k, v in opts.items())


@pytest.mark.parametrize("case", REF_CASES, ids=_ids)
@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("dropout", [False, True])
def test_kernel_equals_loop_and_reference(
    case: tuple[Any, ...], padding: str | None, dropout: bool
) -> None:
    layers, bi, opts = case
    extra = {"recurrent_dropout": 0.4} if dropout else {}
    layer = _layer({**opts, **extra}, layers, bi, torch.float64).train()
    x = torch.randn(3, 6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    assert layer.impl_used == "kernel" or not (dropout or set(opts) - {"forget_bias", "bias"})
    kernel, (dy, dh, dc) = _run(layer, "kernel", x, padding)
    loop, _ = _run(layer, "loop", x, padding)
    diff, worst = _max_diff(kernel, loop)
    assert diff <= 1e-6, worst

    # the NumPy reference with its hand-written BPTT
    masks = layer.draw_masks(3, 6, x, torch.Generator().manual_seed(4))
    params = [
        {n: p.detach().numpy() for n, p in cell.named_parameters() if n in LSTM_PARAM_NAMES}
        for cell in layer.cells
    ]
    gen = torch.Generator().manual_seed(9)
    n = layers * layer.num_directions
    h0 = torch.randn(n, 3, layer.output_size, dtype=torch.float64, generator=gen)
    c0 = torch.randn(n, 3, layer.hidden_size, dtype=torch.float64, generator=gen)
    ref_opts = {
        k: v for k, v in opts.items() if k in ("activation", "recurrent_activation", "forget_bias")
    }
    ref_opts.setdefault("forget_bias", 1.0)
    y, h_t, c_t, cache = stack_forward(
        "lstm",
        x.numpy(),
        params,
        h0.numpy(),
        c0.numpy(),
        num_layers=layers,
        bidirectional=bi,
        mask=None if padding is None else _steps_mask(LENGTHS, 6, padding).numpy(),
        dropout_masks=[m.numpy() for m in masks.recurrent] if dropout else None,  # type: ignore[union-attr]
        **ref_opts,
    )
    dx, dh0, dc0, dparams = stack_backward(dy.numpy(), dh.numpy(), dc.numpy(), cache)
    ref = {"out": y, "h_n": h_t, "c_n": c_t, "dx": dx, "dh0": dh0, "dc0": dc0}
    for k, dp in enumerate(dparams):
        ref.update({f"cells.{k}.{name}": g for name, g in dp.items()})
    assert ref.keys() == kernel.keys()
    for name, want in ref.items():
        assert float(np.abs(kernel[name].numpy() - want).max()) <= 1e-6, name


LOOP_CASES: list[tuple[int, bool, dict[str, Any]]] = [
    (2, True, {"layer_norm": True}),
    (2, True, {"zoneout": 0.3}),
    (1, False, {"recurrent_dropout": 0.3, "weight_drop": 0.3, "layer_norm": True, "bias": False}),
    (
        2,
        True,
        {
            "peephole": True,
            "layer_norm": True,
            "zoneout": 0.25,
            "recurrent_dropout": 0.2,
            "weight_drop": 0.2,
            "proj_size": 3,
            "activation": "softsign",
            "recurrent_activation": "hard_sigmoid",
        },
    ),
]


@pytest.mark.parametrize("case", LOOP_CASES, ids=_ids)
@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_kernel_equals_loop_with_layer_norm_and_zoneout(
    case: tuple[Any, ...], padding: str | None, mode: str
) -> None:
    layers, bi, opts = case
    layer = _layer({**opts, "dropout": 0.3}, layers, bi, torch.float64).train(mode == "train")
    with torch.no_grad():  # LN gains / biases away from their 1 / 0 init, so they matter
        for cell in layer.cells:
            for name, p in cell.named_parameters():
                if name.startswith("ln_"):
                    p.add_(0.3 * torch.randn_like(p))
    assert layer.impl_used == "kernel" and "lstmkit.kernels" in layer.impl_reason
    x = torch.randn(3, 6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    kernel, _ = _run(layer, "kernel", x, padding)
    loop, _ = _run(layer, "loop", x, padding)
    diff, worst = _max_diff(kernel, loop)
    assert diff <= 1e-6, worst
    if padding:  # padded steps output exactly 0
        real = _steps_mask(LENGTHS, 6, padding).unsqueeze(-1)
        assert torch.equal(kernel["out"].masked_fill(real, 0.0), torch.zeros_like(kernel["out"]))


@pytest.mark.parametrize(
    "opts",
    [{"layer_norm": True}, {"peephole": True}, {"zoneout": 0.1, "recurrent_dropout": 0.1}],
    ids=["layer_norm", "peephole", "zoneout"],
)
@pytest.mark.parametrize("march", ["portable", "native"])
def test_kernel_float32_within_1e4(
    opts: dict[str, Any], march: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """float32 kernel vs float32 loop in training (same masks), and vs the float64 kernel in eval
    (no random masks, whose float32 / float64 draws differ); the compiled step built at
    PORTABLE_MARCH and at -march=native (LSTMKIT_KERNEL_MARCH; the cache keeps both builds)."""
    monkeypatch.setenv(
        compiled.MARCH_ENV, compiled.PORTABLE_MARCH if march == "portable" else march
    )
    x = torch.randn(4, 12, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    lengths = torch.tensor([12, 3, 7, 12])
    outs = {}
    for name, dtype, impl, mode in (
        ("kernel32", torch.float32, "kernel", "train"),
        ("loop32", torch.float32, "loop", "train"),
        ("kernel32-eval", torch.float32, "kernel", "eval"),
        ("kernel64-eval", torch.float64, "kernel", "eval"),
    ):
        layer = _layer(opts, 2, True, dtype).train(mode == "train")
        layer.impl = impl
        xg = x.to(dtype).requires_grad_(True)
        out, (h_n, c_n) = layer(xg, lengths=lengths, generator=torch.Generator().manual_seed(1))
        gen = torch.Generator().manual_seed(3)  # a random-weighted loss, as in _run
        weights = [
            torch.randn(t.shape, generator=gen, dtype=torch.float64) for t in (out, h_n, c_n)
        ]
        loss = sum((t * w.to(dtype)).sum() for t, w in zip((out, h_n, c_n), weights, strict=True))
        loss.backward()  # type: ignore[union-attr]
        grads = {n: p.grad for n, p in layer.named_parameters()}
        outs[name] = {"out": out.detach(), "h": h_n.detach(), "c": c_n.detach(), "dx": xg.grad}
        outs[name].update(grads)  # type: ignore[arg-type]
    for got, want in (("kernel32", "loop32"), ("kernel32-eval", "kernel64-eval")):
        for key, v in outs[want].items():
            v32 = outs[got][key]
            assert v32.dtype == torch.float32
            # relative to the magnitude: float32 rounding of a sum of many terms (a weight
            # gradient sums B * T products; cells.1.weight_ih's is ~20 here) grows with its
            # size, and the CPU's SIMD width changes the summation order in torch's GEMMs, so an
            # absolute 1e-4 failed on an AVX2 machine at 1.1e-4 on a gradient far above 1
            scale = max(1.0, float(v.double().abs().max()))
            assert float((v32.double() - v.double()).abs().max()) <= 1e-4 * scale, (got, key)


def test_kernel_gradcheck_against_central_differences() -> None:
    """The hand-written backward with every option at once (LN, peephole, projection, zoneout
    and padding keep-weights, recurrent-dropout mask) against numeric gradients, both directions."""
    gen = torch.Generator().manual_seed(0)
    steps, batch, hidden, proj = 4, 2, 3, 2

    def r(*shape: int, grad: bool = True) -> Tensor:
        return torch.randn(*shape, dtype=torch.float64, generator=gen).requires_grad_(grad)

    gx, h0, c0, w_hh = (
        r(steps, batch, 4 * hidden),
        r(batch, proj),
        r(batch, hidden),
        r(4 * hidden, proj),
    )
    peep = (r(hidden), r(hidden), r(hidden))
    ln = (r(4 * hidden), r(hidden), r(hidden))
    w_hr = r(proj, hidden)
    h_mask = torch.tensor([[2.0, 0.0], [2.0, 2.0]], dtype=torch.float64)
    keep_h = torch.bernoulli(
        torch.full((steps, batch, proj), 0.4, dtype=torch.float64), generator=gen
    )
    keep_c = torch.bernoulli(
        torch.full((steps, batch, hidden), 0.4, dtype=torch.float64), generator=gen
    )
    keep_h[3, 1], keep_c[3, 1] = 1.0, 1.0  # a padded step
    out_mask = torch.ones(batch, steps, 1, dtype=torch.float64)
    out_mask[1, 3] = 0.0
    for reverse in (False, True):
        spec = LSTMKernelSpec("tanh", "sigmoid", reverse)

        def fn(*a: Tensor, spec: LSTMKernelSpec = spec) -> tuple[Tensor, ...]:
            return lstm_sequence(
                a[0], a[1], a[2], a[3], w_ci=a[4], w_cf=a[5], w_co=a[6], ln_hh_weight=a[7],
                ln_c_weight=a[8], ln_c_bias=a[9], w_hr=a[10], h_mask=h_mask, keep_h=keep_h,
                keep_c=keep_c, out_mask=out_mask, spec=spec,
            )  # fmt: skip

        assert torch.autograd.gradcheck(fn, (gx, h0, c0, w_hh, *peep, *ln, w_hr), atol=1e-6)
        # and the plain loop beside it gives the same forward
        want = lstm_sequence_loop(
            gx, h0, c0, w_hh, w_ci=peep[0], w_cf=peep[1], w_co=peep[2], ln_hh_weight=ln[0],
            ln_c_weight=ln[1], ln_c_bias=ln[2], w_hr=w_hr, h_mask=h_mask, keep_h=keep_h,
            keep_c=keep_c, out_mask=out_mask, spec=spec,
        )  # fmt: skip
        got = fn(gx, h0, c0, w_hh, *peep, *ln, w_hr)
        for a, b in zip(got, want, strict=True):
            assert float((a - b).abs().max()) <= 1e-12


def test_kernel_inference_without_grad_equals_loop() -> None:
    layer = _layer({"peephole": True, "layer_norm": True}, 2, True, torch.float32).eval()
    x = torch.randn(3, 6, 3)
    with torch.inference_mode():
        layer.impl = "kernel"
        a = layer(x, lengths=LENGTHS, padding="pre")
        layer.impl = "loop"
        b = layer(x, lengths=LENGTHS, padding="pre")
    assert a[0].shape == (3, 6, 10)
    assert float((a[0] - b[0]).abs().max()) <= 1e-5
    assert float((a[1][0] - b[1][0]).abs().max()) <= 1e-5


# -- dispatch --------------------------------------------------------------------------------
def test_auto_picks_fused_then_kernel_then_loop(caplog: pytest.LogCaptureFixture) -> None:
    assert LSTM(3, 4).impl_used == "fused"
    peep = LSTM(3, 4, peephole=True, zoneout=0.1)
    assert peep.impl_used == "kernel"
    assert "peephole=True" in peep.impl_reason and "lstmkit.kernels" in peep.impl_reason
    with caplog.at_level(logging.DEBUG, logger="lstmkit.layers"):
        peep(torch.randn(1, 2, 3))
    assert any("impl=kernel" in r.message for r in caplog.records)
    gru = lstmkit.GRU(3, 4, reset_after=False)
    assert gru.impl_used == "kernel" and "lstmkit.kernels.gru" in gru.impl_reason
    rnn = lstmkit.RNN(3, 4, activation="softsign")
    assert rnn.impl_used == "loop" and "LSTM and GRU kernels only" in rnn.impl_reason
    assert LSTM(3, 4, peephole=True, impl="loop").impl_used == "loop"
    assert LSTM(3, 4, impl="kernel").impl_used == "kernel"  # vanilla too, when forced


def test_forced_kernel_on_rnn_raises() -> None:
    with pytest.raises(ValueError, match=r"impl='kernel' cannot run RNN .*LSTM and GRU"):
        lstmkit.RNN(3, 4, impl="kernel")


def test_kernel_spec_and_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="activation must be one of"):
        LSTMKernelSpec(activation="gelu")
    with pytest.raises(ValueError, match="recurrent_activation must be one of"):
        LSTMKernelSpec(recurrent_activation="tanh")
    gx, h0, c0, w = torch.zeros(2, 1, 8), torch.zeros(1, 2), torch.zeros(1, 2), torch.zeros(8, 2)
    with pytest.raises(ValueError, match="peephole weights"):
        lstm_sequence(gx, h0, c0, w, w_ci=torch.zeros(2))
    with pytest.raises(ValueError, match="keep_h and keep_c"):
        lstm_sequence(gx, h0, c0, w, keep_h=torch.zeros(2, 1, 2))
    with pytest.raises(ValueError, match=r"gx must be \(T, B, 4H\)"):
        lstm_sequence(torch.zeros(2, 1, 6), h0, c0, w)


@pytest.mark.parametrize("chunk_elements", [1, 250])
def test_backward_in_chunks_of_steps_equals_loop(
    monkeypatch: pytest.MonkeyPatch, chunk_elements: int
) -> None:
    """The backward computes local derivatives a chunk of steps at a time (all 6 steps in one
    chunk at these sizes by default); 1 step and 4 steps (6 = 4 + 2) per chunk give the same."""
    import lstmkit.kernels.lstm as kernel_module

    monkeypatch.setattr(kernel_module, "CHUNK_ELEMENTS", chunk_elements)
    opts = {"peephole": True, "layer_norm": True, "zoneout": 0.3, "recurrent_dropout": 0.2}
    layer = _layer(opts, 2, True, torch.float64).train()
    x = torch.randn(3, 6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    for padding in PADDINGS:
        kernel, _ = _run(layer, "kernel", x, padding)
        loop, _ = _run(layer, "loop", x, padding)
        diff, worst = _max_diff(kernel, loop)
        assert diff <= 1e-6, (padding, worst)


def test_second_derivative_is_refused_clearly() -> None:
    layer = _layer({"peephole": True}, 1, False, torch.float64)
    layer.impl = "kernel"
    x = torch.randn(2, 3, 3, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(layer(x)[0].sum(), x)  # first derivatives: fine
    assert grad.shape == x.shape and float(grad.abs().sum()) > 0
    with pytest.raises(RuntimeError, match="no second derivatives.*impl='loop'"):
        torch.autograd.grad(layer(x)[0].sum(), x, create_graph=True)


def test_training_with_the_kernel_follows_the_loop() -> None:
    """Twenty Adam steps of a 2-layer bidirectional LayerNorm + zoneout + peephole LSTM with
    recurrent dropout on variable-length batches, masks drawn from the same seeds: the kernel's
    weights stay within 1e-8 of the loop's (float64), and the loss falls."""
    opts = {"peephole": True, "layer_norm": True, "zoneout": 0.2, "recurrent_dropout": 0.2}
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(4, 7, 3, dtype=torch.float64, generator=gen)
    target = torch.randn(4, 10, dtype=torch.float64, generator=gen)
    lengths = torch.tensor([7, 3, 5, 1])
    results = {}
    for impl in ("kernel", "loop"):
        layer = _layer({**opts, "dropout": 0.2, "impl": impl}, 2, True, torch.float64).train()
        opt = torch.optim.Adam(layer.parameters(), lr=0.01)
        losses = []
        for step in range(20):
            out, _ = layer(x, lengths=lengths, generator=torch.Generator().manual_seed(step))
            loss = ((out[:, 0] - target) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss))
        results[impl] = (losses, [p.detach().clone() for p in layer.parameters()])
    (k_losses, k_params), (l_losses, l_params) = results["kernel"], results["loop"]
    assert k_losses[-1] < 0.8 * k_losses[0]
    assert max(abs(a - b) for a, b in zip(k_losses, l_losses, strict=True)) <= 1e-9
    assert max(float((a - b).abs().max()) for a, b in zip(k_params, l_params, strict=True)) <= 1e-8


# -- GRU ----------------------------------------------------------------------------------
GRU_CASES: list[tuple[int, bool, dict[str, Any]]] = [
    (2, True, {"reset_after": False}),
    (1, False, {"reset_after": True, "recurrent_activation": "hard_sigmoid"}),
    (2, False, {"reset_after": False, "activation": "softsign", "bias": False}),
]


def _run_gru(
    layer: GRU, impl: str, x: Tensor, padding: str | None
) -> tuple[dict[str, Tensor], tuple[Tensor, Tensor]]:
    layer.impl = impl
    gen = torch.Generator().manual_seed(9)
    n = layer.num_layers * layer.num_directions
    xg = x.clone().requires_grad_(True)
    h0 = torch.randn(n, x.shape[0], 5, dtype=x.dtype, generator=gen).requires_grad_(True)
    out, h_n = layer(
        xg,
        h0,
        lengths=LENGTHS if padding else None,
        padding=padding or "post",
        generator=torch.Generator().manual_seed(4),
    )
    dy = torch.randn(out.shape, dtype=x.dtype, generator=gen)
    dh = torch.randn(h_n.shape, dtype=x.dtype, generator=gen)
    layer.zero_grad(set_to_none=True)
    ((out * dy).sum() + (h_n * dh).sum()).backward()
    res = {"out": out.detach(), "h_n": h_n.detach(), "dx": xg.grad, "dh0": h0.grad}
    res.update({name: p.grad.clone() for name, p in layer.named_parameters()})  # type: ignore[union-attr,misc]
    return res, (dy, dh)  # type: ignore[return-value]


@pytest.mark.parametrize("case", GRU_CASES, ids=_ids)
@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("dropout", [False, True])
def test_gru_kernel_equals_loop_and_reference(
    case: tuple[Any, ...], padding: str | None, dropout: bool
) -> None:
    layers, bi, opts = case
    torch.manual_seed(0)
    extra = {"recurrent_dropout": 0.4} if dropout else {}
    layer = GRU(3, 5, layers, bidirectional=bi, **opts, **extra).double().train()
    x = torch.randn(3, 6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    kernel, (dy, dh) = _run_gru(layer, "kernel", x, padding)
    loop, _ = _run_gru(layer, "loop", x, padding)
    diff, worst = _max_diff(kernel, loop)
    assert diff <= 1e-6, worst
    masks = layer.draw_masks(3, 6, x, torch.Generator().manual_seed(4))
    params = [{n: p.detach().numpy() for n, p in cell.named_parameters()} for cell in layer.cells]
    h0 = torch.randn(
        layers * layer.num_directions, 3, 5, dtype=torch.float64,
        generator=torch.Generator().manual_seed(9),
    )  # fmt: skip
    ref_opts = {k: v for k, v in opts.items() if k != "bias"}
    y, h_t, _, cache = stack_forward(
        "gru",
        x.numpy(),
        params,
        h0.numpy(),
        num_layers=layers,
        bidirectional=bi,
        mask=None if padding is None else _steps_mask(LENGTHS, 6, padding).numpy(),
        dropout_masks=[m.numpy() for m in masks.recurrent] if dropout else None,  # type: ignore[union-attr]
        **ref_opts,
    )
    dx, dh0, _, dparams = stack_backward(dy.numpy(), dh.numpy(), None, cache)
    ref = {"out": y, "h_n": h_t, "dx": dx, "dh0": dh0}
    for k, dp in enumerate(dparams):
        ref.update({f"cells.{k}.{name}": g for name, g in dp.items()})
    assert ref.keys() == kernel.keys()
    for name, want in ref.items():
        assert float(np.abs(kernel[name].numpy() - want).max()) <= 1e-6, name


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_gru_kernel_equals_loop_with_zoneout(
    reset_after: bool, padding: str | None, mode: str
) -> None:
    torch.manual_seed(0)
    layer = GRU(
        3, 5, 2, bidirectional=True, dropout=0.3, reset_after=reset_after, zoneout=0.3,
        recurrent_dropout=0.2, weight_drop=0.2,
    ).double().train(mode == "train")  # fmt: skip
    assert layer.impl_used == "kernel"
    x = torch.randn(3, 6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    kernel, _ = _run_gru(layer, "kernel", x, padding)
    loop, _ = _run_gru(layer, "loop", x, padding)
    diff, worst = _max_diff(kernel, loop)
    assert diff <= 1e-6, worst


def test_gru_kernel_float32_within_1e4_of_loop() -> None:
    torch.manual_seed(0)
    layer = GRU(3, 5, 2, bidirectional=True, reset_after=False, zoneout=0.1).train()
    x = torch.randn(3, 6, 3, generator=torch.Generator().manual_seed(2))
    kernel, _ = _run_gru(layer, "kernel", x, "post")
    loop, _ = _run_gru(layer, "loop", x, "post")
    diff, worst = _max_diff(kernel, loop)
    assert kernel["out"].dtype == torch.float32 and diff <= 1e-4, worst


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_kernel_gradcheck_against_central_differences(reset_after: bool) -> None:
    gen = torch.Generator().manual_seed(0)
    steps, batch, hidden = 4, 2, 3

    def r(*shape: int) -> Tensor:
        return torch.randn(*shape, dtype=torch.float64, generator=gen).requires_grad_(True)

    gx, h0, w_hh = r(steps, batch, 3 * hidden), r(batch, hidden), r(3 * hidden, hidden)
    b_hn = r(hidden) if reset_after else None
    h_mask = torch.tensor([[2.0, 0.0, 2.0], [2.0, 2.0, 0.0]], dtype=torch.float64)
    keep = torch.bernoulli(
        torch.full((steps, batch, hidden), 0.4, dtype=torch.float64), generator=gen
    )
    keep[3, 1] = 1.0  # a padded step
    out_mask = torch.ones(batch, steps, 1, dtype=torch.float64)
    out_mask[1, 3] = 0.0
    for reverse in (False, True):
        spec = GRUKernelSpec("tanh", "sigmoid", reset_after, reverse)

        def fn(*a: Tensor, spec: GRUKernelSpec = spec) -> tuple[Tensor, ...]:
            return gru_sequence(
                a[0], a[1], a[2], b_hn=a[3] if reset_after else None, h_mask=h_mask, keep=keep,
                out_mask=out_mask, spec=spec,
            )  # fmt: skip

        args = (gx, h0, w_hh, b_hn) if b_hn is not None else (gx, h0, w_hh)
        assert torch.autograd.gradcheck(fn, args, atol=1e-6)


def test_gru_kernel_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match=r"gx must be \(T, B, 3H\)"):
        gru_sequence(torch.zeros(2, 1, 8), torch.zeros(1, 2), torch.zeros(6, 2))
    with pytest.raises(ValueError, match="b_hn is only for reset_after=True"):
        gru_sequence(
            torch.zeros(2, 1, 6), torch.zeros(1, 2), torch.zeros(6, 2), b_hn=torch.zeros(2),
            spec=GRUKernelSpec(reset_after=False),
        )  # fmt: skip


@pytest.mark.parametrize("case", REF_CASES + LOOP_CASES, ids=_ids)
def test_kernel_without_gradients_equals_loop(case: tuple[Any, ...]) -> None:
    """Without gradients the kernel reuses one step's buffers; outputs and states unchanged, in
    training (masks) and in eval, with 'pre' padding."""
    layers, bi, opts = case
    layer = _layer(opts, layers, bi, torch.float64)
    x = torch.randn(3, 6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    for mode in (True, False):
        layer.train(mode)
        outs = []
        for impl in ("kernel", "loop"):
            layer.impl = impl
            with torch.no_grad():
                out, (h_n, c_n) = layer(
                    x, lengths=LENGTHS, padding="pre", generator=torch.Generator().manual_seed(3)
                )
            outs.append(torch.cat([out.flatten(), h_n.flatten(), c_n.flatten()]))
        assert float((outs[0] - outs[1]).abs().max()) <= 1e-6


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_kernel_without_gradients_equals_loop(reset_after: bool) -> None:
    torch.manual_seed(0)
    layer = GRU(3, 5, 2, bidirectional=True, reset_after=reset_after, zoneout=0.2).double()
    x = torch.randn(3, 6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    for mode in (True, False):
        layer.train(mode)
        outs = []
        for impl in ("kernel", "loop"):
            layer.impl = impl
            with torch.inference_mode():
                out, h_n = layer(
                    x, lengths=LENGTHS, padding="pre", generator=torch.Generator().manual_seed(3)
                )
            outs.append(torch.cat([out.flatten(), h_n.flatten()]))
        assert float((outs[0] - outs[1]).abs().max()) <= 1e-6
