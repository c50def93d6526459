"""``lstmkit demo`` (and ``lstmkit demo imdb``): the main job end to end.

Trains seed 003's IMDB model (Keras LSTM(32), 10k words, maxlen 500, rmsprop, batch 128; here
with fewer epochs so it finishes in a few minutes on 2 cores, length bucketing on), reports its
test accuracy, exports a bundle and serves it with the web page on 127.0.0.1, printing the URL.
Data resolution as everywhere: ``$LSTMKIT_DATA`` -> user cache -> download.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lstmkit.bundle import export_bundle
from lstmkit.config import Recipe, recipe_from_dict
from lstmkit.errors import ConfigError
from lstmkit.experiment import run_recipe
from lstmkit.runs import read_metrics

SEED003: dict[str, Any] = {
    "name": "demo-imdb-seed003",
    "description": "seed 003's Keras IMDB LSTM(32), quick setting",
    "seed_figure": 0.8658,
    "data": {"dataset": "imdb", "num_words": 10000, "maxlen": 500, "validation_split": 0.2},
    "model": {"embedding_dim": 32, "cell": "lstm", "hidden_size": 32, "pooling": "last"},
    "train": {"optimizer": "rmsprop", "lr": 0.001, "batch_size": 128, "epochs": 10, "seed": 0},
}


@dataclass(frozen=True)
class ImdbDemoConfig:
    """Settings of the demo: epochs of training (seed 003 uses 10), where to write, how to serve."""

    epochs: int = 4
    host: str = "127.0.0.1"
    port: int = 8000
    serve: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.epochs <= 100:
            raise ConfigError(f"epochs must be in [1, 100], got {self.epochs}")
        if not 0 < self.port < 65536:
            raise ConfigError(f"port must be in [1, 65535], got {self.port}")


def demo_recipe(epochs: int) -> Recipe:
    """Seed 003's recipe with ``epochs`` epochs."""
    raw = {**SEED003, "train": {**SEED003["train"], "epochs": epochs}}
    return recipe_from_dict(raw, "lstmkit demo imdb")


def run_imdb_demo(config: ImdbDemoConfig, out: Path) -> dict[str, Any]:
    """Train (or reuse a finished run in ``out/run``), export ``out/bundle``, then serve it.
    Returns the test metrics (when ``serve`` is False; serving blocks until interrupted)."""
    recipe = demo_recipe(config.epochs)
    run_dir, bundle_dir = out / "run", out / "bundle"
    finished = read_metrics(run_dir)
    if finished is not None:
        metrics = finished
        print(f"reusing the finished run in {run_dir} (delete it to train again)")
    else:
        metrics = run_recipe(recipe, recipe.model_dump(), run_dir, command="lstmkit demo imdb")
    test = metrics["test"]
    print(
        f"seed 003 model, {config.epochs} epochs: test accuracy {test['accuracy']:.4f} on "
        f"{test['examples']} reviews (the note reports {recipe.seed_figure} after 10 epochs)"
    )
    if not (bundle_dir / "bundle.json").exists():
        export_bundle(run_dir, bundle_dir)
    print(f"bundle: {bundle_dir}")
    if config.serve:
        from lstmkit.serve.server import serve

        print(f"serving on http://{config.host}:{config.port}/  (API docs: /docs; Ctrl-C stops)")
        serve(bundle_dir, host=config.host, port=config.port)
    return metrics
