"""Seed 003's Keras code over several seeds: the peer figure beside ``lstmkit train
imdb-seed003 --seeds 5 --record``.

The lecture note's model exactly (``benchmarks/_keras_tf_epoch.py``: Embedding(10000, 32) ->
LSTM(32) -> Dense(1, sigmoid), rmsprop, binary cross-entropy, 10 epochs, batch 128), Keras 3 on
TensorFlow in ``benchmarks/.venv-keras-tf`` (``bash benchmarks/setup_keras_tf.sh``), on the same
data as the recipe: IMDB with the 10,000 most frequent words, the recipe's training part (the
first 80 % of the training reviews: what the note's ``validation_split = 0.2`` trains on)
padded 'pre' to 500 as the note pads, scored on the 25,000 test reviews. One run per seed
(``keras.utils.set_random_seed``), one after another; writes ``results/peer-keras-seed003.json``
with every seed's test accuracy, the mean, the sample standard deviation (ddof 1), min and max::

    python benchmarks/peer_keras_seed003.py [--seeds 5] [--first 0] [--threads 2] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from imdb_epoch import ROOT, load_data, run_keras, write_npz  # noqa: E402

from lstmkit.files import atomic_write_text  # noqa: E402
from lstmkit.runs import git_commit, machine  # noqa: E402

PYTHON = ROOT / "benchmarks" / ".venv-keras-tf" / "bin" / "python"


def main(argv: list[str] | None = None) -> int:
    """Run the seeds, print one JSON line per seed and the summary, write the result file."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first", type=int, default=0, help="first seed (the recipe's is 0)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "peer-keras-seed003.json")
    args = parser.parse_args(argv)
    if args.seeds < 2:
        raise SystemExit("--seeds must be at least 2 (a spread needs two runs)")
    commit = git_commit()
    start = time.perf_counter()
    data = load_data(10, args.threads, None)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "imdb-seed003.npz"
        write_npz(data, npz)
        for seed in range(args.first, args.first + args.seeds):
            res = run_keras(
                data,
                PYTHON,
                npz,
                epochs=10,
                batch_size=128,
                threads=args.threads,
                seed=seed,
                evaluate=True,
            )
            if isinstance(res, str):
                raise SystemExit(f"seed {seed}: {res}")
            row = {"seed": seed, "value": res.test_accuracy, "fit_seconds": res.fit_seconds}
            print(json.dumps(row), flush=True)
            versions = {k: res.extra[k] for k in ("tensorflow", "keras", "jit_compile")}
            runs.append({**row, "versions": versions})
    values = [float(r["value"]) for r in runs]
    result = {
        "recipe": "peer-keras-seed003",
        "peer_of": "imdb-seed003",
        "metric": "test_accuracy",
        "value": statistics.fmean(values),
        "seeds": [{k: r[k] for k in ("seed", "value", "fit_seconds")} for r in runs],
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values),
        "min": min(values),
        "max": max(values),
        "train_examples": int(len(data.x_train)),
        "test_examples": int(len(data.x_test)),
        "keras": runs[0]["versions"],
        "seconds": time.perf_counter() - start,
        "commit": commit,
        "command": "python benchmarks/peer_keras_seed003.py " + " ".join(argv or sys.argv[1:]),
        "machine": machine(),
        "seed_figure": 0.8658,
    }
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("mean", "std", "min", "max")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
