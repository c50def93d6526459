"""How much of a default own-data text run is the data pipeline? Its seconds (read the CSV, train
the tokenizer, encode every split; cold and warm cache) as a fraction of that run's training time,
measured in the same process, for each tokenizer kind. The goal: <= 0.10.

The 50,000 labelled IMDB reviews (``aclImdb_v1_text.tar.gz``: train + test, pos + neg; found in
``$LSTMKIT_DATA``) are written to one CSV file in a temporary directory (not timed), the file
``lstmkit train --task text --train imdb.csv --text-column review --label-column label
[--tokenizer KIND]`` would read. Per tokenizer kind, with the default recipe of that command
(:func:`lstmkit.config.recipe_for_task`: vocab_size 20000, maxlen 500, a stratified 10 %
validation split, embedding 32, LSTM(32), batch 128, 10 epochs):

- ``cold``: :func:`lstmkit.tasks.text.prepare_text` end to end with an empty cache of encoded ids
  (read and split the CSV, train the tokenizer on the 45,000 training reviews, encode them and the
  5,000 validation reviews, write the cache entry: :mod:`lstmkit.data.encode_cache`);
- ``warm``: the same call again: the CSV is read and split, the tokenizer and ids are loaded from
  the cache entry;
- ``training``: the default run's training time, estimated in the same run: the Trainer on those
  encoded rows times ``--steps`` optimizer steps (after 3 warm-up steps; length bucketing as the
  run does) -> seconds per step x the default number of steps (epochs x batches per epoch), plus
  one measured validation pass x epochs (the run evaluates once per epoch). ``training.how`` in
  each JSON line says so.

The libraries keep their own settings: ``tokenizers`` on its thread pool, sentencepiece on
``--threads`` threads (default: torch's count, what ``lstmkit train`` gives the tokenizer), torch
on ``--threads``. The cache lives in a temporary ``XDG_CACHE_HOME`` (the user's cache is not
touched). The load of a shared machine moves both sides, so each case alternates ``--repeat``
pipeline runs with as many training measurements and reports the medians (every run is in
``pipeline_runs`` / ``training_runs``); no further cold run once a case's cold runs took
``--repeat-budget`` seconds.

One JSON object per case and line (the format of ``benchmarks/recurrent.py``: ``ours`` = the
pipeline's seconds, ``peer`` = the training's, ``ratio`` = training / pipeline, so >= 10 is the
goal; ``fraction`` = pipeline / training, ``goal`` = 0.10, ``goal_met``), after a header line;
written to ``--out`` only when given::

    python benchmarks/data_pipeline.py [--limit N] [--kinds word,char,bpe,unigram] [--steps 60]
        [--repeat 3] [--threads N] [--out results/bench-data_pipeline.jsonl]

``--write-csv DIR`` only writes ``DIR/train.csv`` and ``DIR/test.csv`` (``review,sentiment``; the
data set's own 25,000 / 25,000 split, shuffled with seed 0) for the real text example in
docs/own-data.md, and exits.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import shutil
import statistics
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lstmkit.config import recipe_for_task
from lstmkit.data import encode_cache
from lstmkit.data.resolve import resolve
from lstmkit.data.tokenize import library_versions
from lstmkit.tasks import text as text_task
from lstmkit.tasks.classify import classifier_trainer_args
from lstmkit.train import Trainer

GOAL = 0.10


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


def pipeline(recipe: Any, threads: int) -> tuple[Any, dict[str, Any]]:
    """``prepare_text`` as ``lstmkit train --task text`` calls it; (prepared data, timings).
    ``encode_s``: the :func:`lstmkit.data.encode_cache.encode_splits` call inside it (train and
    encode, or load the cache entry); ``read_s``: the rest (read, check and split the CSV)."""
    seen: list[Any] = []
    encode = text_task.encode_splits

    def timed(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        out = encode(*args, **kwargs)
        seen.append((time.perf_counter() - t0, out))
        return out

    text_task.encode_splits = timed  # type: ignore[assignment]
    try:
        start = time.perf_counter()
        data = text_task.prepare_text(
            recipe.data.text,
            recipe.data.maxlen,
            recipe.data.truncating,
            recipe.train.seed,
            recipe.data.limit,
            threads=threads,
        )
        seconds = time.perf_counter() - start
    finally:
        text_task.encode_splits = encode  # type: ignore[assignment]
    ((encode_s, encoded),) = seen
    return data, {
        "seconds": seconds,
        "read_s": seconds - encode_s,
        "encode_s": encode_s,
        "cache": encoded.cache,
        "rows": {"train": len(data.train), "valid": len(data.valid)},
        "tokens": int(data.train.lengths.sum() + data.valid.lengths.sum()),
        "vocab_size": data.tokenizer.vocab_size,
        "unknown_rate": data.unknown_rate,
    }


def training_time(recipe: Any, data: Any, steps: int) -> dict[str, Any]:
    """The default run's training seconds, from ``steps`` measured steps (after 3 warm-up
    steps) and one validation pass."""
    torch.manual_seed(recipe.train.seed)
    model, _ = text_task.build_text_model(recipe, data)
    args = classifier_trainer_args(recipe, len(data.labels))
    warm = recipe.train.model_copy(update={"max_steps": 3, "epochs": 1})
    Trainer(model, warm, progress=False, **args).fit(data.train, data.train.lengths)
    cfg = recipe.train.model_copy(update={"max_steps": steps, "epochs": 1, "seed": 1})
    trainer = Trainer(model, cfg, progress=False, **args)
    start = time.perf_counter()
    trainer.fit(data.train, data.train.lengths)
    per_step = (time.perf_counter() - start) / steps
    start = time.perf_counter()
    trainer.evaluate(data.valid, data.valid.lengths)
    eval_s = time.perf_counter() - start
    batches = math.ceil(len(data.train) / recipe.train.batch_size)
    default_steps = recipe.train.epochs * batches
    return {
        "seconds": per_step * default_steps + eval_s * recipe.train.epochs,
        "per_step_s": per_step,
        "steps_timed": steps,
        "default_steps": default_steps,
        "epochs": recipe.train.epochs,
        "batch_size": recipe.train.batch_size,
        "eval_s": eval_s,
        "how": "measured seconds per step x the default steps (epochs x batches) "
        "+ one measured validation pass x epochs",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="use the first N reviews only")
    parser.add_argument("--kinds", default="word,char,bpe,unigram", help="tokenizers to measure")
    parser.add_argument("--steps", type=int, default=60, help="training steps to time")
    parser.add_argument(
        "--threads",
        type=int,
        default=torch.get_num_threads(),
        help="torch's threads and the tokenizer's (default: torch's count, as lstmkit train)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per case (medians)")
    parser.add_argument(
        "--repeat-budget",
        type=float,
        default=120.0,
        help="no further cold run once a case's cold runs took this many seconds",
    )
    parser.add_argument("--out", type=Path, help="also write the JSON lines to this file")
    parser.add_argument(
        "--write-csv", type=Path, metavar="DIR", help="only write DIR/train.csv and DIR/test.csv"
    )
    args = parser.parse_args(argv)
    if args.write_csv:
        counts = write_split_csvs(resolve("aclImdb_v1_text.tar.gz"), args.write_csv)
        print(json.dumps({"written": str(args.write_csv), **counts}))
        return 0
    if args.threads < 1 or args.steps < 1 or args.repeat < 1:
        parser.error("--threads, --steps and --repeat must be >= 1")
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    lines: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["XDG_CACHE_HOME"] = str(Path(tmp) / "cache")  # not the user's cache
        os.environ.pop(encode_cache.NO_CACHE_ENV, None)
        csv_path = Path(tmp) / "imdb.csv"
        n = write_imdb_csv(resolve("aclImdb_v1_text.tar.gz"), csv_path, args.limit)
        for kind in args.kinds.split(","):
            recipe, _ = recipe_for_task(
                "text",
                {"train": str(csv_path), "text_column": "review", "label_column": "label"}
                | {"tokenizer": kind},
            )
            runs: dict[str, list[dict[str, Any]]] = {"cold": [], "warm": []}
            trains: list[dict[str, Any]] = []
            for _ in range(args.repeat):  # alternate: both sides see the same load
                if sum(r["seconds"] for r in runs["cold"]) < args.repeat_budget:
                    shutil.rmtree(encode_cache.cache_dir(), ignore_errors=True)
                    data, cold = pipeline(recipe, args.threads)
                    assert cold["cache"] == "miss", cold["cache"]
                    runs["cold"].append(cold)
                _, warm = pipeline(recipe, args.threads)
                assert warm["cache"] == "hit", warm["cache"]
                runs["warm"].append(warm)
                trains.append(training_time(recipe, data, args.steps))
            train = sorted(trains, key=lambda t: t["seconds"])[(len(trains) - 1) // 2]
            train_s = statistics.median(t["seconds"] for t in trains)
            for phase, done in runs.items():
                pipe = sorted(done, key=lambda p: p["seconds"])[(len(done) - 1) // 2]
                pipe_s = statistics.median(p["seconds"] for p in done)
                what = (
                    f"read CSV + train {kind} tokenizer + encode (cache miss)"
                    if phase == "cold"
                    else "read CSV + load tokenizer and ids (cache hit)"
                )
                lines.append(
                    {
                        "bench": "data_pipeline",
                        "case": f"imdb-{n // 1000}k-csv-{kind}-{phase}",
                        "impl": what,
                        "ours": pipe_s,
                        "peer": train_s,
                        "peer_name": f"default training ({train['epochs']} epochs x "
                        f"{train['default_steps'] // train['epochs']} steps)",
                        "unit": "s",
                        "ratio": train_s / pipe_s,
                        "fraction": pipe_s / train_s,
                        "goal": GOAL,
                        "goal_met": pipe_s / train_s <= GOAL,
                        "threads": args.threads,
                        "csv_mb": round(csv_path.stat().st_size / 1e6, 1),
                        "pipeline": {**pipe, "seconds": pipe_s},
                        "training": {**train, "seconds": train_s},
                        "pipeline_runs": [round(p["seconds"], 2) for p in done],
                        "training_runs": [round(t["seconds"], 1) for t in trains],
                        "versions": library_versions(),
                        "load_avg": [round(x, 2) for x in os.getloadavg()],
                    }
                )
                print(json.dumps(lines[-1]), flush=True)
    header = {
        "bench": "data_pipeline-run",
        "command": "python benchmarks/data_pipeline.py " + " ".join(sys.argv[1:]),
        "seconds": round(time.perf_counter() - started, 1),
        "threads": args.threads,
        "repeat": args.repeat,
        "goal": f"pipeline <= {GOAL:.0%} of the default run's training time",
        "load_avg_end": [round(x, 2) for x in os.getloadavg()],
        # the libraries' own thread settings, as the environment gave them
        "tokenizers_parallelism": os.environ.get("TOKENIZERS_PARALLELISM", "default (on)"),
        "rayon_threads": os.environ.get("RAYON_NUM_THREADS", "default (one per core)"),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
        "torch": torch.__version__,
        **library_versions(),
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
