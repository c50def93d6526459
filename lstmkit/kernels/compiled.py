"""The compiled recurrence of the LSTM kernel: one C++ op call per layer and direction.

Why: at small sizes (H=32) a step of :mod:`lstmkit.kernels.lstm` is ~10 torch ops forward and ~9
backward, each a separate pass over a ``(B, 4H)`` buffer plus its dispatch overhead, and torch's
CPU ``tanh`` costs ~5 ns an element (its ``sigmoid`` ~0.8). Here everything of a step except the
recurrent GEMM (which stays torch's ``mm``, i.e. MKL/oneDNN, called from C++) is one loop over the
batch rows: layer norm on ``h W_hh^T`` and on ``c'``, the gates, the cell update, the zoneout /
padding ``lerp``, the recurrent-dropout mask; the backward step likewise, with the LN gain
gradients summed per step and accumulated over the steps in float64. The loop over the steps is
C++ too (``lstmkit/kernels/lstm_step.cpp``), so a sequence is one op call, tensors in and out.

What it runs: activation ``tanh``, recurrent activation ``sigmoid``, no projection, float32 or
float64 on CPU, with any of layer_norm, peephole, zoneout / padding keep weights and the
recurrent-dropout mask (:func:`compiled_blockers` says what it cannot run; the Python steps of
:mod:`lstmkit.kernels.lstm` run those).

Build: on first use (never at import), :func:`torch.utils.cpp_extension.load` compiles
``lstm_step.cpp`` with ``$CXX`` (default ``c++``) and ninja into
``<cache>/lstm_step-<key>/`` (``<cache>``: ``$XDG_CACHE_HOME/lstmkit/kernels`` or
``~/.cache/lstmkit/kernels``); the key covers the source, the flags, torch's version and the
compiler's (and the CPU's flags for ``-march=native``), so a stale build is never reused.
cpp_extension's lock file in that folder makes concurrent first uses (two pytest-xdist workers)
build it once: the others wait, then load it. The source includes only torch's stable C ABI
headers, so a build takes ~4 s (``<torch/extension.h>`` would take ~60 s).

Flags (:func:`build_flags`): ``-O3 -fno-math-errno -fno-trapping-math -ffp-contract=off
-fopenmp-simd`` and ``-march=$LSTMKIT_KERNEL_MARCH`` (``native`` is allowed), by default
``x86-64-v3`` (AVX2, FMA) where the CPU runs it, else ``x86-64-v2`` (SSE4.2, every x86-64 CPU
since ~2009); on other architectures no ``-march`` unless set. No ``-ffast-math``: the source
writes its own ``exp`` / ``tanh``, sums every row in a fixed order and nothing is contracted into
FMAs, so its results are the same bits whichever ``-march`` (SIMD width) built it and on whichever
CPU it runs; ``-march`` changes the speed only (``tests/test_kernels_compiled.py`` builds it at
x86-64-v2, x86-64-v3 and ``native`` and compares the bits).

Failures: :func:`load` raises :class:`CompiledKernelError` with the compiler's message (no
compiler, no ninja, a failed build); :func:`try_load` warns once instead and returns None, and the
kernel then runs its torch-op steps (:mod:`lstmkit.kernels.lstm` picks which, by
``LSTMKernelSpec.compiled``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import shutil
import subprocess
import warnings
from pathlib import Path
from typing import Any

import torch

from lstmkit.errors import CompiledKernelError

SOURCE = Path(__file__).with_name("lstm_step.cpp")
MARCH_ENV = "LSTMKIT_KERNEL_MARCH"
# the -march levels of the default build: x86-64-v3 (AVX2 + FMA + BMI2, 256-bit vectors; ~2x the
# element-wise speed) where the CPU runs it, else x86-64-v2 (SSE4.2, every x86-64 CPU since
# ~2009); the results are the same bits either way (see the module doc), only the speed differs
PORTABLE_MARCH = "x86-64-v2"
FAST_MARCH = "x86-64-v3"
# what x86-64-v3 code may use, as /proc/cpuinfo spells it (abm: LZCNT)
_V3_FLAGS = frozenset({"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "movbe", "abm", "xsave"})
# no -ffast-math: see the module doc; -fno-math-errno / -fno-trapping-math change no result
# (sqrt inlined, conditional arithmetic if-converted), -ffp-contract=off keeps a * b + c two
# roundings on every CPU (GCC's default in GNU C++ contracts it into an FMA where the CPU has one)
# -std=c++20: the source uses std::bit_cast; torch 2.13's cpp_extension compiles C++20 itself,
# 2.11's and older C++17 (the extra flags come after torch's own, so this one wins)
BASE_FLAGS = (
    "-std=c++20",
    "-O3",
    "-fno-math-errno",
    "-fno-trapping-math",
    "-ffp-contract=off",
    "-fopenmp-simd",
)

_SUFFIX = {torch.float32: "f32", torch.float64: "f64"}
# loaded ops namespaces (or why not), per (march, cache folder, compiler): built once a process
_LOADED: dict[tuple[str, str, str], Any] = {}


def compiled_blockers(
    *, activation: str, recurrent_activation: str, projection: bool, dtype: torch.dtype, device: str
) -> list[str]:
    """What keeps a configuration off the compiled step (empty: it runs there)."""
    out = []
    if device != "cpu":
        out.append(f"device {device} (the compiled step is CPU code)")
    if dtype not in _SUFFIX:
        out.append(f"dtype {dtype} (float32 / float64 only)")
    if activation != "tanh":
        out.append(f"activation={activation!r} (tanh only)")
    if recurrent_activation != "sigmoid":
        out.append(f"recurrent_activation={recurrent_activation!r} (sigmoid only)")
    if projection:
        out.append("proj_size (a second GEMM per step)")
    return out


def march() -> str:
    """The ``-march`` the step is built for: ``$LSTMKIT_KERNEL_MARCH`` (e.g. ``native``), else on
    x86-64 :data:`FAST_MARCH` where this CPU runs it and :data:`PORTABLE_MARCH` where not, and ''
    (the compiler's default for the architecture) elsewhere."""
    chosen = os.environ.get(MARCH_ENV, "").strip()
    if chosen:
        return chosen
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return ""
    return FAST_MARCH if runs_x86_64_v3() else PORTABLE_MARCH


def runs_x86_64_v3() -> bool:
    """Whether this CPU runs x86-64-v3 code (Linux: its /proc/cpuinfo flags; elsewhere False)."""
    return set(_cpu_flags().split()) >= _V3_FLAGS


def build_flags(arch: str | None = None) -> tuple[str, ...]:
    """The compiler flags for ``-march=arch`` (default :func:`march`)."""
    arch = march() if arch is None else arch
    return (*BASE_FLAGS, f"-march={arch}") if arch else BASE_FLAGS


def _cache_dir() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "lstmkit" / "kernels"


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor()


def _compiler_version(cxx: str) -> str:
    """``$CXX --version``; CompiledKernelError naming the compiler when it cannot run."""
    try:
        done = subprocess.run([cxx, "--version"], capture_output=True, text=True, check=False)
    except OSError as err:
        raise CompiledKernelError(
            f"lstmkit: cannot run the C++ compiler {cxx!r} ({err}) to build the compiled LSTM "
            "step; install g++ (or set CXX to a C++ compiler), or run the kernel's torch-op steps "
            "(impl='auto' does so by itself)"
        ) from err
    if done.returncode != 0:
        raise CompiledKernelError(
            f"lstmkit: the C++ compiler {cxx!r} failed `--version` (exit {done.returncode}):\n"
            f"{(done.stderr or done.stdout)[-4000:]}"
        )
    return done.stdout


def build_name(arch: str, cxx: str, compiler_version: str, source: str | None = None) -> str:
    """The build's name (its folder, and its ops namespace ``torch.ops.<name>``): a hash of the
    source, the flags, torch's version, the compiler (and the CPU's flags for ``native``)."""
    parts = [
        SOURCE.read_text() if source is None else source,
        " ".join(build_flags(arch)),
        torch.__version__,
        cxx,
        compiler_version,
        platform.machine(),
        _cpu_flags() if "native" in arch else "",
    ]
    return "lstmkit_lstm_step_" + hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _ninja_on_path() -> None:
    """cpp_extension runs ``ninja`` from PATH. The ninja wheel (a dependency of lstmkit) puts it
    in the environment's bin folder, which is not on PATH when a venv's python is run without
    activating the venv: then that folder is put on this process's PATH, once, and said."""
    if shutil.which("ninja") is not None:
        return
    try:
        import ninja
    except ImportError:
        return  # cpp_extension's own error names ninja
    os.environ["PATH"] = str(ninja.BIN_DIR) + os.pathsep + os.environ.get("PATH", "")
    logging.getLogger(__name__).info(
        "ninja was not on PATH; using the ninja package's %s", ninja.BIN_DIR
    )


def build(cache_dir: Path | None = None, arch: str | None = None) -> Any:
    """Build (unless built already) and load the op for ``-march=arch`` (default
    :func:`march`) under ``cache_dir`` (default the lstmkit cache); return its ops namespace,
    whose ``lstm_forward`` / ``lstm_backward`` :mod:`lstmkit.kernels.lstm` calls.

    Raises:
        CompiledKernelError: no compiler, no ninja, or the build failed (its output is in the
            message), or the cache folder cannot be written.
    """
    from torch.utils import cpp_extension  # imports setuptools: only when building

    _ninja_on_path()
    arch = march() if arch is None else arch
    cxx = os.environ.get("CXX", "c++")
    name = build_name(arch, cxx, _compiler_version(cxx))
    folder = (cache_dir if cache_dir is not None else _cache_dir()) / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CompiledKernelError(
            f"lstmkit: cannot write the compiled LSTM step to {folder} ({err}); set "
            "XDG_CACHE_HOME to a writable directory"
        ) from err
    try:
        path = cpp_extension.load(
            name,
            [str(SOURCE)],
            extra_cflags=list(build_flags(arch)),
            build_directory=str(folder),
            is_python_module=False,
        )
    except (RuntimeError, OSError, ImportError, subprocess.SubprocessError) as err:
        raise CompiledKernelError(
            f"lstmkit: building the compiled LSTM step ({SOURCE.name}, flags "
            f"{' '.join(build_flags(arch))}) in {folder} failed:\n{str(err)[-4000:]}"
        ) from err
    # a second build of the same name in one process (another folder) is loaded as <name>_v1
    return getattr(torch.ops, Path(str(path)).stem)


def _key() -> tuple[str, str, str]:
    return (march(), str(_cache_dir()), os.environ.get("CXX", "c++"))


def load() -> Any:
    """The ops of :func:`build` for the current ``$LSTMKIT_KERNEL_MARCH``, cache and ``$CXX``:
    built or loaded on the first call of the process, then reused (a failure too: the compiler
    runs once).

    Raises:
        CompiledKernelError: the step cannot be built or loaded (the message says why).
    """
    key = _key()
    if key not in _LOADED:
        try:
            _LOADED[key] = build()
        except CompiledKernelError as err:
            _LOADED[key] = err
    got = _LOADED[key]
    if isinstance(got, CompiledKernelError):
        raise CompiledKernelError(str(got))
    return got


def failure() -> str | None:
    """Why the compiled step could not be built in this process (None: it was not tried, or it
    was built); starts no build."""
    got = _LOADED.get(_key())
    return str(got) if isinstance(got, CompiledKernelError) else None


def try_load() -> Any | None:
    """:func:`load`, or None after one warning (once a process) when the step cannot be built."""
    try:
        return load()
    except CompiledKernelError as err:
        _warn_once(str(err))
        return None


_WARNED: set[str] = set()


def _warn_once(reason: str) -> None:
    if reason in _WARNED:
        return
    _WARNED.add(reason)
    warnings.warn(
        "lstmkit: the LSTM kernel runs its torch-op steps (same results, slower), as the "
        f"compiled step is not available: {reason}",
        RuntimeWarning,
        stacklevel=4,
    )
