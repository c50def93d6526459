"""lstmkit.layers: fused vs loop vs torch.nn, every gradient; padding; dispatch; bad input."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import torch
from torch import Tensor, nn

import lstmkit
from lstmkit.interop import to_torch_state_dict
from lstmkit.layers import LSTM, RNN, Recurrent

KINDS = {
    "lstm": (lstmkit.LSTM, nn.LSTM),
    "gru": (lstmkit.GRU, nn.GRU),
    "rnn": (lstmkit.RNN, nn.RNN),
}


def make_pair(
    kind: str, d: int, h: int, layers: int, bi: bool, dtype: torch.dtype, **opts: Any
) -> tuple[Recurrent, nn.Module]:
    ours_cls, torch_cls = KINDS[kind]
    ours = ours_cls(d, h, layers, bidirectional=bi, **opts).to(dtype)
    topts = {k: v for k, v in opts.items() if k in ("proj_size", "nonlinearity")}
    if kind == "rnn" and "activation" in opts:
        topts["nonlinearity"] = opts["activation"]
    peer = torch_cls(d, h, layers, bidirectional=bi, batch_first=True, **topts).to(dtype)
    peer.load_state_dict(to_torch_state_dict(ours))
    return ours, peer


def _flat_state(s: Tensor | tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    return (s,) if isinstance(s, Tensor) else tuple(s)


def run_and_grad(
    module: nn.Module, x: Tensor, state: tuple[Tensor, ...], run: Any
) -> tuple[list[Tensor], dict[str, Tensor]]:
    """Forward with ``run``, backprop a fixed random weighting of every output; return outputs and
    the gradients of x, the initial state and every parameter (under torch.nn's names)."""
    x = x.detach().clone().requires_grad_(True)
    st = tuple(s.detach().clone().requires_grad_(True) for s in state)
    out, fin = run(module, x, st)
    fin = _flat_state(fin)
    gen = torch.Generator().manual_seed(123)
    loss = sum((t * torch.randn(t.shape, generator=gen, dtype=t.dtype)).sum() for t in (out, *fin))
    names, params = zip(*module.named_parameters(), strict=True)
    grads = torch.autograd.grad(loss, [x, *st, *params])
    named = {"x": grads[0]}
    for i, g in enumerate(grads[1 : 1 + len(st)]):
        named[f"state{i}"] = g
    param_grads = dict(zip(names, grads[1 + len(st) :], strict=True))
    if isinstance(module, Recurrent):
        param_grads = torch_names(module, param_grads)
    named.update(param_grads)
    return [out, *fin], named


def torch_names(ours: Recurrent, tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename our per-cell names (``cells.3.weight_ih``) to torch.nn's (``weight_ih_l1_reverse``)."""
    out = {}
    for name, g in tensors.items():
        _, k, pname = name.split(".")
        layer, d = divmod(int(k), ours.num_directions)
        out[f"{pname}_l{layer}{'_reverse' if d else ''}"] = g
    return out


def max_grad_diff(a: dict[str, Tensor], b: dict[str, Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def max_diff(a: list[Tensor], b: list[Tensor]) -> float:
    return max(float((x - y).detach().abs().max()) for x, y in zip(a, b, strict=True))


def our_run(lengths: Tensor | None = None, padding: str = "post") -> Any:
    def run(m: nn.Module, x: Tensor, st: tuple[Tensor, ...]) -> Any:
        s = st if len(st) > 1 else st[0]
        return m(x, s, lengths=lengths, padding=padding)

    return run


def _roll(x: Tensor, lengths: Tensor, sign: int) -> Tensor:
    steps = x.shape[1]
    return torch.stack([torch.roll(x[b], sign * int(steps - n), 0) for b, n in enumerate(lengths)])


def torch_run(lengths: Tensor | None = None, padding: str = "post") -> Any:
    """torch.nn on packed sequences; 'pre' padding is moved to the front and back around it, so
    outputs and gradients are compared in the caller's layout."""

    def run(m: nn.Module, x: Tensor, st: tuple[Tensor, ...]) -> Any:
        s = st if len(st) > 1 else st[0]
        if lengths is None:
            return m(x, s)
        if padding == "pre":
            x = _roll(x, lengths, -1)
        packed = nn.utils.rnn.pack_padded_sequence(
            x, lengths, batch_first=True, enforce_sorted=False
        )
        out, fin = m(packed, s)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        if padding == "pre":
            out = _roll(out, lengths, 1)
        return out, fin

    return run


def init_state(
    ours: Recurrent, batch: int, dtype: torch.dtype, gen: torch.Generator
) -> tuple[Tensor, ...]:
    n = ours.num_layers * ours.num_directions
    sizes = {"h": ours.output_size, "c": ours.hidden_size}
    names = ours.cells[0].state_names
    return tuple(torch.randn(n, batch, sizes[s], generator=gen, dtype=dtype) for s in names)


CASES = [
    # kind, D, H, layers, bidirectional, extra options
    ("lstm", 3, 5, 1, False, {}),
    ("lstm", 4, 6, 2, True, {}),
    ("lstm", 3, 7, 2, False, {"proj_size": 4}),
    ("lstm", 5, 4, 3, True, {"proj_size": 2}),
    ("gru", 3, 5, 1, False, {}),
    ("gru", 4, 6, 2, True, {}),
    ("rnn", 3, 5, 2, True, {}),
    ("rnn", 4, 6, 1, False, {"activation": "relu"}),
]


def _case_id(case: tuple[Any, ...]) -> str:
    kind, d, h, layers, bi, opts = case
    extra = "-".join(f"{k}{v}" for k, v in opts.items())
    return f"{kind}-D{d}-H{h}-L{layers}-{'bi' if bi else 'uni'}{'-' + extra if extra else ''}"


@pytest.mark.parametrize("case", CASES, ids=_case_id)
@pytest.mark.parametrize("lengths_mode", ["full", "post", "pre"])
@pytest.mark.parametrize(("dtype", "tol"), [(torch.float64, 1e-6), (torch.float32, 1e-4)])
def test_fused_loop_torch_agree(
    case: tuple[Any, ...], lengths_mode: str, dtype: torch.dtype, tol: float
) -> None:
    kind, d, h, layers, bi, opts = case
    opts = {**opts, **({"forget_bias": 0.0} if kind == "lstm" else {})}
    torch.manual_seed(0)
    ours, peer = make_pair(kind, d, h, layers, bi, dtype, **opts)
    gen = torch.Generator().manual_seed(1)
    batch, steps = 4, 7
    x = torch.randn(batch, steps, d, generator=gen, dtype=dtype)
    st = init_state(ours, batch, dtype, gen)
    lengths = None if lengths_mode == "full" else torch.tensor([7, 3, 1, 5])
    padding = "pre" if lengths_mode == "pre" else "post"

    ours.impl = "loop"
    out_l, g_l = run_and_grad(ours, x, st, our_run(lengths, padding))
    ours.impl = "fused"
    for varlen in ("split", "packed"):  # both variable-length strategies of the fused path
        ours.varlen = varlen
        out_f, g_f = run_and_grad(ours, x, st, our_run(lengths, padding))
        assert max_diff(out_f, out_l) <= tol, varlen
        assert len(g_f) == 1 + len(st) + len(list(ours.parameters()))
        assert max_grad_diff(g_f, g_l) <= tol, varlen

    out_t, g_t = run_and_grad(peer, x, st, torch_run(lengths, padding))
    assert max_diff(out_l, out_t) <= tol
    assert max_grad_diff(g_l, g_t) <= tol


def test_forget_bias_is_a_constant_on_the_forget_gate() -> None:
    torch.manual_seed(0)
    ours = LSTM(3, 4, forget_bias=1.0).double()
    peer = nn.LSTM(3, 4, batch_first=True).double()
    peer.load_state_dict(to_torch_state_dict(ours))
    with torch.no_grad():
        assert float((peer.bias_hh_l0[4:8] - ours.cells[0].bias_hh[4:8] - 1.0).abs().max()) == 0.0
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    for impl in ("fused", "loop"):
        ours.impl = impl
        with torch.no_grad():
            assert float((ours(x)[0] - peer(x)[0]).abs().max()) <= 1e-12


# -- padding invariance ----------------------------------------------------------------------
@pytest.mark.parametrize("impl", ["fused-split", "fused-packed", "loop"])
@pytest.mark.parametrize("padding", ["post", "pre"])
@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_padding_never_changes_a_sequence(impl: str, padding: str, kind: str) -> None:
    torch.manual_seed(0)
    cls = KINDS[kind][0]
    impl, _, varlen = impl.partition("-")
    layer = (
        cls(3, 6, 2, bidirectional=True, impl=impl, varlen=varlen or "auto")
        .double()
        .eval()
        .requires_grad_(False)
    )
    seqs = [torch.randn(n, 3, dtype=torch.float64) for n in (5, 2, 8, 1)]
    steps = 8
    batch = torch.full((len(seqs), steps, 3), 99.0, dtype=torch.float64)  # garbage in the pads
    for b, s in enumerate(seqs):
        if padding == "post":
            batch[b, : len(s)] = s
        else:
            batch[b, steps - len(s) :] = s
    lengths = torch.tensor([len(s) for s in seqs])
    out, fin = layer(batch, lengths=lengths, padding=padding)
    h_n = _flat_state(fin)[0]
    for b, s in enumerate(seqs):
        alone, fin1 = layer(s.unsqueeze(0))
        seg = out[b, : len(s)] if padding == "post" else out[b, steps - len(s) :]
        pads = out[b, len(s) :] if padding == "post" else out[b, : steps - len(s)]
        assert float((seg - alone[0]).abs().max()) <= 1e-12
        assert pads.numel() == 0 or float(pads.abs().max()) == 0.0
        assert float((h_n[:, b] - _flat_state(fin1)[0][:, 0]).abs().max()) <= 1e-12


def test_mask_equals_lengths() -> None:
    torch.manual_seed(0)
    layer = LSTM(3, 4, impl="loop").double()
    x = torch.randn(3, 5, 3, dtype=torch.float64)
    lengths = torch.tensor([5, 2, 3])
    for padding in ("post", "pre"):
        t = torch.arange(5)
        mask = t < lengths[:, None] if padding == "post" else t >= 5 - lengths[:, None]
        a = layer(x, lengths=lengths, padding=padding)[0]
        b = layer(x, mask=mask, padding=padding)[0]
        assert torch.equal(a, b)


# -- outputs and state -------------------------------------------------------------------------
def test_return_sequences_and_state_shapes() -> None:
    x = torch.randn(4, 9, 3)
    lstm = LSTM(3, 8, 2, bidirectional=True, return_sequences=False, return_state=False)
    assert tuple(lstm(x).shape) == (4, 16)
    lstm = LSTM(3, 8, 2, proj_size=5)
    out, (h, c) = lstm(x)
    assert tuple(out.shape) == (4, 9, 5)
    assert tuple(h.shape) == (2, 4, 5) and tuple(c.shape) == (2, 4, 8)
    gru = lstmkit.GRU(3, 8, 3)
    out, h = gru(x)
    assert tuple(out.shape) == (4, 9, 8) and tuple(h.shape) == (3, 4, 8)


def test_last_output_is_true_last_token_in_both_directions() -> None:
    torch.manual_seed(0)
    lstm = LSTM(3, 4, bidirectional=True, return_sequences=True).double()
    last = LSTM(3, 4, bidirectional=True, return_sequences=False).double()
    last.load_state_dict(lstm.state_dict())
    x = torch.randn(2, 6, 3, dtype=torch.float64)
    lengths = torch.tensor([6, 3])
    seq, _ = lstm(x, lengths=lengths)
    vec, _ = last(x, lengths=lengths)
    for b, n in enumerate(lengths.tolist()):
        assert torch.allclose(vec[b, :4], seq[b, n - 1, :4])  # forward: after the last token
        assert torch.allclose(vec[b, 4:], seq[b, 0, 4:])  # reverse: after the first token


def test_initial_state_is_used() -> None:
    torch.manual_seed(0)
    layer = lstmkit.GRU(3, 4)
    x = torch.randn(2, 3, 3)
    h0 = torch.randn(1, 2, 4)
    assert not torch.allclose(layer(x, h0)[0], layer(x)[0])


def test_cell_step_equals_one_step_layer() -> None:
    torch.manual_seed(0)
    layer = LSTM(3, 5, peephole=True, layer_norm=True, impl="loop").double()
    cell = layer.cells[0]
    x = torch.randn(2, 1, 3, dtype=torch.float64)
    h, c = cell(x[:, 0])
    out, (h_n, c_n) = layer(x)
    assert torch.allclose(h, h_n[0]) and torch.allclose(c, c_n[0]) and torch.allclose(out[:, 0], h)


# -- options on the loop path ----------------------------------------------------------------
def test_zoneout_masks_keep_previous_units_exactly() -> None:
    torch.manual_seed(0)
    layer = LSTM(3, 6, zoneout=0.5).double().train()
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    out1, _ = layer(x, generator=torch.Generator().manual_seed(7))
    out2, _ = layer(x, generator=torch.Generator().manual_seed(7))
    assert torch.equal(out1, out2)  # masks are reproducible from the generator
    masks = layer.draw_masks(2, 5, x, torch.Generator().manual_seed(7))
    keep_h = masks.zoneout[0][0]  # (T, B, H): 1 = keep previous h
    for t in range(1, 5):
        kept = keep_h[t].bool()
        assert kept.any()
        assert torch.equal(out1[:, t][kept], out1[:, t - 1][kept])
    assert layer.impl_used == "kernel"  # auto: the LSTM kernel (lstmkit.kernels) runs zoneout
    layer.eval()  # eval: the expectation p * old + (1 - p) * new, deterministic
    assert torch.equal(layer(x)[0], layer(x)[0])


def test_recurrent_dropout_uses_one_mask_per_sequence() -> None:
    # RNN with identity activation, no input, W_hh = I: h_t = h_{t-1} * m, so h_T = h0 * m^T only
    # if the same mask m is used at every step.
    layer = RNN(2, 5, activation="identity", recurrent_dropout=0.5, bias=False).double().train()
    with torch.no_grad():
        layer.cells[0].weight_ih.zero_()
        layer.cells[0].weight_hh.copy_(torch.eye(5))
    x = torch.zeros(3, 4, 2, dtype=torch.float64)
    h0 = torch.ones(1, 3, 5, dtype=torch.float64)
    _, h_n = layer(x, h0, generator=torch.Generator().manual_seed(3))
    m = layer.draw_masks(3, 4, x, torch.Generator().manual_seed(3)).recurrent[0]
    assert m is not None and set(m.unique().tolist()) <= {0.0, 2.0}
    assert torch.equal(h_n[0], m**4)
    vanilla = RNN(2, 5, recurrent_dropout=0.5)
    assert vanilla.impl_used == "loop" and "recurrent_dropout" in vanilla.impl_reason
    assert vanilla.eval().impl_used == "fused"  # off in eval: the fused op can run


def test_weight_drop_same_mask_on_fused_and_loop() -> None:
    torch.manual_seed(0)
    layer = LSTM(3, 5, 2, weight_drop=0.3).double().train()
    assert layer.impl_used == "fused"
    x = torch.randn(2, 4, 3, dtype=torch.float64)
    outs = []
    for impl in ("fused", "loop"):
        layer.impl = impl
        outs.append(layer(x, generator=torch.Generator().manual_seed(11))[0].detach())
    assert float((outs[0] - outs[1]).abs().max()) <= 1e-12
    layer.eval()
    assert not torch.allclose(layer(x)[0], outs[0])


def test_layer_norm_normalises_the_gates() -> None:
    torch.manual_seed(0)
    layer = LSTM(3, 4, layer_norm=True).double()
    cell = layer.cells[0]
    x = 100.0 * torch.randn(2, 6, 3, dtype=torch.float64)  # huge inputs: LN keeps gates in range
    gx = (cell.input_projection(x) - cell.bias_ih).detach()
    assert float(gx.mean(-1).abs().max()) <= 1e-9
    assert float((gx.var(-1, unbiased=False) - 1).abs().max()) <= 1e-3
    out, _ = layer(x)
    assert torch.isfinite(out).all() and float(out.abs().max()) < 1.0


def test_between_layer_dropout_only_in_training() -> None:
    torch.manual_seed(0)
    layer = LSTM(3, 5, 2, dropout=0.5, impl="loop").double()
    x = torch.randn(2, 4, 3, dtype=torch.float64)
    a = layer(x, generator=torch.Generator().manual_seed(1))[0]
    b = layer(x, generator=torch.Generator().manual_seed(2))[0]
    assert not torch.allclose(a, b)
    layer.eval()
    assert torch.equal(layer(x)[0], layer(x)[0])


# -- dispatch --------------------------------------------------------------------------------
def test_dispatch_says_what_it_chose(caplog: pytest.LogCaptureFixture) -> None:
    assert LSTM(3, 4).impl_used == "fused"
    assert "fused op" in LSTM(3, 4).impl_reason
    peep = LSTM(3, 4, peephole=True)
    assert peep.impl_used == "kernel"  # fused > kernel > loop; the LSTM kernel runs peepholes
    assert "peephole=True" in peep.impl_reason
    assert lstmkit.GRU(3, 4, reset_after=False).impl_used == "kernel"  # lstmkit.kernels.gru
    assert RNN(3, 4, activation="relu").impl_used == "fused"
    assert RNN(3, 4, activation="softsign").impl_used == "loop"
    assert LSTM(3, 4, recurrent_activation="hard_sigmoid").impl_used == "kernel"
    with caplog.at_level(logging.DEBUG, logger="lstmkit.layers"):
        peep(torch.randn(1, 2, 3))
    assert any("impl=kernel" in r.message and "peephole" in r.message for r in caplog.records)


@pytest.mark.parametrize(
    ("opts", "named"),
    [
        ({"peephole": True}, "peephole"),
        ({"layer_norm": True}, "layer_norm"),
        ({"zoneout": 0.1}, "zoneout"),
        ({"recurrent_dropout": 0.2}, "recurrent_dropout"),
        ({"activation": "softsign"}, "activation"),
        ({"recurrent_activation": "hard_sigmoid"}, "recurrent_activation"),
    ],
)
def test_forced_fused_with_unsupported_option_raises(opts: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        LSTM(3, 4, impl="fused", **opts)


def test_forced_fused_gru_reset_before_raises() -> None:
    with pytest.raises(ValueError, match="reset_after=False"):
        lstmkit.GRU(3, 4, impl="fused", reset_after=False)


# -- bad input -------------------------------------------------------------------------------
def test_bad_inputs_give_one_clear_error() -> None:
    layer = LSTM(5, 4)
    x = torch.randn(2, 3, 5)
    with pytest.raises(ValueError, match=r"Expected 5, got 4"):
        layer(torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match=r"\(B, T, D\)"):
        layer(torch.randn(3, 5))
    with pytest.raises(TypeError, match="floating-point"):
        layer(torch.ones(2, 3, 5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"h0 of shape .* = \(1, 2, 4\), got \(1, 3, 4\)"):
        layer(x, (torch.zeros(1, 3, 4), torch.zeros(1, 2, 4)))
    with pytest.raises(ValueError, match=r"c0 of shape"):
        layer(x, (torch.zeros(1, 2, 4), torch.zeros(2, 2, 4)))
    with pytest.raises(ValueError, match=r"expected initial state \(h0, c0\)"):
        layer(x, torch.zeros(1, 2, 4))
    with pytest.raises(ValueError, match=r"lengths must be in \[1, T=3\], got min 1 and max 4"):
        layer(x, lengths=torch.tensor([1, 4]))
    with pytest.raises(ValueError, match=r"got min 0"):
        layer(x, lengths=torch.tensor([0, 2]))
    with pytest.raises(ValueError, match=r"lengths must have shape \(B,\) = \(2,\)"):
        layer(x, lengths=torch.tensor([1, 2, 3]))
    with pytest.raises(TypeError, match="integer"):
        layer(x, lengths=torch.tensor([1.0, 2.0]))
    mask = torch.tensor([[True, True, False], [True, False, False]])
    with pytest.raises(ValueError, match=r"do not match the mask"):
        layer(x, lengths=torch.tensor([3, 1]), mask=mask)
    with pytest.raises(ValueError, match=r"mask row 1 is not one contiguous run"):
        layer(x, mask=torch.tensor([[True, True, True], [True, False, True]]))
    with pytest.raises(ValueError, match=r"mask must have shape"):
        layer(x, mask=torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="padding must be one of"):
        layer(x, padding="middle")


def test_bad_options_give_one_clear_error() -> None:
    with pytest.raises(ValueError, match="impl must be one of"):
        LSTM(3, 4, impl="cuda")
    with pytest.raises(ValueError, match="activation must be one of"):
        LSTM(3, 4, activation="swish")
    with pytest.raises(ValueError, match="recurrent_activation must be one of"):
        LSTM(3, 4, recurrent_activation="tanh")
    with pytest.raises(ValueError, match=r"zoneout must be in \[0, 1\)"):
        LSTM(3, 4, zoneout=1.0)
    with pytest.raises(ValueError, match="proj_size"):
        LSTM(3, 4, proj_size=4)
    with pytest.raises(ValueError, match="num_layers"):
        LSTM(3, 4, 0)


@pytest.mark.parametrize("lengths", [None, torch.tensor([4, 2, 3])])
@pytest.mark.parametrize("bi", [False, True])
@pytest.mark.parametrize("varlen", ["split", "packed"])
def test_between_layer_dropout_same_masks_on_fused_and_loop(
    varlen: str, lengths: Tensor | None, bi: bool
) -> None:
    torch.manual_seed(0)
    layer = lstmkit.GRU(3, 5, 3, bidirectional=bi, dropout=0.5, varlen=varlen).double().train()
    x = torch.randn(3, 4, 3, dtype=torch.float64)
    outs = []
    for impl in ("fused", "loop"):
        layer.impl = impl
        out, h_n = layer(x, lengths=lengths, generator=torch.Generator().manual_seed(5))
        outs.append((out, h_n))
    assert float((outs[0][0] - outs[1][0]).abs().max()) <= 1e-12
    assert float((outs[0][1] - outs[1][1]).abs().max()) <= 1e-12


@pytest.mark.parametrize("padding", ["post", "pre"])
def test_split_with_all_lengths_equal_but_shorter_than_t(padding: str) -> None:
    torch.manual_seed(0)
    layer = LSTM(3, 4, 2, bidirectional=True).double().eval()
    x = torch.randn(3, 6, 3, dtype=torch.float64)
    lengths = torch.tensor([4, 4, 4])
    with torch.no_grad():
        out, (h, c) = layer(x, lengths=lengths, padding=padding)
        real = x[:, :4] if padding == "post" else x[:, 2:]
        ref, (h_ref, c_ref) = layer(real)
    seg = out[:, :4] if padding == "post" else out[:, 2:]
    assert float((seg - ref).abs().max()) <= 1e-12
    assert float((h - h_ref).abs().max()) <= 1e-12 and float((c - c_ref).abs().max()) <= 1e-12


def test_varlen_auto_strategy_on_cpu() -> None:
    layer = LSTM(3, 4)
    x = torch.randn(2, 10, 3)
    close, spread = torch.tensor([10, 6]), torch.tensor([10, 2])
    assert layer._varlen_strategy(x, spread) == "split"  # gradients recorded: always split
    with torch.no_grad():
        assert layer._varlen_strategy(x, close) == "split"
        assert layer._varlen_strategy(x, spread) == "packed"
    layer.varlen = "packed"
    assert layer._varlen_strategy(x, close) == "packed"
    layer.varlen = "kernel"  # asked for only
    assert layer._varlen_strategy(x, close) == "kernel"
    with pytest.raises(ValueError, match="LSTM and GRU kernels only"):
        lstmkit.RNN(3, 4, varlen="kernel")


@pytest.mark.parametrize("padding", ["post", "pre"])
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_varlen_kernel_trains_exactly_as_split(kind: str, padding: str) -> None:
    """Variable-length training batches on the compiled kernel (varlen='kernel') give the
    outputs, final states and gradients of the split fused path, float64."""
    torch.manual_seed(0)
    x = torch.randn(5, 9, 3, dtype=torch.float64)
    lengths = torch.tensor([9, 2, 5, 9, 1])
    grads = {}
    results = {}
    for varlen in ("split", "kernel"):
        torch.manual_seed(1)
        layer = KINDS[kind][0](3, 6, 2, bidirectional=True, varlen=varlen).double().train()
        x_in = x.clone().requires_grad_(True)
        out, fin = layer(x_in, lengths=lengths, padding=padding)
        state = _flat_state(fin)
        (out.pow(2).sum() + sum(s.pow(2).sum() for s in state)).backward()
        results[varlen] = (out.detach(), *(s.detach() for s in state))
        grads[varlen] = [x_in.grad] + [p.grad for p in layer.parameters()]
    for a, b in zip(results["split"], results["kernel"], strict=True):
        assert float((a - b).abs().max()) <= 1e-10 * max(1.0, float(a.abs().max()))
    for a, b in zip(grads["split"], grads["kernel"], strict=True):
        assert a is not None and b is not None
        assert float((a - b).abs().max()) <= 1e-10 * max(1.0, float(a.abs().max()))
