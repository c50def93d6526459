"""Is the own-data pipeline ever the bottleneck? Rows/s of loading + tokenizing labelled reviews from
a CSV file vs the model's training rows/s on the same rows, in one run.

The 50,000 labelled IMDB reviews (``aclImdb_v1_text.tar.gz``: train + test, pos + neg; found in
``$LSTMKIT_DATA``) are written to a CSV file in a temporary directory (not timed). Then, per
tokenizer kind:

- ``pipeline``: what ``lstmkit train --task text`` does before training, timed end to end:
  read the CSV (:func:`lstmkit.data.text.read_labelled_texts`), class names and ids, train the
  tokenizer on the rows, encode every row (cut to ``maxlen``). Reported as rows/s, with the
  seconds of each part.
  ``--threads`` is also the word tokenizer's thread count (lstmkit.data.fasttok); HF tokenizers
  (bpe, the references) take theirs from ``RAYON_NUM_THREADS``. ``--threads 1,2`` measures every
  case at each count (both sides: torch's threads and the tokenizer's; the case name ends in
  ``-1t`` / ``-2t``); ``lstmkit train`` without ``train.num_threads`` gives the tokenizer torch's
  default count, 2 on a 2-core machine.
- ``training``: the Trainer on those encoded rows (the seed-003 model: embedding 32, LSTM(32),
  length bucketing, batch 128) for ``--steps`` optimizer steps: rows/s.

Both are cold: every pipeline run reads the CSV and trains and encodes from scratch (nothing
encoded is cached). The load of a shared machine moves both sides, so each case alternates
``--repeat`` pipeline runs with as many training runs and reports the medians (the runs are in
``pipeline_runs`` / ``training_runs``); a pipeline slower than ``--repeat-budget`` seconds in all
(``bpe`` / ``unigram`` references) runs once.

One JSON object per line (the format of ``benchmarks/recurrent.py``; ``ratio`` = median pipeline
rows/s / median training rows/s, the goal is >= 10)::

    python benchmarks/data_pipeline.py [--limit N] [--steps 40] [--threads 2 | 1,2] [--repeat 3]
        [--kinds word,bpe,char,unigram] [--reference] [--out FILE]

``--write-csv DIR`` only writes ``DIR/train.csv`` and ``DIR/test.csv`` (``review,sentiment``; the
data set's own 25,000 / 25,000 split, shuffled with seed 0) for the real text example in
docs/own-data.md, and exits.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lstmkit.config import TrainConfig
from lstmkit.data import bpe
from lstmkit.data.batching import SequenceDataset, collate_tokens
from lstmkit.data.resolve import resolve
from lstmkit.data.text import class_names, label_ids, read_labelled_texts
from lstmkit.data.tokenize import train_and_encode, train_tokenizer
from lstmkit.models import ClassifierConfig, SequenceClassifier
from lstmkit.train import Trainer


def write_imdb_csv(tarball: Path, out: Path, limit: int | None) -> int:
    """The labelled reviews of the tarball (train and test, pos and neg) as ``review,label`` CSV,
    in a fixed shuffled order. Returns the number of rows."""
    rows: list[tuple[str, str]] = []
    with tarfile.open(tarball, "r:gz") as tar:
        for member in tar:
            parts = member.name.split("/")
            # aclImdb/{train,test}/{pos,neg}/ID_RATING.txt
            if not member.isfile() or len(parts) != 4 or parts[2] not in ("pos", "neg"):
                continue
            fh = tar.extractfile(member)
            assert fh is not None
            rows.append((fh.read().decode("utf-8"), parts[2]))
    order = np.random.default_rng(0).permutation(len(rows))  # mix pos/neg, the same every run
    rows = [rows[i] for i in order]
    if limit:
        rows = rows[:limit]
    with open(out, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["review", "label"])
        w.writerows(rows)
    return len(rows)


def write_split_csvs(tarball: Path, out_dir: Path) -> dict[str, int]:
    """``out_dir/train.csv`` and ``out_dir/test.csv`` (``review,sentiment``) from the tarball's
    own train / test folders, each shuffled with seed 0. Returns the row counts."""
    rows: dict[str, list[tuple[str, str]]] = {"train": [], "test": []}
    with tarfile.open(tarball, "r:gz") as tar:
        for member in tar:
            parts = member.name.split("/")
            if not member.isfile() or len(parts) != 4 or parts[2] not in ("pos", "neg"):
                continue
            fh = tar.extractfile(member)
            assert fh is not None
            rows[parts[1]].append((fh.read().decode("utf-8"), parts[2]))
    out_dir.mkdir(parents=True, exist_ok=True)
    for split, items in rows.items():
        order = np.random.default_rng(0).permutation(len(items))
        tmp = out_dir / f".{split}.csv.tmp"
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["review", "sentiment"])
            w.writerows(items[i] for i in order)
        tmp.replace(out_dir / f"{split}.csv")
    return {k: len(v) for k, v in rows.items()}


def pipeline(
    path: Path, kind: str, vocab_size: int, maxlen: int, fast: bool = True, threads: int = 1
) -> tuple[Any, dict[str, Any]]:
    """Load + tokenize the CSV as lstmkit train --task text does; (dataset, timings).

    ``fast``: :func:`lstmkit.data.tokenize.train_and_encode` (the texts are cut into words
    once, by lstmkit.data.fasttok, for the training and the ids; its ``train_tokenizer_s`` covers
    both and ``encode_s`` is 0); False: HF tokenizers' own trainer, then its encoder (the
    reference; the same ids)."""
    t0 = time.perf_counter()
    data = read_labelled_texts(path, "review", "label")
    names = class_names(data, "label")
    y = label_ids(data, names, "label", path)
    t1 = time.perf_counter()
    if fast:
        tok, seqs = train_and_encode(
            data.texts,
            kind,  # type: ignore[arg-type]
            vocab_size=vocab_size,
            maxlen=maxlen,
            threads=threads,
        )
        t2 = time.perf_counter()
    else:
        tok = train_tokenizer(data.texts, kind, vocab_size=vocab_size, fast=False)  # type: ignore[arg-type]
        tok.maxlen = maxlen
        t2 = time.perf_counter()
        seqs = tok.encode_batch(data.texts)
    t3 = time.perf_counter()
    ds = SequenceDataset(seqs, y)
    return ds, {
        "rows": len(data),
        "read_s": t1 - t0,
        "train_tokenizer_s": t2 - t1,
        "encode_s": t3 - t2,
        "seconds": t3 - t0,
        "fast": tok._accel is not None,
        "tokens": int(ds.lengths.sum()),
        "vocab_size": tok.vocab_size,
        "unknown_rate": tok.unknown_fraction(seqs),
    }


def training_rate(ds: SequenceDataset, vocab_size: int, steps: int, threads: int) -> dict[str, Any]:
    """Rows/s of ``steps`` training steps of the seed-003 model on ``ds`` (after 3 warm-up steps)."""
    torch.manual_seed(0)
    model = SequenceClassifier(
        ClassifierConfig(num_classes=2, vocab_size=vocab_size, embedding_dim=32, hidden_size=32)
    )
    cfg = TrainConfig(batch_size=128, max_steps=3, epochs=1, num_threads=threads)
    Trainer(model, cfg, num_classes=2, collate=collate_tokens, progress=False).fit(ds, ds.lengths)
    cfg = TrainConfig(batch_size=128, max_steps=steps, epochs=1, num_threads=threads, seed=1)
    trainer = Trainer(model, cfg, num_classes=2, collate=collate_tokens, progress=False)
    start = time.perf_counter()
    history = trainer.fit(ds, ds.lengths)
    seconds = time.perf_counter() - start
    rows = steps * cfg.batch_size
    train_rows = [r for r in history if r["split"] == "train"]
    return {
        "rows_per_s": rows / seconds,
        "seconds": seconds,
        "steps": steps,
        "tokens_per_s": train_rows[-1].get("tokens_per_s") if train_rows else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="use the first N reviews only")
    parser.add_argument("--steps", type=int, default=40, help="training steps to time")
    parser.add_argument(
        "--threads",
        default="2",
        help="torch threads, and the word tokenizer's; a list (1,2) measures each",
    )
    parser.add_argument("--kinds", default="word,bpe,char,unigram", help="tokenizers to measure")
    parser.add_argument(
        "--reference",
        action="store_true",
        help="also time HF tokenizers' own trainer and encoder for each kind (the same ids)",
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="pipeline / training runs per case (medians)"
    )
    parser.add_argument(
        "--repeat-budget",
        type=float,
        default=60.0,
        help="no further pipeline run once a case's runs took this many seconds",
    )
    parser.add_argument("--maxlen", type=int, default=500)
    parser.add_argument("--out", type=Path, help="also write the JSON lines to this file")
    parser.add_argument(
        "--write-csv", type=Path, metavar="DIR", help="only write DIR/train.csv and DIR/test.csv"
    )
    args = parser.parse_args(argv)
    if args.write_csv:
        counts = write_split_csvs(resolve("aclImdb_v1_text.tar.gz"), args.write_csv)
        print(json.dumps({"written": str(args.write_csv), **counts}))
        return 0
    try:
        thread_counts = [int(t) for t in str(args.threads).split(",")]
    except ValueError:
        parser.error(f"--threads: a number or a list such as 1,2, got {args.threads!r}")
    if any(t < 1 for t in thread_counts):
        parser.error(f"--threads: counts must be >= 1, got {args.threads!r}")
    started = time.perf_counter()
    lines: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = Path(tmp) / "imdb.csv"
        n = write_imdb_csv(resolve("aclImdb_v1_text.tar.gz"), csv_path, args.limit)
        size_mb = csv_path.stat().st_size / 1e6
        runs = [(kind, True, t) for kind in args.kinds.split(",") for t in thread_counts]
        # the compiled BPE / Metaspace code is built once per machine (cached): not timed
        build_started = time.perf_counter()
        if {"bpe", "unigram"} & set(args.kinds.split(",")):
            bpe.library()
        build_s = round(time.perf_counter() - build_started, 2)
        if args.reference:
            runs += [(k, False, t) for k in args.kinds.split(",") for t in thread_counts]
        for kind, fast, threads in runs:
            torch.set_num_threads(threads)
            vocab = 10000 if kind != "char" else 2000
            pipes: list[dict[str, Any]] = []
            trains: list[dict[str, Any]] = []
            for _ in range(max(args.repeat, 1)):  # alternate: both sides see the same load
                if not pipes or sum(p["seconds"] for p in pipes) < args.repeat_budget:
                    ds, pipe = pipeline(csv_path, kind, vocab, args.maxlen, fast, threads)
                    pipes.append(pipe)
                trains.append(training_rate(ds, pipe["vocab_size"], args.steps, threads))
            pipe = sorted(pipes, key=lambda p: p["seconds"])[(len(pipes) - 1) // 2]  # median
            pipe_rate = pipe["rows"] / statistics.median(p["seconds"] for p in pipes)
            train = sorted(trains, key=lambda t: t["rows_per_s"])[len(trains) // 2]
            train = {**train, "rows_per_s": statistics.median(t["rows_per_s"] for t in trains)}
            engine = "tokenizers"
            if pipe["fast"]:
                engine = {
                    "bpe": "lstmkit fasttok + compiled BPE",
                    "unigram": "lstmkit fasttok + tokenizers trainer",
                }.get(kind, "lstmkit fasttok")
            lines.append(
                {
                    "bench": "data_pipeline",
                    "case": f"imdb-{n // 1000}k-csv-{kind}"
                    + ("" if fast else "-reference")
                    + (f"-{threads}t" if len(thread_counts) > 1 else ""),
                    "threads": threads,
                    "impl": f"load+{kind} tokenizer ({engine})",
                    "ours": pipe_rate,
                    "peer": train["rows_per_s"],
                    "peer_name": "training (LSTM(32))",
                    "ratio": pipe_rate / train["rows_per_s"],
                    "unit": "rows/s",
                    "goal_10x": pipe_rate >= 10 * train["rows_per_s"],
                    "csv_mb": round(size_mb, 1),
                    "pipeline": pipe,
                    "training": train,
                    "pipeline_runs": [round(p["rows"] / p["seconds"], 1) for p in pipes],
                    "training_runs": [round(t["rows_per_s"], 1) for t in trains],
                    "load_avg": [round(x, 2) for x in os.getloadavg()],
                }
            )
            print(json.dumps(lines[-1]), flush=True)
    header = {
        "bench": "data_pipeline-run",
        "command": "python benchmarks/data_pipeline.py " + " ".join(sys.argv[1:]),
        "seconds": round(time.perf_counter() - started, 1),
        "threads": thread_counts[0]
        if len(thread_counts) == 1
        else ",".join(map(str, thread_counts)),
        "repeat": args.repeat,
        "compiled_build_s": build_s,  # building (or loading) lstmkit.data.bpe, before timing
        "load_avg_end": [round(x, 2) for x in os.getloadavg()],
        "tokenizers_threads": os.environ.get("RAYON_NUM_THREADS", "default (all cores)"),
        # PASSIVE: torch's idle OpenMP threads sleep instead of spinning; with --threads 2 on a
        # 2-core machine that another process shares, spinning made training ~100x slower
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "numpy": np.__version__,
    }
    print(json.dumps(header))
    if args.out:
        tmp_out = args.out.with_name(f".{args.out.name}.tmp")
        tmp_out.write_text("".join(json.dumps(r) + "\n" for r in [header, *lines]))
        tmp_out.replace(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
