"""Pure NumPy (float64) reference implementations with hand-written backward passes.

The equations are those of docs/design.md. Each one-direction function returns a cache for its
backward (min-char-rnn style)::

    y, hT, cT, cache = lstm_forward(x, h0, c0, params, mask=mask, forget_bias=1.0)
    dx, dh0, dc0, dparams = lstm_backward(dy, dhT, dcT, cache)

``stack_forward`` / ``stack_backward`` compose layers and directions like ``torch.nn.LSTM``, and
``check_gradients`` compares the backward passes with central differences.
"""

from .common import ACTIVATIONS, RECURRENT_ACTIVATIONS, activation, activation_grad, lengths_to_mask
from .gradcheck import check_gradients, gradient_errors, numeric_grad
from .gru import gru_backward, gru_forward
from .lstm import lstm_backward, lstm_forward
from .rnn import rnn_backward, rnn_forward
from .stack import stack_backward, stack_forward

__all__ = [
    "ACTIVATIONS",
    "RECURRENT_ACTIVATIONS",
    "activation",
    "activation_grad",
    "check_gradients",
    "gradient_errors",
    "gru_backward",
    "gru_forward",
    "lengths_to_mask",
    "lstm_backward",
    "lstm_forward",
    "numeric_grad",
    "rnn_backward",
    "rnn_forward",
    "stack_backward",
    "stack_forward",
]
