"""Seconds per training epoch of seed 003's IMDB model: lstmkit vs Keras 3 (TensorFlow) vs torch.

Seed 003 (Keras) trains ``Embedding(10000, 32) -> LSTM(32) -> Dense(1, sigmoid)`` with rmsprop,
batch 128, on IMDB (num_words 10000) padded 'pre' to 500 words, holding out the last 20 % of the
training set (``validation_split=0.2``). Four contenders train that model on the same first 80 %
(20,000 reviews) in the same run, one after the other, with 2 threads each:

1. **lstmkit**: the real recipe path, the packaged ``imdb-seed003`` through ``load_recipe`` +
   ``prepare`` + ``build_model`` + ``Trainer.fit`` (length bucketing on, no validation);
2. **keras3-tensorflow**: the seed's code, Keras 3 on TensorFlow in a subprocess run by
   ``benchmarks/.venv-keras-tf/bin/python`` (``bash benchmarks/setup_keras_tf.sh`` makes it), on
   the same reviews as padded arrays (500, 'pre', as the seed's ``pad_sequences``);
3. **torch.nn.LSTM padded**: plain ``nn.Embedding + nn.LSTM(batch_first) + nn.Linear`` on the same
   padded arrays, RMSprop(lr 1e-3, alpha 0.9, eps 1e-7) as Keras' rmsprop.
4. **lstmkit, bucketing off**: contender 1 with ``data.bucketing = false`` -- random batches,
   each padded to its longest review (up to 500), so its speed-up over torch padded is the
   recurrent kernel's own, apart from what skipping padding saves; its records have
   ``"case": "seed003-epoch-no-bucketing"`` (contender 1's: ``"seed003-epoch"``).

Only the fit is timed (data loading, model building and evaluation are not). The machine is
shared, so the measurement is repeated in ``--repeats`` rounds (default 3) that interleave the
contenders, rotating which one goes first, so that a burst of other work hits all of them alike;
the figures are medians over rounds (``*_rounds`` lists every round, ``ratio_best`` compares the
fastest rounds). Every round starts from the same seed, so it trains the same model again: each
contender is evaluated on the 25,000-review test set after its first round only, and the speed-up
can be read next to the accuracy it comes with. One JSON object per comparison on stdout (and a
run header at the end)::

    {"bench": "imdb_epoch", "case": "seed003-epoch", "ours": <s/epoch>, "peer": <s/epoch>,
     "peer_name": "keras3-tensorflow", "ratio": <peer / ours>, "unit": "s/epoch (ratio = speedup)",
     "ours_test_accuracy": ..., "peer_test_accuracy": ..., "ratio_best": ..., ...}

``ours`` / ``peer`` are seconds per epoch (fit seconds / epochs); ``ratio`` = peer / ours, the
speed-up. ``*_tokens_per_s`` count real (unpadded, truncated to 500) tokens for every contender.
``*_load1`` (the 1-minute load average just before each fit) shows whether other work on the
machine was running.

Usage::

    bash benchmarks/setup_keras_tf.sh            # once: the TensorFlow environment
    python benchmarks/imdb_epoch.py [--epochs N] [--repeats R] [--quick]
                                    [--out results/bench-imdb_epoch.jsonl]

``--quick`` trains on the first 2,560 reviews and tests on the first 2,560 test reviews (a smoke
run of about 30 s on a quiet machine). Without the Keras environment the Keras record says
``"skipped": true`` with the reason (and stderr says how to make it); the torch comparison is
still measured.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmkit.config import Recipe, load_recipe
from lstmkit.data import BucketBatchSampler, SequenceDataset, collate_tokens, pad_sequences
from lstmkit.data.batching import padding_fraction
from lstmkit.files import atomic_write_text
from lstmkit.tasks.classify import Prepared, build_model, prepare
from lstmkit.train import Trainer

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "lstmkit" / "recipes" / "imdb-seed003.toml"
KERAS_PYTHON = ROOT / "benchmarks" / ".venv-keras-tf" / "bin" / "python"
KERAS_SCRIPT = ROOT / "benchmarks" / "_keras_tf_epoch.py"
SETUP_HINT = "bash benchmarks/setup_keras_tf.sh"
MAXLEN = 500
QUICK_EXAMPLES = 2560
KERAS_NAME = "keras3-tensorflow"
TORCH_NAME = "torch.nn.LSTM padded"


@dataclass
class Result:
    """One contender's fit: seconds, accuracy on the test set, and facts about the work done."""

    fit_seconds: float
    epochs: int
    test_accuracy: float | None
    real_tokens: int
    cells: int
    load1: float
    extra: dict[str, Any]

    @property
    def epoch_seconds(self) -> float:
        """Mean seconds per epoch."""
        return self.fit_seconds / self.epochs

    @property
    def tokens_per_s(self) -> float:
        """Real (unpadded) training tokens per second."""
        return self.real_tokens * self.epochs / self.fit_seconds


@dataclass
class Data:
    """The recipe, its datasets (variable length) and the same reviews as padded arrays."""

    recipe: Recipe
    prepared: Prepared
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def train(self) -> SequenceDataset:
        """The training reviews (variable length, truncated to 500)."""
        return self.prepared.train

    @property
    def test(self) -> SequenceDataset:
        """The test reviews (variable length, truncated to 500)."""
        return self.prepared.test


def log(message: str) -> None:
    """Progress on stderr (stdout carries only JSON)."""
    print(f"imdb_epoch: {message}", file=sys.stderr, flush=True)


def _load1() -> float:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return float("nan")


def _first(ds: SequenceDataset, n: int | None) -> SequenceDataset:
    """The first ``n`` items of ``ds`` as a new dataset (``ds`` itself when ``n`` is None)."""
    if n is None or n >= len(ds):
        return ds
    items = [ds[i] for i in range(n)]
    return SequenceDataset([s for s, _ in items], np.array([y for _, y in items], dtype=np.int64))


def load_data(epochs: int, threads: int, limit: int | None) -> Data:
    """Seed 003's recipe with ``epochs``; its train (first 80 %) and test sets, optionally cut to
    the first ``limit`` items, and the same reviews padded 'pre' to 500 as the seed pads them."""
    recipe, _ = load_recipe(RECIPE, [f"train.epochs={epochs}", f"train.num_threads={threads}"])
    if recipe.data.maxlen != MAXLEN or recipe.data.truncating != "pre":
        raise SystemExit(f"{RECIPE} no longer truncates 'pre' to {MAXLEN}; update this benchmark")
    full = prepare(recipe)
    prepared = dataclasses.replace(
        full, train=_first(full.train, limit), valid=None, test=_first(full.test, limit)
    )

    def padded(ds: SequenceDataset) -> tuple[np.ndarray, np.ndarray]:
        seqs = [ds[i][0] for i in range(len(ds))]
        x = pad_sequences(seqs, maxlen=MAXLEN, padding="pre", truncating="pre", dtype="int32")
        y = np.array([ds[i][1] for i in range(len(ds))], dtype=np.int32)
        return x, y

    x_train, y_train = padded(prepared.train)
    x_test, y_test = padded(prepared.test)
    return Data(recipe, prepared, x_train, y_train, x_test, y_test)


# -- 1. lstmkit --------------------------------------------------------------------------------
def run_lstmkit(data: Data, evaluate: bool, bucketing: bool = True) -> Result:
    """The recipe path: build_model + Trainer.fit, no validation; test accuracy when
    ``evaluate``. ``bucketing=False``: the recipe with ``data.bucketing = false`` (random batches
    padded to their longest review, up to 500 like Keras' arrays): the recurrent kernel's own
    speed, apart from what skipping the padding saves."""
    recipe = data.recipe
    if not bucketing:
        recipe = recipe.model_copy(
            update={"data": recipe.data.model_copy(update={"bucketing": False})}
        )
    torch.manual_seed(recipe.train.seed)
    model = build_model(recipe, data.prepared)
    trainer = Trainer(
        model,
        recipe.train,
        num_classes=data.prepared.num_classes,
        collate=collate_tokens,
        run_dir=None,
        bucketing=recipe.data.bucketing,
        bucket_chunk=recipe.data.bucket_chunk,
        progress=False,
    )
    lengths = data.train.lengths
    sampler = BucketBatchSampler(
        lengths,
        recipe.train.batch_size,
        bucketing=recipe.data.bucketing,
        chunk=recipe.data.bucket_chunk,
        seed=recipe.train.seed,
    )
    pad = padding_fraction(lengths, list(sampler))  # epoch 0, as the trainer draws it
    load1 = _load1()
    start = time.perf_counter()
    history = trainer.fit(data.train, lengths)
    fit_seconds = time.perf_counter() - start
    test = trainer.evaluate(data.test, data.test.lengths)["accuracy"] if evaluate else None
    train_rows = [r for r in history if r["split"] == "train"]
    real = int(lengths.sum())
    return Result(
        fit_seconds=fit_seconds,
        epochs=recipe.train.epochs,
        test_accuracy=test,
        real_tokens=real,
        cells=round(real / (1.0 - pad)),
        load1=load1,
        extra={
            "train_loss": [r["loss"] for r in train_rows],
            "train_accuracy": [r["accuracy"] for r in train_rows],
            "impl": getattr(model.rnn, "impl_used", None),
            "bucketing": recipe.data.bucketing,
        },
    )


# -- 3. plain torch ----------------------------------------------------------------------------
class PaddedLSTM(nn.Module):
    """``nn.Embedding -> nn.LSTM(batch_first) -> nn.Linear`` on padded batches (torch's default
    initialisation); the logit is read from the state after the last (real, as padding is 'pre')
    step, as Keras' LSTM returns it."""

    def __init__(self, vocab: int = 10000, dim: int = 32, hidden: int = 32) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, dim)
        self.lstm = nn.LSTM(dim, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: Tensor) -> Tensor:
        """(B, T) token ids -> (B,) logits."""
        _, (h_n, _) = self.lstm(self.embedding(x))
        return self.head(h_n[-1])[:, 0]


def run_torch(data: Data, epochs: int, batch_size: int, seed: int, evaluate: bool) -> Result:
    """Plain torch on the padded arrays: shuffled batches of ``batch_size``, RMSprop as Keras';
    test accuracy when ``evaluate``."""
    torch.manual_seed(seed)
    model = PaddedLSTM()
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)
    x = torch.from_numpy(data.x_train.astype(np.int64))
    y = torch.from_numpy(data.y_train.astype(np.float32))
    gen = torch.Generator().manual_seed(seed)
    losses = []
    load1 = _load1()
    start = time.perf_counter()
    for _ in range(epochs):
        total = torch.zeros((), dtype=torch.float64)
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch_size):
            idx = perm[i : i + batch_size]
            loss = F.binary_cross_entropy_with_logits(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach().double() * len(idx)
        losses.append(float(total) / len(x))
    fit_seconds = time.perf_counter() - start
    return Result(
        fit_seconds=fit_seconds,
        epochs=epochs,
        test_accuracy=_torch_accuracy(model, data) if evaluate else None,
        real_tokens=int(data.train.lengths.sum()),
        cells=int(data.x_train.size),
        load1=load1,
        extra={"train_loss": losses},
    )


def _torch_accuracy(model: PaddedLSTM, data: Data) -> float:
    """Accuracy on the padded test arrays (batches of 512)."""
    model.eval()
    correct = 0
    x_test = torch.from_numpy(data.x_test.astype(np.int64))
    y_test = torch.from_numpy(data.y_test.astype(np.int64))
    with torch.inference_mode():
        for i in range(0, len(x_test), 512):
            pred = (model(x_test[i : i + 512]) > 0).long()
            correct += int((pred == y_test[i : i + 512]).sum())
    return correct / len(x_test)


# -- 2. Keras 3 / TensorFlow (subprocess) ------------------------------------------------------
def write_npz(data: Data, path: Path) -> None:
    """The padded arrays for the Keras subprocess."""
    np.savez(
        path, x_train=data.x_train, y_train=data.y_train, x_test=data.x_test, y_test=data.y_test
    )


def run_keras(
    data: Data,
    python: Path,
    npz: Path,
    *,
    epochs: int,
    batch_size: int,
    threads: int,
    seed: int,
    evaluate: bool,
) -> Result | str:
    """Run ``_keras_tf_epoch.py`` with ``python`` (the Keras/TensorFlow venv's) on the arrays in
    ``npz``; a Result, or why it was skipped."""
    if not python.exists():
        reason = f"{python} is missing; run `{SETUP_HINT}` to create it"
        log(f"SKIPPING {KERAS_NAME}: {reason}")
        return reason
    env = {
        **os.environ,
        "KERAS_BACKEND": "tensorflow",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "CUDA_VISIBLE_DEVICES": "",
    }
    env.pop("PYTHONPATH", None)
    command = [
        str(python),
        str(KERAS_SCRIPT),
        str(npz),
        f"--epochs={epochs}",
        f"--batch-size={batch_size}",
        f"--threads={threads}",
        f"--seed={seed}",
        "--evaluate" if evaluate else "--no-evaluate",
    ]
    load1 = _load1()
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    process_seconds = time.perf_counter() - start
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = proc.stderr.strip().splitlines()[-15:]
        reason = f"the Keras/TensorFlow subprocess failed (exit {proc.returncode}); see stderr"
        log(f"SKIPPING {KERAS_NAME}: {reason}. Its stderr ends with:\n" + "\n".join(tail))
        log(f"if the environment is broken, re-run `{SETUP_HINT}`")
        return reason
    out = json.loads(lines[-1])
    return Result(
        fit_seconds=out["fit_seconds"],
        epochs=epochs,
        test_accuracy=out["test_accuracy"],
        real_tokens=int(data.train.lengths.sum()),
        cells=int(data.x_train.size),
        load1=load1,
        extra={
            "epoch_seconds": out["epoch_seconds"],
            "train_loss": out["train_loss"],
            "process_seconds": process_seconds,
            "jit_compile": out["jit_compile"],
            "tensorflow": out["tensorflow"],
            "keras": out["keras"],
        },
    )


# -- records -----------------------------------------------------------------------------------
def _r(value: float, digits: int = 4) -> float:
    return round(float(value), digits)


def _acc(value: float | None) -> float | None:
    return None if value is None else _r(value)


def comparison(
    ours: list[Result],
    peer: list[Result] | str,
    peer_name: str,
    data: Data,
    quick: bool,
    threads: int,
) -> dict[str, Any]:
    """The JSON record of ours vs one peer over all rounds (``peer`` a string: skipped, with that
    reason). Seconds are medians over rounds; accuracies are the first round's. The case is
    ``seed003-epoch`` when ours ran with bucketing (as the recipe runs it), else
    ``seed003-epoch-no-bucketing``."""
    o_sec = [r.epoch_seconds for r in ours]
    first = ours[0]
    bucketing = first.extra["bucketing"]
    record: dict[str, Any] = {
        "bench": "imdb_epoch",
        "case": "seed003-epoch" if bucketing else "seed003-epoch-no-bucketing",
        "bucketing": bucketing,
        "ours": _r(statistics.median(o_sec), 3),
        "peer": None,
        "peer_name": peer_name,
        "ratio": None,
        "unit": "s/epoch (ratio = speedup)",
        "epochs": first.epochs,
        "rounds": len(ours),
        "quick": quick,
        "threads": threads,
        "train_examples": len(data.train),
        "test_examples": len(data.test),
        "ours_test_accuracy": _acc(first.test_accuracy),
        "peer_test_accuracy": None,
        "accuracy_gap_points": None,
        "ours_rounds": [_r(v, 3) for v in o_sec],
        "ours_tokens_per_s": round(statistics.median(r.tokens_per_s for r in ours)),
        "ours_padded_cells_fraction": _r(1 - first.real_tokens / first.cells),
        "ours_load1": [r.load1 for r in ours],
        "ours_train_loss": [_r(v) for v in first.extra["train_loss"]],
    }
    if isinstance(peer, str):
        record.update(skipped=True, reason=peer)
        return record
    p_sec = [r.epoch_seconds for r in peer]
    p_first = peer[0]
    gap = (
        None
        if first.test_accuracy is None or p_first.test_accuracy is None
        else _r(100 * (first.test_accuracy - p_first.test_accuracy), 2)
    )
    record.update(
        peer=_r(statistics.median(p_sec), 3),
        ratio=_r(statistics.median(p_sec) / statistics.median(o_sec), 3),
        peer_test_accuracy=_acc(p_first.test_accuracy),
        accuracy_gap_points=gap,
        ratio_best=_r(min(p_sec) / min(o_sec), 3),
        peer_rounds=[_r(v, 3) for v in p_sec],
        peer_tokens_per_s=round(statistics.median(r.tokens_per_s for r in peer)),
        peer_padded_cells_fraction=_r(1 - p_first.real_tokens / p_first.cells),
        peer_load1=[r.load1 for r in peer],
        peer_train_loss=[_r(v) for v in p_first.extra["train_loss"]],
    )
    if "epoch_seconds" in p_first.extra:
        record["peer_epoch_seconds"] = [[_r(v, 3) for v in r.extra["epoch_seconds"]] for r in peer]
        record["peer_process_seconds"] = [_r(r.extra["process_seconds"], 1) for r in peer]
        record["peer_jit_compile"] = p_first.extra["jit_compile"]
        record["peer_version"] = f"keras {p_first.extra['keras']}, tf {p_first.extra['tensorflow']}"
    else:
        record["peer_version"] = f"torch {torch.__version__}"
    return record


@dataclass
class Contender:
    """A named way to train once (``run(evaluate)``), and what its rounds gave."""

    name: str
    run: Callable[[bool], Result | str]
    results: list[Result]
    skipped: str | None = None


def run_rounds(contenders: list[Contender], repeats: int) -> None:
    """``repeats`` rounds of every contender, rotating which goes first; evaluate in round 1.
    A contender that is skipped once (its string result) is not tried again."""
    for k in range(repeats):
        order = contenders[k % len(contenders) :] + contenders[: k % len(contenders)]
        for c in order:
            if c.skipped is not None:
                continue
            log(f"round {k + 1}/{repeats}: {c.name}")
            out = c.run(k == 0)
            if isinstance(out, str):
                c.skipped = out
                continue
            c.results.append(out)
            acc = "" if out.test_accuracy is None else f", test accuracy {out.test_accuracy:.4f}"
            log(f"  {out.fit_seconds:.1f} s fit (load {out.load1}){acc}")


def main(argv: list[str] | None = None) -> int:
    """Parse the flags, run the four contenders, print (and with --out write) the records."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=1, help="epochs to train (default 1)")
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="interleaved rounds of all contenders; seconds are medians (default 3)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"train and test on the first {QUICK_EXAMPLES} reviews only (a smoke run)",
    )
    parser.add_argument("--threads", type=int, default=2, help="threads per contender (default 2)")
    parser.add_argument(
        "--out", type=Path, help="also write the JSON lines here (header record first), atomically"
    )
    parser.add_argument(
        "--keras-python",
        type=Path,
        default=KERAS_PYTHON,
        help="the interpreter of the Keras/TensorFlow environment (default: the one that "
        f"`{SETUP_HINT}` makes, benchmarks/.venv-keras-tf/bin/python)",
    )
    args = parser.parse_args(argv)
    if min(args.epochs, args.threads, args.repeats) < 1:
        parser.error("--epochs, --repeats and --threads must be >= 1")
    start = time.perf_counter()
    torch.set_num_threads(args.threads)
    if not args.keras_python.exists():
        log(f"{args.keras_python} is missing: the {KERAS_NAME} contender will be SKIPPED.")
        log(f"Run `{SETUP_HINT}` to create it (a separate venv with tensorflow-cpu).")

    data = load_data(args.epochs, args.threads, QUICK_EXAMPLES if args.quick else None)
    batch_size, seed = data.recipe.train.batch_size, data.recipe.train.seed
    log(
        f"{args.epochs} epoch(s) on {len(data.train)} reviews, test on {len(data.test)}, "
        f"{args.repeats} round(s), {args.threads} threads"
    )
    with tempfile.TemporaryDirectory(prefix="imdb_epoch-") as tmp:
        npz = Path(tmp) / "imdb-seed003.npz"
        write_npz(data, npz)
        ours = Contender("lstmkit (recipe + Trainer, bucketing)", partial(run_lstmkit, data), [])
        plain = Contender(TORCH_NAME, partial(run_torch, data, args.epochs, batch_size, seed), [])
        keras = Contender(
            KERAS_NAME,
            lambda evaluate: run_keras(
                data,
                args.keras_python,
                npz,
                epochs=args.epochs,
                batch_size=batch_size,
                threads=args.threads,
                seed=seed,
                evaluate=evaluate,
            ),
            [],
        )
        flat = Contender(
            "lstmkit (recipe + Trainer, bucketing off)",
            partial(run_lstmkit, data, bucketing=False),
            [],
        )
        run_rounds([ours, plain, keras, flat], args.repeats)

    sink = [
        comparison(mine.results, peer.skipped or peer.results, name, data, args.quick, args.threads)
        for mine in (ours, flat)
        for peer, name in ((plain, TORCH_NAME), (keras, KERAS_NAME))
    ]
    tf_info = keras.results[0].extra if keras.results else {}
    header = {
        "bench": "imdb_epoch-run",
        "command": " ".join(
            ["python", "benchmarks/imdb_epoch.py", *(argv if argv is not None else sys.argv[1:])]
        ),
        "seconds": round(time.perf_counter() - start, 1),
        "threads": args.threads,
        "torch": torch.__version__,
        "tensorflow": tf_info.get("tensorflow"),
        "keras": tf_info.get("keras"),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip()
        + f", {os.cpu_count()} cpus",
    }
    for record in [*sink, header]:
        print(json.dumps(record), flush=True)
    if args.out:
        atomic_write_text(args.out, "".join(json.dumps(r) + "\n" for r in [header, *sink]))
        log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
