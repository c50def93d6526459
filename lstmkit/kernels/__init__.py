"""Fast paths for the recurrent variants torch's fused op (oneDNN / cuDNN) cannot run.

One module per variant family, each an ``autograd.Function`` with a hand-written backward (BPTT)
and the plain reference loop beside it; the tests check the two against each other and against the
NumPy reference (``tests/test_kernels.py``). :class:`lstmkit.layers.Recurrent` calls them when it
picks ``impl='kernel'``.

- :mod:`lstmkit.kernels.lstm`: every :class:`~lstmkit.cells.LSTMCell` option (peephole,
  layer_norm, zoneout, recurrent_dropout, weight_drop, activation / recurrent_activation,
  forget_bias, proj_size) with lengths and 'pre'/'post' padding, either direction.
- :mod:`lstmkit.kernels.compiled`: the LSTM kernel's recurrence as one C++ op
  (``lstm_step.cpp``, built with ``torch.utils.cpp_extension`` on first use) for the tanh /
  sigmoid LSTM without projection;
  :func:`lstmkit.kernels.lstm.step_path` says whether a cell runs it.
- :mod:`lstmkit.kernels.gru`: every :class:`~lstmkit.cells.GRUCell` option (reset_after True or
  False, zoneout, recurrent_dropout, weight_drop, activations), same conventions.
"""

from lstmkit.kernels import compiled
from lstmkit.kernels.gru import GRUKernelSpec, gru_direction, gru_sequence
from lstmkit.kernels.lstm import LSTMKernelSpec, lstm_direction, lstm_sequence, lstm_sequence_loop

__all__ = [
    "GRUKernelSpec",
    "LSTMKernelSpec",
    "compiled",
    "gru_direction",
    "gru_sequence",
    "lstm_direction",
    "lstm_sequence",
    "lstm_sequence_loop",
]
