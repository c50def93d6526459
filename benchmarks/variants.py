"""Training throughput of the LSTM and GRU variants torch's fused op cannot run: lstmkit's kernel
(``impl='kernel'``) and loop (``impl='loop'``) vs the vanilla fused ``torch.nn.LSTM`` /
``torch.nn.GRU``, same run.

The peer is the vanilla LSTM / GRU of the same size (oneDNN on CPU, cuDNN on GPU): what the variant
would cost if torch could fuse it. Shapes are those of ``benchmarks/recurrent.py``; every case is
measured in the same process, alternating ours and the peer's repetitions (median) after
``WARMUP`` untimed steps of each (one for the slow loop cases). One JSON
object per line on stdout::

    {"bench": "variants", "case": "lstm-layer_norm-train-B128-T500-D32-H32", "impl": "kernel",
     "ours": 4.1e5, "peer": 7.2e5, "peer_name": "torch.nn.LSTM (vanilla, fused)",
     "ratio": 0.57, "unit": "tok/s"}

``ratio`` = ours / vanilla fused (the issue's goal: kernel >= 0.5 for the LayerNorm, peephole
and zoneout LSTMs at every shape).

Usage::

    python benchmarks/variants.py [--quick] [--threads 2] [--variants layer_norm,peephole]
                                  [--shapes 0,2] [--device cpu|cuda]
                                  [--out results/bench-variants.jsonl]

``--quick`` (~1 min) uses fewer repetitions, the first shape only, and no loop cases;
``--shapes`` picks shapes by their index in ``SHAPES`` (0: B128-T500-D32-H32, 1: B128-T200-D128-H128,
2: B64-T100-D100-H256), e.g. to re-measure one case while developing. The
machine's load average is recorded in the header: the small shapes' kernel runs many small ops,
so a loaded machine (and more threads than free cores) hurts it more than the fused peer.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recurrent import SHAPES, compare, write_jsonl  # noqa: E402  (the sibling benchmark's timer and shapes)

import lstmkit  # noqa: E402
from lstmkit.interop import to_torch_state_dict  # noqa: E402

# Untimed training steps of ours and of the peer before a kernel case's timed ones: with one, the
# first case of a run measured ~0.7x of its value later in the same run (on the loaded 2-core
# machine, either variant first), both sides settling their buffers over a few steps.
WARMUP = 3

VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "layer_norm": ("lstm", {"layer_norm": True}),
    "peephole": ("lstm", {"peephole": True}),
    "zoneout": ("lstm", {"zoneout": 0.1}),
    "recurrent_dropout": ("lstm", {"recurrent_dropout": 0.25}),
    "softsign": ("lstm", {"activation": "softsign"}),
    "reset_before": ("gru", {"reset_after": False}),
    "gru_zoneout": ("gru", {"zoneout": 0.1}),
}


def _train_step(module: nn.Module, x: Tensor) -> Any:
    def fn() -> object:
        module.zero_grad(set_to_none=True)
        out = module(x)[0]
        out.sum().backward()
        if x.is_cuda:
            torch.cuda.synchronize()
        return out

    return fn


def bench(
    variants: list[str],
    quick: bool,
    device: str,
    sink: list[dict[str, Any]],
    shapes: list[tuple[int, int, int, int]] | None = None,
) -> None:
    """Kernel (and loop, unless ``quick``) vs the vanilla fused nn.LSTM / nn.GRU for every
    variant and shape (``shapes``: default all, the first only with ``quick``)."""
    reps = 3 if quick else 5
    if shapes is None:
        shapes = SHAPES[:1] if quick else SHAPES
    for name in variants:
        for b, t, d, h in shapes:
            x = torch.randn(b, t, d, device=device)
            kind, opts = VARIANTS[name]
            cls, peer_cls = (lstmkit.LSTM, nn.LSTM) if kind == "lstm" else (lstmkit.GRU, nn.GRU)
            extra = {"forget_bias": 0.0} if kind == "lstm" else {}
            ours = cls(d, h, **extra, **opts).to(device).train()
            vanilla = cls(d, h, **extra)
            peer = peer_cls(d, h, batch_first=True)
            peer.load_state_dict(to_torch_state_dict(vanilla))
            peer = peer.to(device).train()
            impls = ["kernel"] if quick else ["kernel", "loop"]
            for impl in impls:
                ours.impl = impl
                t_o, t_p = compare(
                    _train_step(ours, x),
                    _train_step(peer, x),
                    reps if impl == "kernel" else max(2, reps // 2),
                    warmup=WARMUP if impl == "kernel" else 1,
                )
                tokens = b * t
                record = {
                    "bench": "variants",
                    "case": f"{kind}-{name.removeprefix(kind + '_')}-train-B{b}-T{t}-D{d}-H{h}",
                    "impl": f"{impl}->{ours.impl_used}",
                    "ours": tokens / t_o,
                    "peer": tokens / t_p,
                    "peer_name": f"torch.nn.{peer_cls.__name__} (vanilla, fused)",
                    "ratio": t_p / t_o,
                    "unit": "tok/s",
                }
                if device != "cpu":
                    record["device"] = torch.cuda.get_device_name()
                print(json.dumps(record), flush=True)
                sink.append(record)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="~1 min: first shape, kernel only")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help=f"comma-separated subset of {list(VARIANTS)}"
    )
    parser.add_argument(
        "--shapes", help=f"comma-separated indices into SHAPES {SHAPES} (default: all; --quick: 0)"
    )
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument(
        "--out", type=Path, help="also write the JSON lines to this file (with a header record)"
    )
    args = parser.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"--variants must be a subset of {list(VARIANTS)}, got {unknown}")
    shapes = None
    if args.shapes is not None:
        try:
            shapes = [SHAPES[int(i)] for i in args.shapes.split(",")]
        except (ValueError, IndexError):
            parser.error(
                f"--shapes must be comma-separated indices in 0..{len(SHAPES) - 1}, "
                f"got {args.shapes!r}"
            )
    if args.device not in ("cpu", "cuda"):
        parser.error(f"--device must be cpu or cuda, got {args.device!r}")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch.cuda.is_available() is False on this machine")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    sink: list[dict[str, Any]] = []
    start = time.perf_counter()
    bench(variants, args.quick, args.device, sink, shapes)
    header = {
        "bench": "variants-run",
        "command": " ".join(
            ["python", "benchmarks/variants.py", *(argv if argv is not None else sys.argv[1:])]
        ),
        "seconds": round(time.perf_counter() - start, 1),
        "threads": args.threads,
        "torch": torch.__version__,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip()
        if args.device == "cpu"
        else torch.cuda.get_device_name(),
        "load_average_1_5_15min": [round(v, 2) for v in os.getloadavg()],
        "cpu_count": os.cpu_count(),
    }
    print(json.dumps(header), flush=True)
    if args.out:
        write_jsonl(args.out, [header, *sink])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
