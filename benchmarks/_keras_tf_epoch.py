"""The Keras 3 / TensorFlow contender of ``benchmarks/imdb_epoch.py`` (run in a subprocess).

Runs under ``benchmarks/.venv-keras-tf/bin/python`` (made by ``benchmarks/setup_keras_tf.sh``),
never in the project's environment. It builds seed 003's model exactly as the lecture note does::

    Embedding(10000, 32) -> LSTM(32) -> Dense(1, sigmoid); rmsprop, binary_crossentropy, acc

fits it for ``--epochs`` epochs (batch 128, shuffled, no validation: the parent passes the
training part already split off) on the padded arrays of an ``.npz`` written by the parent
(``x_train``, ``y_train``, ``x_test``, ``y_test``; x padded 'pre' to 500 like the seed), times
``model.fit`` only, evaluates on the test arrays (unless ``--no-evaluate``), and prints ONE JSON
object on stdout::

    {"fit_seconds": ..., "epoch_seconds": [...], "test_accuracy": ..., "tensorflow": "2.21.0", ...}

Usage (normally only from imdb_epoch.py)::

    KERAS_BACKEND=tensorflow python benchmarks/_keras_tf_epoch.py DATA.npz --epochs 1 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def run(
    path: str, epochs: int, batch_size: int, threads: int, seed: int, evaluate: bool = True
) -> dict[str, Any]:
    """Fit the seed-003 model on ``path``'s arrays; return timings, test accuracy (None unless
    ``evaluate``) and versions."""
    import numpy as np
    import tensorflow as tf

    # threading must be configured before TensorFlow runs its first op
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras

    if keras.backend.backend() != "tensorflow":
        raise SystemExit(f"expected the tensorflow backend, got {keras.backend.backend()!r}")
    with np.load(path) as data:
        x_train, y_train = data["x_train"], data["y_train"]
        x_test, y_test = data["x_test"], data["y_test"]
    keras.utils.set_random_seed(seed)

    max_features = 10000
    model = keras.Sequential(
        [
            keras.Input(shape=(None,), dtype="int32"),
            keras.layers.Embedding(max_features, 32),
            keras.layers.LSTM(32),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(optimizer="rmsprop", loss="binary_crossentropy", metrics=["acc"])

    class EpochTimer(keras.callbacks.Callback):
        """Wall-clock seconds of every epoch (the first includes graph tracing)."""

        def __init__(self) -> None:
            super().__init__()
            self.seconds: list[float] = []
            self._start = 0.0

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self.seconds.append(time.perf_counter() - self._start)

    timer = EpochTimer()
    start = time.perf_counter()
    history = model.fit(
        x_train, y_train, epochs=epochs, batch_size=batch_size, callbacks=[timer], verbose=0
    )
    fit_seconds = time.perf_counter() - start
    test_loss, test_acc = (
        model.evaluate(x_test, y_test, batch_size=512, verbose=0) if evaluate else (None, None)
    )
    return {
        "fit_seconds": fit_seconds,
        "epoch_seconds": timer.seconds,
        "train_loss": [float(v) for v in history.history["loss"]],
        "train_accuracy": [float(v) for v in history.history["acc"]],
        "test_loss": None if test_loss is None else float(test_loss),
        "test_accuracy": None if test_acc is None else float(test_acc),
        "train_examples": int(len(x_train)),
        "test_examples": int(len(x_test)),
        "params": int(model.count_params()),
        "jit_compile": bool(getattr(model, "jit_compile", False)),
        "threads": {
            "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
        },
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
    }


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run, print the result as one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", help=".npz with x_train, y_train, x_test, y_test")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2, help="TensorFlow intra-op threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--evaluate",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="evaluate on the test arrays after the fit (default: yes)",
    )
    args = parser.parse_args(argv)
    result = run(args.data, args.epochs, args.batch_size, args.threads, args.seed, args.evaluate)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
