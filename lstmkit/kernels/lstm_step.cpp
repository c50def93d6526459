// The compiled recurrence of lstmkit's LSTM kernel: one op runs every step of one layer and
// direction, forward (lstm_forward) or backward (lstm_backward), each step being the recurrent GEMM
// (torch's mm / addmm, i.e. MKL or oneDNN) and one pass over the batch rows for everything else.
// lstmkit/kernels/compiled.py builds it with torch.utils.cpp_extension and says why it exists;
// lstmkit/kernels/lstm.py (_forward_compiled, _backward_compiled) allocates the buffers and calls it.
//
// Only torch's stable C ABI headers are included (torch/csrc/stable, the AOTI C shim), so the
// build takes seconds instead of the minute <torch/extension.h> takes.
//
// Numerics: the same bits whichever x86-64 -march builds it (SIMD width, FMA or not), since
//  - it is built without -ffast-math and with -ffp-contract=off (no a * b + c fused into an FMA
//    on one CPU and not on another);
//  - exp (for sigmoid) and tanh are written below (exp: Cody-Waite reduction and a Taylor
//    polynomial; tanh: a rational function in float32, from expm1 in float64; measured against
//    long double: exp <= 1.2 ulp, sigmoid <= 2.5, tanh <= 3.1 in float64 and <= 6.3 in float32,
//    near +-1) instead of libm's, whose FMA and vector variants glibc picks per CPU at run time;
//  - every sum over a row is fixed_sum: 8 partial sums (element j into lane j % 8) then a fixed
//    tree, so the order of the additions is this source's, not the vector width's (a plain
//    `omp simd reduction` sums in an order that depends on it);
//  - the element-wise loops (`omp simd`) compute each element with the same operations at any
//    vector width.
//
// Index conventions: t is the step (gx, keep weights, dy), tk the slot of the per-step saved
// arrays (t, or 0 without saving), ti / to the slots of the state entering / leaving the step in
// the (T+1)-long h_all / c_all.

#include <torch/csrc/inductor/aoti_torch/generated/c_shim_cpu.h>
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/tensor.h>

#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <optional>
#include <vector>

namespace {

using torch::stable::Tensor;
using OptTensor = std::optional<Tensor>;

// -- exp, expm1, sigmoid, tanh ------------------------------------------------------------------
// 1/k! for k = 0 .. N (exact in double up to 18!), rounded once to T at compile time
template <typename T, int N>
struct InvFactorial {
  static constexpr std::array<T, N + 1> c = [] {
    std::array<T, N + 1> out{};
    double f = 1;
    for (int k = 0; k <= N; k++) {
      f *= k > 1 ? k : 1;
      out[k] = (T)(1.0 / f);
    }
    return out;
  }();
};

// exp(x) = 2^n exp(r), n = round(x / ln 2), r = x - n ln 2 (ln 2 in two parts, the first with few
// bits, so n ln 2 loses nothing), exp(r) by its Taylor series to degree N (|r| <= ln 2 / 2:
// truncated below half an ulp), 2^n built in the exponent bits. Adding 1.5 * 2^23 (2^52) rounds
// x / ln 2 to an integer, which then sits in the low bits of the sum: no float -> int conversion.
template <typename T>
struct ExpConst;
template <>
struct ExpConst<float> {
  using Bits = uint32_t;
  static constexpr int degree = 7, expm1_degree = 9, mantissa = 23;
  static constexpr Bits bias = 127;
  static constexpr float lo = -87.0f, hi = 88.0f;  // 2^n stays a finite normal number
  static constexpr float shift = 12582912.0f, log2e = 1.44269504088896341f;
  static constexpr float ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;  // ln 2 = hi + lo
};
template <>
struct ExpConst<double> {
  using Bits = uint64_t;
  static constexpr int degree = 13, expm1_degree = 16, mantissa = 52;
  static constexpr Bits bias = 1023;
  static constexpr double lo = -708.0, hi = 709.0;
  static constexpr double shift = 6755399441055744.0, log2e = 1.4426950408889634;
  static constexpr double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
};

template <typename T>
inline T exp_(T x) {
  using K = ExpConst<T>;
  using Bits = typename K::Bits;
  x = x < K::lo ? K::lo : x;
  x = x > K::hi ? K::hi : x;
  const T k = x * K::log2e + K::shift;
  const T n = k - K::shift;
  const T r = (x - n * K::ln2_hi) - n * K::ln2_lo;
  const auto& c = InvFactorial<T, K::degree>::c;
  T p = c[K::degree];
  for (int d = K::degree - 1; d >= 0; d--) p = p * r + c[d];
  const Bits two_n = (std::bit_cast<Bits>(k) + K::bias) << K::mantissa;
  return p * std::bit_cast<T>(two_n);
}

// expm1(y) for y >= 0: its Taylor series up to ln 2 (no cancellation; truncated below half an
// ulp), exp(y) - 1 above (exp(y) >= 2: at most one bit lost)
template <typename T>
inline T expm1_pos_(T y) {
  constexpr int N = ExpConst<T>::expm1_degree;
  const auto& c = InvFactorial<T, N>::c;
  T p = c[N];
  for (int d = N - 1; d >= 1; d--) p = p * y + c[d];
  const T small = p * y;
  return y <= (T)0.693 ? small : exp_(y) - (T)1;
}

template <typename T>
inline T sigmoid_(T x) {
  return (T)1 / ((T)1 + exp_(-x));
}

// tanh, float: a 13/6-degree rational function of x, within ~6 ulp on [-9, 9] (outside it
// tanh is +-1 in float32); the coefficients are those of Eigen's generic_fast_tanh_float (also
// ONNX Runtime's MLAS). No exp, one division: ~3x cheaper than tanh |x| = e / (e + 2) below.
inline float tanh_(float x) {
  const float tiny = 0.0004f;  // below it tanh(x) rounds to x
  const float a = x < -9.0f ? -9.0f : (x > 9.0f ? 9.0f : x);
  const float x2 = a * a;
  float p = -2.76076847742355e-16f;
  p = p * x2 + 2.00018790482477e-13f;
  p = p * x2 + -8.60467152213735e-11f;
  p = p * x2 + 5.12229709037114e-08f;
  p = p * x2 + 1.48572235717979e-05f;
  p = p * x2 + 6.37261928875436e-04f;
  p = p * x2 + 4.89352455891786e-03f;
  p = p * a;
  float q = 1.19825839466702e-06f;
  q = q * x2 + 1.18534705686654e-04f;
  q = q * x2 + 2.26843463243900e-03f;
  q = q * x2 + 4.89352518554385e-03f;
  const float t = p / q;
  return (x < tiny && x > -tiny) ? x : t;
}

// tanh, double: tanh |x| = e / (e + 2) with e = expm1(2 |x|), accurate for small |x| too
inline double tanh_(double x) {
  const double a = x < 0 ? -x : x;
  const double e = expm1_pos_(2 * a);
  const double t = e / (e + 2);
  return x < 0 ? -t : t;
}

template <typename T>
inline T lerp_(T a, T b, T w) {  // torch.lerp: exactly a at w = 0, b at w = 1
  return w < (T)0.5 ? a + w * (b - a) : b - (b - a) * ((T)1 - w);
}

// sum of term(j), j < n, in an order fixed by this source (see the file's comment)
constexpr int64_t kLanes = 8;
template <typename T, typename F>
inline T fixed_sum(int64_t n, F term) {
  T acc[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
#pragma omp simd
    for (int64_t k = 0; k < kLanes; k++) acc[k] += term(j + k);
  }
  for (int64_t k = 0; j + k < n; k++) acc[k] += term(j + k);
  for (int64_t w = kLanes / 2; w > 0; w /= 2) {
    for (int64_t k = 0; k < w; k++) acc[k] += acc[k + w];
  }
  return acc[0];
}

// mean and 1/sqrt(var + eps) of n values (two passes, as torch)
template <typename T>
inline void ln_stats(const T* x, int64_t n, double eps, T* mu, T* rstd) {
  const T m = fixed_sum<T>(n, [x](int64_t j) { return x[j]; }) / (T)n;
  const T v = fixed_sum<T>(n, [x, m](int64_t j) { return (x[j] - m) * (x[j] - m); });
  *mu = m;
  *rstd = (T)(1.0 / std::sqrt((double)(v / (T)n) + eps));
}

// LN backward for one row: dx from dy (grad of the LN output), gain w; the step's gain (and bias)
// gradients gw (gb) += dy * xhat (dy)
template <typename T>
inline void ln_bwd(const T* x, const T* dy, const T* w, T mu, T rstd, int64_t n, T* xhat, T* dxh,
                   T* dx, T* gw, T* gb) {
#pragma omp simd
  for (int64_t j = 0; j < n; j++) {
    xhat[j] = (x[j] - mu) * rstd;
    dxh[j] = dy[j] * w[j];
    gw[j] += dy[j] * xhat[j];
  }
  if (gb) {
#pragma omp simd
    for (int64_t j = 0; j < n; j++) gb[j] += dy[j];
  }
  const T a = fixed_sum<T>(n, [dxh](int64_t j) { return dxh[j]; }) / (T)n;
  const T c = fixed_sum<T>(n, [dxh, xhat](int64_t j) { return dxh[j] * xhat[j]; }) / (T)n;
#pragma omp simd
  for (int64_t j = 0; j < n; j++) dx[j] = rstd * (dxh[j] - a - xhat[j] * c);
}

// state = lerp(new, old, keep) in place over new; keep per element (cols > 1) or per row
template <typename T>
inline void keep_(T* s, const T* old, const T* k, int64_t cols, int64_t n) {
  if (cols > 1) {
#pragma omp simd
    for (int64_t j = 0; j < n; j++) s[j] = lerp_(s[j], old[j], k[j]);
  } else {
    const T w = k[0];
#pragma omp simd
    for (int64_t j = 0; j < n; j++) s[j] = lerp_(s[j], old[j], w);
  }
}

// -- tensors -> pointers ------------------------------------------------------------------------
template <typename T>
T* ptr(const Tensor& x, const char* name) {
  STD_TORCH_CHECK(x.is_contiguous(), "compiled LSTM step: ", name, " must be contiguous");
  return x.mutable_data_ptr<T>();  // checks the dtype
}

template <typename T>
T* ptr(const OptTensor& x, const char* name) {
  return x.has_value() ? ptr<T>(*x, name) : nullptr;
}

void check(AOTITorchError err, const char* what) {
  STD_TORCH_CHECK(err == AOTI_TORCH_SUCCESS, "compiled LSTM step: ", what, " failed");
}

void mm(const Tensor& out, const Tensor& a, const Tensor& b) {  // out = a @ b
  check(aoti_torch_cpu_mm_out(out.get(), a.get(), b.get()), "mm");
}

void addmm_(const Tensor& acc, const Tensor& a, const Tensor& b) {  // acc += a @ b
  check(aoti_torch_cpu_addmm_out(acc.get(), acc.get(), a.get(), b.get(), 1.0, 1.0), "addmm");
}

// -- forward ------------------------------------------------------------------------------------
template <typename T>
struct Fwd {
  int64_t B, H, kh_cols, kc_cols;
  bool raw_step;  // raw holds h W_hh^T of every step (slot tk) rather than one scratch
  double eps;
  const T *gx, *ln_w, *w_ci, *w_cf, *w_co, *lnc_w, *lnc_b, *keep_h, *keep_c, *h_mask;
  T *raw, *mu_hh, *rstd_hh, *mu_c, *rstd_c, *hm, *gates, *c_new, *a_c, *h_all, *c_all;
};

// one step after its GEMM (raw = h W_hh^T): gates, cell, output, zoneout / padding, next h * mask
template <typename T>
void fwd_step(const Fwd<T>& x, int64_t t, int64_t tk, int64_t ti, int64_t to, T* z, T* cout) {
  const int64_t B = x.B, H = x.H, G = 4 * H;
  const T* gx = x.gx + t * B * G;
  const T* raw = x.raw + (x.raw_step ? tk : 0) * B * G;
  // peephole weights and LN bias are zero vectors when absent (branch-free loops)
  const T *lnw = x.ln_w, *wci = x.w_ci, *wcf = x.w_cf, *wco = x.w_co;
  const T *lncw = x.lnc_w, *lncb = x.lnc_b, *hmask = x.h_mask;
  for (int64_t b = 0; b < B; b++) {
    const T* rb = raw + b * G;
    const T* gxb = gx + b * G;
    if (lnw) {
      T mu, rstd;
      ln_stats(rb, G, x.eps, &mu, &rstd);
      x.mu_hh[tk * B + b] = mu;
      x.rstd_hh[tk * B + b] = rstd;
#pragma omp simd
      for (int64_t j = 0; j < G; j++) z[j] = (rb[j] - mu) * rstd * lnw[j] + gxb[j];
    } else {
#pragma omp simd
      for (int64_t j = 0; j < G; j++) z[j] = rb[j] + gxb[j];
    }
    const T* cp = x.c_all + (ti * B + b) * H;
    const T* hp = x.h_all + (ti * B + b) * H;
    T* g4 = x.gates + (tk * B + b) * G;
    T* cs = x.c_all + (to * B + b) * H;
    T* cn = x.c_new ? x.c_new + (tk * B + b) * H : cs;
    // one loop per gate: with all of them in one loop the inlined exp / tanh run out of
    // registers (16 with AVX2) and spill, ~3x slower
#pragma omp simd
    for (int64_t j = 0; j < H; j++) g4[j] = sigmoid_(z[j] + wci[j] * cp[j]);
#pragma omp simd
    for (int64_t j = 0; j < H; j++) g4[H + j] = sigmoid_(z[H + j] + wcf[j] * cp[j]);
#pragma omp simd
    for (int64_t j = 0; j < H; j++) g4[2 * H + j] = tanh_(z[2 * H + j]);
#pragma omp simd
    for (int64_t j = 0; j < H; j++) cn[j] = g4[H + j] * cp[j] + g4[j] * g4[2 * H + j];
#pragma omp simd
    for (int64_t j = 0; j < H; j++) g4[3 * H + j] = sigmoid_(z[3 * H + j] + wco[j] * cn[j]);
    const T* co = cn;
    if (lncw) {
      T mu, rstd;
      ln_stats(cn, H, x.eps, &mu, &rstd);
      x.mu_c[tk * B + b] = mu;
      x.rstd_c[tk * B + b] = rstd;
#pragma omp simd
      for (int64_t j = 0; j < H; j++) cout[j] = (cn[j] - mu) * rstd * lncw[j] + lncb[j];
      co = cout;
    }
    T* ac = x.a_c + (tk * B + b) * H;
    T* hs = x.h_all + (to * B + b) * H;
#pragma omp simd
    for (int64_t j = 0; j < H; j++) {
      const T a = tanh_(co[j]);
      ac[j] = a;
      hs[j] = g4[3 * H + j] * a;
    }
    if (x.keep_h) {
      keep_(hs, hp, x.keep_h + (t * B + b) * x.kh_cols, x.kh_cols, H);
      if (cn != cs) {
#pragma omp simd
        for (int64_t j = 0; j < H; j++) cs[j] = cn[j];
      }
      keep_(cs, cp, x.keep_c + (t * B + b) * x.kc_cols, x.kc_cols, H);
    }
    if (hmask) {
      T* hm = x.hm + b * H;
#pragma omp simd
      for (int64_t j = 0; j < H; j++) hm[j] = hs[j] * hmask[b * H + j];
    }
  }
}

template <typename T>
void forward_steps(const Tensor& gx, const Tensor& w_hh_t, const std::vector<Tensor>& hs,
                   const std::vector<Tensor>& raws, const OptTensor& hm, const OptTensor& ln_w,
                   const Tensor& w_ci, const Tensor& w_cf, const Tensor& w_co,
                   const OptTensor& lnc_w, const OptTensor& lnc_b, const OptTensor& keep_h,
                   const OptTensor& keep_c, const OptTensor& h_mask, const Tensor& raw,
                   const OptTensor& mu_hh, const OptTensor& rstd_hh, const OptTensor& mu_c,
                   const OptTensor& rstd_c, const Tensor& gates, const OptTensor& c_new,
                   const Tensor& a_c, const Tensor& h_all, const Tensor& c_all, double eps,
                   bool reverse, bool save, bool keep_raw) {
  const int64_t steps = gx.size(0), B = gx.size(1), H = gx.size(2) / 4;
  const Fwd<T> x{
      .B = B,
      .H = H,
      .kh_cols = keep_h.has_value() ? keep_h->size(2) : 0,
      .kc_cols = keep_c.has_value() ? keep_c->size(2) : 0,
      .raw_step = keep_raw,
      .eps = eps,
      .gx = ptr<T>(gx, "gx"),
      .ln_w = ptr<T>(ln_w, "ln_w"),
      .w_ci = ptr<T>(w_ci, "w_ci"),
      .w_cf = ptr<T>(w_cf, "w_cf"),
      .w_co = ptr<T>(w_co, "w_co"),
      .lnc_w = ptr<T>(lnc_w, "lnc_w"),
      .lnc_b = ptr<T>(lnc_b, "lnc_b"),
      .keep_h = ptr<T>(keep_h, "keep_h"),
      .keep_c = ptr<T>(keep_c, "keep_c"),
      .h_mask = ptr<T>(h_mask, "h_mask"),
      .raw = ptr<T>(raw, "raw"),
      .mu_hh = ptr<T>(mu_hh, "mu_hh"),
      .rstd_hh = ptr<T>(rstd_hh, "rstd_hh"),
      .mu_c = ptr<T>(mu_c, "mu_c"),
      .rstd_c = ptr<T>(rstd_c, "rstd_c"),
      .hm = ptr<T>(hm, "hm"),
      .gates = ptr<T>(gates, "gates"),
      .c_new = ptr<T>(c_new, "c_new"),
      .a_c = ptr<T>(a_c, "a_c"),
      .h_all = ptr<T>(h_all, "h_all"),
      .c_all = ptr<T>(c_all, "c_all"),
  };
  std::vector<T> z(4 * H), cout(H);
  const int64_t shift = reverse ? 1 : 0;
  for (int64_t n = 0; n < steps; n++) {
    const int64_t t = reverse ? steps - 1 - n : n;
    const int64_t ti = t + shift, to = t + 1 - shift, tk = save ? t : 0;
    // h W_hh^T (gx is added in fwd_step); with a recurrent-dropout mask the GEMM reads h * mask,
    // which fwd_step wrote at the end of the previous step (the caller, before the first)
    mm(raws[keep_raw ? tk : 0], hm.has_value() ? *hm : hs[ti], w_hh_t);
    fwd_step(x, t, tk, ti, to, z.data(), cout.data());
  }
}

// -- backward -----------------------------------------------------------------------------------
template <typename T>
struct Bwd {
  int64_t B, H, kh_cols, kc_cols;
  bool raw_step;
  const T *raw, *ln_w, *mu_hh, *rstd_hh, *w_ci, *w_cf, *w_co, *lnc_w, *mu_c, *rstd_c;
  const T *keep_h, *keep_c, *h_mask, *gates, *c_new, *c_all, *a_c, *dy, *mmres;
  T *dh, *dc, *carry_h, *dz_all, *d_raw;
  double *g_lnhh_w, *g_lnc_w, *g_lnc_b;
};

// one backward step before its GEMMs: dz of the step into dz_all (and, with layer norm, d(raw)
// into d_raw), dh / dc of the state entering it; mmres holds d(raw) W_hh of the step done before
// (unless first); the LN gain gradients of the step are summed over the rows here and added to the
// float64 accumulators (T * B rows in all: float32 sums would lose digits)
template <typename T>
void bwd_step(const Bwd<T>& x, int64_t t, int64_t ti, int64_t to, bool first, T* buf) {
  const int64_t B = x.B, H = x.H, G = 4 * H;
  const T *lnw = x.ln_w, *wci = x.w_ci, *wcf = x.w_cf, *wco = x.w_co, *lncw = x.lnc_w;
  const T *hmask = x.h_mask, *mm_res = x.mmres;
  const T* dy = x.dy ? x.dy + t * B * H : nullptr;
  T *dh = x.dh, *dc = x.dc, *carry = x.carry_h;
  T* dz_t = x.dz_all + t * B * G;
  T *dht = buf, *dcout = dht + H, *dco = dcout + H, *carry_c = dco + H, *xh = carry_c + H;
  T *dxh = xh + G, *g_hh = dxh + G, *g_cw = g_hh + G, *g_cb = g_cw + H;  // this step's LN grads
  for (int64_t j = 0; j < G; j++) g_hh[j] = 0;
  for (int64_t j = 0; j < H; j++) g_cw[j] = g_cb[j] = 0;
  for (int64_t b = 0; b < B; b++) {
    T* dhb = dh + b * H;
    T* dcb = dc + b * H;
    T* cb = carry + b * H;
    if (!first) {  // dh = d(raw) W_hh [* h_mask] + the part kept past the step (zoneout)
      const T* mb = mm_res + b * H;
      if (hmask) {
        const T* hmb = hmask + b * H;
#pragma omp simd
        for (int64_t j = 0; j < H; j++) dhb[j] = mb[j] * hmb[j] + cb[j];
      } else {
#pragma omp simd
        for (int64_t j = 0; j < H; j++) dhb[j] = mb[j] + cb[j];
      }
    }
    if (dy) {
      const T* dyb = dy + b * H;
#pragma omp simd
      for (int64_t j = 0; j < H; j++) dhb[j] += dyb[j];
    }
    if (x.keep_h) {
      const T* kh = x.keep_h + (t * B + b) * x.kh_cols;
      const T* kc = x.keep_c + (t * B + b) * x.kc_cols;
      for (int64_t j = 0; j < H; j++) {
        const T k = kh[x.kh_cols > 1 ? j : 0], kk = kc[x.kc_cols > 1 ? j : 0];
        cb[j] = dhb[j] * k;
        dht[j] = dhb[j] * ((T)1 - k);
        carry_c[j] = dcb[j] * kk;
        dcb[j] = dcb[j] * ((T)1 - kk);
      }
    } else {
#pragma omp simd
      for (int64_t j = 0; j < H; j++) {
        dht[j] = dhb[j];
        carry_c[j] = 0;
      }
    }
    const T* g4 = x.gates + (t * B + b) * G;
    const T* ac = x.a_c + (t * B + b) * H;
    const T* cp = x.c_all + (ti * B + b) * H;
    const T* cn = x.c_new ? x.c_new + (t * B + b) * H : x.c_all + (to * B + b) * H;
    T* dz = dz_t + b * G;
#pragma omp simd
    for (int64_t j = 0; j < H; j++) {
      const T o = g4[3 * H + j], a = ac[j];
      dz[3 * H + j] = dht[j] * a * (o - o * o);
      dcout[j] = dht[j] * o * ((T)1 - a * a);
    }
    const T* dco_p = dcout;
    if (lncw) {
      const T mu = x.mu_c[t * B + b], rstd = x.rstd_c[t * B + b];
      ln_bwd(cn, dcout, lncw, mu, rstd, H, xh, dxh, dco, g_cw, x.g_lnc_b ? g_cb : nullptr);
      dco_p = dco;
    }
#pragma omp simd
    for (int64_t j = 0; j < H; j++) {
      const T i = g4[j], f = g4[H + j], g = g4[2 * H + j];
      const T dcn = dcb[j] + dco_p[j] + dz[3 * H + j] * wco[j];
      const T dzi = dcn * g * (i - i * i), dzf = dcn * cp[j] * (f - f * f);
      dz[j] = dzi;
      dz[H + j] = dzf;
      dz[2 * H + j] = dcn * i * ((T)1 - g * g);
      dcb[j] = dcn * f + carry_c[j] + dzi * wci[j] + dzf * wcf[j];
    }
    if (lnw) {
      const T* r = x.raw + ((x.raw_step ? t : 0) * B + b) * G;
      const T mu = x.mu_hh[t * B + b], rstd = x.rstd_hh[t * B + b];
      ln_bwd(r, dz, lnw, mu, rstd, G, xh, dxh, x.d_raw + b * G, g_hh, (T*)nullptr);
    }
  }
  if (lnw) {
    for (int64_t j = 0; j < G; j++) x.g_lnhh_w[j] += g_hh[j];
  }
  if (lncw) {
    for (int64_t j = 0; j < H; j++) x.g_lnc_w[j] += g_cw[j];
  }
  if (x.g_lnc_b) {
    for (int64_t j = 0; j < H; j++) x.g_lnc_b[j] += g_cb[j];
  }
}

template <typename T>
void backward_steps(const Tensor& w_hh, const Tensor& w_hh_t, const std::vector<Tensor>& hm_s,
                    const std::vector<Tensor>& hm_t_s, const std::vector<Tensor>& dz_s,
                    const OptTensor& raw_scratch, const OptTensor& raw, const OptTensor& ln_w,
                    const OptTensor& mu_hh, const OptTensor& rstd_hh, const Tensor& w_ci,
                    const Tensor& w_cf, const Tensor& w_co, const OptTensor& lnc_w,
                    const OptTensor& mu_c, const OptTensor& rstd_c, const OptTensor& keep_h,
                    const OptTensor& keep_c, const OptTensor& h_mask, const Tensor& gates,
                    const OptTensor& c_new, const Tensor& c_all, const Tensor& a_c,
                    const OptTensor& dy, const Tensor& mmres, const Tensor& dh, const Tensor& dc,
                    const Tensor& carry_h, const Tensor& dz_all, const OptTensor& d_raw,
                    const OptTensor& g_lnhh_w, const OptTensor& g_lnc_w, const OptTensor& g_lnc_b,
                    const OptTensor& dw_hh_t, bool reverse) {
  const int64_t steps = gates.size(0), B = gates.size(1), H = gates.size(3);
  const OptTensor& raw_in = raw.has_value() ? raw : raw_scratch;
  const Bwd<T> x{
      .B = B,
      .H = H,
      .kh_cols = keep_h.has_value() ? keep_h->size(2) : 0,
      .kc_cols = keep_c.has_value() ? keep_c->size(2) : 0,
      .raw_step = raw.has_value(),
      .raw = ptr<T>(raw_in, "raw"),
      .ln_w = ptr<T>(ln_w, "ln_w"),
      .mu_hh = ptr<T>(mu_hh, "mu_hh"),
      .rstd_hh = ptr<T>(rstd_hh, "rstd_hh"),
      .w_ci = ptr<T>(w_ci, "w_ci"),
      .w_cf = ptr<T>(w_cf, "w_cf"),
      .w_co = ptr<T>(w_co, "w_co"),
      .lnc_w = ptr<T>(lnc_w, "lnc_w"),
      .mu_c = ptr<T>(mu_c, "mu_c"),
      .rstd_c = ptr<T>(rstd_c, "rstd_c"),
      .keep_h = ptr<T>(keep_h, "keep_h"),
      .keep_c = ptr<T>(keep_c, "keep_c"),
      .h_mask = ptr<T>(h_mask, "h_mask"),
      .gates = ptr<T>(gates, "gates"),
      .c_new = ptr<T>(c_new, "c_new"),
      .c_all = ptr<T>(c_all, "c_all"),
      .a_c = ptr<T>(a_c, "a_c"),
      .dy = ptr<T>(dy, "dy"),
      .mmres = ptr<T>(mmres, "mmres"),
      .dh = ptr<T>(dh, "dh"),
      .dc = ptr<T>(dc, "dc"),
      .carry_h = ptr<T>(carry_h, "carry_h"),
      .dz_all = ptr<T>(dz_all, "dz_all"),
      .d_raw = ptr<T>(d_raw, "d_raw"),
      .g_lnhh_w = ptr<double>(g_lnhh_w, "g_lnhh_w"),
      .g_lnc_w = ptr<double>(g_lnc_w, "g_lnc_w"),
      .g_lnc_b = ptr<double>(g_lnc_b, "g_lnc_b"),
  };
  std::vector<T> buf(6 * H + 3 * 4 * H);  // bwd_step's row scratch
  const int64_t shift = reverse ? 1 : 0;
  for (int64_t n = 0; n < steps; n++) {
    const int64_t t = reverse ? n : steps - 1 - n;
    if (raw_scratch.has_value()) mm(*raw_scratch, hm_s[t], w_hh_t);  // the forward's GEMM again
    bwd_step(x, t, t + shift, t + 1 - shift, n == 0, buf.data());
    if (d_raw.has_value() && dw_hh_t.has_value()) {  // layer norm: dz is not what reaches W_hh
      mm(mmres, *d_raw, w_hh);
      addmm_(*dw_hh_t, hm_t_s[t], *d_raw);
    } else {
      mm(mmres, dz_s[t], w_hh);
    }
  }
}

bool is_float(const Tensor& x) {
  const auto dtype = x.scalar_type();
  STD_TORCH_CHECK(dtype == torch::headeronly::ScalarType::Float ||
                      dtype == torch::headeronly::ScalarType::Double,
                  "compiled LSTM step: expected float32 or float64, got ",
                  torch::headeronly::toString(dtype));
  return dtype == torch::headeronly::ScalarType::Float;
}

void lstm_forward(Tensor gx, Tensor w_hh_t, std::vector<Tensor> hs, std::vector<Tensor> raws,
                  OptTensor hm, OptTensor ln_w, Tensor w_ci, Tensor w_cf, Tensor w_co,
                  OptTensor lnc_w, OptTensor lnc_b, OptTensor keep_h, OptTensor keep_c,
                  OptTensor h_mask, Tensor raw, OptTensor mu_hh, OptTensor rstd_hh,
                  OptTensor mu_c, OptTensor rstd_c, Tensor gates, OptTensor c_new, Tensor a_c,
                  Tensor h_all, Tensor c_all, double eps, bool reverse, bool save,
                  bool keep_raw) {
  // both instantiations have the same signature (T only appears inside)
  const auto run = is_float(gx) ? forward_steps<float> : forward_steps<double>;
  run(gx, w_hh_t, hs, raws, hm, ln_w, w_ci, w_cf, w_co, lnc_w, lnc_b, keep_h, keep_c, h_mask, raw,
      mu_hh, rstd_hh, mu_c, rstd_c, gates, c_new, a_c, h_all, c_all, eps, reverse, save,
      keep_raw);
}

void lstm_backward(Tensor w_hh, Tensor w_hh_t, std::vector<Tensor> hm_s,
                   std::vector<Tensor> hm_t_s, std::vector<Tensor> dz_s, OptTensor raw_scratch,
                   OptTensor raw, OptTensor ln_w, OptTensor mu_hh, OptTensor rstd_hh,
                   Tensor w_ci, Tensor w_cf, Tensor w_co, OptTensor lnc_w, OptTensor mu_c,
                   OptTensor rstd_c, OptTensor keep_h, OptTensor keep_c, OptTensor h_mask,
                   Tensor gates, OptTensor c_new, Tensor c_all, Tensor a_c, OptTensor dy,
                   Tensor mmres, Tensor dh, Tensor dc, Tensor carry_h, Tensor dz_all,
                   OptTensor d_raw, OptTensor g_lnhh_w, OptTensor g_lnc_w, OptTensor g_lnc_b,
                   OptTensor dw_hh_t, bool reverse) {
  const auto run = is_float(gates) ? backward_steps<float> : backward_steps<double>;
  run(w_hh, w_hh_t, hm_s, hm_t_s, dz_s, raw_scratch, raw, ln_w, mu_hh, rstd_hh, w_ci, w_cf, w_co,
      lnc_w, mu_c, rstd_c, keep_h, keep_c, h_mask, gates, c_new, c_all, a_c, dy, mmres, dh, dc,
      carry_h, dz_all, d_raw, g_lnhh_w, g_lnc_w, g_lnc_b, dw_hh_t, reverse);
}

}  // namespace

// The ops, in a namespace named after the build (compiled.py's cache key), so builds with other
// flags load side by side. Every tensor is contiguous and of the dtype of gx / gates (the LN gain
// accumulators float64); (x!) marks what an op writes.
STABLE_TORCH_LIBRARY(TORCH_EXTENSION_NAME, m) {
  m.def(
      "lstm_forward(Tensor gx, Tensor w_hh_t, Tensor[] hs, Tensor[] raws, Tensor? hm, "
      "Tensor? ln_w, Tensor w_ci, Tensor w_cf, Tensor w_co, Tensor? lnc_w, Tensor? lnc_b, "
      "Tensor? keep_h, Tensor? keep_c, Tensor? h_mask, Tensor(a!) raw, Tensor(b!)? mu_hh, "
      "Tensor(c!)? rstd_hh, Tensor(d!)? mu_c, Tensor(e!)? rstd_c, Tensor(f!) gates, "
      "Tensor(g!)? c_new, Tensor(h!) a_c, Tensor(i!) h_all, Tensor(j!) c_all, float eps, "
      "bool reverse, bool save, bool keep_raw) -> ()");
  m.def(
      "lstm_backward(Tensor w_hh, Tensor w_hh_t, Tensor[] hm_s, Tensor[] hm_t_s, Tensor[] dz_s, "
      "Tensor(a!)? raw_scratch, Tensor? raw, Tensor? ln_w, Tensor? mu_hh, Tensor? rstd_hh, "
      "Tensor w_ci, Tensor w_cf, Tensor w_co, Tensor? lnc_w, Tensor? mu_c, Tensor? rstd_c, "
      "Tensor? keep_h, Tensor? keep_c, Tensor? h_mask, Tensor gates, Tensor? c_new, "
      "Tensor c_all, Tensor a_c, Tensor? dy, Tensor(b!) mmres, Tensor(c!) dh, Tensor(d!) dc, "
      "Tensor(e!) carry_h, Tensor(f!) dz_all, Tensor(g!)? d_raw, Tensor(h!)? g_lnhh_w, "
      "Tensor(i!)? g_lnc_w, Tensor(j!)? g_lnc_b, Tensor(k!)? dw_hh_t, bool reverse) -> ()");
}

STABLE_TORCH_LIBRARY_IMPL(TORCH_EXTENSION_NAME, CPU, m) {
  m.impl("lstm_forward", TORCH_BOX(&lstm_forward));
  m.impl("lstm_backward", TORCH_BOX(&lstm_backward));
}
