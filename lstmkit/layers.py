"""Recurrent layers: stacking, directions, lengths/masks, state in and out, and the ONE place that
picks the implementation.

Shapes (batch-first everywhere)::

    x       (B, T, D)
    lengths (B,)        int, 1 <= lengths <= T      or   mask (B, T) bool, True at real tokens
    state   (L*dirs, B, H_out) for h, (L*dirs, B, H) for c; index k = layer * dirs + direction
    output  (B, T, dirs*H_out)  with return_sequences, else (B, dirs*H_out)

Implementations (:meth:`Recurrent._choose_impl` is the only place that decides):

- ``fused``: torch's fused op (``torch._VF.lstm/gru/rnn_*``: oneDNN on CPU, cuDNN on GPU). It runs
  the vanilla cells only: LSTM with tanh + sigmoid, no peephole, no layer norm, no zoneout, no
  recurrent dropout while training (``forget_bias`` is folded into ``bias_hh``; ``proj_size``
  and ``weight_drop`` are applied to the weights before the call); GRU with ``reset_after=True``
  and tanh + sigmoid; RNN with tanh or relu. Variable-length batches (``varlen``): 'split' on
  CPU — every sequence is real for its first ``min(lengths)`` steps, which run as one padded
  fused call, and only the rest runs packed (with length bucketing that is most of the work; on
  this machine it trains ~40x faster than ``PackedSequence``, whose CPU backward is slow — see
  ``benchmarks/recurrent.py``); 'packed' (``PackedSequence``) on CUDA, where cuDNN runs it
  natively; 'kernel' when asked for (the compiled LSTM / GRU kernel with the lengths in the
  recurrence: faster for training at small H, see :data:`VARLENS`). 'pre' padding is rolled to
  'post' and back. All are exact.
- ``loop``: a per-step Python loop over :mod:`lstmkit.functional` with the input projection of all
  steps hoisted into one GEMM. Runs every option.
- ``kernel``: :mod:`lstmkit.kernels` (LSTM and GRU): the loop's math with the recurrence of each
  layer and direction in one ``autograd.Function`` with a hand-written backward (BPTT), the input
  projection and the weight gradients one GEMM each. Runs every LSTM / GRU option, same masks
  and numbers as ``loop`` (float64 <= 1e-6, ``tests/test_kernels.py``); measured against the
  fused op in ``benchmarks/variants.py``. ``impl='kernel'`` on an RNN raises ``ValueError``.
  For the LSTM (tanh / sigmoid, no projection, float32 / float64 on CPU) the math of each step
  runs in a compiled C++ op (:mod:`lstmkit.kernels.compiled`, built on first use; without a
  compiler ``auto`` runs the torch-op steps after one warning, ``kernel`` raises);
  :attr:`Recurrent.impl_reason` says whether the compiled step or the torch-op steps run.
- ``auto`` (default): ``fused`` when the configuration allows it, else ``kernel`` (LSTM, GRU), else
  ``loop``; the choice and
  the reason are in :attr:`Recurrent.impl_used` / :attr:`Recurrent.impl_reason` and logged at
  DEBUG. ``impl="fused"`` with an option the fused op cannot run raises ``ValueError`` naming it.

Padding: a padded step leaves the state unchanged and outputs 0, so with 'post' or 'pre' padding
the final state is the state after the true last token (the true first token for the reverse
direction).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import _VF, Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from lstmkit.cells import GRUCell, LSTMCell, RecurrentCell, RNNCell, State
from lstmkit.kernels import gru_direction, lstm_direction
from lstmkit.kernels.lstm import step_path

logger = logging.getLogger(__name__)

IMPLS = ("auto", "fused", "kernel", "loop")
PADDINGS = ("post", "pre")
VARLENS = ("auto", "split", "packed", "kernel")
# varlen='kernel' (asked for, never chosen by 'auto'): variable-length batches on the compiled
# kernel, lengths handled in the recurrence. Measured kernel / split for TRAINING, 2 threads,
# forward + backward, lengths uniform in [lo, T]: H=32 T=500 1.86x (lo = 0.9 T), 2.40x (0.5 T),
# 8.97x (0.1 T); H=128 T=200 1.07x / 1.32x / 1.75x; H=256 T=100 0.92x / 0.90x / 1.14x; inference
# 0.48-0.87x. Seed 003's epoch without bucketing: 55.2 -> 22.6 s. 'auto' does not pick it yet:
# with it, reuters-seed002 (LSTM 100) fell from 0.7895 +- 0.0112 to 0.7644 +- 0.0077 over the
# same 3 seeds, although the layer's outputs, states and gradients equal split's (float64 2e-15,
# float32 5e-7 relative; tests/test_layers.py) -- not explained yet.


@dataclass
class DropoutMasks:
    """Masks drawn once per forward call, shared by every implementation (exact comparisons).

    ``recurrent[k]`` (B, H_out) variational mask on h; ``weight[k]`` (G*H, H_out) DropConnect on
    ``weight_hh``; ``zoneout[k]`` one (T, B, S) keep-old mask per state tensor; ``between[l]`` the
    (B, T, dirs*H_out) dropout mask after layer l (l < L-1). Empty lists mean "not active".
    """

    recurrent: list[Tensor | None] = field(default_factory=list)
    weight: list[Tensor | None] = field(default_factory=list)
    zoneout: list[tuple[Tensor, ...] | None] = field(default_factory=list)
    between: list[Tensor | None] = field(default_factory=list)


def _bernoulli(
    shape: tuple[int, ...], p_one: float, like: Tensor, gen: torch.Generator | None
) -> Tensor:
    return torch.bernoulli(
        torch.full(shape, p_one, dtype=like.dtype, device=like.device), generator=gen
    )


def _keep_mask(
    shape: tuple[int, ...], drop: float, like: Tensor, gen: torch.Generator | None
) -> Tensor:
    keep = 1.0 - drop
    return _bernoulli(shape, keep, like, gen) / keep


class Recurrent(nn.Module):
    """Base of :class:`LSTM`, :class:`GRU` and :class:`RNN` (see the module docstring)."""

    cell_class: type[RecurrentCell] = RecurrentCell
    vf_name: str = ""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        *,
        bidirectional: bool = False,
        dropout: float = 0.0,
        return_sequences: bool = True,
        return_state: bool = True,
        padding: str = "post",
        impl: str = "auto",
        varlen: str = "auto",
        **cell_options: object,
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        if impl not in IMPLS:
            raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
        if padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
        if varlen not in VARLENS:
            raise ValueError(f"varlen must be one of {VARLENS}, got {varlen!r}")
        if varlen == "kernel" and not issubclass(self.cell_class, LSTMCell | GRUCell):
            raise ValueError(
                "varlen='kernel' runs lstmkit.kernels, which has LSTM and GRU kernels only; "
                "use varlen='auto', 'split' or 'packed'"
            )
        self.varlen = varlen
        self.input_size = int(input_size)
        self.hidden_size = int(hidden_size)
        self.num_layers = int(num_layers)
        self.bidirectional = bool(bidirectional)
        self.num_directions = 2 if bidirectional else 1
        self.dropout = float(dropout)
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.padding = padding
        self.impl = impl
        cells: list[RecurrentCell] = []
        for layer in range(self.num_layers):
            for _ in range(self.num_directions):
                in_size = (
                    self.input_size if layer == 0 else self.num_directions * cells[0].output_size
                )
                cells.append(self.cell_class(in_size, hidden_size, **cell_options))  # type: ignore[arg-type]
        self.cells = nn.ModuleList(cells)
        self.output_size = cells[0].output_size
        if impl == "fused":
            blockers = self.fused_blockers(training=True)
            if blockers:
                raise ValueError(
                    f"impl='fused' cannot run {', '.join(blockers)}: torch's fused op has no such "
                    "option; use impl='auto' or impl='loop'"
                )
        if impl == "kernel":
            blockers = self.kernel_blockers()
            if blockers:
                raise ValueError(
                    f"impl='kernel' cannot run {', '.join(blockers)}; use impl='auto' or "
                    "impl='loop'"
                )
        self._last_choice: tuple[str, str] | None = None

    # -- dispatch: the one place that picks the implementation ------------------------------
    def fused_blockers(self, training: bool | None = None) -> list[str]:
        """Options that keep torch's fused op from running this layer (empty: it can)."""
        training = self.training if training is None else training
        cell: RecurrentCell = self.cells[0]  # type: ignore[assignment]
        out = cell.fused_blockers()
        if not training:
            out = [b for b in out if not b.startswith("recurrent_dropout")]
        return out

    def kernel_blockers(self) -> list[str]:
        """What keeps :mod:`lstmkit.kernels` from running this layer (empty: it can). LSTM and
        GRU have kernels; SimpleRNN variants run the loop."""
        if not isinstance(self.cells[0], LSTMCell | GRUCell):
            return [f"{type(self).__name__} (lstmkit.kernels has LSTM and GRU kernels only)"]
        return []

    def _choose_impl(self) -> tuple[str, str]:
        """Return ``(impl, reason)`` for the current configuration and mode: fused > kernel >
        loop for 'auto'."""
        if self.impl == "loop":
            return "loop", "impl='loop' was requested"
        if self.impl == "kernel":
            if isinstance(self.cells[0], LSTMCell):
                how = step_path(self.cells[0])
                return "kernel", f"impl='kernel' was requested; lstmkit.kernels.lstm runs it {how}"
            return "kernel", "impl='kernel' was requested"
        blockers = self.fused_blockers()
        if self.impl == "fused":
            return "fused", "impl='fused' was requested"
        if blockers:
            why = f"torch's fused op cannot run {', '.join(blockers)}"
            kernel_blockers = self.kernel_blockers()
            if not kernel_blockers:
                if isinstance(self.cells[0], LSTMCell):
                    return (
                        "kernel",
                        f"{why}; lstmkit.kernels.lstm runs it {step_path(self.cells[0])}",
                    )
                return "kernel", f"{why}; lstmkit.kernels.gru runs it"
            return "loop", f"{why}, nor can lstmkit.kernels: {', '.join(kernel_blockers)}"
        return "fused", "vanilla configuration: torch's fused op (oneDNN on CPU, cuDNN on GPU)"

    @property
    def impl_used(self) -> str:
        """The implementation a forward call in the current mode runs: 'fused', 'kernel' or
        'loop'."""
        return self._choose_impl()[0]

    @property
    def impl_reason(self) -> str:
        """Why :attr:`impl_used` was chosen."""
        return self._choose_impl()[1]

    # -- input checking ----------------------------------------------------------------------
    def _check_input(self, x: Tensor) -> None:
        if not isinstance(x, Tensor):
            raise TypeError(f"expected a torch.Tensor input, got {type(x).__name__}")
        if x.dim() != 3:
            raise ValueError(
                f"expected input of shape (B, T, D) (batch-first), got shape {tuple(x.shape)}"
            )
        if not x.is_floating_point():
            raise TypeError(f"expected a floating-point input, got {x.dtype}")
        if x.shape[-1] != self.input_size:
            raise ValueError(
                f"input.size(-1) must be equal to input_size. Expected {self.input_size}, got {x.shape[-1]}"
            )
        if x.shape[1] < 1 or x.shape[0] < 1:
            raise ValueError(
                f"expected at least one sequence and one time step, got shape {tuple(x.shape)}"
            )

    def _resolve_lengths(
        self, x: Tensor, lengths: Tensor | None, mask: Tensor | None, padding: str
    ) -> Tensor | None:
        """Validate ``lengths``/``mask``; return lengths (B,) int64 on CPU, or None if all full."""
        batch, steps = x.shape[0], x.shape[1]
        if mask is not None:
            if mask.shape != (batch, steps):
                raise ValueError(
                    f"mask must have shape (B, T) = {(batch, steps)}, got {tuple(mask.shape)}"
                )
            mask_b = mask.bool()
            mask_len = mask_b.sum(1).cpu()
            expected = _steps_mask(mask_len, steps, padding).to(mask_b.device)
            bad = (expected != mask_b).any(1).nonzero()
            if len(bad):
                row = int(bad[0])
                raise ValueError(
                    f"mask row {row} is not one contiguous run of True at the "
                    f"{'start' if padding == 'post' else 'end'} of the sequence (padding={padding!r})"
                )
            if lengths is not None:
                lens = torch.as_tensor(lengths).cpu().long()
                if lens.shape != mask_len.shape or not torch.equal(lens, mask_len):
                    raise ValueError(
                        f"lengths {lens.tolist()} do not match the mask's row sums {mask_len.tolist()}"
                    )
            lengths = mask_len
        if lengths is None:
            return None
        lens = torch.as_tensor(lengths)
        if lens.is_floating_point() or lens.dtype == torch.bool:
            raise TypeError(f"lengths must be an integer tensor, got {lens.dtype}")
        lens = lens.cpu().long()
        if lens.shape != (batch,):
            raise ValueError(f"lengths must have shape (B,) = ({batch},), got {tuple(lens.shape)}")
        lo, hi = int(lens.min()), int(lens.max())
        if lo < 1 or hi > steps:
            raise ValueError(f"lengths must be in [1, T={steps}], got min {lo} and max {hi}")
        if lo == steps:
            return None
        return lens

    def _initial_state(self, x: Tensor, state: Tensor | tuple[Tensor, ...] | None) -> State:
        batch = x.shape[0]
        cell: RecurrentCell = self.cells[0]  # type: ignore[assignment]
        n = self.num_layers * self.num_directions
        sizes = {"h": self.output_size, "c": self.hidden_size}
        shapes = [(n, batch, sizes[name]) for name in cell.state_names]
        if state is None:
            return tuple(x.new_zeros(s) for s in shapes)
        parts = (state,) if isinstance(state, Tensor) else tuple(state)
        if len(parts) != len(shapes):
            want = "(h0, c0)" if len(shapes) == 2 else "h0"
            raise ValueError(f"expected initial state {want}, got {len(parts)} tensor(s)")
        for name, part, shape in zip(cell.state_names, parts, shapes, strict=True):
            if tuple(part.shape) != shape:
                raise ValueError(
                    f"expected {name}0 of shape (L*dirs, B, {'H' if name == 'c' else 'H_out'}) = "
                    f"{shape}, got {tuple(part.shape)}"
                )
        return parts

    # -- masks ------------------------------------------------------------------------------
    def draw_masks(
        self, batch: int, steps: int, like: Tensor, gen: torch.Generator | None = None
    ) -> DropoutMasks:
        """Draw every dropout/zoneout mask this forward call needs (none in eval mode)."""
        masks = DropoutMasks()
        if not self.training:
            return masks
        for k in range(len(self.cells)):
            cell: RecurrentCell = self.cells[k]  # type: ignore[assignment]
            masks.recurrent.append(
                _keep_mask((batch, cell.output_size), cell.recurrent_dropout, like, gen)
                if cell.recurrent_dropout
                else None
            )
            masks.weight.append(
                _keep_mask(tuple(cell.weight_hh.shape), cell.weight_drop, like, gen)
                if cell.weight_drop
                else None
            )
            sizes = {"h": cell.output_size, "c": cell.hidden_size}
            masks.zoneout.append(
                tuple(
                    _bernoulli((steps, batch, sizes[s]), cell.zoneout, like, gen)
                    for s in cell.state_names
                )
                if cell.zoneout
                else None
            )
        width = self.num_directions * self.output_size
        for _ in range(self.num_layers - 1):
            masks.between.append(
                _keep_mask((batch, steps, width), self.dropout, like, gen) if self.dropout else None
            )
        return masks

    # -- forward ----------------------------------------------------------------------------
    def forward(
        self,
        x: Tensor,
        state: Tensor | tuple[Tensor, ...] | None = None,
        *,
        lengths: Tensor | None = None,
        mask: Tensor | None = None,
        padding: str | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor | tuple[Tensor, Tensor | tuple[Tensor, Tensor]]:
        """Run the stack over ``x`` (B, T, D).

        Args:
            state: initial ``(h0, c0)`` (LSTM) or ``h0``, shapes in the module docstring; zeros
                when None.
            lengths: true length of each sequence (B,). mask: (B, T) bool, True at real tokens.
            padding: 'post' or 'pre' (default: the layer's ``padding``).
            generator: RNG for dropout/zoneout masks (reproducible masks across implementations).

        Returns:
            ``output`` (and the final state when ``return_state``): ``(output, (h_n, c_n))`` for
            LSTM, ``(output, h_n)`` for GRU/RNN.
        """
        self._check_input(x)
        padding = padding or self.padding
        if padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
        lens = self._resolve_lengths(x, lengths, mask, padding)
        state0 = self._initial_state(x, state)
        masks = self.draw_masks(x.shape[0], x.shape[1], x, generator)
        impl, reason = self._choose_impl()
        if self._last_choice != (impl, reason):
            logger.debug("%s: impl=%s (%s)", type(self).__name__, impl, reason)
            self._last_choice = (impl, reason)
        strategy = self._varlen_strategy(x, lens) if impl == "fused" and lens is not None else ""
        if strategy == "split" and lens is not None:
            out, final = self._forward_fused_split(x, state0, lens, padding, masks)
        elif strategy == "kernel":
            out, final = self._forward_loop(x, state0, lens, padding, masks, kernel=True)
        elif impl == "fused":
            out, final = self._forward_fused(x, state0, lens, padding, masks)
        else:
            out, final = self._forward_loop(
                x, state0, lens, padding, masks, kernel=impl == "kernel"
            )
        if not self.return_sequences:
            h_n = final[0]
            out = torch.cat([h_n[-self.num_directions + d] for d in range(self.num_directions)], -1)
        if not self.return_state:
            return out
        return out, (final if len(final) > 1 else final[0])  # type: ignore[return-value]

    # -- implementations --------------------------------------------------------------------
    def _fused_weights(
        self, masks: DropoutMasks, cells: Sequence[int]
    ) -> tuple[list[Tensor], bool]:
        """torch's flat weight list for ``cells`` (forget_bias folded into bias_hh, weight_drop
        mask applied to weight_hh) and whether it holds biases."""
        weights: list[Tensor] = []
        has_bias = False
        for k in cells:
            cell: RecurrentCell = self.cells[k]  # type: ignore[assignment]
            w_hh: Tensor = cell.weight_hh
            w_mask = masks.weight[k] if masks.weight else None
            if w_mask is not None:
                w_hh = w_hh * w_mask
            b_ih: Tensor | None = cell.bias_ih
            b_hh: Tensor | None = cell.bias_hh
            forget_bias = getattr(cell, "forget_bias", 0.0)
            if forget_bias:
                h = cell.hidden_size
                shift = torch.zeros(4 * h, dtype=w_hh.dtype, device=w_hh.device)
                shift[h : 2 * h] = forget_bias
                b_hh = shift if b_hh is None else b_hh + shift
                b_ih = torch.zeros_like(shift) if b_ih is None else b_ih
            group = [cell.weight_ih, w_hh]
            if b_ih is not None and b_hh is not None:
                group += [b_ih, b_hh]
                has_bias = True
            w_hr = getattr(cell, "weight_hr", None)
            if w_hr is not None:
                group.append(w_hr)
            weights += group
        return weights, has_bias

    def _vf(self) -> object:
        return getattr(_VF, self.vf_name)

    def _forward_fused(
        self, x: Tensor, state0: State, lens: Tensor | None, padding: str, masks: DropoutMasks
    ) -> tuple[Tensor, State]:
        """One fused call for the whole stack; with dropout between layers in training, one call
        per layer so that our own (generator-drawn) masks apply, the same as the loop's."""
        packed = None
        if lens is not None:
            if padding == "pre":
                x = _roll_rows(x, lens, to_post=True)
            packed = pack_padded_sequence(x, lens, batch_first=True, enforce_sorted=False)
        per_layer = self.training and bool(self.dropout) and self.num_layers > 1
        groups = (
            [[layer] for layer in range(self.num_layers)]
            if per_layer
            else [list(range(self.num_layers))]
        )
        dirs = self.num_directions
        data = x if packed is None else packed.data
        finals: list[list[Tensor]] = [[] for _ in state0]
        for gi, layers in enumerate(groups):
            cells = range(layers[0] * dirs, (layers[-1] + 1) * dirs)
            hx = tuple(s[cells.start : cells.stop] for s in state0)
            data, fin = self._fused_call(data, hx, cells, len(layers), packed, masks)
            for i, f in enumerate(fin):
                finals[i].append(f)
            if per_layer and gi < len(groups) - 1:
                between = masks.between[layers[-1]]
                assert between is not None
                if lens is None:
                    data = data * between
                else:
                    mask_packed = pack_padded_sequence(
                        between, lens, batch_first=True, enforce_sorted=False
                    )
                    data = data * mask_packed.data
        final = tuple(torch.cat(f, 0) for f in finals)
        if packed is None:
            return data, final
        assert packed.unsorted_indices is not None
        out_packed = PackedSequence(
            data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices
        )
        out, _ = pad_packed_sequence(out_packed, batch_first=True, total_length=x.shape[1])
        if padding == "pre":
            assert lens is not None
            out = _roll_rows(out, lens, to_post=False)
        return out, tuple(s.index_select(1, packed.unsorted_indices) for s in final)

    def _fused_call(
        self,
        data: Tensor,
        hx: State,
        cells: range,
        num_layers: int,
        packed: PackedSequence | None,
        masks: DropoutMasks,
    ) -> tuple[Tensor, State]:
        """Run torch's fused op over ``num_layers`` layers (cells ``cells``); ``data`` is the
        padded batch-first input or, with ``packed``, the packed data. Inter-layer dropout is
        passed to the op only when the whole stack runs in one call."""
        weights, has_bias = self._fused_weights(masks, cells)
        op = self._vf()
        dropout = self.dropout if num_layers > 1 else 0.0
        args = (has_bias, num_layers, dropout, self.training, self.bidirectional)
        if packed is None:
            h = hx if len(hx) > 1 else hx[0]
            res = op(data, h, weights, *args, True)  # type: ignore[operator]
        else:
            assert packed.sorted_indices is not None
            h_sorted = tuple(s.index_select(1, packed.sorted_indices) for s in hx)
            h = h_sorted if len(h_sorted) > 1 else h_sorted[0]
            res = op(data, packed.batch_sizes, h, weights, *args)  # type: ignore[operator]
        return res[0], tuple(res[1:])

    def _varlen_strategy(self, x: Tensor, lens: Tensor) -> str:
        """How the fused path runs a variable-length batch. 'auto': 'packed' on CUDA (cuDNN
        runs PackedSequence natively). On CPU, where oneDNN does not take packed input and
        torch's packed backward is slow, 'split' whenever gradients are recorded (measured
        1.3x-19x faster than packed for training) and for inference when the batch's lengths
        are close (min >= max / 2, measured 2.2x); 'packed' for inference on widely spread
        lengths, where split measured 0.84x (benchmarks/recurrent.py, varlen cases)."""
        if self.varlen != "auto":
            return self.varlen
        if x.is_cuda:
            return "packed"
        if torch.is_grad_enabled():
            return "split"
        return "split" if 2 * int(lens.min()) >= int(lens.max()) else "packed"

    def _forward_fused_split(
        self, x: Tensor, state0: State, lens: Tensor, padding: str, masks: DropoutMasks
    ) -> tuple[Tensor, State]:
        """Variable lengths on the fused op without packing the whole batch.

        Every sequence is real for its first ``min(lengths)`` steps, so those run as one padded
        fused call (oneDNN); only the remaining steps of the longer sequences run packed, starting
        from the head's final state. With length bucketing the head is most of the work. The
        reverse direction runs the same way on each row's real tokens reversed. Exact: outputs,
        final states and gradients equal the packed and loop paths (tests/test_layers.py)."""
        if padding == "pre":
            x = _roll_rows(x, lens, to_post=True)
        dirs = self.num_directions
        per_layer = dirs == 2 or (self.training and bool(self.dropout) and self.num_layers > 1)
        groups = (
            [[layer] for layer in range(self.num_layers)]
            if per_layer
            else [list(range(self.num_layers))]
        )
        finals: list[list[Tensor | None]] = [[None] * len(self.cells) for _ in state0]
        data = x
        for gi, layers in enumerate(groups):
            outs = []
            for d in range(dirs):
                cells = [layer * dirs + d for layer in layers]
                hx = tuple(s[cells] for s in state0)
                inp = flip_rows(data, lens) if d else data
                out, fin = self._fused_head_tail(inp, hx, cells, lens, masks)
                outs.append(flip_rows(out, lens) if d else out)
                for i, f in enumerate(fin):
                    for j, k in enumerate(cells):
                        finals[i][k] = f[j]
            data = outs[0] if dirs == 1 else torch.cat(outs, -1)
            if self.training and self.dropout and gi < len(groups) - 1:
                between = masks.between[layers[-1]]
                assert between is not None
                data = data * between
        if padding == "pre":
            data = _roll_rows(data, lens, to_post=False)
        return data, tuple(torch.stack(f, 0) for f in finals)  # type: ignore[arg-type]

    def _fused_head_tail(
        self, inp: Tensor, hx: State, cells: list[int], lens: Tensor, masks: DropoutMasks
    ) -> tuple[Tensor, State]:
        """One direction of ``len(cells)`` layers over post-padded ``inp``: padded head, packed tail."""
        weights, has_bias = self._fused_weights(masks, cells)
        op = self._vf()
        args = (has_bias, len(cells), self.dropout, self.training, False)
        batch, steps = inp.shape[0], inp.shape[1]
        lmin, lmax = int(lens.min()), int(lens.max())
        res = op(inp[:, :lmin], hx if len(hx) > 1 else hx[0], weights, *args, True)  # type: ignore[operator]
        head, fin = res[0], tuple(res[1:])
        pieces = [head]
        if lmax > lmin:
            rows = (lens > lmin).nonzero().squeeze(1).to(inp.device)
            packed = pack_padded_sequence(
                inp[rows, lmin:lmax],
                lens[rows.cpu()] - lmin,
                batch_first=True,
                enforce_sorted=False,
            )
            assert packed.sorted_indices is not None and packed.unsorted_indices is not None
            h_tail = tuple(f[:, rows].index_select(1, packed.sorted_indices) for f in fin)
            res = op(
                packed.data,
                packed.batch_sizes,
                h_tail if len(h_tail) > 1 else h_tail[0],
                weights,
                *args,
            )  # type: ignore[operator]
            tail_packed = PackedSequence(
                res[0], packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices
            )
            tail, _ = pad_packed_sequence(tail_packed, batch_first=True, total_length=lmax - lmin)
            pieces.append(
                head.new_zeros(batch, lmax - lmin, head.shape[2]).index_copy(0, rows, tail)
            )
            fin = tuple(
                f.index_copy(1, rows, t.index_select(1, packed.unsorted_indices))
                for f, t in zip(fin, res[1:], strict=True)
            )
        if lmax < steps:
            pieces.append(head.new_zeros(batch, steps - lmax, head.shape[2]))
        return torch.cat(pieces, 1) if len(pieces) > 1 else head, fin

    def _forward_loop(
        self,
        x: Tensor,
        state0: State,
        lens: Tensor | None,
        padding: str,
        masks: DropoutMasks,
        *,
        kernel: bool = False,
    ) -> tuple[Tensor, State]:
        """Layers and directions one after the other; each direction runs the per-step loop
        (:meth:`_run_direction`) or, with ``kernel``, :func:`lstmkit.kernels.lstm_direction`."""
        steps = x.shape[1]
        step_mask = None
        if lens is not None:
            step_mask = _steps_mask(lens, steps, padding).to(x.device).unsqueeze(-1)  # (B, T, 1)
        layer_in = x
        finals: list[list[Tensor]] = [[] for _ in state0]
        for layer in range(self.num_layers):
            outs = []
            for d in range(self.num_directions):
                k = layer * self.num_directions + d
                out_k, st = self._run_direction(
                    k,
                    layer_in,
                    tuple(s[k] for s in state0),
                    step_mask,
                    masks,
                    reverse=d == 1,
                    kernel=kernel,
                )
                outs.append(out_k)
                for i, s in enumerate(st):
                    finals[i].append(s)
            layer_in = outs[0] if len(outs) == 1 else torch.cat(outs, -1)
            if layer < self.num_layers - 1 and self.training and self.dropout:
                between = masks.between[layer]
                assert between is not None
                layer_in = layer_in * between
        return layer_in, tuple(torch.stack(f, 0) for f in finals)

    def _run_direction(
        self,
        k: int,
        x: Tensor,
        state: State,
        step_mask: Tensor | None,
        masks: DropoutMasks,
        *,
        reverse: bool,
        kernel: bool = False,
    ) -> tuple[Tensor, State]:
        cell: RecurrentCell = self.cells[k]  # type: ignore[assignment]
        steps = x.shape[1]
        w_hh: Tensor = cell.weight_hh
        h_mask = masks.recurrent[k] if masks.recurrent else None
        w_mask = masks.weight[k] if masks.weight else None
        if w_mask is not None:
            w_hh = w_hh * w_mask
        zone = masks.zoneout[k] if masks.zoneout else None
        if kernel and isinstance(cell, LSTMCell):
            # a forced impl='kernel' forces its compiled step too (a failed build raises)
            return lstm_direction(
                cell, x, state, step_mask, h_mask, w_hh, zone, reverse=reverse,
                require_compiled=self.impl == "kernel",
            )  # fmt: skip
        if kernel:
            return gru_direction(cell, x, state, step_mask, h_mask, w_hh, zone, reverse=reverse)
        gx = cell.input_projection(x)  # (B, T, G*H): one GEMM for all steps
        p_zone = cell.zoneout
        ys: list[Tensor] = [x] * steps
        for t in range(steps - 1, -1, -1) if reverse else range(steps):
            new = cell.step(gx[:, t], state, w_hh, h_mask)
            if zone is not None:
                new = tuple(
                    z[t] * o + (1 - z[t]) * n for z, o, n in zip(zone, state, new, strict=True)
                )
            elif p_zone:
                new = tuple(p_zone * o + (1 - p_zone) * n for o, n in zip(state, new, strict=True))
            if step_mask is not None:
                m = step_mask[:, t]  # (B, 1)
                new = tuple(torch.where(m, n, o) for n, o in zip(new, state, strict=True))
                ys[t] = torch.where(m, new[0], 0.0)
            else:
                ys[t] = new[0]
            state = new
        return torch.stack(ys, 1), state


def _steps_mask(lens: Tensor, steps: int, padding: str) -> Tensor:
    """(B, T) bool, True at real tokens, for 'post' (tokens first) or 'pre' (tokens last)."""
    t = torch.arange(steps).unsqueeze(0)
    lens = lens.unsqueeze(1)
    return t < lens if padding == "post" else t >= steps - lens


def _roll_rows(x: Tensor, lens: Tensor, *, to_post: bool) -> Tensor:
    """Move each row's tokens between the end ('pre') and the start ('post') of the time axis."""
    steps = x.shape[1]
    shift = (steps - lens).to(x.device).unsqueeze(1)  # (B, 1)
    t = torch.arange(steps, device=x.device).unsqueeze(0)
    idx = (t + shift) % steps if to_post else (t - shift) % steps
    return x.gather(1, idx.unsqueeze(-1).expand(-1, -1, x.shape[2]))


def flip_rows(x: Tensor, lens: Tensor) -> Tensor:
    """Reverse each row's first ``lens[b]`` steps in place of the time axis (pads stay put);
    its own inverse. Trace-friendly (no Python ints taken from tensors), so the ONNX export
    uses it too."""
    steps = x.shape[1]
    t = torch.arange(steps, device=x.device).unsqueeze(0)
    n = lens.to(x.device).unsqueeze(1)
    idx = torch.where(t < n, n - 1 - t, t)
    return x.gather(1, idx.unsqueeze(-1).expand(-1, -1, x.shape[2]))


class LSTM(Recurrent):
    """Multi-layer LSTM, batch-first. Gate order i, f, g, o (torch); equations in
    :func:`lstmkit.functional.lstm_step` and ``docs/design.md``.

    Args:
        input_size: D.
        hidden_size: H.
        num_layers: L.
        bidirectional: add a reverse direction; outputs are concatenated (forward first).
        dropout: dropout on the outputs of each layer except the last (training only).
        return_sequences: output every step (B, T, dirs*H_out), else the last (B, dirs*H_out).
        return_state: also return the final ``(h_n, c_n)``.
        padding: 'post' or 'pre', where padded steps sit when ``lengths``/``mask`` is given.
        impl: 'auto' | 'fused' | 'kernel' | 'loop' (see the module docstring).
        varlen: 'auto' | 'split' | 'packed': how the fused op runs variable-length batches.
        **cell_options: the cell's options, see :class:`lstmkit.cells.LSTMCell`: ``forget_bias``
            (constant on the forget gate, default 1.0 as in TF1; torch.nn.LSTM uses 0),
            ``peephole``, ``activation``, ``recurrent_activation``, ``layer_norm``,
            ``proj_size``, ``recurrent_dropout``, ``zoneout``, ``weight_drop``, ``bias``.
    """

    cell_class = LSTMCell
    vf_name = "lstm"


class GRU(Recurrent):
    """Multi-layer GRU, batch-first. Gate order r, z, n (torch). ``reset_after=True`` (default) is
    torch's / Keras' / cuDNN's convention; ``False`` is Cho et al.'s original. Other arguments as
    :class:`LSTM` (no forget_bias, peephole, layer_norm, proj_size)."""

    cell_class = GRUCell
    vf_name = "gru"


class RNN(Recurrent):
    """Multi-layer SimpleRNN (Elman), batch-first; ``activation`` 'tanh' (default) or 'relu' run
    fused, any other runs the loop. Other arguments as :class:`LSTM`."""

    cell_class = RNNCell

    def _vf(self) -> object:
        cell: RNNCell = self.cells[0]  # type: ignore[assignment]
        return getattr(_VF, f"rnn_{cell.activation_name}")
