"""Recurrent cells: the parameters and options of one layer in one direction.

A cell owns its parameters (names and shapes in ``docs/design.md``) and knows how to compute one
time step (:meth:`RecurrentCell.step`, which calls :mod:`lstmkit.functional`). Stacking,
directions, masks and the choice of implementation live in :mod:`lstmkit.layers`.

``forget_bias`` defaults to 1.0 as in TF1's ``LSTMCell`` (seed 000). torch.nn.LSTM has no such
constant (it is 0 there); :mod:`lstmkit.interop` folds it into ``bias_hh`` when converting.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from lstmkit import functional as Fn

State = tuple[Tensor, ...]


def _check_probability(name: str, value: float) -> float:
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return float(value)


class RecurrentCell(nn.Module):
    """Base class of :class:`LSTMCell`, :class:`GRUCell` and :class:`RNNCell`.

    Attributes:
        num_gates: gate blocks stacked in ``weight_ih`` (4 LSTM, 3 GRU, 1 RNN).
        output_size: size of ``h`` (``proj_size`` when projecting, else ``hidden_size``).
        state_names: ``("h", "c")`` for LSTM, ``("h",)`` otherwise.
    """

    num_gates: int = 1
    state_names: tuple[str, ...] = ("h",)
    weight_ih: Tensor
    weight_hh: Tensor
    bias_ih: Tensor | None
    bias_hh: Tensor | None

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        bias: bool = True,
        activation: str = "tanh",
        recurrent_activation: str = "sigmoid",
        recurrent_dropout: float = 0.0,
        zoneout: float = 0.0,
        weight_drop: float = 0.0,
        output_size: int | None = None,
    ) -> None:
        super().__init__()
        if input_size <= 0 or hidden_size <= 0:
            raise ValueError(
                f"input_size and hidden_size must be positive, got {input_size} and {hidden_size}"
            )
        self.input_size = int(input_size)
        self.hidden_size = int(hidden_size)
        self.output_size = int(output_size or hidden_size)
        self.bias = bool(bias)
        self.activation_name = activation
        self.recurrent_activation_name = recurrent_activation
        self.act = Fn.get_activation(activation)
        self.rec_act = Fn.get_activation(recurrent_activation, recurrent=True)
        self.recurrent_dropout = _check_probability("recurrent_dropout", recurrent_dropout)
        self.zoneout = _check_probability("zoneout", zoneout)
        self.weight_drop = _check_probability("weight_drop", weight_drop)
        gh = self.num_gates * self.hidden_size
        self.weight_ih = nn.Parameter(torch.empty(gh, self.input_size))
        self.weight_hh = nn.Parameter(torch.empty(gh, self.output_size))
        if self.bias:
            self.bias_ih = nn.Parameter(torch.empty(gh))
            self.bias_hh = nn.Parameter(torch.empty(gh))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)

    def reset_parameters(self) -> None:
        """torch's initialisation: every weight ~ U(-1/sqrt(H), 1/sqrt(H)); LN gains 1, LN bias 0."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for name, p in self.named_parameters():
            if name.startswith("ln_"):
                nn.init.ones_(p) if name.endswith("weight") else nn.init.zeros_(p)
            else:
                nn.init.uniform_(p, -bound, bound)

    # -- what the fused op cannot do -------------------------------------------------------
    def fused_blockers(self) -> list[str]:
        """Options set on this cell that torch's fused op cannot run (empty list: fusable)."""
        out = []
        if self.recurrent_dropout:
            out.append(f"recurrent_dropout={self.recurrent_dropout}")
        if self.zoneout:
            out.append(f"zoneout={self.zoneout}")
        if self.recurrent_activation_name != "sigmoid" and self.num_gates > 1:
            out.append(f"recurrent_activation={self.recurrent_activation_name!r}")
        return out

    # -- math ------------------------------------------------------------------------------
    def input_projection(self, x: Tensor) -> Tensor:
        """``x W_ih^T + b_ih`` for every step: (B, T, D) -> (B, T, G*H)."""
        return Fn.input_projection(x, self.weight_ih, self.bias_ih)

    def step(
        self,
        gx: Tensor,
        state: State,
        weight_hh: Tensor,
        h_mask: Tensor | None,
        gates: dict[str, Tensor] | None = None,
    ) -> State:
        """One step from the precomputed input part ``gx`` (B, G*H); returns the new state.
        ``gates``, when given, is filled with the gate activations (none for SimpleRNN)."""
        raise NotImplementedError

    def zero_state(self, batch: int, like: Tensor) -> State:
        """All-zero state for ``batch`` sequences, dtype/device of ``like``."""
        sizes = {"h": self.output_size, "c": self.hidden_size}
        return tuple(like.new_zeros(batch, sizes[n]) for n in self.state_names)

    def forward(self, x: Tensor, state: State | Tensor | None = None) -> State | Tensor:
        """One step on ``x`` (B, D), like ``torch.nn.LSTMCell``: returns ``(h, c)`` for LSTM and
        ``h`` for GRU/RNN. In training, recurrent dropout and zoneout draw fresh masks at each
        call; use :class:`lstmkit.layers.LSTM` for one variational mask per sequence."""
        if x.dim() != 2 or x.shape[-1] != self.input_size:
            raise ValueError(
                f"expected input of shape (B, {self.input_size}), got {tuple(x.shape)}"
            )
        if state is None:
            st = self.zero_state(x.shape[0], x)
        else:
            st = (state,) if isinstance(state, Tensor) else tuple(state)
        gx = self.input_projection(x.unsqueeze(1)).squeeze(1)
        h_mask = None
        if self.training and self.recurrent_dropout:
            keep = 1.0 - self.recurrent_dropout
            h_mask = torch.bernoulli(torch.full_like(st[0], keep)) / keep
        w_hh: Tensor = self.weight_hh
        if self.training and self.weight_drop:
            keep = 1.0 - self.weight_drop
            w_hh = w_hh * (torch.bernoulli(torch.full_like(w_hh, keep)) / keep)
        new = self.step(gx, st, w_hh, h_mask)
        if self.zoneout:
            if self.training:
                zs = [torch.bernoulli(torch.full_like(s, self.zoneout)) for s in st]
            else:
                zs = [torch.full_like(s, self.zoneout) for s in st]
            new = tuple(z * o + (1 - z) * n for z, o, n in zip(zs, st, new, strict=True))
        return new if len(new) > 1 else new[0]


class LSTMCell(RecurrentCell):
    """LSTM cell, gate order i, f, g, o. Equations in :func:`lstmkit.functional.lstm_step`.

    Args:
        input_size: D. hidden_size: H.
        forget_bias: constant added to the forget gate pre-activation (TF1: 1.0; torch: 0).
        peephole: diagonal peephole weights ``weight_ci, weight_cf, weight_co`` (TF1 use_peepholes).
        activation: squashing for g and the cell output ('tanh', 'softsign', ...).
        recurrent_activation: gate function ('sigmoid' or 'hard_sigmoid').
        layer_norm: LN on ``x W_ih^T``, on ``h W_hh^T`` and on the cell before the output (haste's
            LayerNormLSTM).
        proj_size: P > 0 projects h with ``weight_hr`` (P, H), as torch.nn.LSTM.
        recurrent_dropout: variational dropout on h (one mask per sequence in a layer).
        zoneout: probability of keeping each unit of h and c from the previous step.
        weight_drop: DropConnect on ``weight_hh`` (AWD-LSTM), one mask per forward call.
    """

    num_gates = 4
    state_names = ("h", "c")
    weight_hr: Tensor | None
    weight_ci: Tensor | None
    weight_cf: Tensor | None
    weight_co: Tensor | None
    ln_ih_weight: Tensor | None
    ln_hh_weight: Tensor | None
    ln_c_weight: Tensor | None
    ln_c_bias: Tensor | None

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        bias: bool = True,
        forget_bias: float = 1.0,
        peephole: bool = False,
        activation: str = "tanh",
        recurrent_activation: str = "sigmoid",
        layer_norm: bool = False,
        proj_size: int = 0,
        recurrent_dropout: float = 0.0,
        zoneout: float = 0.0,
        weight_drop: float = 0.0,
    ) -> None:
        if proj_size < 0 or proj_size >= hidden_size and proj_size != 0:
            raise ValueError(
                f"proj_size must be 0 or in [1, hidden_size={hidden_size}), got {proj_size}"
            )
        super().__init__(
            input_size,
            hidden_size,
            bias=bias,
            activation=activation,
            recurrent_activation=recurrent_activation,
            recurrent_dropout=recurrent_dropout,
            zoneout=zoneout,
            weight_drop=weight_drop,
            output_size=proj_size or hidden_size,
        )
        self.forget_bias = float(forget_bias)
        self.peephole = bool(peephole)
        self.layer_norm = bool(layer_norm)
        self.proj_size = int(proj_size)
        h = self.hidden_size
        if self.proj_size:
            self.weight_hr = nn.Parameter(torch.empty(self.proj_size, h))
        else:
            self.register_parameter("weight_hr", None)
        for name in ("weight_ci", "weight_cf", "weight_co"):
            if self.peephole:
                setattr(self, name, nn.Parameter(torch.empty(h)))
            else:
                self.register_parameter(name, None)
        ln_shapes = {"ln_ih_weight": 4 * h, "ln_hh_weight": 4 * h, "ln_c_weight": h, "ln_c_bias": h}
        for name, size in ln_shapes.items():
            if self.layer_norm:
                setattr(self, name, nn.Parameter(torch.empty(size)))
            else:
                self.register_parameter(name, None)
        self.reset_parameters()

    def fused_blockers(self) -> list[str]:
        out = super().fused_blockers()
        if self.peephole:
            out.append("peephole=True")
        if self.layer_norm:
            out.append("layer_norm=True")
        if self.activation_name != "tanh":
            out.append(f"activation={self.activation_name!r}")
        return out

    def input_projection(self, x: Tensor) -> Tensor:
        return Fn.input_projection(x, self.weight_ih, self.bias_ih, self.ln_ih_weight)

    def step(
        self,
        gx: Tensor,
        state: State,
        weight_hh: Tensor,
        h_mask: Tensor | None,
        gates: dict[str, Tensor] | None = None,
    ) -> State:
        h, c = state
        return Fn.lstm_step(
            gx,
            h,
            c,
            weight_hh,
            self.bias_hh,
            forget_bias=self.forget_bias,
            weight_ci=self.weight_ci,
            weight_cf=self.weight_cf,
            weight_co=self.weight_co,
            weight_hr=self.weight_hr,
            ln_hh_weight=self.ln_hh_weight,
            ln_c_weight=self.ln_c_weight,
            ln_c_bias=self.ln_c_bias,
            activation=self.act,
            recurrent_activation=self.rec_act,
            h_mask=h_mask,
            gates=gates,
        )

    def extra_repr(self) -> str:
        opts = [f"{self.input_size}, {self.hidden_size}", f"forget_bias={self.forget_bias}"]
        for name in ("peephole", "layer_norm"):
            if getattr(self, name):
                opts.append(f"{name}=True")
        if self.proj_size:
            opts.append(f"proj_size={self.proj_size}")
        return ", ".join(opts)


class GRUCell(RecurrentCell):
    """GRU cell, gate order r, z, n. Equations in :func:`lstmkit.functional.gru_step`.

    Args:
        reset_after: True applies the reset gate after the recurrent matmul (torch, Keras
            default, cuDNN); False is the original Cho et al. (2014) "reset before".

    Other options as :class:`LSTMCell`.
    """

    num_gates = 3

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        bias: bool = True,
        reset_after: bool = True,
        activation: str = "tanh",
        recurrent_activation: str = "sigmoid",
        recurrent_dropout: float = 0.0,
        zoneout: float = 0.0,
        weight_drop: float = 0.0,
    ) -> None:
        super().__init__(
            input_size,
            hidden_size,
            bias=bias,
            activation=activation,
            recurrent_activation=recurrent_activation,
            recurrent_dropout=recurrent_dropout,
            zoneout=zoneout,
            weight_drop=weight_drop,
        )
        self.reset_after = bool(reset_after)
        self.reset_parameters()

    def fused_blockers(self) -> list[str]:
        out = super().fused_blockers()
        if not self.reset_after:
            out.append("reset_after=False")
        if self.activation_name != "tanh":
            out.append(f"activation={self.activation_name!r}")
        return out

    def step(
        self,
        gx: Tensor,
        state: State,
        weight_hh: Tensor,
        h_mask: Tensor | None,
        gates: dict[str, Tensor] | None = None,
    ) -> State:
        h_new = Fn.gru_step(
            gx,
            state[0],
            weight_hh,
            self.bias_hh,
            reset_after=self.reset_after,
            activation=self.act,
            recurrent_activation=self.rec_act,
            h_mask=h_mask,
            gates=gates,
        )
        return (h_new,)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, reset_after={self.reset_after}"


class RNNCell(RecurrentCell):
    """SimpleRNN (Elman) cell: ``h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh)``."""

    num_gates = 1

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        bias: bool = True,
        activation: str = "tanh",
        recurrent_dropout: float = 0.0,
        zoneout: float = 0.0,
        weight_drop: float = 0.0,
    ) -> None:
        super().__init__(
            input_size,
            hidden_size,
            bias=bias,
            activation=activation,
            recurrent_dropout=recurrent_dropout,
            zoneout=zoneout,
            weight_drop=weight_drop,
        )
        self.reset_parameters()

    def fused_blockers(self) -> list[str]:
        out = super().fused_blockers()
        if self.activation_name not in ("tanh", "relu"):
            out.append(f"activation={self.activation_name!r}")
        return out

    def step(
        self,
        gx: Tensor,
        state: State,
        weight_hh: Tensor,
        h_mask: Tensor | None,
        gates: dict[str, Tensor] | None = None,
    ) -> State:
        return (
            Fn.rnn_step(gx, state[0], weight_hh, self.bias_hh, activation=self.act, h_mask=h_mask),
        )

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, activation={self.activation_name!r}"
