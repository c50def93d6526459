"""lstmkit: verified, fast recurrent sequence models (LSTM, GRU, SimpleRNN) on PyTorch.

The public names are loaded on first use (PEP 562), so that ``import lstmkit`` -- and with it
``lstmkit --help`` -- does not import torch:

- layers and cells: :class:`LSTM`, :class:`GRU`, :class:`RNN`, :class:`LSTMCell`,
  :class:`GRUCell`, :class:`RNNCell` (:mod:`lstmkit.layers`, :mod:`lstmkit.cells`);
- training any ``nn.Module``: :func:`fit`, :class:`Trainer`, :class:`TrainConfig`,
  :class:`ModelLoss` (:mod:`lstmkit.train`), :class:`Tracker` (:mod:`lstmkit.tracking`);
- finished models: :func:`load` (:mod:`lstmkit.bundle`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lstmkit.version import __version__

if TYPE_CHECKING:  # what the names are, for type checkers and editors
    from lstmkit.bundle import load
    from lstmkit.cells import GRUCell, LSTMCell, RNNCell
    from lstmkit.config import TrainConfig
    from lstmkit.layers import GRU, LSTM, RNN
    from lstmkit.tracking import Tracker
    from lstmkit.train import ModelLoss, Trainer, fit

# public name -> the module it lives in
_EXPORTS = {
    "GRU": "lstmkit.layers",
    "LSTM": "lstmkit.layers",
    "RNN": "lstmkit.layers",
    "GRUCell": "lstmkit.cells",
    "LSTMCell": "lstmkit.cells",
    "RNNCell": "lstmkit.cells",
    "load": "lstmkit.bundle",
    "fit": "lstmkit.train",
    "Trainer": "lstmkit.train",
    "ModelLoss": "lstmkit.train",
    "TrainConfig": "lstmkit.config",
    "Tracker": "lstmkit.tracking",
}

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "GRUCell",
    "LSTMCell",
    "ModelLoss",
    "RNNCell",
    "Tracker",
    "TrainConfig",
    "Trainer",
    "__version__",
    "fit",
    "load",
]


def __getattr__(name: str) -> Any:
    """``lstmkit.LSTM`` etc.: the name imported from its module on first use."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lstmkit' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
