"""Weight converters between lstmkit layers, ``torch.nn.LSTM/GRU/RNN`` and Keras 3.

All functions are pure: they read parameters and return new tensors/arrays (``load_*`` copies
into an existing layer in place, after validating everything first, so a failed load changes
nothing).

Gate orders and bias layouts (``H`` hidden size, one layer and direction)::

    lstmkit LSTM   weight_ih (4H, D), weight_hh (4H, H_out), bias_ih, bias_hh (4H,)
                   gates i, f, g, o
    torch.nn.LSTM  weight_ih_l{l} ... identical layout and order i, f, g, o; forget_bias is 0
    Keras LSTM     kernel (D, 4H), recurrent_kernel (H, 4H), bias (4H,)           gates i, f, c, o
                   (same order; one bias = bias_ih + bias_hh + forget_bias on the f block)

    lstmkit GRU    weight_ih (3H, D), weight_hh (3H, H), bias_ih, bias_hh (3H,)    gates r, z, n
    torch.nn.GRU   identical (torch is reset_after=True)
    Keras GRU      kernel (D, 3H), recurrent_kernel (H, 3H)                        gates z, r, h
                   reset_after=True:  bias (2, 3H) = [input bias; recurrent bias]
                   reset_after=False: bias (3H,) = bias_ih + bias_hh (exact: with reset before,
                   every recurrent bias block is added outside the reset product)

    lstmkit RNN    weight_ih (H, D), weight_hh (H, H), bias_ih, bias_hh (H,)
    torch.nn.RNN   identical (nonlinearity 'tanh' or 'relu')
    Keras SimpleRNN kernel (D, H), recurrent_kernel (H, H), bias (H,) = bias_ih + bias_hh

Keras kernels are the transposes of ours. Keras GRU's ``h = z * h_tm1 + (1 - z) * hh`` is our
``h' = (1 - z) * n + z * h``; Keras 3's ``hard_sigmoid`` is ``relu6(x + 3) / 6``, ours too.

Only weights move. Training-time regularisers (``dropout`` between layers, ``recurrent_dropout``,
``weight_drop``) are not part of the weights and never block a conversion; options that change
eval-mode outputs and have no counterpart (peephole, layer_norm, zoneout, projection for Keras,
non-tanh activations for torch.nn, ...) raise ``ValueError`` naming the option.

Typical use::

    # Keras Sequential of LSTM layers -> lstmkit and back
    layer = from_keras(model.layers)            # or load_keras_weights(layer, [...])
    copy_to_keras(layer, model.layers)          # validates the configs, then set_weights
    # torch.nn
    module = to_torch(layer)        # or module.load_state_dict(to_torch_state_dict(layer))
    layer = from_torch(module)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from lstmkit.cells import GRUCell, LSTMCell, RecurrentCell, RNNCell
from lstmkit.layers import GRU, LSTM, RNN, Recurrent

__all__ = [
    "copy_to_keras",
    "from_keras",
    "from_torch",
    "load_keras_weights",
    "load_torch_state_dict",
    "to_keras",
    "to_keras_weights",
    "to_torch",
    "to_torch_state_dict",
]

TorchRNN = nn.LSTM | nn.GRU | nn.RNN

# our activation name -> Keras 3 activation name (and back)
_KERAS_ACTIVATION = {
    "tanh": "tanh",
    "softsign": "softsign",
    "relu": "relu",
    "sigmoid": "sigmoid",
    "hard_tanh": "hard_tanh",
    "identity": "linear",
}
_FROM_KERAS_ACTIVATION = {v: k for k, v in _KERAS_ACTIVATION.items()}
_KERAS_CLASS = {"lstm": "LSTM", "gru": "GRU", "rnn": "SimpleRNN"}
_TORCH_CLASS = {"lstm": "torch.nn.LSTM", "gru": "torch.nn.GRU", "rnn": "torch.nn.RNN"}


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------
def _kind(layer: Recurrent) -> str:
    """'lstm', 'gru' or 'rnn' from the layer's cells."""
    if not isinstance(layer, Recurrent):
        raise TypeError(f"expected an lstmkit LSTM, GRU or RNN layer, got {type(layer).__name__}")
    cell = layer.cells[0]
    if isinstance(cell, LSTMCell):
        return "lstm"
    if isinstance(cell, GRUCell):
        return "gru"
    if isinstance(cell, RNNCell):
        return "rnn"
    raise TypeError(f"unsupported cell type {type(cell).__name__}")


def _cells(layer: Recurrent) -> list[RecurrentCell]:
    return [c for c in layer.cells]  # type: ignore[misc]


def _suffix(direction: int) -> str:
    return "_reverse" if direction == 1 else ""


def _forget_shift(cell: RecurrentCell, like: Tensor) -> Tensor:
    """(4H,) zeros with ``forget_bias`` on the f block (all zeros for GRU/RNN)."""
    shift = torch.zeros(cell.num_gates * cell.hidden_size, dtype=like.dtype, device=like.device)
    fb = float(getattr(cell, "forget_bias", 0.0))
    if fb:
        h = cell.hidden_size
        shift[h : 2 * h] = fb
    return shift


def _swap_rz(x: Tensor) -> Tensor:
    """Swap the first two gate blocks along dim 0: GRU r, z, n <-> Keras z, r, h (an involution)."""
    r, z, n = x.chunk(3, dim=0)
    return torch.cat([z, r, n], 0)


def _shape_error(where: str, expected: tuple[int, ...], got: tuple[int, ...]) -> ValueError:
    return ValueError(f"{where}: expected shape {expected}, got {got}")


def _blockers(layer: Recurrent, target: str) -> list[str]:
    """Options of ``layer`` that change eval outputs and ``target`` ('torch'/'keras') lacks."""
    out: list[str] = []
    for cell in _cells(layer):
        found: list[str] = []
        if cell.zoneout:
            found.append(f"zoneout={cell.zoneout}")
        if isinstance(cell, LSTMCell):
            if cell.peephole:
                found.append("peephole=True")
            if cell.layer_norm:
                found.append("layer_norm=True")
            if cell.proj_size and target == "keras":
                found.append(f"proj_size={cell.proj_size}")
            if cell.forget_bias and not cell.bias:
                found.append(f"forget_bias={cell.forget_bias} with bias=False")
        if target == "torch":
            if isinstance(cell, GRUCell) and not cell.reset_after:
                found.append("reset_after=False")
            allowed = ("tanh", "relu") if isinstance(cell, RNNCell) else ("tanh",)
            if cell.activation_name not in allowed:
                found.append(f"activation={cell.activation_name!r}")
            if cell.num_gates > 1 and cell.recurrent_activation_name != "sigmoid":
                found.append(f"recurrent_activation={cell.recurrent_activation_name!r}")
        elif cell.activation_name not in _KERAS_ACTIVATION:
            found.append(f"activation={cell.activation_name!r}")
        out += [f for f in found if f not in out]
    return out


def _check_convertible(layer: Recurrent, target: str) -> str:
    kind = _kind(layer)
    blockers = _blockers(layer, target)
    if blockers:
        other = _TORCH_CLASS[kind] if target == "torch" else f"Keras {_KERAS_CLASS[kind]}"
        raise ValueError(
            f"cannot convert lstmkit {kind.upper()} to/from {other}: {', '.join(blockers)} "
            f"has no {other} equivalent"
        )
    return kind


# ------------------------------------------------------------------------------------------------
# torch.nn
# ------------------------------------------------------------------------------------------------
def _torch_names(layer: Recurrent) -> dict[str, tuple[int, int, str]]:
    """torch.nn state-dict key -> (cell index k, layer l, our parameter name), in torch's order."""
    names: dict[str, tuple[int, int, str]] = {}
    for k, cell in enumerate(_cells(layer)):
        lyr, d = divmod(k, layer.num_directions)
        params = ["weight_ih", "weight_hh"]
        if cell.bias:
            params += ["bias_ih", "bias_hh"]
        if getattr(cell, "proj_size", 0):
            params.append("weight_hr")
        for p in params:
            names[f"{p}_l{lyr}{_suffix(d)}"] = (k, lyr, p)
    return names


def to_torch_state_dict(layer: Recurrent) -> dict[str, Tensor]:
    """State dict for ``torch.nn.LSTM/GRU/RNN(input_size, hidden_size, num_layers,
    bias=..., batch_first=True, bidirectional=..., proj_size=...)``.

    Keys ``weight_ih_l{l}``, ``weight_hh_l{l}``, ``bias_ih_l{l}``, ``bias_hh_l{l}`` and
    ``weight_hr_l{l}`` (projection), with ``_reverse`` for direction 1. The layouts and gate orders
    are identical (LSTM i, f, g, o; GRU r, z, n); the LSTM ``forget_bias`` constant is folded into
    ``bias_hh[H:2H]``. The tensors are detached copies in the layer's dtype and device.

    Raises:
        ValueError: naming the option torch.nn cannot represent: peephole, layer_norm, zoneout,
            activation other than tanh (tanh/relu for RNN), recurrent_activation other than
            sigmoid, GRU reset_after=False, or a non-zero forget_bias with bias=False.
    """
    _check_convertible(layer, "torch")
    cells = _cells(layer)
    out: dict[str, Tensor] = {}
    for key, (k, _, p) in _torch_names(layer).items():
        t = getattr(cells[k], p).detach().clone()
        if p == "bias_hh":
            t = t + _forget_shift(cells[k], t)
        out[key] = t
    return out


def _torch_module_kwargs(layer: Recurrent, kind: str) -> dict[str, Any]:
    cell = _cells(layer)[0]
    kw: dict[str, Any] = {
        "input_size": layer.input_size,
        "hidden_size": layer.hidden_size,
        "num_layers": layer.num_layers,
        "bias": cell.bias,
        "batch_first": True,
        "dropout": layer.dropout,
        "bidirectional": layer.bidirectional,
    }
    if kind == "lstm":
        kw["proj_size"] = getattr(cell, "proj_size", 0)
    if kind == "rnn":
        kw["nonlinearity"] = cell.activation_name
    return kw


def to_torch(layer: Recurrent) -> TorchRNN:
    """A new ``torch.nn.LSTM/GRU/RNN`` (``batch_first=True``, same dtype/device) computing what
    ``layer`` computes in eval mode, loaded with :func:`to_torch_state_dict`. Raises as that."""
    sd = to_torch_state_dict(layer)
    kind = _kind(layer)
    cls: type[TorchRNN] = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[kind]
    w = _cells(layer)[0].weight_ih
    module = cls(**_torch_module_kwargs(layer, kind)).to(device=w.device, dtype=w.dtype)
    module.load_state_dict(sd)
    return module


def load_torch_state_dict(
    layer: Recurrent, state_dict: Mapping[str, Tensor], *, prefix: str = ""
) -> None:
    """Copy a ``torch.nn.LSTM/GRU/RNN`` state dict into ``layer`` (in place, under no_grad).

    The inverse of :func:`to_torch_state_dict`: the layer's ``forget_bias`` is subtracted from
    ``bias_hh[H:2H]`` so that the layer computes what the torch module computes. With ``prefix``
    (e.g. ``"encoder.rnn."``) only keys starting with it are read, the prefix stripped. Values are
    cast to the layer's dtype/device. Everything is validated before anything is copied.

    Raises:
        ValueError: a missing or unexpected key (named), a shape mismatch (key, expected and got
            shape), or an option of ``layer`` torch.nn cannot represent (see
            :func:`to_torch_state_dict`).
    """
    _check_convertible(layer, "torch")
    cells = _cells(layer)
    names = _torch_names(layer)
    given = {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}
    missing = [prefix + k for k in names if k not in given]
    unexpected = [prefix + k for k in given if k not in names]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing key(s) {missing}")
        if unexpected:
            parts.append(f"unexpected key(s) {unexpected}")
        raise ValueError(
            f"state dict does not match lstmkit {type(layer).__name__} "
            f"(num_layers={layer.num_layers}, bidirectional={layer.bidirectional}): "
            + "; ".join(parts)
        )
    for key, (k, _, p) in names.items():
        expected = tuple(getattr(cells[k], p).shape)
        got = tuple(torch.as_tensor(given[key]).shape)
        if got != expected:
            raise _shape_error(f"state dict key {prefix + key!r}", expected, got)
    with torch.no_grad():
        for key, (k, _, p) in names.items():
            param: Tensor = getattr(cells[k], p)
            value = torch.as_tensor(given[key]).to(dtype=param.dtype, device=param.device)
            if p == "bias_hh":
                value = value - _forget_shift(cells[k], value)
            param.copy_(value)


def from_torch(module: TorchRNN, *, forget_bias: float = 0.0) -> Recurrent:
    """An lstmkit layer equivalent to ``module`` (``torch.nn.LSTM``, ``GRU`` or ``RNN``).

    Same sizes, ``num_layers``, ``bidirectional``, ``bias``, ``dropout``, ``proj_size`` and RNN
    ``nonlinearity``; same dtype and device. For LSTM the new layer's ``forget_bias`` is
    ``forget_bias`` (default 0.0, torch's) and it is subtracted from ``bias_hh[H:2H]``, so the
    outputs are identical either way. lstmkit layers are batch-first: a module with
    ``batch_first=False`` has the same weights, the input is just ``x.transpose(0, 1)``.

    Raises:
        TypeError: ``module`` is not an ``nn.LSTM``, ``nn.GRU`` or ``nn.RNN``.
        ValueError: ``forget_bias != 0`` for a module with ``bias=False``.
    """
    if not isinstance(module, nn.LSTM | nn.GRU | nn.RNN):
        raise TypeError(f"expected torch.nn.LSTM, GRU or RNN, got {type(module).__name__}")
    common: dict[str, Any] = {
        "bidirectional": module.bidirectional,
        "dropout": float(module.dropout),
        "bias": module.bias,
    }
    layer: Recurrent
    if isinstance(module, nn.LSTM):
        layer = LSTM(
            module.input_size,
            module.hidden_size,
            module.num_layers,
            forget_bias=forget_bias,
            proj_size=module.proj_size,
            **common,
        )
    elif isinstance(module, nn.GRU):
        layer = GRU(module.input_size, module.hidden_size, module.num_layers, **common)
    else:
        layer = RNN(
            module.input_size,
            module.hidden_size,
            module.num_layers,
            activation=module.nonlinearity,
            **common,
        )
    w = next(module.parameters())
    layer = layer.to(device=w.device, dtype=w.dtype)
    load_torch_state_dict(layer, module.state_dict())
    return layer


# ------------------------------------------------------------------------------------------------
# Keras 3
# ------------------------------------------------------------------------------------------------
def _keras_shapes(layer: Recurrent, kind: str, lyr: int) -> list[tuple[str, tuple[int, ...]]]:
    """(name, shape) of the arrays of one direction of Keras layer ``lyr``, get_weights order."""
    cell = _cells(layer)[lyr * layer.num_directions]
    gh = cell.num_gates * cell.hidden_size
    shapes: list[tuple[str, tuple[int, ...]]] = [
        ("kernel", (cell.input_size, gh)),
        ("recurrent_kernel", (cell.hidden_size, gh)),
    ]
    if cell.bias:
        two_rows = kind == "gru" and getattr(cell, "reset_after", False)
        shapes.append(("bias", (2, gh) if two_rows else (gh,)))
    return shapes


def _cell_to_keras(cell: RecurrentCell, kind: str) -> list[np.ndarray]:
    def np_(t: Tensor) -> np.ndarray:
        return np.ascontiguousarray(t.detach().cpu().numpy())

    w_ih, w_hh = cell.weight_ih.detach(), cell.weight_hh.detach()
    if kind == "gru":
        w_ih, w_hh = _swap_rz(w_ih), _swap_rz(w_hh)
    out = [np_(w_ih.t()), np_(w_hh.t())]
    if cell.bias_ih is not None and cell.bias_hh is not None:
        b_ih, b_hh = cell.bias_ih.detach(), cell.bias_hh.detach()
        if kind == "gru" and getattr(cell, "reset_after", False):
            out.append(np_(torch.stack([_swap_rz(b_ih), _swap_rz(b_hh)], 0)))
        else:
            b = b_ih + b_hh + _forget_shift(cell, b_ih)
            out.append(np_(_swap_rz(b) if kind == "gru" else b))
    return out


def to_keras_weights(layer: Recurrent) -> list[list[np.ndarray]]:
    """Weights for Keras 3 layers, one list per layer of the stack, in ``get_weights()`` order.

    Layer ``l`` is ``keras.layers.LSTM/GRU/SimpleRNN(units=H, ...)`` with input size ``D_l``:
    ``[kernel (D_l, G*H), recurrent_kernel (H, G*H), bias]`` (no bias when ``bias=False``). For a
    bidirectional layer the list is that of ``keras.layers.Bidirectional(...,
    merge_mode='concat')``: the forward layer's arrays then the backward layer's (6 arrays).
    Feed each list to the matching Keras layer's ``set_weights`` (or use :func:`copy_to_keras`).

    LSTM: gate order i, f, g, o = Keras i, f, c, o; ``bias = bias_ih + bias_hh`` plus
    ``forget_bias`` on the f block. GRU: blocks reordered r, z, n -> z, r, h; ``reset_after=True``
    gives bias (2, 3H) = [input; recurrent], ``reset_after=False`` bias (3H,) = bias_ih + bias_hh
    (exact: those recurrent biases are plain additive terms). SimpleRNN: ``bias_ih + bias_hh``.
    The arrays are in the layer's dtype.

    Raises:
        ValueError: naming an option Keras cannot represent: peephole, layer_norm, proj_size,
            zoneout, forget_bias with bias=False, or an activation Keras lacks.
    """
    kind = _check_convertible(layer, "keras")
    cells = _cells(layer)
    dirs = layer.num_directions
    out: list[list[np.ndarray]] = []
    for lyr in range(layer.num_layers):
        arrays: list[np.ndarray] = []
        for d in range(dirs):
            arrays += _cell_to_keras(cells[lyr * dirs + d], kind)
        out.append(arrays)
    return out


def load_keras_weights(
    layer: Recurrent, weights: Sequence[Sequence[Any]] | Sequence[np.ndarray]
) -> None:
    """Copy Keras 3 weights into ``layer`` (in place, under no_grad); inverse of
    :func:`to_keras_weights`.

    ``weights``: one ``get_weights()`` list per Keras layer of the stack (a
    ``Bidirectional(merge_mode='concat')`` list holds forward then backward arrays); for a
    one-layer stack a single ``get_weights()`` list is accepted too. Keras has one bias per gate
    block: it goes to ``bias_ih`` (minus the LSTM ``forget_bias`` on the f block) and ``bias_hh``
    is set to 0, except GRU ``reset_after=True`` whose (2, 3H) bias rows are the input and
    recurrent biases. Values are cast to the layer's dtype and device; everything is validated
    before anything is copied.

    Raises:
        ValueError: wrong number of layers or arrays, or a shape mismatch (naming the Keras layer,
            direction and array, with expected and got shape), or an option of ``layer`` that
            Keras cannot represent (see :func:`to_keras_weights`).
    """
    kind = _check_convertible(layer, "keras")
    cells = _cells(layer)
    dirs = layer.num_directions
    w_list = list(weights)
    if w_list and hasattr(w_list[0], "shape"):  # one flat get_weights() list
        w_list = [w_list]
    if len(w_list) != layer.num_layers:
        raise ValueError(
            f"expected weights for {layer.num_layers} Keras layer(s) (one get_weights() list "
            f"each), got {len(w_list)}"
        )
    parsed: list[list[Tensor]] = []  # per cell k: kernel, recurrent_kernel[, bias]
    for lyr, arrays in enumerate(w_list):
        arrays = list(arrays)
        shapes = _keras_shapes(layer, kind, lyr)
        if len(arrays) != dirs * len(shapes):
            names = [n for n, _ in shapes] * dirs
            raise ValueError(
                f"Keras layer {lyr}: expected {dirs * len(shapes)} arrays {names}, "
                f"got {len(arrays)}"
            )
        for d in range(dirs):
            cell_arrays = []
            for j, (name, shape) in enumerate(shapes):
                a = torch.as_tensor(np.asarray(arrays[d * len(shapes) + j]))
                if tuple(a.shape) != shape:
                    direction = ("forward", "backward")[d] if dirs == 2 else "forward"
                    raise _shape_error(
                        f"Keras layer {lyr} ({direction}) {name!r}", shape, tuple(a.shape)
                    )
                cell_arrays.append(a)
            parsed.append(cell_arrays)
    with torch.no_grad():
        for cell, arrs in zip(cells, parsed, strict=True):
            like = cell.weight_ih
            kernel, rec = (a.to(dtype=like.dtype, device=like.device) for a in arrs[:2])
            w_ih, w_hh = kernel.t(), rec.t()
            if kind == "gru":
                w_ih, w_hh = _swap_rz(w_ih), _swap_rz(w_hh)
            cell.weight_ih.copy_(w_ih)
            cell.weight_hh.copy_(w_hh)
            if cell.bias_ih is not None and cell.bias_hh is not None:
                b = arrs[2].to(dtype=like.dtype, device=like.device)
                if b.dim() == 2:  # GRU reset_after=True: [input; recurrent]
                    cell.bias_ih.copy_(_swap_rz(b[0]))
                    cell.bias_hh.copy_(_swap_rz(b[1]))
                else:
                    b = _swap_rz(b) if kind == "gru" else b
                    cell.bias_ih.copy_(b - _forget_shift(cell, b))
                    cell.bias_hh.zero_()


@dataclass
class _KerasSpec:
    """The lstmkit-relevant configuration of a stack of Keras recurrent layers."""

    kind: str
    units: int
    input_size: int
    bidirectional: bool
    activation: str
    recurrent_activation: str
    use_bias: bool
    reset_after: bool
    return_sequences: bool
    recurrent_dropout: float
    num_layers: int


def _keras_layer_list(layers: Any) -> list[Any]:
    """Accept one Keras layer, a Sequential/Model (its ``.layers``) or a sequence of layers."""
    import keras

    if isinstance(layers, keras.Model):
        items = list(layers.layers)
    elif isinstance(layers, keras.layers.Layer):
        items = [layers]
    else:
        items = list(layers)
    items = [kl for kl in items if not isinstance(kl, keras.layers.InputLayer)]
    if not items:
        raise ValueError("expected at least one Keras recurrent layer, got none")
    return items


def _keras_spec(layers: Any) -> tuple[_KerasSpec, list[Any]]:
    import keras

    klass = {
        "lstm": keras.layers.LSTM,
        "gru": keras.layers.GRU,
        "rnn": keras.layers.SimpleRNN,
    }
    items = _keras_layer_list(layers)
    specs: list[dict[str, Any]] = []
    for i, kl in enumerate(items):
        where = f"Keras layer {i} ({kl.name!r})"
        bidir = isinstance(kl, keras.layers.Bidirectional)
        inner = kl.forward_layer if bidir else kl
        if bidir and kl.merge_mode != "concat":
            raise ValueError(
                f"{where}: Bidirectional merge_mode={kl.merge_mode!r} is not supported; lstmkit "
                "concatenates forward and backward outputs (merge_mode='concat')"
            )
        kind = next((k for k, c in klass.items() if isinstance(inner, c)), None)
        if kind is None:
            raise TypeError(
                f"{where}: expected keras.layers.LSTM, GRU, SimpleRNN or a Bidirectional of one, "
                f"got {type(inner).__name__}"
            )
        if inner.go_backwards and not bidir:
            raise ValueError(f"{where}: go_backwards=True outside Bidirectional is not supported")
        if not kl.built:
            raise ValueError(f"{where} is not built; call it or build it with an input shape first")
        cfg = inner.get_config()
        act = cfg["activation"]
        if not isinstance(act, str) or act not in _FROM_KERAS_ACTIVATION:
            raise ValueError(
                f"{where}: activation {act!r} has no lstmkit equivalent "
                f"(supported: {sorted(_FROM_KERAS_ACTIVATION)})"
            )
        rec_act = cfg.get("recurrent_activation", "sigmoid")
        if kind != "rnn" and rec_act not in ("sigmoid", "hard_sigmoid"):
            raise ValueError(
                f"{where}: recurrent_activation {rec_act!r} has no lstmkit equivalent "
                "(supported: 'sigmoid', 'hard_sigmoid')"
            )
        specs.append(
            {
                "kind": kind,
                "units": int(cfg["units"]),
                "input_size": int(kl.get_weights()[0].shape[0]),
                "bidirectional": bidir,
                "activation": _FROM_KERAS_ACTIVATION[act],
                "recurrent_activation": rec_act if kind != "rnn" else "sigmoid",
                "use_bias": bool(cfg["use_bias"]),
                "reset_after": bool(cfg.get("reset_after", True)),
                "return_sequences": bool(cfg["return_sequences"]),
                "recurrent_dropout": float(cfg.get("recurrent_dropout", 0.0)),
            }
        )
    first = specs[0]
    same = ("kind", "units", "bidirectional", "activation", "recurrent_activation", "use_bias")
    for i, s in enumerate(specs[1:], 1):
        for key in (*same, "reset_after", "recurrent_dropout"):
            if s[key] != first[key]:
                raise ValueError(
                    f"Keras layer {i}: {key}={s[key]!r} differs from layer 0's {first[key]!r}; "
                    "an lstmkit stack has one configuration for all layers"
                )
        width = (2 if first["bidirectional"] else 1) * first["units"]
        if s["input_size"] != width:
            raise _shape_error(f"Keras layer {i} input size", (width,), (s["input_size"],))
    for i, s in enumerate(specs[:-1]):
        if not s["return_sequences"]:
            raise ValueError(
                f"Keras layer {i}: return_sequences=False before the last layer of the stack"
            )
    spec = _KerasSpec(
        **{k: v for k, v in first.items() if k != "return_sequences"},
        return_sequences=specs[-1]["return_sequences"],
        num_layers=len(specs),
    )
    return spec, items


def _layer_spec_mismatches(layer: Recurrent, spec: _KerasSpec) -> list[str]:
    kind = _kind(layer)
    cell = _cells(layer)[0]
    ours: dict[str, Any] = {
        "kind": kind,
        "units": layer.hidden_size,
        "input_size": layer.input_size,
        "num_layers": layer.num_layers,
        "bidirectional": layer.bidirectional,
        "activation": cell.activation_name,
        "use_bias": cell.bias,
    }
    if kind != "rnn":
        ours["recurrent_activation"] = cell.recurrent_activation_name
    if kind == "gru":
        ours["reset_after"] = getattr(cell, "reset_after", True)
    return [
        f"{key}: lstmkit {val!r}, Keras {getattr(spec, key)!r}"
        for key, val in ours.items()
        if getattr(spec, key) != val
    ]


def from_keras(layers: Any, *, forget_bias: float = 0.0) -> Recurrent:
    """A new lstmkit layer equivalent to a stack of Keras 3 recurrent layers.

    ``layers``: one built ``keras.layers.LSTM/GRU/SimpleRNN`` (or a
    ``Bidirectional(..., merge_mode='concat')`` of one), a list of them, or a ``keras.Sequential``
    / ``Model`` made only of them (``InputLayer`` is skipped). All layers must share type, units,
    activations, ``use_bias``, ``reset_after`` and ``recurrent_dropout``; all but the last need
    ``return_sequences=True``. The result is float32 with ``num_layers = len(layers)``,
    ``return_sequences`` of the last Keras layer, ``recurrent_dropout`` copied (Keras' input
    ``dropout`` has no lstmkit counterpart and is not carried over; it does not affect inference),
    and, for LSTM, ``forget_bias`` (default 0.0; it is subtracted from the imported bias, so the
    outputs are identical either way). Weights are loaded with :func:`load_keras_weights`.

    Raises:
        TypeError: a layer that is not a supported Keras recurrent layer.
        ValueError: an unbuilt layer, an unsupported option (merge_mode, go_backwards outside
            Bidirectional, activation), or layers whose configurations differ.
    """
    spec, items = _keras_spec(layers)
    common: dict[str, Any] = {
        "bidirectional": spec.bidirectional,
        "bias": spec.use_bias,
        "activation": spec.activation,
        "return_sequences": spec.return_sequences,
        "recurrent_dropout": spec.recurrent_dropout,
    }
    if spec.kind != "rnn":
        common["recurrent_activation"] = spec.recurrent_activation
    layer: Recurrent
    if spec.kind == "lstm":
        layer = LSTM(
            spec.input_size, spec.units, spec.num_layers, forget_bias=forget_bias, **common
        )
    elif spec.kind == "gru":
        layer = GRU(
            spec.input_size, spec.units, spec.num_layers, reset_after=spec.reset_after, **common
        )
    else:
        layer = RNN(spec.input_size, spec.units, spec.num_layers, **common)
    load_keras_weights(layer, [kl.get_weights() for kl in items])
    return layer


def copy_to_keras(layer: Recurrent, keras_layers: Any) -> None:
    """Set the weights of existing Keras 3 layers from ``layer`` (``set_weights`` on each).

    ``keras_layers`` as in :func:`from_keras`. Their configuration is checked against ``layer``
    first (type, units, input size, number of layers, bidirectional, activations, ``use_bias``,
    ``reset_after``), since Keras' ``set_weights`` only checks shapes.

    Raises:
        ValueError: a configuration mismatch (every differing field named), or an option of
            ``layer`` that Keras cannot represent (see :func:`to_keras_weights`).
    """
    weights = to_keras_weights(layer)
    spec, items = _keras_spec(keras_layers)
    mismatches = _layer_spec_mismatches(layer, spec)
    if mismatches:
        raise ValueError("Keras layers do not match the lstmkit layer: " + "; ".join(mismatches))
    for kl, w in zip(items, weights, strict=True):
        kl.set_weights(w)


def to_keras(layer: Recurrent) -> list[Any]:
    """New built Keras 3 layers computing what ``layer`` computes in eval mode, one per layer of
    the stack: ``keras.layers.LSTM/GRU/SimpleRNN`` (wrapped in
    ``Bidirectional(merge_mode='concat')`` when bidirectional), ``return_sequences=True`` except
    the last, which follows ``layer.return_sequences``; same activations, ``use_bias``,
    ``reset_after``, ``recurrent_dropout`` and dtype. Use as
    ``keras.Sequential([keras.Input((None, D)), *to_keras(layer)])``. Raises as
    :func:`to_keras_weights`.
    """
    import keras

    kind = _check_convertible(layer, "keras")
    weights = to_keras_weights(layer)
    cell = _cells(layer)[0]
    cls = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU, "rnn": keras.layers.SimpleRNN}[kind]
    dtype = str(cell.weight_ih.dtype).removeprefix("torch.")
    out: list[Any] = []
    in_size = layer.input_size
    for lyr in range(layer.num_layers):
        kw: dict[str, Any] = {
            "units": layer.hidden_size,
            "activation": _KERAS_ACTIVATION[cell.activation_name],
            "use_bias": cell.bias,
            "return_sequences": lyr < layer.num_layers - 1 or layer.return_sequences,
            "recurrent_dropout": cell.recurrent_dropout,
            "dtype": dtype,
        }
        if kind != "rnn":
            kw["recurrent_activation"] = cell.recurrent_activation_name
        if kind == "gru":
            kw["reset_after"] = getattr(cell, "reset_after", True)
        kl = cls(**kw)
        if layer.bidirectional:
            kl = keras.layers.Bidirectional(kl, merge_mode="concat", dtype=dtype)
        kl.build((None, None, in_size))
        kl.set_weights(weights[lyr])
        out.append(kl)
        in_size = layer.num_directions * layer.hidden_size
    return out
