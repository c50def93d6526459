"""lstmkit: verified, fast recurrent sequence models (LSTM, GRU, SimpleRNN) on PyTorch."""

from lstmkit.bundle import load
from lstmkit.cells import GRUCell, LSTMCell, RNNCell
from lstmkit.layers import GRU, LSTM, RNN

__version__ = "0.1.0"

__all__ = ["GRU", "LSTM", "RNN", "GRUCell", "LSTMCell", "RNNCell", "__version__", "load"]
