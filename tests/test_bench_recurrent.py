"""benchmarks/recurrent.py's FLOP count: the figure every row's fraction of the peak rests on."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "bench_recurrent", ROOT / "benchmarks/recurrent.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_flops_per_token_counts_gemms_and_gate_math_by_hand() -> None:
    flops = _bench().flops_per_token
    # LSTM D = H = 32: GEMMs 2*4*32*(32+32) = 16,384 forward, twice that more in the backward
    # (gradient into the inputs and the weights); gates 13 * 32 forward, 26 * 32 backward
    assert flops("lstm", False, 32, 32) == 16_384 + 416
    assert flops("lstm", True, 32, 32) == 3 * 16_384 + 416 + 832 == 50_400
    # GRU: 3 gates; RNN: 1 gate, 2 FLOPs of gate math per unit; D != H
    assert flops("gru", False, 128, 256) == 2 * 3 * 256 * (128 + 256) + 13 * 256
    assert flops("rnn", True, 100, 10) == 6 * 1 * 10 * 110 + 3 * 2 * 10
    with pytest.raises(KeyError):
        flops("transformer", True, 1, 1)


def test_gemm_peak_is_a_plausible_rate() -> None:
    """A small GEMM's rate is positive and finite (its value depends on the machine)."""
    peak = _bench().gemm_peak(n=64, reps=3)
    assert 0.01 < peak < 1e5
