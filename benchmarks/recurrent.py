"""Training and inference throughput of lstmkit's recurrent layers vs torch.nn, side by side.

Every case is measured in the same process, alternating ours and the peer's repetitions so that
machine noise hits both equally; the figure is the median over repetitions. One JSON object per
line on stdout::

    {"bench": "recurrent", "case": "lstm-train-B128-T500-D32-H32", "ours": 1.2e5, "peer": 1.3e5,
     "peer_name": "torch.nn.LSTM", "ratio": 0.93, "unit": "tok/s", "impl": "auto->fused", ...}

Usage::

    python benchmarks/recurrent.py [--quick] [--threads 2] [--out results/bench-recurrent.jsonl]

``--quick`` (< 60 s) uses fewer repetitions and skips the slow loop cases at the largest shapes.
The variable-length cases compare our two fused strategies ('split': padded head + packed tail;
'packed': PackedSequence) with torch.nn on packed input, for bucketed and uniform length spreads,
and record the alternatives: the masked loop, and a padded fused run that ignores lengths (fast
but wrong: the state runs on through the pads).

Against the machine, not a spec sheet: the run first times large float32 GEMMs
(``N x N @ N x N``, 2 N^3 FLOPs, N = 1024, 2048 and 4096, the same threads; median of 5 each) and
takes the best -- the ``recurrent-peak`` row and the header's ``peak_gflops`` -- and every
fixed-shape row gets ``gflops_ours`` / ``gflops_peer`` and their fraction of that peak
(``peak_fraction_ours`` / ``peak_fraction_peer``). The FLOPs
counted per token (:func:`flops_per_token`), with G gates (LSTM 4, GRU 3, RNN 1), D inputs and
H hidden units:

- forward: input projection ``2 G H D`` + recurrent GEMM ``2 G H H`` + gate math ``e_f H``;
- backward (training only): the gradient into the gates' inputs ``2 G H H`` (recurrence) and
  ``2 G H D`` (input), the weight gradients ``2 G H D + 2 G H H``, gate math ``e_b H``;

so a training token is ``6 G H (D + H) + (e_f + e_b) H`` and an inference token
``2 G H (D + H) + e_f H``. Gate math counts one FLOP per element-wise add, multiply or activation
(LSTM e_f = 13: 4 bias adds, 5 activations, 4 for the cell and output; GRU 13; RNN 2; e_b = 2
e_f), 2.5% of the total at H = 32: at B128-T500-D32-H32 an LSTM training token is 49,152 (GEMMs)
+ 1,248 (gates) = 50,400 FLOPs. A fraction above 1 can happen: at H = 256 torch's fused inference
keeps its small per-step GEMMs in cache and ran at 1.03-1.05x the large GEMM's rate on 2 threads.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

import lstmkit
from lstmkit.interop import to_torch_state_dict

SHAPES = [(128, 500, 32, 32), (128, 200, 128, 128), (64, 100, 100, 256)]
OURS = {"lstm": lstmkit.LSTM, "gru": lstmkit.GRU, "rnn": lstmkit.RNN}
PEERS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}
GATES = {"lstm": 4, "gru": 3, "rnn": 1}
GATE_FLOPS = {"lstm": 13, "gru": 13, "rnn": 2}  # forward element-wise FLOPs per hidden unit
PEAK_SIZES = (1024, 2048, 4096)


def flops_per_token(kind: str, train: bool, d: int, h: int) -> int:
    """FLOPs of one token of one layer and direction (the count in the module docstring)."""
    g, e = GATES[kind], GATE_FLOPS[kind]
    forward = 2 * g * h * (d + h) + e * h
    if not train:
        return forward
    return forward + 4 * g * h * (d + h) + 2 * e * h


def gemm_peak(n: int, reps: int = 5) -> float:
    """GFLOP/s of an ``n x n @ n x n`` float32 GEMM with torch's current threads (median)."""
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=gen), torch.randn(n, n, generator=gen)
    out = torch.empty(n, n)
    torch.mm(a, b, out=out)  # warm-up
    times = [_timeit(lambda: torch.mm(a, b, out=out)) for _ in range(reps)]
    return 2 * n**3 / statistics.median(times) / 1e9


def _timeit(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def compare(
    ours: Callable[[], object], peer: Callable[[], object], reps: int, warmup: int = 1
) -> tuple[float, float]:
    """Median seconds of ``ours`` and ``peer``, run alternately ``reps`` times after warm-up."""
    for _ in range(warmup):
        ours()
        peer()
    t_ours, t_peer = [], []
    for i in range(reps):
        # alternate which goes first, so neither always runs on a warm cache
        if i % 2:
            t_peer.append(_timeit(peer))
            t_ours.append(_timeit(ours))
        else:
            t_ours.append(_timeit(ours))
            t_peer.append(_timeit(peer))
    return statistics.median(t_ours), statistics.median(t_peer)


def _step(
    module: nn.Module, x: Tensor, train: bool, run: Callable[[nn.Module, Tensor], Tensor]
) -> Callable[[], object]:
    if train:

        def fn() -> object:
            module.zero_grad(set_to_none=True)
            out = run(module, x)
            out.sum().backward()
            return out

        return fn

    def fn_inf() -> object:
        with torch.inference_mode():
            return run(module, x)

    return fn_inf


def _run_plain(m: nn.Module, x: Tensor) -> Tensor:
    return m(x)[0]


def pair(kind: str, d: int, h: int) -> tuple[lstmkit.layers.Recurrent, nn.Module]:
    opts: dict[str, Any] = {"forget_bias": 0.0} if kind == "lstm" else {}
    ours = OURS[kind](d, h, **opts)
    peer = PEERS[kind](d, h, batch_first=True)
    peer.load_state_dict(to_torch_state_dict(ours))
    return ours, peer


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    """The header and case records as JSON lines, written to a temporary file and renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
    tmp.replace(path)


def emit(record: dict[str, Any], sink: list[dict[str, Any]]) -> None:
    print(json.dumps(record), flush=True)
    sink.append(record)


def bench_shapes(
    kinds: list[str], quick: bool, sink: list[dict[str, Any]], peak: float | None = None
) -> None:
    """The fixed shapes of :data:`SHAPES`; ``peak`` (GFLOP/s of :func:`gemm_peak`) adds each
    row's GFLOP/s and its fraction of the peak."""
    reps = 3 if quick else 7
    for kind in kinds:
        peer_name = f"torch.nn.{PEERS[kind].__name__}"
        for b, t, d, h in SHAPES if not quick or kind == "lstm" else SHAPES[:1]:
            x = torch.randn(b, t, d)
            ours, peer = pair(kind, d, h)
            for mode in ("train", "infer"):
                train = mode == "train"
                impls = ["auto", "loop"]
                if quick and (h > 128 or t > 200):
                    impls = ["auto"]
                for impl in impls:
                    ours.impl = impl
                    t_o, t_p = compare(
                        _step(ours, x, train, _run_plain),
                        _step(peer, x, train, _run_plain),
                        reps if impl == "auto" else max(2, reps // 3),
                    )
                    tokens = b * t
                    record: dict[str, Any] = {
                        "bench": "recurrent",
                        "case": f"{kind}-{mode}-B{b}-T{t}-D{d}-H{h}",
                        "impl": f"{impl}->{ours.impl_used}",
                        "ours": tokens / t_o,
                        "peer": tokens / t_p,
                        "peer_name": peer_name,
                        "ratio": t_p / t_o,
                        "unit": "tok/s",
                    }
                    if peak is not None:
                        per_token = flops_per_token(kind, train, d, h)
                        g_o, g_p = tokens * per_token / t_o / 1e9, tokens * per_token / t_p / 1e9
                        record |= {
                            "flops_per_token": per_token,
                            "gflops_ours": g_o,
                            "gflops_peer": g_p,
                            "peak_fraction_ours": g_o / peak,
                            "peak_fraction_peer": g_p / peak,
                        }
                    emit(record, sink)


def bench_varlen(quick: bool, sink: list[dict[str, Any]], spread: str) -> None:
    """A batch of 128 sequences of variable length: how our variable-length strategies compare
    with torch.nn on packed input. ``spread`` 'bucketed': lengths in [0.9 T, T] (what a
    length-bucketing sampler produces); 'uniform': lengths in [T/10, T] (random batches)."""
    b, t, d, h = 128, 200, 128, 128
    gen = torch.Generator().manual_seed(0)
    low = int(0.9 * t) if spread == "bucketed" else t // 10
    lengths = torch.randint(low, t + 1, (b,), generator=gen)
    lengths[0] = t
    x = torch.randn(b, t, d, generator=gen)
    ours, peer = pair("lstm", d, h)
    reps = 3 if quick else 7
    tokens = int(lengths.sum())

    def run_ours(m: nn.Module, xx: Tensor) -> Tensor:
        return m(xx, lengths=lengths)[0]

    def run_peer(m: nn.Module, xx: Tensor) -> Tensor:
        packed = nn.utils.rnn.pack_padded_sequence(
            xx, lengths, batch_first=True, enforce_sorted=False
        )
        out, _ = m(packed)
        return nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=t)[0]

    for mode in ("train", "infer"):
        train = mode == "train"
        variants = [
            ("split", run_ours),
            ("packed", run_ours),
            ("padded-ignores-lengths", _run_plain),
        ]
        if not quick:
            variants.append(("loop", run_ours))
        for label, run in variants:
            ours.impl = "loop" if label == "loop" else "auto"
            ours.varlen = label if label in ("split", "packed") else "auto"
            t_o, t_p = compare(_step(ours, x, train, run), _step(peer, x, train, run_peer), reps)
            emit(
                {
                    "bench": "recurrent",
                    "case": f"lstm-{mode}-varlen-{spread}-B{b}-T{t}-D{d}-H{h}",
                    "impl": f"{label}->{ours.impl_used}"
                    if label != "padded-ignores-lengths"
                    else label,
                    "ours": tokens / t_o,
                    "peer": tokens / t_p,
                    "peer_name": "torch.nn.LSTM+PackedSequence",
                    "ratio": t_p / t_o,
                    "unit": "tok/s (real tokens)",
                    "correct": label != "padded-ignores-lengths",
                },
                sink,
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="under 60 s: fewer repetitions and cases"
    )
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument(
        "--kinds", default="lstm,gru,rnn", help="comma-separated subset of lstm,gru,rnn"
    )
    parser.add_argument(
        "--out", type=Path, help="also write the JSON lines to this file (with a header record)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = set(kinds) - set(OURS)
    if unknown:
        parser.error(f"--kinds must be a subset of lstm,gru,rnn, got {sorted(unknown)}")
    sink: list[dict[str, Any]] = []
    start = time.perf_counter()
    by_size = {n: gemm_peak(n) for n in PEAK_SIZES}
    best = max(by_size, key=by_size.__getitem__)
    peak = by_size[best]
    emit(
        {
            "bench": "recurrent-peak",
            "case": f"gemm-f32-N{best}",
            "gflops": peak,
            "by_size": {str(n): round(g, 1) for n, g in by_size.items()},
            "threads": args.threads,
        },
        sink,
    )
    bench_shapes(kinds, args.quick, sink, peak)
    if "lstm" in kinds:
        for spread in ("bucketed", "uniform"):
            bench_varlen(args.quick, sink, spread)
    header = {
        "bench": "recurrent-run",
        "command": " ".join(
            ["python", "benchmarks/recurrent.py", *(argv if argv is not None else sys.argv[1:])]
        ),
        "seconds": round(time.perf_counter() - start, 1),
        "threads": args.threads,
        "peak_gflops": round(peak, 1),
        "torch": torch.__version__,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpu_count": torch.get_num_threads(),
    }
    print(json.dumps(header), flush=True)
    if args.out:
        write_jsonl(args.out, [header, *sink])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
