"""Shared pieces of the NumPy reference: activations, their derivatives, masks.

Every derivative is written as a function of the pre-activation ``a`` and the output ``y = f(a)``
so a backward pass can use whichever the forward pass cached (``tanh'`` uses ``y``, ``relu'``
uses ``a``). The names and definitions follow docs/design.md:

- ``act`` in {tanh, softsign, relu, sigmoid, hard_tanh, identity}
- ``rec_act`` in {sigmoid, hard_sigmoid}, ``hard_sigmoid(a) = relu6(a + 3) / 6``
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]
Params = dict[str, Array]
Cache = dict[str, Any]

ACTIVATIONS = ("tanh", "softsign", "relu", "sigmoid", "hard_tanh", "identity")
RECURRENT_ACTIVATIONS = ("sigmoid", "hard_sigmoid")


def _sigmoid(a: Array) -> Array:
    # Numerically stable for large |a|: exp only ever sees non-positive arguments.
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def activation(name: str, a: Array) -> Array:
    """Apply the activation ``name`` elementwise to ``a`` (any shape)."""
    if name == "tanh":
        return np.tanh(a)
    if name == "sigmoid":
        return _sigmoid(a)
    if name == "relu":
        return np.maximum(a, 0.0)
    if name == "softsign":
        return a / (1.0 + np.abs(a))
    if name == "hard_tanh":
        return np.clip(a, -1.0, 1.0)
    if name == "identity":
        return a.copy()
    if name == "hard_sigmoid":
        return np.clip(a + 3.0, 0.0, 6.0) / 6.0
    raise ValueError(f"unknown activation {name!r}")


def activation_grad(name: str, a: Array, y: Array) -> Array:
    """Derivative ``f'(a)`` of activation ``name``, given the input ``a`` and output ``y = f(a)``.

    At the kinks of relu / hard_tanh / hard_sigmoid the derivative is taken as 0 (as torch does).
    """
    if name == "tanh":
        return 1.0 - y * y
    if name == "sigmoid":
        return y * (1.0 - y)
    if name == "relu":
        return (a > 0.0).astype(np.float64)
    if name == "softsign":
        return 1.0 / (1.0 + np.abs(a)) ** 2
    if name == "hard_tanh":
        return ((a > -1.0) & (a < 1.0)).astype(np.float64)
    if name == "identity":
        return np.ones_like(a)
    if name == "hard_sigmoid":
        return ((a > -3.0) & (a < 3.0)).astype(np.float64) / 6.0
    raise ValueError(f"unknown activation {name!r}")


def check_activation(name: str, recurrent: bool = False) -> None:
    """Raise ``ValueError`` unless ``name`` is an allowed (recurrent) activation."""
    allowed = RECURRENT_ACTIVATIONS if recurrent else ACTIVATIONS
    if name not in allowed:
        kind = "recurrent_activation" if recurrent else "activation"
        raise ValueError(f"{kind} must be one of {allowed}, got {name!r}")


def as_f64(a: Any) -> Array:
    """Return ``a`` as a float64 NumPy array (a copy only when needed)."""
    return np.asarray(a, dtype=np.float64)


def prepare_mask(mask: Any | None, batch: int, steps: int) -> Array:
    """Turn an optional ``(B, T)`` bool/float mask into a float64 ``(B, T)`` array of 0/1.

    ``None`` means every step is a real token.
    """
    if mask is None:
        return np.ones((batch, steps))
    m = as_f64(mask)
    if m.shape != (batch, steps):
        raise ValueError(f"mask must have shape {(batch, steps)}, got {m.shape}")
    return m


def prepare_state(state: Any | None, batch: int, size: int, name: str) -> Array:
    """Turn an optional ``(B, size)`` initial state into a float64 array (zeros when ``None``)."""
    if state is None:
        return np.zeros((batch, size))
    s = as_f64(state)
    if s.shape != (batch, size):
        raise ValueError(f"{name} must have shape {(batch, size)}, got {s.shape}")
    return s


def lengths_to_mask(lengths: Any, steps: int, padding: str = "post") -> Array:
    """Build a float ``(B, T)`` mask from ``lengths`` (B,) for ``padding`` 'post' or 'pre'.

    'post': tokens at ``0 .. len-1``; 'pre': tokens at ``T-len .. T-1`` (docs/design.md).
    """
    lens = np.asarray(lengths, dtype=np.int64)  # (B,)
    t = np.arange(steps)[None, :]  # (1, T)
    if padding == "post":
        m = t < lens[:, None]
    elif padding == "pre":
        m = t >= (steps - lens)[:, None]
    else:
        raise ValueError(f"padding must be 'post' or 'pre', got {padding!r}")
    return m.astype(np.float64)


def time_order(steps: int, reverse: bool) -> list[int]:
    """The order in which a direction visits the steps: ``0..T-1`` or ``T-1..0``."""
    return list(range(steps - 1, -1, -1)) if reverse else list(range(steps))
