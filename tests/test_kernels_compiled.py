"""The compiled C++ step of the LSTM kernel (lstmkit.kernels.compiled) against the torch-op steps
and the autograd loop: outputs, final state and every gradient, for every combination of the
options it runs (layer_norm, peephole, zoneout / padding keep weights per element or per row,
recurrent-dropout mask, padded outputs) in both directions, float64 and float32; the same bits
whichever -march built it; plus its build (errors name the compiler and its message; the cache is
reused and keyed by source and flags), the fallback without a compiler and the dispatch reason.

The layer-level tests (tests/test_kernels.py) run the compiled step too, as it is the default
for the tanh / sigmoid LSTM: there it is checked against the loop and the NumPy reference.
"""

from __future__ import annotations

import itertools
import platform
import stat
import warnings
from pathlib import Path

import pytest
import torch
from torch import Tensor

import lstmkit
from lstmkit.errors import CompiledKernelError
from lstmkit.kernels import LSTMKernelSpec, compiled, lstm_sequence, lstm_sequence_loop
from lstmkit.kernels.lstm import step_blockers

T, B, H = 6, 3, 5


def _inputs(dtype: torch.dtype, opts: tuple[bool, ...], seed: int = 0) -> dict[str, Tensor]:
    """Random arguments of lstm_sequence, drawn in float64 and cast (same numbers per dtype)."""
    ln, peep, zone, per_row, mask, pad = opts
    gen = torch.Generator().manual_seed(seed)

    def r(*shape: int, scale: float = 1.0) -> Tensor:
        x = torch.randn(*shape, generator=gen, dtype=torch.float64) * scale
        return x.to(dtype).requires_grad_(True)

    def u(*shape: int) -> Tensor:
        return torch.rand(*shape, generator=gen, dtype=torch.float64)

    args = {"gx": r(T, B, 4 * H), "h0": r(B, H), "c0": r(B, H), "w_hh": r(4 * H, H, scale=0.4)}
    if peep:
        args.update(w_ci=r(H, scale=0.5), w_cf=r(H, scale=0.5), w_co=r(H, scale=0.5))
    if ln:
        args.update(
            ln_hh_weight=(1 + 0.2 * r(4 * H)).detach().requires_grad_(True),
            ln_c_weight=(1 + 0.2 * r(H)).detach().requires_grad_(True),
            ln_c_bias=r(H, scale=0.1),
        )
    if mask:
        args["h_mask"] = ((u(B, H) > 0.3) / 0.7).to(dtype)
    if zone or pad:
        cols = 1 if per_row else H
        keep_h = (u(T, B, cols) < 0.3).to(dtype) if zone else torch.zeros(T, B, cols, dtype=dtype)
        keep_c = (u(T, B, 1) < 0.3).to(dtype) if zone else torch.zeros(T, B, 1, dtype=dtype)
        if pad:  # sequence 1 is 3 steps long ('post' padding): its state is kept from then on
            keep_h[3:, 1], keep_c[3:, 1] = 1.0, 1.0
            out_mask = torch.ones(B, T, 1, dtype=dtype)
            out_mask[1, 3:] = 0.0
            args["out_mask"] = out_mask
        args.update(keep_h=keep_h, keep_c=keep_c)
    return args


def _results(fn: object, args: dict[str, Tensor], spec: LSTMKernelSpec) -> list[Tensor]:
    y, h, c = fn(**args, spec=spec)  # type: ignore[operator]
    gen = torch.Generator().manual_seed(5)
    weights = [torch.randn(v.shape, generator=gen, dtype=torch.float64) for v in (y, h, c)]
    loss = sum((v * w.to(v.dtype)).sum() for v, w in zip((y, h, c), weights, strict=True))
    params = [v for v in args.values() if v.requires_grad]
    grads = torch.autograd.grad(loss, params)  # type: ignore[arg-type]
    return [y.detach(), h.detach(), c.detach(), *grads]


def _worst(a: list[Tensor], b: list[Tensor]) -> float:
    return max(float((x.double() - y.double()).abs().max()) for x, y in zip(a, b, strict=True))


COMBOS = [
    c
    for c in itertools.product([False, True], repeat=6)
    if not (c[3] and not (c[2] or c[5]))  # per-row keep weights only with zoneout or padding
]


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_compiled_step_equals_torch_steps_and_loop_float64(reverse: bool) -> None:
    """float64, every option combination: compiled == torch-op steps == loop (<= 1e-6; the C
    step is in fact within ~1e-12, asserted at 1e-9)."""
    worst_steps = worst_loop = 0.0
    for opts in COMBOS:
        args = _inputs(torch.float64, opts)
        got = _results(lstm_sequence, args, LSTMKernelSpec(reverse=reverse))
        steps = _results(lstm_sequence, args, LSTMKernelSpec(reverse=reverse, compiled=False))
        loop = _results(lstm_sequence_loop, args, LSTMKernelSpec(reverse=reverse))
        worst_steps = max(worst_steps, _worst(got, steps))
        worst_loop = max(worst_loop, _worst(got, loop))
        assert _worst(got, loop) <= 1e-9, opts
    assert worst_steps <= 1e-9 and worst_loop <= 1e-9, (worst_steps, worst_loop)


@pytest.mark.parametrize(
    "opts",
    [
        (True, False, False, False, False, False),  # LayerNorm-LSTM
        (False, True, False, False, False, False),  # peephole
        (False, False, True, False, True, False),  # zoneout + recurrent dropout
        (True, True, True, True, True, True),  # everything, padded
    ],
    ids=["layer_norm", "peephole", "zoneout", "all"],
)
def test_compiled_step_float32_within_1e4(opts: tuple[bool, ...]) -> None:
    """float32 compiled vs the float32 loop and vs the float64 result (<= 1e-4)."""
    args32, args64 = _inputs(torch.float32, opts), _inputs(torch.float64, opts)
    got = _results(lstm_sequence, args32, LSTMKernelSpec())
    assert got[0].dtype == torch.float32
    loop32 = _results(lstm_sequence_loop, args32, LSTMKernelSpec())
    exact = _results(lstm_sequence, args64, LSTMKernelSpec(compiled=False))
    assert _worst(got, loop32) <= 1e-4
    assert _worst(got, exact) <= 1e-4


def test_compiled_step_without_grad_matches() -> None:
    """no_grad (nothing saved, one step's buffers reused) gives the training forward's numbers."""
    args = _inputs(torch.float64, (True, True, True, False, True, True))
    with torch.no_grad():
        fast = lstm_sequence(**args)
        steps = lstm_sequence(**args, spec=LSTMKernelSpec(compiled=False))
    for a, b in zip(fast, steps, strict=True):
        assert float((a - b).abs().max()) <= 1e-12


def test_step_blockers_and_impl_reason() -> None:
    """What the C step runs, and the layer saying which step path it takes."""
    spec = LSTMKernelSpec()
    assert step_blockers(spec, projection=False, dtype=torch.float32, device="cpu") == []
    assert step_blockers(
        LSTMKernelSpec(activation="softsign"), projection=True, dtype=torch.float16, device="cpu"
    ) == [
        "dtype torch.float16 (float32 / float64 only)",
        "activation='softsign' (tanh only)",
        "proj_size (a second GEMM per step)",
    ]
    assert step_blockers(LSTMKernelSpec(compiled=False), projection=False, dtype=torch.float32,
                         device="cpu") == ["compiled=False was requested"]  # fmt: skip
    ln = lstmkit.LSTM(3, 4, layer_norm=True)
    assert ln.impl_used == "kernel" and "with the compiled C++ step" in ln.impl_reason
    proj = lstmkit.LSTM(3, 4, peephole=True, proj_size=2)
    assert proj.impl_used == "kernel"
    assert "torch-op steps, as the compiled C++ step cannot run proj_size" in proj.impl_reason
    assert "compiled C++ step" in lstmkit.LSTM(3, 4, impl="kernel").impl_reason
    with pytest.raises(ValueError, match="compiled must be True, False or 'auto', got 'yes'"):
        LSTMKernelSpec(compiled="yes")  # type: ignore[arg-type]


def test_build_is_cached_and_keeps_denormals(tmp_path: Path) -> None:
    """A second build is a cache hit (same library, not rebuilt); loading it leaves the process's
    floating point alone (no flush-to-zero: nothing is built with -ffast-math)."""
    first = compiled.build(tmp_path)
    [folder] = tmp_path.iterdir()
    [library] = folder.glob("*.so")  # <name>.so, or <name>_v1.so when loaded twice in a process
    mtime = library.stat().st_mtime_ns
    again = compiled.build(tmp_path)
    assert again is first and library.stat().st_mtime_ns == mtime
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]
    assert "-ffast-math" not in " ".join(compiled.build_flags())
    tiny = torch.tensor([1e-39], dtype=torch.float32)  # a float32 denormal
    assert float(tiny * 1.0) > 0.0 and 5e-324 * 1.0 > 0.0


def test_build_name_covers_source_flags_and_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cache key: another source, -march or compiler is another build (never a stale one);
    LSTMKIT_KERNEL_MARCH picks the -march; by default x86-64-v3 where the CPU runs it, else
    x86-64-v2."""
    base = compiled.build_name("x86-64-v2", "c++", "g++ 12")
    assert base == compiled.build_name("x86-64-v2", "c++", "g++ 12")
    others = {
        compiled.build_name("x86-64-v3", "c++", "g++ 12"),
        compiled.build_name("x86-64-v2", "clang++", "g++ 12"),
        compiled.build_name("x86-64-v2", "c++", "g++ 13"),
        compiled.build_name("x86-64-v2", "c++", "g++ 12", source="// another source"),
    }
    assert base not in others and len(others) == 4
    monkeypatch.setattr(compiled, "_cpu_flags", lambda: "flags: avx2")
    native = compiled.build_name("native", "c++", "g++ 12")
    monkeypatch.setattr(compiled, "_cpu_flags", lambda: "flags: avx512f")
    assert compiled.build_name("native", "c++", "g++ 12") != native  # built for this CPU
    monkeypatch.setenv(compiled.MARCH_ENV, "native")
    assert compiled.march() == "native" and "-march=native" in compiled.build_flags()
    monkeypatch.delenv(compiled.MARCH_ENV)
    if platform.machine().lower() in ("x86_64", "amd64"):
        level = compiled.FAST_MARCH if compiled.runs_x86_64_v3() else compiled.PORTABLE_MARCH
        assert compiled.build_flags()[-1] == f"-march={level}"
        monkeypatch.setattr(compiled, "_cpu_flags", lambda: "flags: fpu sse4_2 avx")  # no AVX2
        assert compiled.march() == compiled.PORTABLE_MARCH == "x86-64-v2"


def test_build_errors_name_the_compiler_and_its_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A missing or failing compiler raises CompiledKernelError saying what failed and why."""
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-cxx"))
    with pytest.raises(CompiledKernelError, match="cannot run the C\\+\\+ compiler .*no-such-cxx"):
        compiled.build(tmp_path / "cache")
    bad = tmp_path / "bad-cxx"
    bad.write_text("#!/bin/sh\nif [ \"$1\" = --version ]; then echo bad 1.0; exit 0; fi\n"
                   "echo 'fatal: no space left' >&2\nexit 3\n")  # fmt: skip
    bad.chmod(bad.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("CXX", str(bad))
    with pytest.raises(
        CompiledKernelError, match=r"(?s)lstm_step.cpp.* failed:.*fatal: no space left"
    ):
        compiled.build(tmp_path / "cache")
    assert not list((tmp_path / "cache").rglob("*.so"))  # nothing half-written is left as a hit


def test_build_into_an_unwritable_cache_says_where(tmp_path: Path) -> None:
    """A cache folder that cannot be created is named in the error, with the way out."""
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(CompiledKernelError, match=r"cannot write .*file.*XDG_CACHE_HOME"):
        compiled.build(blocker / "kernels")


@pytest.fixture
def no_compiler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A machine without a C++ compiler (CXX names none), with a fresh load / warning state."""
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-cxx"))
    monkeypatch.setattr(compiled, "_LOADED", {})
    monkeypatch.setattr(compiled, "_WARNED", set())
    return str(tmp_path / "no-such-cxx")


def test_auto_without_a_compiler_runs_the_torch_op_steps_after_one_warning(
    no_compiler: str,
) -> None:
    """impl='auto' (and LSTMKernelSpec's default): no compiler is one RuntimeWarning saying why,
    then the torch-op steps' numbers; the layer's reason says so; no second warning."""
    args = _inputs(torch.float64, (True, True, True, False, True, True))
    want = _results(lstm_sequence, args, LSTMKernelSpec(compiled=False))
    layer = lstmkit.LSTM(3, 4, layer_norm=True)
    assert layer.impl == "auto" and layer.impl_used == "kernel"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = _results(lstm_sequence, args, LSTMKernelSpec())
        layer(torch.randn(2, 5, 3))[0].sum().backward()
        _results(lstm_sequence, args, LSTMKernelSpec())
    assert [str(w.message) for w in caught] == [
        "lstmkit: the LSTM kernel runs its torch-op steps (same results, slower), as the "
        f"compiled step is not available: lstmkit: cannot run the C++ compiler '{no_compiler}' "
        f"([Errno 2] No such file or directory: '{no_compiler}') to build the compiled LSTM "
        "step; install g++ (or set CXX to a C++ compiler), or run the kernel's torch-op steps "
        "(impl='auto' does so by itself)"
    ]
    assert caught[0].category is RuntimeWarning
    assert _worst(got, want) == 0.0
    assert "with torch-op steps, as the compiled C++ step could not be built" in layer.impl_reason


def test_forced_kernel_without_a_compiler_raises(no_compiler: str) -> None:
    """impl='kernel' (LSTMKernelSpec(compiled=True)) without a compiler raises
    CompiledKernelError with the compiler's error, and warns nothing."""
    layer = lstmkit.LSTM(3, 4, layer_norm=True, impl="kernel")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(CompiledKernelError, match=r"cannot run the C\+\+ compiler .*No such"):
            layer(torch.randn(2, 5, 3))
        args = _inputs(torch.float32, (False, True, False, False, False, False))
        with pytest.raises(CompiledKernelError, match=r"cannot run the C\+\+ compiler"):
            lstm_sequence(**args, spec=LSTMKernelSpec(compiled=True))
    # what the compiled step cannot run is no build failure: the torch-op steps, no error
    proj = lstmkit.LSTM(3, 4, proj_size=2, impl="kernel")
    assert proj(torch.randn(2, 5, 3))[0].shape == (2, 5, 2)


def _x86_64_levels() -> list[str]:
    """The -march levels of x86-64 this CPU runs (v3: AVX2 + FMA + BMI2, the failing machine of
    the issue; native here may be AVX-512)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return []
    return ["x86-64-v2", *(["x86-64-v3"] if compiled.runs_x86_64_v3() else [])]


@pytest.mark.parametrize("opts", [c for c in COMBOS if c[0] or c[1]][:6] + [(True,) * 6])
def test_float32_bits_do_not_depend_on_march(
    opts: tuple[bool, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """float32, both directions: the step built at x86-64-v2, at x86-64-v3 (where this CPU runs
    it) and at -march=native gives the same bits (own exp / tanh, fixed summation order, no
    FMA contraction), each within 1e-4 of float64 relative to the magnitude. The builds land in
    the user's cache (keyed by the flags): the first run of the suite builds them, ~4 s each."""
    levels = [*_x86_64_levels(), "native"]
    args32, args64 = _inputs(torch.float32, opts), _inputs(torch.float64, opts)
    for reverse in (False, True):
        spec = LSTMKernelSpec(reverse=reverse, compiled=True)
        exact = _results(lstm_sequence, args64, LSTMKernelSpec(reverse=reverse, compiled=False))
        runs = {}
        for arch in levels:
            monkeypatch.setenv(compiled.MARCH_ENV, arch)
            runs[arch] = _results(lstm_sequence, args32, spec)
            assert _worst(runs[arch], exact) <= 1e-4 * max(1.0, _scale(exact)), arch
        for arch in levels[1:]:
            for a, b in zip(runs[levels[0]], runs[arch], strict=True):
                assert torch.equal(a, b), (arch, opts, reverse)


def _scale(values: list[Tensor]) -> float:
    return max(float(v.double().abs().max()) for v in values)


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_compiled_layer_norm_keeping_h_w_hh(reverse: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Above RECOMPUTE_RAW_MAX_HIDDEN the forward keeps h W_hh^T of every step for the LN
    backward instead of it being recomputed: same numbers as the torch-op steps."""
    from lstmkit.kernels import lstm as kernel_lstm

    monkeypatch.setattr(kernel_lstm, "RECOMPUTE_RAW_MAX_HIDDEN", 0)
    for opts in [(True, False, False, False, False, False), (True, True, True, False, True, True)]:
        args = _inputs(torch.float64, opts)
        got = _results(lstm_sequence, args, LSTMKernelSpec(reverse=reverse))
        steps = _results(lstm_sequence, args, LSTMKernelSpec(reverse=reverse, compiled=False))
        assert _worst(got, steps) <= 1e-9, opts
