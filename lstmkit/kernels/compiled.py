"""The compiled per-step math of the LSTM kernel: one C function call per time step.

Why: at small sizes (H=32) a step of :mod:`lstmkit.kernels.lstm` is ~10 torch ops forward and ~9
backward, each a separate pass over a ``(B, 4H)`` buffer plus its dispatch overhead, and torch's
CPU ``tanh`` costs ~5 ns an element (its ``sigmoid`` ~0.8). Here everything of a step except the
recurrent GEMM (which stays ``torch.mm``, i.e. MKL/oneDNN) is one C loop over the batch rows:
layer norm on ``h W_hh^T`` and on ``c'``, the gates, the cell update, the zoneout / padding
``lerp``, the recurrent-dropout mask; the backward step likewise, with the LN gain gradients
summed per step and accumulated over the steps in float64. ``exp`` / ``tanh`` are glibc's vector versions (libmvec), which GCC calls
for the ``#pragma omp simd`` loops below under ``-ffast-math``.

What it runs: activation ``tanh``, recurrent activation ``sigmoid``, no projection, float32 or
float64 on CPU, with any of layer_norm, peephole, zoneout / padding keep weights and the
recurrent-dropout mask (:func:`compiled_blockers` says what it cannot run; the Python steps of
:mod:`lstmkit.kernels.lstm` run those).

Build: on first use (never at import), ``$CC`` (default ``gcc``) compiles the C source below into
``<cache>/kernels/lstm_step-<hash>.so`` (``<cache>``: ``$XDG_CACHE_HOME/lstmkit`` or
``~/.cache/lstmkit``; the hash covers the source, the flags, the compiler's version and the CPU's
flags, as the object is built for this CPU with ``-march=native``); written to a temporary name and
renamed, so concurrent builds are safe. A failed build raises :class:`CompiledKernelError` with the
compiler's message; nothing falls back silently. The object file is compiled with
``-ffast-math`` but linked without it, so GCC does not link ``crtfastmath.o``, which would switch
the whole process to flush-denormals-to-zero when the library is loaded.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lstmkit.errors import CompiledKernelError

CFLAGS = ("-O3", "-march=native", "-ffast-math", "-fopenmp-simd", "-fPIC")

_HEADER = r"""
#include <math.h>
#include <stddef.h>

typedef struct {
  long B, H, kh_cols, kc_cols, raw_step;
  double eps;
  const void *gx, *ln_w, *w_ci, *w_cf, *w_co, *lnc_w, *lnc_b, *keep_h, *keep_c, *h_mask;
  void *raw, *mu_hh, *rstd_hh, *mu_c, *rstd_c, *hm, *gates, *c_new, *a_c, *h_all, *c_all;
} FwdCtx;

typedef struct {
  long B, H, kh_cols, kc_cols, raw_step;
  const void *raw, *ln_w, *mu_hh, *rstd_hh, *w_ci, *w_cf, *w_co, *lnc_w, *mu_c, *rstd_c;
  const void *keep_h, *keep_c, *h_mask, *gates, *c_new, *c_all, *a_c, *dy, *mmres;
  void *dh, *dc, *carry_h, *dz_all, *d_raw;
  double *g_lnhh_w, *g_lnc_w, *g_lnc_b;
} BwdCtx;
"""

# One body, instantiated for float (f32) and double (f64). Index conventions: t is the step (gx,
# keep, dy), tk the slot of the per-step saved arrays (t, or 0 without saving), ti / to the slots
# of the state entering / leaving the step in the (T+1)-long h_all / c_all.
_BODY = r"""
static inline REAL SIG_SFX(REAL x) {
  x = x < -CLAMP ? -CLAMP : x;  /* exp(-x) stays finite: -ffast-math assumes no inf */
  return (REAL)1 / ((REAL)1 + EXP(-x));
}

static inline REAL LERP_SFX(REAL a, REAL b, REAL w) {  /* torch.lerp: exact a at w=0, b at w=1 */
  return w < (REAL)0.5 ? a + w * (b - a) : b - (b - a) * ((REAL)1 - w);
}

/* mean and 1/sqrt(var + eps) of n values (two passes, as torch) */
static inline void LN_STATS_SFX(const REAL* x, long n, double eps, REAL* mu, REAL* rstd) {
  REAL s = 0, v = 0;
  #pragma omp simd reduction(+:s)
  for (long j = 0; j < n; j++) s += x[j];
  const REAL m = s / n;
  #pragma omp simd reduction(+:v)
  for (long j = 0; j < n; j++) v += (x[j] - m) * (x[j] - m);
  *mu = m;
  *rstd = (REAL)(1.0 / sqrt((double)(v / n) + eps));
}

/* LN backward for one row: dx from dy (grad of the LN output), gain w; the step's gain (and
   bias) gradients gw (gb) += dy * xhat (dy) */
static inline void LN_BWD_SFX(const REAL* x, const REAL* dy, const REAL* w, REAL mu, REAL rstd,
                              long n, REAL* xhat, REAL* dxh, REAL* dx, REAL* gw, REAL* gb) {
  REAL m1 = 0, m2 = 0;
  #pragma omp simd reduction(+:m1, m2)
  for (long j = 0; j < n; j++) {
    xhat[j] = (x[j] - mu) * rstd;
    dxh[j] = dy[j] * w[j];
    m1 += dxh[j];
    m2 += dxh[j] * xhat[j];
    gw[j] += dy[j] * xhat[j];
  }
  if (gb) {
    #pragma omp simd
    for (long j = 0; j < n; j++) gb[j] += dy[j];
  }
  const REAL a = m1 / n, c = m2 / n;
  #pragma omp simd
  for (long j = 0; j < n; j++) dx[j] = rstd * (dxh[j] - a - xhat[j] * c);
}

/* acc (double, over all steps) += this step's sum over rows */
static inline void ACC_SFX(double* acc, REAL* step, long n) {
  for (long j = 0; j < n; j++) acc[j] += step[j];
}

/* state = lerp(new, old, keep) in place over new; keep per element (cols > 1) or per row */
static inline void KEEP_SFX(REAL* s, const REAL* old, const REAL* k, long cols, long n) {
  if (cols > 1) {
    #pragma omp simd
    for (long j = 0; j < n; j++) s[j] = LERP_SFX(s[j], old[j], k[j]);
  } else {
    const REAL w = k[0];
    #pragma omp simd
    for (long j = 0; j < n; j++) s[j] = LERP_SFX(s[j], old[j], w);
  }
}

void lstm_fwd_SFX(const FwdCtx* x, long t, long tk, long ti, long to) {
  const long B = x->B, H = x->H, G = 4 * H;
  const REAL* gx = (const REAL*)x->gx + t * B * G;
  /* h W_hh^T of this step: a (B, 4H) scratch the GEMM rewrites, or slot tk of (T, B, 4H) */
  const REAL* raw = (const REAL*)x->raw + (x->raw_step ? tk : 0) * B * G;
  /* peephole weights and LN bias are zero vectors when absent (branch-free loops) */
  const REAL *lnw = x->ln_w, *wci = x->w_ci, *wcf = x->w_cf, *wco = x->w_co;
  const REAL *lncw = x->lnc_w, *lncb = x->lnc_b, *hmask = x->h_mask;
  REAL z[G], cout[H];
  for (long b = 0; b < B; b++) {
    const REAL* r = raw + b * G;
    const REAL* gxb = gx + b * G;
    if (lnw) {
      REAL mu, rstd;
      LN_STATS_SFX(r, G, x->eps, &mu, &rstd);
      ((REAL*)x->mu_hh)[tk * B + b] = mu;
      ((REAL*)x->rstd_hh)[tk * B + b] = rstd;
      #pragma omp simd
      for (long j = 0; j < G; j++) z[j] = (r[j] - mu) * rstd * lnw[j] + gxb[j];
    } else {
      #pragma omp simd
      for (long j = 0; j < G; j++) z[j] = r[j] + gxb[j];
    }
    r = z;
    const REAL* cp = (const REAL*)x->c_all + (ti * B + b) * H;
    const REAL* hp = (const REAL*)x->h_all + (ti * B + b) * H;
    REAL* g4 = (REAL*)x->gates + (tk * B + b) * G;
    REAL* cs = (REAL*)x->c_all + (to * B + b) * H;
    REAL* cn = x->c_new ? (REAL*)x->c_new + (tk * B + b) * H : cs;
    #pragma omp simd
    for (long j = 0; j < H; j++) {
      REAL i = SIG_SFX(r[j] + wci[j] * cp[j]);
      REAL f = SIG_SFX(r[H + j] + wcf[j] * cp[j]);
      REAL g = TANH(r[2 * H + j]);
      REAL c = f * cp[j] + i * g;
      g4[j] = i;
      g4[H + j] = f;
      g4[2 * H + j] = g;
      g4[3 * H + j] = SIG_SFX(r[3 * H + j] + wco[j] * c);
      cn[j] = c;
    }
    const REAL* co = cn;
    if (lncw) {
      REAL mu, rstd;
      LN_STATS_SFX(cn, H, x->eps, &mu, &rstd);
      ((REAL*)x->mu_c)[tk * B + b] = mu;
      ((REAL*)x->rstd_c)[tk * B + b] = rstd;
      #pragma omp simd
      for (long j = 0; j < H; j++) cout[j] = (cn[j] - mu) * rstd * lncw[j] + lncb[j];
      co = cout;
    }
    REAL* ac = (REAL*)x->a_c + (tk * B + b) * H;
    REAL* hs = (REAL*)x->h_all + (to * B + b) * H;
    #pragma omp simd
    for (long j = 0; j < H; j++) {
      REAL a = TANH(co[j]);
      ac[j] = a;
      hs[j] = g4[3 * H + j] * a;
    }
    if (x->keep_h) {
      KEEP_SFX(hs, hp, (const REAL*)x->keep_h + (t * B + b) * x->kh_cols, x->kh_cols, H);
      if (cn != cs) {
        #pragma omp simd
        for (long j = 0; j < H; j++) cs[j] = cn[j];
      }
      KEEP_SFX(cs, cp, (const REAL*)x->keep_c + (t * B + b) * x->kc_cols, x->kc_cols, H);
    }
    if (hmask) {
      REAL* hm = (REAL*)x->hm + b * H;
      #pragma omp simd
      for (long j = 0; j < H; j++) hm[j] = hs[j] * hmask[b * H + j];
    }
  }
}

void lstm_bwd_SFX(const BwdCtx* x, long t, long ti, long to, long first) {
  const long B = x->B, H = x->H, G = 4 * H;
  const REAL *lnw = x->ln_w, *wci = x->w_ci, *wcf = x->w_cf, *wco = x->w_co, *lncw = x->lnc_w;
  const REAL *hmask = x->h_mask, *mm = x->mmres;
  const REAL* dy = x->dy ? (const REAL*)x->dy + t * B * H : NULL;
  REAL *dh = x->dh, *dc = x->dc, *carry = x->carry_h;
  REAL* dz_t = (REAL*)x->dz_all + t * B * G;
  REAL dht[H], dcout[H], dco[H], carry_c[H], xh[G], dxh[G];
  REAL g_hh[G], g_cw[H], g_cb[H];  /* this step's LN gain / bias gradients (summed over rows) */
  for (long j = 0; j < G; j++) g_hh[j] = 0;
  for (long j = 0; j < H; j++) g_cw[j] = g_cb[j] = 0;
  for (long b = 0; b < B; b++) {
    REAL* dhb = dh + b * H;
    REAL* dcb = dc + b * H;
    const REAL* cb = carry + b * H;
    if (!first) {  /* dh = d(raw) W_hh [* h_mask] + the part kept past the step (zoneout) */
      const REAL* mb = mm + b * H;
      if (hmask) {
        const REAL* hmb = hmask + b * H;
        #pragma omp simd
        for (long j = 0; j < H; j++) dhb[j] = mb[j] * hmb[j] + cb[j];
      } else {
        #pragma omp simd
        for (long j = 0; j < H; j++) dhb[j] = mb[j] + cb[j];
      }
    }
    if (dy) {
      const REAL* dyb = dy + b * H;
      #pragma omp simd
      for (long j = 0; j < H; j++) dhb[j] += dyb[j];
    }
    if (x->keep_h) {
      const REAL* kh = (const REAL*)x->keep_h + (t * B + b) * x->kh_cols;
      const REAL* kc = (const REAL*)x->keep_c + (t * B + b) * x->kc_cols;
      REAL* carry_b = carry + b * H;
      for (long j = 0; j < H; j++) {
        REAL k = kh[x->kh_cols > 1 ? j : 0], kk = kc[x->kc_cols > 1 ? j : 0];
        carry_b[j] = dhb[j] * k;
        dht[j] = dhb[j] * ((REAL)1 - k);
        carry_c[j] = dcb[j] * kk;
        dcb[j] = dcb[j] * ((REAL)1 - kk);
      }
    } else {
      #pragma omp simd
      for (long j = 0; j < H; j++) {
        dht[j] = dhb[j];
        carry_c[j] = 0;
      }
    }
    const REAL* g4 = (const REAL*)x->gates + (t * B + b) * G;
    const REAL* ac = (const REAL*)x->a_c + (t * B + b) * H;
    const REAL* cp = (const REAL*)x->c_all + (ti * B + b) * H;
    const REAL* cn = x->c_new ? (const REAL*)x->c_new + (t * B + b) * H
                              : (const REAL*)x->c_all + (to * B + b) * H;
    REAL* dz = dz_t + b * G;
    #pragma omp simd
    for (long j = 0; j < H; j++) {
      REAL o = g4[3 * H + j], a = ac[j];
      dz[3 * H + j] = dht[j] * a * (o - o * o);
      dcout[j] = dht[j] * o * ((REAL)1 - a * a);
    }
    const REAL* dco_p = dcout;
    if (lncw) {
      const REAL mu = ((const REAL*)x->mu_c)[t * B + b], rstd = ((const REAL*)x->rstd_c)[t * B + b];
      LN_BWD_SFX(cn, dcout, lncw, mu, rstd, H, xh, dxh, dco, g_cw, x->g_lnc_b ? g_cb : NULL);
      dco_p = dco;
    }
    #pragma omp simd
    for (long j = 0; j < H; j++) {
      REAL i = g4[j], f = g4[H + j], g = g4[2 * H + j];
      REAL dcn = dcb[j] + dco_p[j] + dz[3 * H + j] * wco[j];
      REAL dzi = dcn * g * (i - i * i), dzf = dcn * cp[j] * (f - f * f);
      dz[j] = dzi;
      dz[H + j] = dzf;
      dz[2 * H + j] = dcn * i * ((REAL)1 - g * g);
      dcb[j] = dcn * f + carry_c[j] + dzi * wci[j] + dzf * wcf[j];
    }
    if (lnw) {
      const REAL* r = (const REAL*)x->raw + ((x->raw_step ? t : 0) * B + b) * G;
      const REAL mu = ((const REAL*)x->mu_hh)[t * B + b], rstd = ((const REAL*)x->rstd_hh)[t * B + b];
      LN_BWD_SFX(r, dz, lnw, mu, rstd, G, xh, dxh, (REAL*)x->d_raw + b * G, g_hh, NULL);
    }
  }
  if (lnw) ACC_SFX(x->g_lnhh_w, g_hh, G);
  if (lncw) ACC_SFX(x->g_lnc_w, g_cw, H);
  if (x->g_lnc_b) ACC_SFX(x->g_lnc_b, g_cb, H);
}
"""

_TYPES = {
    "f32": {"REAL": "float", "EXP": "expf", "TANH": "tanhf", "CLAMP": "80.0f"},
    "f64": {"REAL": "double", "EXP": "exp", "TANH": "tanh", "CLAMP": "700.0"},
}
_SUFFIX = {torch.float32: "f32", torch.float64: "f64"}


def source() -> str:
    """The C source of the compiled step (both float32 and float64 instantiations)."""
    parts = [_HEADER]
    for sfx, names in _TYPES.items():
        body = _BODY.replace("_SFX", "_" + sfx)
        for name, value in names.items():
            body = body.replace(name, value)
        parts.append(body)
    return "\n".join(parts)


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


def _run(cmd: list[str], compiler_env: str = "CC") -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as err:
        what, package, fallback = (
            ("C++", "g++", "") if compiler_env == "CXX" else ("C", "gcc", ", or use impl='loop'")
        )
        raise CompiledKernelError(
            f"lstmkit: cannot run the {what} compiler {cmd[0]!r} ({err}); install {package} "
            f"(or set {compiler_env} to a {what} compiler){fallback}"
        ) from err


def build(cache_dir: Path | None = None) -> Path:
    """Compile the C step if it is not in the cache yet; return the shared object's path.

    Raises:
        CompiledKernelError: the compiler is missing or failed (its output is in the message).
    """
    return build_shared(
        "lstm_step", source(), compiler_env="CC", compiler="gcc", flags=CFLAGS,
        link_flags=("-lm",), cache_dir=cache_dir,
    )  # fmt: skip


def build_shared(
    name: str,
    src: str,
    *,
    compiler_env: str,
    compiler: str,
    flags: tuple[str, ...],
    link_flags: tuple[str, ...] = (),
    cache_dir: Path | None = None,
) -> Path:
    """Compile ``src`` (C with ``$CC``, default ``gcc``; C++ with ``$CXX``, default ``g++``)
    into ``<cache>/<name>-<hash>.so`` unless it is there already; return its path. The hash
    covers the source, the compiler and its version, the flags and the CPU's flags.

    Raises:
        CompiledKernelError: the compiler is missing or failed (its output is in the message).
    """
    cc = os.environ.get(compiler_env, compiler)
    version = _run([cc, "--version"], compiler_env)
    parts = [src, cc, " ".join(flags), " ".join(link_flags), version.stdout, platform.machine()]
    key = "\n".join([*parts, _cpu_flags()])
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    folder = cache_dir if cache_dir is not None else _cache_dir()
    target = folder / f"{name}-{digest}.so"
    if target.exists():
        return target
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return _compile(cc, compiler_env, src, name, flags, link_flags, folder, target)
    except OSError as err:
        raise CompiledKernelError(
            f"lstmkit: cannot write the compiled {name} library to {folder} ({err}); set "
            "XDG_CACHE_HOME to a writable directory"
        ) from err


def load_library(path: Path) -> ctypes.CDLL:
    """Load a library :func:`build_shared` built.

    Raises:
        CompiledKernelError: the load failed (the message says why).
    """
    try:
        return ctypes.CDLL(str(path))
    except OSError as err:
        raise CompiledKernelError(f"lstmkit: cannot load {path}: {err}") from err


def _compile(
    cc: str,
    compiler_env: str,
    src: str,
    name: str,
    flags: tuple[str, ...],
    link_flags: tuple[str, ...],
    folder: Path,
    target: Path,
) -> Path:
    suffix = ".cpp" if compiler_env == "CXX" else ".c"
    with tempfile.TemporaryDirectory(dir=folder, prefix=".build-") as tmp:
        c_file, o_file, so_file = (Path(tmp) / n for n in (name + suffix, name + ".o", "x.so"))
        c_file.write_text(src)
        # compile with the flags (-ffast-math for the LSTM step), link without them (no
        # crtfastmath.o: see the module doc)
        for cmd in (
            [cc, *flags, "-c", str(c_file), "-o", str(o_file)],
            [cc, "-shared", str(o_file), "-o", str(so_file), *link_flags],
        ):
            done = _run(cmd, compiler_env)
            if done.returncode != 0:
                raise CompiledKernelError(
                    f"lstmkit: building the compiled {name} library failed: `{' '.join(cmd)}` "
                    f"exited {done.returncode}:\n{(done.stderr or done.stdout)[-4000:]}"
                )
        os.replace(so_file, target)  # atomic: a concurrent build of the same source is harmless
    return target


class _Fwd(ctypes.Structure):
    _fields_ = [
        *[(n, ctypes.c_long) for n in ("B", "H", "kh_cols", "kc_cols", "raw_step")],
        ("eps", ctypes.c_double),
        *[
            (n, ctypes.c_void_p)
            for n in (
                "gx", "ln_w", "w_ci", "w_cf", "w_co", "lnc_w", "lnc_b", "keep_h", "keep_c",
                "h_mask", "raw", "mu_hh", "rstd_hh", "mu_c", "rstd_c", "hm", "gates", "c_new",
                "a_c", "h_all", "c_all",
            )
        ],
    ]  # fmt: skip


class _Bwd(ctypes.Structure):
    _fields_ = [
        *[(n, ctypes.c_long) for n in ("B", "H", "kh_cols", "kc_cols", "raw_step")],
        *[
            (n, ctypes.c_void_p)
            for n in (
                "raw", "ln_w", "mu_hh", "rstd_hh", "w_ci", "w_cf", "w_co", "lnc_w", "mu_c",
                "rstd_c", "keep_h", "keep_c", "h_mask", "gates", "c_new", "c_all", "a_c", "dy",
                "mmres", "dh", "dc", "carry_h", "dz_all", "d_raw", "g_lnhh_w", "g_lnc_w",
                "g_lnc_b",
            )
        ],
    ]  # fmt: skip


@functools.cache
def library() -> ctypes.CDLL:
    """The built and loaded C step (built on the first call of the process, then reused)."""
    return load_library(build())


def _ptr(x: Tensor | None) -> int | None:
    return None if x is None else x.data_ptr()


def step_functions(dtype: torch.dtype) -> tuple[Callable[..., int], Callable[..., int]]:
    """``(forward step, backward step)`` C functions for ``dtype``."""
    lib = library()
    sfx = _SUFFIX[dtype]
    return getattr(lib, f"lstm_fwd_{sfx}"), getattr(lib, f"lstm_bwd_{sfx}")


def _fill(ctx: Any, tensors: dict[str, Tensor | int | float | None]) -> Any:
    """Set ``ctx``'s fields: ints / floats as they are, tensors (contiguous) by data pointer."""
    for name, value in tensors.items():
        if isinstance(value, Tensor):
            if not value.is_contiguous():
                raise ValueError(f"compiled LSTM step: {name} must be contiguous")
            setattr(ctx, name, value.data_ptr())
        elif value is not None:
            setattr(ctx, name, value)
    return ctx


def fwd_context(**tensors: Tensor | int | float | None) -> _Fwd:
    """A forward context: ints / floats as they are, tensors (contiguous) by their data pointer."""
    ctx: _Fwd = _fill(_Fwd(), tensors)
    return ctx


def bwd_context(**tensors: Tensor | int | None) -> _Bwd:
    """A backward context, as :func:`fwd_context`."""
    ctx: _Bwd = _fill(_Bwd(), dict(tensors))
    return ctx
