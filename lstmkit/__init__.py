"""lstmkit: verified, fast recurrent sequence models (LSTM, GRU, SimpleRNN) on PyTorch."""

from lstmkit.bundle import load
from lstmkit.cells import GRUCell, LSTMCell, RNNCell
from lstmkit.layers import GRU, LSTM, RNN
from lstmkit.version import __version__

__all__ = ["GRU", "LSTM", "RNN", "GRUCell", "LSTMCell", "RNNCell", "__version__", "load"]
