"""Tests of lstmkit.interop: weights to and from real Keras 3 layers and torch.nn modules.

Keras runs on its torch backend (set before keras is imported). Each test copies weights one way
and compares the outputs of the lstmkit layer (eval mode) with the other framework's:
float32 against Keras (max abs diff <= 1e-5), float64 against torch.nn (<= 1e-6).
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import Tensor, nn  # noqa: E402

keras = pytest.importorskip("keras")

from lstmkit import GRU, LSTM, RNN  # noqa: E402
from lstmkit.interop import (  # noqa: E402
    copy_to_keras,
    from_keras,
    from_torch,
    load_keras_weights,
    load_torch_state_dict,
    to_keras,
    to_keras_weights,
    to_torch,
    to_torch_state_dict,
)
from lstmkit.layers import Recurrent  # noqa: E402

# Keras' own numpy-2 deprecation noise (keras/src/backend/.../np.array(x)), not ours.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

KERAS_TOL = 1e-5
TORCH_TOL = 1e-6
B, T, D, H = 3, 7, 5, 4

KERAS_CLS = {"lstm": "LSTM", "gru": "GRU", "rnn": "SimpleRNN"}
OURS_CLS: dict[str, type[Recurrent]] = {"lstm": LSTM, "gru": GRU, "rnn": RNN}


def _x(dtype: torch.dtype = torch.float32, seed: int = 0) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, T, D, generator=g, dtype=torch.float64).to(dtype)


def _ours_out(layer: Recurrent, x: Tensor) -> np.ndarray:
    layer.eval()
    with torch.no_grad():
        out = layer(x)
    if isinstance(out, tuple):
        out = out[0]
    return out.detach().cpu().numpy()


def _keras_out(layers: list[Any], x: Tensor) -> np.ndarray:
    y: Any = x.numpy()
    for kl in layers:
        y = kl(y, training=False)
    return np.asarray(keras.ops.convert_to_numpy(y))


def _keras_stack(
    kind: str,
    num_layers: int = 1,
    *,
    bidirectional: bool = False,
    last_return_sequences: bool = True,
    seed: int = 0,
    **options: Any,
) -> list[Any]:
    """Built Keras layers with random weights (biases included)."""
    rng = np.random.default_rng(seed)
    cls = getattr(keras.layers, KERAS_CLS[kind])
    out = []
    in_size = D
    for i in range(num_layers):
        rs = i < num_layers - 1 or last_return_sequences
        kl = cls(H, return_sequences=rs, **options)
        if bidirectional:
            kl = keras.layers.Bidirectional(kl, merge_mode="concat")
        kl.build((None, None, in_size))
        kl.set_weights([rng.normal(0.0, 0.5, w.shape).astype(np.float32) for w in kl.get_weights()])
        out.append(kl)
        in_size = H * (2 if bidirectional else 1)
    return out


def _cell(layer: Recurrent, k: int) -> Any:
    """Cell k of ``layer`` (typed Any: the ModuleList element type is nn.Module)."""
    return layer.cells[k]


def _ours(kind: str, num_layers: int = 1, seed: int = 0, **options: Any) -> Recurrent:
    torch.manual_seed(seed)
    return OURS_CLS[kind](D, H, num_layers, **options)


# ------------------------------------------------------------------------------------------------
# Keras
# ------------------------------------------------------------------------------------------------
KERAS_CASES = [
    # id, kind, keras options, extra lstmkit options
    ("lstm-fb1", "lstm", {}, {"forget_bias": 1.0}),
    ("lstm-fb0", "lstm", {}, {"forget_bias": 0.0}),
    ("lstm-hardsig", "lstm", {"recurrent_activation": "hard_sigmoid"}, {"forget_bias": 1.0}),
    ("gru-reset-after", "gru", {"reset_after": True}, {}),
    ("gru-reset-before", "gru", {"reset_after": False}, {}),
    ("gru-hardsig", "gru", {"recurrent_activation": "hard_sigmoid"}, {}),
    ("rnn-tanh", "rnn", {}, {}),
    ("rnn-relu", "rnn", {"activation": "relu"}, {}),
    ("lstm-nobias", "lstm", {"use_bias": False}, {"forget_bias": 0.0}),
]


def _ours_options(kind: str, kopts: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    opts = dict(extra)
    if "activation" in kopts:
        opts["activation"] = kopts["activation"]
    if "recurrent_activation" in kopts:
        opts["recurrent_activation"] = kopts["recurrent_activation"]
    if "reset_after" in kopts:
        opts["reset_after"] = kopts["reset_after"]
    if "use_bias" in kopts:
        opts["bias"] = kopts["use_bias"]
    return opts


@pytest.mark.parametrize(("kind", "kopts", "extra"), [c[1:] for c in KERAS_CASES],
                         ids=[c[0] for c in KERAS_CASES])  # fmt: skip
def test_keras_to_ours(kind: str, kopts: dict[str, Any], extra: dict[str, Any]) -> None:
    kls = _keras_stack(kind, **kopts)
    x = _x()
    want = _keras_out(kls, x)
    # into a fresh layer built by from_keras ...
    layer = from_keras(kls[0], forget_bias=extra.get("forget_bias", 0.0))
    assert np.abs(_ours_out(layer, x) - want).max() <= KERAS_TOL
    # ... and into an existing layer with load_keras_weights (flat get_weights() list)
    ours = _ours(kind, **_ours_options(kind, kopts, extra))
    load_keras_weights(ours, kls[0].get_weights())
    got = _ours_out(ours, x)
    assert got.shape == want.shape == (B, T, H)
    assert np.abs(got - want).max() <= KERAS_TOL
    if kind == "lstm" and _cell(ours, 0).bias_hh is not None:
        assert torch.count_nonzero(_cell(ours, 0).bias_hh) == 0  # the Keras bias went to bias_ih


@pytest.mark.parametrize(("kind", "kopts", "extra"), [c[1:] for c in KERAS_CASES],
                         ids=[c[0] for c in KERAS_CASES])  # fmt: skip
def test_ours_to_keras(kind: str, kopts: dict[str, Any], extra: dict[str, Any]) -> None:
    ours = _ours(kind, seed=1, **_ours_options(kind, kopts, extra))
    if _cell(ours, 0).bias_hh is not None:  # make sure every bias term matters
        assert torch.count_nonzero(_cell(ours, 0).bias_hh) > 0
    x = _x(seed=1)
    want = _ours_out(ours, x)
    kls = _keras_stack(kind, seed=5, **kopts)
    copy_to_keras(ours, kls)
    assert np.abs(_keras_out(kls, x) - want).max() <= KERAS_TOL
    built = to_keras(ours)
    assert np.abs(_keras_out(built, x) - want).max() <= KERAS_TOL
    # weights -> Keras -> weights: the outputs survive a full round trip
    back = _ours(kind, seed=2, **_ours_options(kind, kopts, extra))
    load_keras_weights(back, to_keras_weights(ours))
    assert np.abs(_ours_out(back, x) - want).max() <= KERAS_TOL


def test_keras_lstm_forget_bias_fold_is_exact() -> None:
    """The exported Keras bias is bias_ih + bias_hh + forget_bias on the f block only."""
    ours = _ours("lstm", forget_bias=1.0)
    cell = _cell(ours, 0)
    kernel, rec, bias = to_keras_weights(ours)[0]
    np.testing.assert_array_equal(kernel, cell.weight_ih.detach().numpy().T)
    np.testing.assert_array_equal(rec, cell.weight_hh.detach().numpy().T)
    b = (cell.bias_ih + cell.bias_hh).detach().numpy()
    np.testing.assert_allclose(bias[:H], b[:H], rtol=0, atol=0)
    np.testing.assert_allclose(bias[H : 2 * H], b[H : 2 * H] + 1.0, rtol=0, atol=1e-7)
    np.testing.assert_allclose(bias[2 * H :], b[2 * H :], rtol=0, atol=0)


def test_keras_gru_gate_order() -> None:
    """Our r, z, n blocks become Keras z, r, h; reset_after=True keeps the two bias rows."""
    ours = _ours("gru", reset_after=True)
    cell = _cell(ours, 0)
    kernel, rec, bias = to_keras_weights(ours)[0]
    assert bias.shape == (2, 3 * H)
    w = cell.weight_ih.detach().numpy()
    np.testing.assert_array_equal(kernel[:, :H], w[H : 2 * H].T)  # Keras z = our z
    np.testing.assert_array_equal(kernel[:, H : 2 * H], w[:H].T)  # Keras r = our r
    np.testing.assert_array_equal(kernel[:, 2 * H :], w[2 * H :].T)
    np.testing.assert_array_equal(bias[1, :H], cell.bias_hh.detach().numpy()[H : 2 * H])


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bidir"])
@pytest.mark.parametrize("last_return_sequences", [True, False], ids=["seq", "last"])
def test_keras_stacked(kind: str, bidirectional: bool, last_return_sequences: bool) -> None:
    """A Keras Sequential of 2 (Bidirectional) layers <-> one lstmkit 2-layer stack."""
    kls = _keras_stack(
        kind, 2, bidirectional=bidirectional, last_return_sequences=last_return_sequences
    )
    model = keras.Sequential([keras.Input((None, D)), *kls])
    x = _x(seed=3)
    want = np.asarray(keras.ops.convert_to_numpy(model(x.numpy(), training=False)))
    dirs = 2 if bidirectional else 1
    assert want.shape == ((B, T, dirs * H) if last_return_sequences else (B, dirs * H))
    layer = from_keras(model)
    assert layer.num_layers == 2 and layer.bidirectional == bidirectional
    assert np.abs(_ours_out(layer, x) - want).max() <= KERAS_TOL

    # and back: new random lstmkit weights into the same Keras model
    opts: dict[str, Any] = {"bidirectional": bidirectional}
    opts["return_sequences"] = last_return_sequences
    ours = _ours(kind, 2, seed=4, **opts)
    weights = to_keras_weights(ours)
    assert len(weights) == 2 and len(weights[0]) == 3 * dirs
    copy_to_keras(ours, model)
    got = np.asarray(keras.ops.convert_to_numpy(model(x.numpy(), training=False)))
    assert np.abs(got - _ours_out(ours, x)).max() <= KERAS_TOL


def test_keras_bidirectional_weight_order() -> None:
    """Bidirectional get_weights order: forward arrays then backward arrays."""
    ours = _ours("rnn", bidirectional=True)
    w = to_keras_weights(ours)[0]
    assert [a.shape for a in w] == [(D, H), (H, H), (H,)] * 2
    np.testing.assert_array_equal(w[3], _cell(ours, 1).weight_ih.detach().numpy().T)
    kl = to_keras(ours)[0]
    assert isinstance(kl, keras.layers.Bidirectional)
    np.testing.assert_array_equal(kl.backward_layer.get_weights()[0], w[3])


def test_keras_errors() -> None:
    with pytest.raises(ValueError, match="proj_size=2"):
        to_keras_weights(LSTM(D, H, proj_size=2))
    with pytest.raises(ValueError, match="peephole"):
        to_keras_weights(LSTM(D, H, peephole=True))
    with pytest.raises(ValueError, match="layer_norm"):
        to_keras(LSTM(D, H, layer_norm=True))
    with pytest.raises(ValueError, match="forget_bias=1.0 with bias=False"):
        to_keras_weights(LSTM(D, H, bias=False))
    ours = LSTM(D, H)
    kls = _keras_stack("lstm")
    good = kls[0].get_weights()
    with pytest.raises(
        ValueError, match=r"'recurrent_kernel': expected shape \(4, 16\), got \(4, 12\)"
    ):
        load_keras_weights(ours, [good[0], good[1][:, :12], good[2]])
    with pytest.raises(ValueError, match="expected 3 arrays"):
        load_keras_weights(ours, [good[:2]])
    with pytest.raises(ValueError, match="expected weights for 1 Keras layer"):
        load_keras_weights(ours, [good, good])
    with pytest.raises(ValueError, match="units: lstmkit 5, Keras 4"):
        copy_to_keras(LSTM(D, 5), kls)
    with pytest.raises(ValueError, match="reset_after: lstmkit False, Keras True"):
        copy_to_keras(GRU(D, H, reset_after=False), _keras_stack("gru"))
    summed = keras.layers.Bidirectional(keras.layers.LSTM(H), merge_mode="sum")
    summed.build((None, None, D))
    with pytest.raises(ValueError, match="merge_mode='sum'"):
        from_keras(summed)
    with pytest.raises(TypeError, match="Dense"):
        from_keras(keras.Sequential([keras.Input((None, D)), keras.layers.Dense(3)]))


# ------------------------------------------------------------------------------------------------
# torch.nn
# ------------------------------------------------------------------------------------------------
TORCH_CASES = [
    ("lstm", {"forget_bias": 1.0}),
    ("lstm", {"forget_bias": 0.0, "num_layers": 2, "bidirectional": True}),
    ("lstm", {"forget_bias": 1.0, "proj_size": 3}),
    ("lstm", {"forget_bias": 1.0, "proj_size": 2, "num_layers": 2, "bidirectional": True}),
    ("gru", {}),
    ("gru", {"num_layers": 2, "bidirectional": True}),
    ("rnn", {"activation": "relu"}),
    ("rnn", {"activation": "tanh", "num_layers": 2, "bidirectional": True, "bias": False}),
]


@pytest.mark.parametrize(
    ("kind", "opts"), TORCH_CASES, ids=[str(i) for i in range(len(TORCH_CASES))]
)
def test_torch_round_trip(kind: str, opts: dict[str, Any]) -> None:
    opts = dict(opts)
    num_layers = opts.pop("num_layers", 1)
    ours = _ours(kind, num_layers, **opts).double().eval()
    x = _x(torch.float64, seed=7)
    want = _ours_out(ours, x)

    module = to_torch(ours).eval()
    assert isinstance(module, {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[kind])
    with torch.no_grad():
        got_torch = module(x)[0].numpy()
    assert np.abs(got_torch - want).max() <= TORCH_TOL
    # the state dict loads strictly into a module built by hand
    assert set(to_torch_state_dict(ours)) == set(module.state_dict())

    for fb in (0.0, 1.0):
        back = from_torch(module, forget_bias=fb)
        assert type(back) is type(ours)
        assert next(back.parameters()).dtype == torch.float64
        assert np.abs(_ours_out(back, x) - want).max() <= TORCH_TOL
        # the loop implementation agrees as well
        back.impl = "loop"
        assert np.abs(_ours_out(back, x) - want).max() <= TORCH_TOL
        if kind == "lstm":
            assert _cell(back, 0).forget_bias == fb
            c0, b0 = _cell(ours, 0), _cell(back, 0)
            shift = c0.forget_bias - fb
            torch.testing.assert_close(b0.bias_hh[H : 2 * H], c0.bias_hh[H : 2 * H] + shift)
            assert torch.equal(b0.weight_ih, c0.weight_ih)


def test_torch_state_dict_folds_forget_bias() -> None:
    ours = _ours("lstm", forget_bias=1.0)
    sd = to_torch_state_dict(ours)
    cell = _cell(ours, 0)
    assert list(sd) == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
    expected = cell.bias_hh.detach().clone()
    expected[H : 2 * H] += 1.0
    assert torch.equal(sd["bias_hh_l0"], expected)
    assert torch.equal(sd["bias_ih_l0"], cell.bias_ih)
    # a fresh lstmkit layer with forget_bias=1 gets back exactly the original parameters up to
    # one rounding of (b + 1) - 1
    other = _ours("lstm", seed=9, forget_bias=1.0)
    load_torch_state_dict(other, sd)
    torch.testing.assert_close(_cell(other, 0).bias_hh, cell.bias_hh, rtol=0, atol=1e-7)


def test_torch_load_with_prefix() -> None:
    ours = _ours("gru", bidirectional=True)
    sd = {f"enc.rnn.{k}": v for k, v in to_torch_state_dict(ours).items()}
    sd["head.weight"] = torch.zeros(2, 2)
    other = _ours("gru", seed=3, bidirectional=True)
    load_torch_state_dict(other, sd, prefix="enc.rnn.")
    for p, q in zip(ours.parameters(), other.parameters(), strict=True):
        assert torch.equal(p, q)


def test_torch_errors() -> None:
    with pytest.raises(ValueError, match="peephole=True"):
        to_torch_state_dict(LSTM(D, H, peephole=True))
    with pytest.raises(ValueError, match="layer_norm=True"):
        to_torch(LSTM(D, H, layer_norm=True))
    with pytest.raises(ValueError, match="recurrent_activation='hard_sigmoid'"):
        to_torch_state_dict(LSTM(D, H, recurrent_activation="hard_sigmoid"))
    with pytest.raises(ValueError, match="reset_after=False"):
        to_torch_state_dict(GRU(D, H, reset_after=False))
    with pytest.raises(ValueError, match="activation='softsign'"):
        to_torch_state_dict(RNN(D, H, activation="softsign"))
    with pytest.raises(ValueError, match="zoneout=0.1"):
        to_torch_state_dict(LSTM(D, H, zoneout=0.1))
    with pytest.raises(ValueError, match="forget_bias=1.0 with bias=False"):
        to_torch_state_dict(LSTM(D, H, bias=False))
    with pytest.raises(ValueError, match="forget_bias=1.0 with bias=False"):
        from_torch(nn.LSTM(D, H, bias=False), forget_bias=1.0)
    with pytest.raises(TypeError, match="LSTMCell"):
        from_torch(nn.LSTMCell(D, H))  # type: ignore[arg-type]

    ours = LSTM(D, H)
    sd = nn.LSTM(D, H + 1, batch_first=True).state_dict()
    with pytest.raises(
        ValueError, match=r"'weight_ih_l0': expected shape \(16, 5\), got \(20, 5\)"
    ):
        load_torch_state_dict(ours, sd)
    sd = nn.LSTM(D, H, batch_first=True).state_dict()
    del sd["bias_hh_l0"]
    sd["bias_hh_l1"] = torch.zeros(4 * H)
    with pytest.raises(ValueError, match=r"missing key\(s\) \['bias_hh_l0'\].*unexpected.*l1"):
        load_torch_state_dict(ours, sd)
    before = [p.detach().clone() for p in ours.parameters()]
    bad = nn.LSTM(D, H, batch_first=True).state_dict()
    bad["weight_hh_l0"] = torch.zeros(4 * H, H + 1)
    with pytest.raises(ValueError, match="weight_hh_l0"):
        load_torch_state_dict(ours, bad)
    for p, q in zip(before, ours.parameters(), strict=True):  # nothing was copied
        assert torch.equal(p, q)
