"""The ``lstmkit`` command line: ``lstmkit COMMAND [SUBCOMMAND] [OPTIONS]``.

Commands (argparse subparsers; each ``_add_*_parser`` function registers one command and sets a
``handler(args) -> int`` default, so a new command is one function plus one line in
:func:`build_parser`):

- ``demo memory``: SimpleRNN vs GRU vs LSTM on a long-range memory task, no download
  (:mod:`lstmkit.demos.memory`).
- ``train RECIPE [--set k=v ...] [--out RUN] [--resume] [--record]``, ``evaluate RUN``
  (:mod:`lstmkit.experiment`, the tasks of :mod:`lstmkit.tasks`), ``predict RUN "text" ...
  [--file F]`` (:mod:`lstmkit.bundle`).
- ``recipes``: the packaged recipes (:mod:`lstmkit.recipes`) with their seed figures.
- ``report [--check]``: README tables from ``results/`` (:mod:`lstmkit.report`).
- ``train --task text|forecast --train FILE ...`` (no recipe needed): your own texts or series
  (:mod:`lstmkit.tasks.text`, :mod:`lstmkit.tasks.forecast`); ``forecast RUN --data F --out
  F.csv``.

The parser only parses; the work lives in the library. Every error lstmkit raises on purpose is
a :class:`~lstmkit.errors.LstmkitError`: :func:`main` catches it once and prints its message
(exit status 2); the handlers catch nothing. Commands with heavy dependencies of their own (a web
server, ONNX, training) import them inside their handler, so that ``lstmkit --help`` stays fast
as commands are added.
"""

from __future__ import annotations

import argparse
import errno
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

# only what building the parser needs: `lstmkit --help` and `lstmkit train --help` import no
# torch, pydantic or numpy (tests/test_cli_start.py); the handlers import their own modules
from lstmkit.demos.memory_config import TASK_DEFAULTS, TASKS, MemoryConfig
from lstmkit.errors import ConfigError, DataError, LstmkitError
from lstmkit.extras import needs
from lstmkit.recipes import resolve as resolve_recipe
from lstmkit.version import __version__

Handler = Callable[[argparse.Namespace], int]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def _tracker_list(text: str) -> list[str]:
    """``--log tensorboard,mlflow`` -> the names (known ones only: lstmkit.tracking)."""
    known = ("tensorboard", "mlflow")  # lstmkit.tracking.TRACKERS, without importing it
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in known]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"expected tensorboard, mlflow or tensorboard,mlflow, got {text!r}"
        )
    return names


def _add_demo_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = commands.add_parser(
        "demo",
        help="demonstrations: the main IMDB job end to end (default), memory",
        description=(
            "Demonstrations: `lstmkit demo` (= `demo imdb`) trains, exports and serves the seed-003 "
            "IMDB model; `demo memory` needs no download."
        ),
    )
    demos = demo.add_subparsers(dest="demo", metavar="DEMO", required=False)
    demo.set_defaults(handler=_run_demo_imdb)  # plain `lstmkit demo` runs the main demo
    imdb = demos.add_parser(
        "imdb",
        help="the main job: train seed 003's IMDB model, export a bundle, serve it with the page",
        description=(
            "Train seed 003's IMDB LSTM (a few epochs, length bucketing), report test accuracy, "
            "export a bundle and serve it with the web page on 127.0.0.1. `lstmkit demo` alone "
            "runs this with the defaults."
        ),
    )
    imdb.add_argument(
        "--out", type=Path, default=Path("runs/demo-imdb"), help="default: %(default)s"
    )
    imdb.add_argument(
        "--epochs", type=_positive_int, default=4, help="default: %(default)s (seed 003: 10)"
    )
    imdb.add_argument("--host", default="127.0.0.1", help="default: %(default)s")
    imdb.add_argument("--port", type=int, default=8000, help="default: %(default)s")
    imdb.add_argument("--no-serve", action="store_true", help="stop after exporting the bundle")
    imdb.set_defaults(handler=_run_demo_imdb)
    defaults = MemoryConfig()
    memory = demos.add_parser(
        "memory",
        help="why LSTMs exist: SimpleRNN vs GRU vs LSTM on a long-range memory task",
        description=(
            "Train SimpleRNN, GRU and LSTM with the same budget on the adding problem (or the "
            "copy task), print a results table, and write learning_curves.png, "
            "gradient_norms.png (||dL/dx_t|| against the distance from the loss, at "
            "initialisation and after training: the vanishing gradient) and summary.json."
        ),
    )
    memory.add_argument(
        "--out",
        type=Path,
        default=Path("demo-memory"),
        help="folder for the PNGs and summary.json (default: %(default)s)",
    )
    memory.add_argument(
        "--task",
        choices=TASKS,
        default=defaults.task,
        help="the memory task (default: %(default)s)",
    )
    steps = ", ".join(f"{t} {d['steps']}" for t, d in TASK_DEFAULTS.items())
    memory.add_argument(
        "--steps",
        type=_positive_int,
        default=None,
        metavar="T",
        help=f"sequence length (the memory span), at least 4 (default: {steps})",
    )
    memory.add_argument(
        "--iters",
        type=_positive_int,
        default=defaults.iters,
        metavar="N",
        help=(
            f"training iterations per model, minibatches of {defaults.batch_size} "
            "(default: %(default)s)"
        ),
    )
    memory.add_argument(
        "--seed",
        type=int,
        default=defaults.seed,
        metavar="S",
        help="random seed (default: %(default)s)",
    )
    memory.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        metavar="K",
        help="CPU threads for torch (default: 1, fastest for these small matrices)",
    )
    memory.set_defaults(handler=_run_demo_memory)
    hello = demos.add_parser(
        "hello",
        help="seed 002's character RNN: one-hot 'hell' -> 'ello', then it writes 'hello'",
        description=(
            "A SimpleRNN with 3 hidden units reads the one-hot characters of 'hell' and learns to "
            "predict 'ello' (the second 'l' must lead to 'o': the state remembers); then greedy "
            "generation from 'h' writes 'hello'."
        ),
    )
    hello.add_argument(
        "--steps", type=_positive_int, default=200, help="Adam steps (default: %(default)s)"
    )
    hello.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    hello.set_defaults(handler=_run_demo_hello)


def _run_demo_imdb(args: argparse.Namespace) -> int:
    from lstmkit.demos.imdb import ImdbDemoConfig, run_imdb_demo

    if not getattr(args, "no_serve", False):  # before training, not after it
        with needs("serve", "lstmkit demo (it serves the model; --no-serve does not)"):
            import lstmkit.serve.server  # noqa: F401

    config = ImdbDemoConfig(
        epochs=getattr(args, "epochs", 4),
        host=getattr(args, "host", "127.0.0.1"),
        port=getattr(args, "port", 8000),
        serve=not getattr(args, "no_serve", False),
    )
    run_imdb_demo(config, getattr(args, "out", Path("runs/demo-imdb")))
    return 0


def _run_demo_hello(args: argparse.Namespace) -> int:
    from lstmkit.demos.hello import hello_table, train_hello

    _, result = train_hello(steps=args.steps, seed=args.seed)
    for char, nxt in hello_table(result):
        print(f"  {char!r} -> {nxt!r}")
    solved = f"first right at step {result.solved_at}" if result.solved_at else "never right"
    print(
        f"prediction for 'hell': {result.predicted!r} ({solved}; final loss "
        f"{result.losses[-1]:.4f} nats/char); greedy generation from 'h': {result.generated!r}"
    )
    return 0 if result.generated == "hello" else 1


def _run_demo_memory(args: argparse.Namespace) -> int:
    config = MemoryConfig.for_task(
        args.task,
        steps=args.steps,
        iters=args.iters,
        seed=args.seed,
        threads=args.threads,
    )
    from lstmkit.demos.memory import run_memory_demo

    run_memory_demo(config, args.out)
    return 0


def _add_train_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    train = commands.add_parser(
        "train",
        help="train a recipe (TOML) on its data set, or on your own data (--task)",
        description=(
            "Train the model of RECIPE (a packaged recipe's name or a .toml file), evaluate it on the test set and write the run "
            "directory (config, vocabulary, weights, metrics, history, curves, checkpoints). "
            "Multi-process: torchrun --nproc_per_node=N -m lstmkit train RECIPE ... "
            "Your own data, no recipe needed: "
            "`lstmkit train --task text --train train.csv [--valid v.csv] [--test t.csv] "
            "--text-column review --label-column label [--tokenizer word|char|bpe|unigram]` "
            "(CSV/TSV/JSONL/Parquet, any language; run directory also holds tokenizer.json, "
            "evaluation.json, confusion.png) or `lstmkit train --task forecast --train "
            "series.csv --target y [--features a,b] [--time-column ts] --lookback 24 "
            "--horizon 6` (metrics beside naive and seasonal-naive baselines, forecast.png). "
            "A RECIPE given with --task is the base the flags override. See docs/own-data.md."
        ),
    )
    train.add_argument(
        "recipe",
        nargs="?",
        help=(
            "a packaged recipe's name (imdb-seed003; lstmkit recipes lists them) or a recipe "
            "file (my-recipe.toml); optional with --task"
        ),
    )
    train.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe value (train.lr=3e-4, hidden_size=64, ...); repeatable",
    )
    train.add_argument("--out", type=Path, help="run directory (default: runs/<recipe name>)")
    train.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its last checkpoint"
    )
    train.add_argument(
        "--record",
        nargs="?",
        const=Path("results"),
        type=Path,
        metavar="DIR",
        help="also write DIR/<recipe>.json (default DIR: results) for the README tables",
    )
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument(
        "--seeds",
        type=_positive_int,
        metavar="N",
        help=(
            "repeat the run with N seeds (train.seed, +1, ...) into OUT/seed-<s>/ and report the "
            "figure's mean ± std, min and max (with --record: all of them in results/)"
        ),
    )
    train.add_argument(
        "--jobs",
        type=_positive_int,
        default=1,
        help="with --seeds: runs at once, in separate processes sharing the cores (default 1)",
    )
    train.add_argument(
        "--max-minutes",
        type=_positive_float,
        help=(
            "a time budget: stop training after this many minutes, evaluate and save as at the "
            "end (= --set train.max_minutes=M; --task text chooses 8 by itself)"
        ),
    )
    train.add_argument(
        "--quick",
        action="store_true",
        help=(
            "smoke test: 2 optimizer steps on a few examples of the real data, small batches "
            "(checks the recipe end to end; claims no accuracy, so --record is refused)"
        ),
    )
    train.add_argument(
        "--log",
        type=_tracker_list,
        metavar="TRACKERS",
        help=(
            "send the run to experiment trackers: tensorboard (RUN/tensorboard), mlflow "
            "(MLFLOW_TRACKING_URI, else RUN/../mlflow.db), or both: tensorboard,mlflow "
            "(= --set train.log=[...]; pip install 'lstmkit[track]')"
        ),
    )
    _add_own_data_arguments(train)
    train.set_defaults(handler=_run_train)

    evaluate = commands.add_parser("evaluate", help="evaluate a finished run on its test set")
    evaluate.add_argument("run_dir", type=Path)
    evaluate.set_defaults(handler=_run_evaluate)

    predict = commands.add_parser("predict", help="classify texts with a finished run")
    predict.add_argument("run_dir", type=Path)
    predict.add_argument("texts", nargs="*", help="texts to classify")
    predict.add_argument("--file", type=Path, help="a UTF-8 file with one text per line")
    predict.set_defaults(handler=_run_predict)

    report = commands.add_parser("report", help="regenerate the README tables from results/")
    report.add_argument("--readme", type=Path, default=Path("README.md"))
    report.add_argument("--results", type=Path, default=Path("results"))
    report.add_argument("--check", action="store_true", help="exit 1 if the README is out of date")
    report.set_defaults(handler=_run_report)


# flag dest -> field of [data.text] / [data.series] (lstmkit.data.text.TextSource / series.SeriesSource)
_TEXT_FLAGS = {
    "train_file": "train",
    "valid_file": "valid",
    "test_file": "test",
    "text_column": "text_column",
    "label_column": "label_column",
    "encoding": "encoding",
    "valid_fraction": "valid_fraction",
    "tokenizer": "tokenizer",
    "vocab_size": "vocab_size",
    "min_frequency": "min_frequency",
    "lowercase": "lowercase",
    "vectors": "vectors",
    "freeze_vectors": "freeze_vectors",
    "baseline": "baseline",
}
_SERIES_FLAGS = {
    "train_file": "train",
    "target": "target",
    "features": "features",
    "time_column": "time_column",
    "encoding": "encoding",
    "lookback": "lookback",
    "horizon": "horizon",
    "stride": "stride",
    "season": "season",
    "id_column": "id_column",
    "quantiles": "quantiles",
    "baseline": "baseline",
}


def _add_own_data_arguments(train: argparse.ArgumentParser) -> None:
    """``--task text|forecast`` and its flags (they build a recipe: lstmkit.config.recipe_for_task)."""
    own = train.add_argument_group(
        "your own data (--task)", "Train on your own files without a recipe; see docs/own-data.md"
    )
    own.add_argument(
        "--task",
        choices=("text", "forecast"),
        help="text: classify labelled texts; forecast: forecast a numeric column",
    )
    own.add_argument("--train", dest="train_file", help="training file (.csv .tsv .jsonl .parquet)")
    own.add_argument(
        "--valid",
        dest="valid_file",
        help="text: validation file (default: a stratified split of --train)",
    )
    own.add_argument(
        "--test", dest="test_file", help="text: test file (default: report on validation)"
    )
    own.add_argument("--text-column", help="text: column of the texts (default: text)")
    own.add_argument("--label-column", help="text: column of the labels (default: label)")
    own.add_argument(
        "--encoding", help="of the files (default: utf-8; e.g. cp949, shift_jis, latin-1)"
    )
    own.add_argument(
        "--valid-fraction", type=float, help="text: held out when no --valid (default: 0.1)"
    )
    own.add_argument(
        "--tokenizer", choices=("word", "char", "bpe", "unigram"), help="text: default word"
    )
    own.add_argument(
        "--vocab-size", type=_positive_int, help="text: ids incl. [PAD] and [UNK] (default: 20000)"
    )
    own.add_argument(
        "--min-frequency", type=_positive_int, help="text: rarer words read as [UNK] (default: 1)"
    )
    own.add_argument(
        "--lowercase", action="store_const", const=True, help="text: lower-case (Unicode-aware)"
    )
    own.add_argument(
        "--maxlen", type=_positive_int, help="text: keep at most this many tokens (default: 500)"
    )
    own.add_argument("--vectors", help="text: word2vec/GloVe/fastText file for the embedding")
    own.add_argument(
        "--freeze-vectors", action="store_const", const=True, help="text: keep the vectors fixed"
    )
    own.add_argument(
        "--baseline",
        choices=("tfidf", "statsforecast", "none"),
        help=(
            "the classic baselines measured beside the model; text: tfidf (default: TF-IDF word "
            "+ char n-grams + logistic regression, scikit-learn); forecast of many series: "
            "statsforecast (default: AutoETS, AutoTheta, SeasonalNaive, Naive per series); none: "
            "skip them"
        ),
    )
    own.add_argument("--target", help="forecast: the column to forecast")
    own.add_argument("--features", help="forecast: more input columns, comma-separated (A,B)")
    own.add_argument(
        "--time-column", help="forecast: timestamps (unsorted rows are sorted, duplicates refused)"
    )
    own.add_argument(
        "--lookback",
        type=_positive_int,
        help="forecast: input rows per window (default: three detected seasons, bounded)",
    )
    own.add_argument(
        "--horizon", type=_positive_int, help="forecast: steps forecast at once (default: 1)"
    )
    own.add_argument(
        "--stride", type=_positive_int, help="forecast: rows between windows (default: 1)"
    )
    own.add_argument(
        "--season", type=_positive_int, help="forecast: season length (default: detected; 1 = none)"
    )
    own.add_argument(
        "--id-column",
        help=(
            "forecast: the column naming each series of a long-format file (one row per id and "
            "time; default: unique_id when the file has it; none: the file is one series): one "
            "model for all of them"
        ),
    )
    own.add_argument(
        "--quantiles",
        help="forecast of many series: the quantiles forecast, comma-separated (default 0.1,0.5,0.9)",
    )


def _task_recipe(args: argparse.Namespace) -> tuple[object, dict[str, object]]:
    """The (recipe, raw) of ``train --task`` (or of a plain recipe when --task is absent)."""
    from lstmkit.config import load_recipe, recipe_for_task

    flags = _TEXT_FLAGS | _SERIES_FLAGS | {"maxlen": "maxlen"}
    given = [d for d in flags if getattr(args, d, None) is not None]
    if args.task is None:
        if given:
            names = ", ".join("--" + d.removesuffix("_file").replace("_", "-") for d in given)
            raise ConfigError(
                f"{names}: these flags read your own data; add --task text or --task forecast"
            )
        if args.recipe is None:
            raise ConfigError(
                "give a recipe (a name such as imdb-seed003: lstmkit recipes lists them; or a "
                ".toml file) or --task text|forecast"
            )
        return load_recipe(args.recipe, args.overrides)
    mine = _TEXT_FLAGS if args.task == "text" else _SERIES_FLAGS
    stray = [d for d in given if d not in mine and not (d == "maxlen" and args.task == "text")]
    if stray:
        names = ", ".join("--" + d.removesuffix("_file").replace("_", "-") for d in stray)
        raise ConfigError(f"{names}: not used by --task {args.task}")
    options = {field: getattr(args, dest) for dest, field in mine.items()}
    if isinstance(options.get("features"), str):
        options["features"] = [f.strip() for f in str(options["features"]).split(",") if f.strip()]
    if isinstance(options.get("quantiles"), str):
        try:
            options["quantiles"] = [
                float(q) for q in str(options["quantiles"]).split(",") if q.strip()
            ]
        except ValueError:
            raise ConfigError(
                f"--quantiles {options['quantiles']}: give numbers in (0, 1), comma-separated, "
                "holding 0.5 (e.g. 0.1,0.5,0.9)"
            ) from None
    return recipe_for_task(
        args.task,
        options,
        recipe_path=args.recipe,
        data_top={"maxlen": args.maxlen},
        overrides=args.overrides,
    )


def _run_train(args: argparse.Namespace) -> int:
    import logging

    from lstmkit.config import Recipe
    from lstmkit.distributed import peer_lost, shutdown_distributed
    from lstmkit.experiment import quick_overrides, run_recipe, summary

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    finished = False
    if args.max_minutes is not None:
        args.overrides = [*args.overrides, f"train.max_minutes={args.max_minutes}"]
    if args.log is not None:
        args.overrides = [*args.overrides, f"train.log={json.dumps(args.log)}"]
    try:
        recipe_obj, raw = _task_recipe(args)
        assert isinstance(recipe_obj, Recipe)
        recipe = recipe_obj
        if args.quick:
            if args.record:
                raise ConfigError("--quick runs claim no accuracy: drop --record")
            args.overrides = [*args.overrides, *quick_overrides(recipe)]
            recipe_obj, raw = _task_recipe(args)
            assert isinstance(recipe_obj, Recipe)
            recipe = recipe_obj
        out = args.out or Path("runs") / (recipe.name + ("-quick" if args.quick else ""))
        command = (
            " ".join(["lstmkit", *sys.argv[1:]])
            if args.task
            else " ".join(
                ["lstmkit", "train", str(args.recipe), *(f"--set {o}" for o in args.overrides)]
            )
        )
        if args.seeds is not None:
            from lstmkit.repeat import repeat_recipe, summary_line

            if args.resume or args.quick:
                raise ConfigError("--seeds starts fresh runs: drop --resume / --quick")
            if args.seeds > 1:
                if not args.task:
                    jobs = f" --jobs {args.jobs}" if args.jobs > 1 else ""
                    command = command.replace(
                        f"train {args.recipe}", f"train {args.recipe} --seeds {args.seeds}{jobs}", 1
                    )
                repeated = repeat_recipe(
                    recipe,
                    raw,
                    out,
                    args.seeds,
                    jobs=args.jobs,
                    record=args.record,
                    progress=not args.no_progress,
                    command=command,
                )
                finished = True
                print(summary_line(repeated, out))
                return 0
        elif args.jobs != 1:
            raise ConfigError("--jobs runs seeds in parallel: give --seeds N as well")
        metrics = run_recipe(
            recipe,
            raw,
            out,
            resume=args.resume,
            record=args.record,
            progress=not args.no_progress,
            command=command,
        )
        finished = True
    except RuntimeError as err:  # another rank of a torchrun job died: one line, no traceback
        lost = peer_lost(err)
        if lost is None:
            raise
        raise lost from None
    finally:
        # a torchrun job: every rank leaves the process group before the interpreter exits
        shutdown_distributed(wait=finished)
    print(summary(recipe, metrics, out))
    return 0


def _run_evaluate(args: argparse.Namespace) -> int:
    from lstmkit.experiment import evaluate_run

    print(json.dumps(evaluate_run(args.run_dir), indent=2))
    return 0


def _run_predict(args: argparse.Namespace) -> int:
    from lstmkit.bundle import load

    texts = list(args.texts)
    if args.file is not None:
        try:
            texts += [
                line for line in args.file.read_text(encoding="utf-8").splitlines() if line.strip()
            ]
        except (OSError, UnicodeDecodeError) as err:
            raise DataError(f"cannot read {args.file}: {err}") from None
    if not texts:
        raise ConfigError("give at least one text or --file")
    results = load(args.run_dir).predict(texts)
    for text, res in zip(texts, results, strict=True):
        score = res["scores"][res["label"]]
        print(
            json.dumps(
                {"text": text[:80], "label": res["label"], "probability": round(score, 4)},
                ensure_ascii=False,
            )
        )
    return 0


def _run_report(args: argparse.Namespace) -> int:
    from lstmkit.report import read_text, render, update_readme

    if args.check:
        current = read_text(args.readme)
        if render(current, args.results) != current:
            print(
                f"{args.readme} is out of date with {args.results}/: run lstmkit report",
                file=sys.stderr,
            )
            return 1
        return 0
    changed = update_readme(args.readme, args.results)
    print(f"{args.readme}: {'updated' if changed else 'already up to date'}")
    return 0


def _add_sample_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sample = commands.add_parser(
        "sample",
        help="generate text with a trained character language model",
        description=(
            "Prime a language-model run (task = 'language_model', e.g. of the recipe "
            "shakespeare-char) with some characters and sample what follows."
        ),
    )
    sample.add_argument("run_dir", type=Path, help="a finished language-model run directory")
    sample.add_argument("--prime", default="\n", help="the first characters (default: a newline)")
    sample.add_argument(
        "--length", type=_positive_int, default=500, help="characters to sample (default: 500)"
    )
    sample.add_argument(
        "--temperature",
        type=float,
        default=1.0,
        help="< 1 is more conservative, > 1 more surprising (default: %(default)s)",
    )
    sample.add_argument(
        "--top-k", type=_positive_int, default=None, help="sample among the K likeliest characters"
    )
    sample.add_argument("--seed", type=int, default=None, help="make the sample reproducible")
    sample.set_defaults(handler=_run_sample)


def _run_sample(args: argparse.Namespace) -> int:
    from lstmkit.tasks.language_model import sample_text

    if args.temperature <= 0:
        raise ConfigError(f"--temperature must be > 0, got {args.temperature}")
    text = sample_text(
        args.run_dir,
        args.prime,
        args.length,
        temperature=args.temperature,
        top_k=args.top_k,
        seed=args.seed,
    )
    print(text)
    return 0


def _add_tune_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tune = commands.add_parser(
        "tune",
        help="search a recipe's hyperparameters with Optuna (every trial a run directory)",
        description=(
            "Tune RECIPE with Optuna (TPE, median pruning on the validation rows): every trial "
            "is a run in OUT/trial-NNN; the study is OUT/study.db, so running the same command "
            "again continues it (--trials is the study's total). Writes OUT/RECIPE-tuned.toml "
            "(the best configuration: lstmkit train OUT/RECIPE-tuned.toml), OUT/trials.csv and "
            "OUT/optimization_history.png. Needs pip install 'lstmkit[tune]'."
        ),
    )
    tune.add_argument("recipe", help="a packaged recipe's name or a recipe file")
    tune.add_argument(
        "--trials", type=_positive_int, required=True, metavar="N", help="finished trials in all"
    )
    tune.add_argument(
        "--max-minutes",
        type=_positive_float,
        metavar="M",
        help="start no trial after M minutes (a running one finishes)",
    )
    tune.add_argument(
        "--space",
        type=Path,
        metavar="FILE",
        help=(
            "the search space as TOML: [train.lr] low/high/log, [model.hidden_size] choices, ... "
            "(default: train.lr 1e-4..1e-2 log, model.hidden_size 32/64/128/256, model.dropout 0..0.5)"
        ),
    )
    tune.add_argument(
        "--jobs", type=_positive_int, default=1, help="worker processes on the study (default 1)"
    )
    tune.add_argument(
        "--metric",
        help="what to optimise (default: the recipe's train.monitor, else val_loss)",
    )
    tune.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe value in every trial; repeatable",
    )
    tune.add_argument("--out", type=Path, help="the study's folder (default: runs/tune-<recipe>)")
    tune.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: every trial in lstmkit train --quick's mode (a few steps, a few examples)",
    )
    tune.set_defaults(handler=_run_tune)


def _run_tune(args: argparse.Namespace) -> int:
    import logging

    from rich.console import Console
    from rich.table import Table

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    from lstmkit.tune import read_space, tune  # optuna is imported there: a missing one is one line

    overrides = list(args.overrides)
    if args.quick:
        from lstmkit.config import load_recipe
        from lstmkit.experiment import quick_overrides

        recipe, _ = load_recipe(args.recipe, overrides)
        overrides += quick_overrides(recipe)
    result = tune(
        args.recipe,
        trials=args.trials,
        out=args.out,
        overrides=overrides,
        space=read_space(args.space) if args.space is not None else None,
        metric=args.metric,
        max_minutes=args.max_minutes,
        jobs=args.jobs,
    )
    table = Table(title=f"lstmkit tune: {result.metric} ({result.direction})")
    keys = [k for k in (result.trials[0] if result.trials else {}) if k != "run_dir"]
    for key in keys:
        table.add_column(key)
    for row in result.trials:
        table.add_row(
            *(f"{row[k]:.4g}" if isinstance(row[k], float) else str(row[k]) for k in keys)
        )
    Console().print(table)
    if result.best_recipe is None:
        print(f"no trial completed -> {result.out}")
        return 0
    print(
        f"best: trial {result.best_trial}, {result.metric} {result.best_value:.4f} -> "
        f"{result.best_recipe} (lstmkit train {result.best_recipe})"
    )
    return 0


def _add_compare_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    compare = commands.add_parser(
        "compare",
        help="train one recipe with each cell type (SimpleRNN vs LSTM vs GRU) and compare",
        description=(
            "Train RECIPE once per cell type (--cells) into OUT/<cell>/, then write "
            "OUT/comparison.json, .md (a table: test accuracy, loss, parameters, seconds per "
            "epoch) and .png (validation curves overlaid). Seed 003's comparison: "
            "lstmkit compare imdb-seed003 --record --figure "
            "docs/figures/compare-cells.png --markdown docs/compare-cells.md"
        ),
    )
    compare.add_argument(
        "recipe", help="a classification recipe: a packaged recipe's name or a .toml file"
    )
    compare.add_argument(
        "--cells", nargs="+", default=["rnn", "lstm", "gru"], help="default: rnn lstm gru"
    )
    compare.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE"
    )
    compare.add_argument("--out", type=Path, help="default: runs/compare-<recipe name>")
    compare.add_argument(
        "--record",
        nargs="?",
        const=Path("results"),
        type=Path,
        metavar="DIR",
        help="also write DIR/compare-<recipe>.json (default DIR: results)",
    )
    compare.add_argument("--figure", type=Path, help="also write the figure here (PNG)")
    compare.add_argument("--markdown", type=Path, help="also write the Markdown table here")
    compare.add_argument("--quick", action="store_true", help="smoke test (see train --quick)")
    compare.set_defaults(handler=_run_compare)


def _run_compare(args: argparse.Namespace) -> int:
    from lstmkit.compare import compare_cells

    path = resolve_recipe(args.recipe)
    name = path.stem
    result = compare_cells(
        path,
        list(args.cells),
        args.out or Path("runs") / f"compare-{name}",
        overrides=list(args.overrides),
        quick=args.quick,
        record=args.record,
        figure=args.figure,
        markdown=args.markdown,
        command=" ".join(["lstmkit", *sys.argv[1:]]),
    )
    for r in result["cells"]:
        print(
            f"{r['name']:>9}: test accuracy {r['test_accuracy']:.4f}, "
            f"{r['seconds_per_epoch']:.1f} s/epoch, {r['params']:,} parameters"
        )
    return 0


def _add_serve_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    export = commands.add_parser(
        "export",
        help="export a finished run (or bundle) as a model bundle and/or an ONNX file",
        description=(
            "--bundle: write a bundle directory (config.json, model.safetensors, vocab.json, "
            "metrics.json, bundle.json) from RUN_DIR, for lstmkit serve and lstmkit.load (a "
            "classifier), lstmkit serve and lstmkit forecast (a forecaster). "
            "--onnx: write an ONNX graph, checked with onnx.checker and run with onnxruntime "
            "against torch before it is written: a classifier's takes tokens (B, T) and lengths "
            "(B,) and gives probabilities (B, C), dynamic batch and length (checked on random "
            "tokens); a forecaster's takes window (B, lookback, F) and gives forecast "
            "(B, horizon) and quantiles (B, horizon, Q) (checked on windows of the run's data)."
        ),
    )
    export.add_argument("run_dir", type=Path, help="a finished run directory (or a bundle)")
    export.add_argument("--bundle", type=Path, metavar="OUT_DIR", help="new bundle directory")
    export.add_argument("--onnx", type=Path, metavar="FILE", help="ONNX file to write")
    export.set_defaults(handler=_run_export)

    serve = commands.add_parser(
        "serve",
        help="serve bundles or run directories (classifiers, forecasters, language models)",
        description=(
            "HTTP API: POST /v1/predict (classifier), /v1/forecast (forecaster), /v1/generate "
            "(language model), GET /v1/model, /v1/models, /health, /ready, /metrics; OpenAPI "
            "docs at /docs. Several models: each at /models/<directory name>/v1/... "
            "Needs fastapi and uvicorn."
        ),
    )
    serve.add_argument("bundle", type=Path, nargs="+", metavar="RUN_OR_BUNDLE")
    serve.add_argument("--host", default="127.0.0.1", help="address (default: %(default)s)")
    serve.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    serve.add_argument(
        "--token",
        help="require 'Authorization: Bearer TOKEN' on /v1 routes (default: none; visible in "
        "ps: prefer --token-file or the LSTMKIT_TOKEN environment variable)",
    )
    serve.add_argument(
        "--token-file", type=Path, help="the token: this file's first line (see --token)"
    )
    serve.add_argument(
        "--no-micro-batch",
        action="store_true",
        help="run every /v1/predict request on its own (default: concurrent requests are "
        "collected for up to --max-wait-ms and run as one length-sorted batch)",
    )
    serve.add_argument(
        "--max-wait-ms",
        type=float,
        default=2.0,
        help="micro-batching: longest wait for more requests (default: %(default)s)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes on the port (each its own SO_REUSEPORT socket and copy of the "
        "model): the Python work of requests then uses every core (default: %(default)s)",
    )
    serve.add_argument(
        "--threads",
        type=int,
        help="torch threads per worker process (default: 1; a served model's matrices are "
        "small, more threads fight the event loop for the cores)",
    )
    serve.add_argument(
        "--no-access-log",
        action="store_true",
        help="do not print a line per request",
    )
    serve.set_defaults(handler=_run_serve)


def _run_export(args: argparse.Namespace) -> int:
    if args.bundle is None and args.onnx is None:
        raise ConfigError("say what to write: --bundle OUT_DIR and/or --onnx FILE")
    if args.bundle is not None:
        from lstmkit.bundle import export_bundle

        out = export_bundle(args.run_dir, args.bundle)
        print(f"bundle written to {out}")
    if args.onnx is not None:
        from lstmkit.export import export_forecast_run_onnx, export_run_onnx
        from lstmkit.runs import read_run_config, task_of_run

        if task_of_run(read_run_config(args.run_dir)) == "forecast":
            check = export_forecast_run_onnx(args.run_dir, args.onnx)
            print(f"ONNX graph written to {check.path}")
            print(check.summary())
        else:
            path = export_run_onnx(args.run_dir, args.onnx)
            print(f"ONNX graph written to {path}")
    return 0


def _run_serve(args: argparse.Namespace) -> int:
    with needs("serve", "lstmkit serve"):
        from lstmkit.serve.server import serve
    if not 0 <= args.max_wait_ms <= 1000:
        raise ConfigError(f"--max-wait-ms must be in [0, 1000], got {args.max_wait_ms}")
    if args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {args.workers}")
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {args.threads}")
    import os

    from lstmkit.serve.auth import resolve_token

    token = resolve_token(args.token, args.token_file, os.environ)
    # a worker that dies raises WorkerExit, an LstmkitError: main prints it (exit status 2)
    serve(
        args.bundle if len(args.bundle) > 1 else args.bundle[0],
        host=args.host,
        port=args.port,
        token=token,
        workers=args.workers,
        access_log=not args.no_access_log,
        micro_batch=not args.no_micro_batch,
        max_wait_ms=args.max_wait_ms,
        torch_threads=args.threads,
    )
    return 0


def _add_inspect_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    inspect = commands.add_parser(
        "inspect",
        help="gates and token contributions of a model on one text (heatmap PNG)",
        description=(
            "Rerun the model on TEXT step by step: per token the mean input/forget/output gate "
            "(LSTM; reset/update for GRU), the cell-state norm, and each token's contribution "
            "to the label (occlusion: the drop in its probability when the token reads as "
            "unknown). Writes a heatmap PNG and prints a summary."
        ),
    )
    inspect.add_argument("run_dir", type=Path, metavar="RUN_DIR_OR_BUNDLE")
    inspect.add_argument("text", help="the text to look at")
    inspect.add_argument(
        "--out", type=Path, default=Path("inspect.png"), help="PNG to write (default: %(default)s)"
    )
    inspect.set_defaults(handler=_run_inspect)


def _run_inspect(args: argparse.Namespace) -> int:
    from lstmkit.bundle import load
    from lstmkit.inspect import inspect_text, plot_inspection, summarize

    result = inspect_text(load(args.run_dir), args.text)
    path = plot_inspection(result, args.out)
    print(summarize(result))
    print(f"heatmap written to {path}")
    return 0


def _add_studio_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    studio = commands.add_parser(
        "studio",
        help="the training studio: set parameters in a web page, train, watch live, use the model",
        description=(
            "A web page (http://HOST:PORT/) to start runs of the packaged recipes (and those "
            "of --recipes DIR) with the seed's "
            "parameters, watch loss, accuracy, learning rate, gradient norms and ETA live, "
            "compare runs and open a finished run's prediction page. Runs are `lstmkit train` "
            "subprocesses in a queue; runs, metrics and uploads live in --home (SQLite)."
        ),
    )
    studio.add_argument("--host", default="127.0.0.1", help="address (default: %(default)s)")
    studio.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    studio.add_argument(
        "--home",
        type=Path,
        default=Path("studio-home"),
        help="folder for the database, runs, bundles and uploads (default: %(default)s)",
    )
    studio.add_argument(
        "--recipes",
        type=Path,
        metavar="DIR",
        help=(
            "a folder of *.toml recipes of your own, offered beside lstmkit's packaged recipes "
            "(a recipe of yours with a packaged recipe's name takes its place)"
        ),
    )
    studio.add_argument(
        "--token", help="require 'Authorization: Bearer TOKEN' on the API (default: none)"
    )
    studio.add_argument(
        "--max-concurrent",
        type=_positive_int,
        default=1,
        metavar="N",
        help="runs training at once; the others wait (default: %(default)s)",
    )
    studio.set_defaults(handler=_run_studio)


def _run_studio(args: argparse.Namespace) -> int:
    with needs("studio", "lstmkit studio"):  # fastapi and uvicorn: only when the studio runs
        from lstmkit.studio.server import serve_studio
    try:
        serve_studio(
            args.home,
            host=args.host,
            port=args.port,
            recipes_dir=args.recipes,
            packaged_recipes=True,
            token=args.token,
            max_concurrent=args.max_concurrent,
        )
    except ValueError as err:  # the studio's options (home, recipes) name the value at fault
        raise ConfigError(str(err)) from None
    return 0


def _add_forecast_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    forecast = commands.add_parser(
        "forecast",
        help="forecast the steps after the end of new data with a forecasting run",
        description=(
            "Read --data (the columns the run was trained on: target, features, time column; at "
            "least `lookback` rows), forecast the `horizon` steps after its last row and write "
            "them to --out as CSV: step, the next times (when the time column is evenly "
            "spaced), <target>_forecast. Train the run with lstmkit train --task forecast. "
            "With --backtest: re-run the rolling-origin evaluation of the run's own series "
            "(the last 20% of the points as origins) and print the MAE / MASE per step ahead "
            "of the model, naive, seasonal naive and Holt-Winters (--out: also as JSON)."
        ),
    )
    forecast.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    forecast.add_argument("--data", type=Path, help="CSV/TSV/JSONL/Parquet file")
    forecast.add_argument("--out", type=Path, help="CSV file to write (--backtest: JSON)")
    forecast.add_argument("--encoding", default="utf-8", help="of --data (default: %(default)s)")
    forecast.add_argument(
        "--backtest",
        action="store_true",
        help="rolling-origin evaluation of the run (per-step MAE / MASE beside the baselines)",
    )
    forecast.set_defaults(handler=_run_forecast)


def _run_forecast(args: argparse.Namespace) -> int:
    from lstmkit.files import atomic_write_text
    from lstmkit.tasks.forecast import backtest_table, evaluate_forecast_run, forecast_file
    from lstmkit.tasks.panel import (
        evaluate_panel_run,
        forecast_panel_file,
        is_panel_run,
        panel_summary_line,
    )

    panel = is_panel_run(args.run_dir)
    if args.backtest:
        if args.data is not None:
            raise ConfigError("--backtest evaluates the run's own series; drop --data")
        if panel:
            report = evaluate_panel_run(args.run_dir, "rolling")
            print(panel_summary_line(report))
        else:
            report = evaluate_forecast_run(args.run_dir)
            print(backtest_table(report))
        if args.out is not None:
            atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
            print(f"backtest written to {args.out}")
        return 0
    if args.data is None or args.out is None:
        raise ConfigError("lstmkit forecast needs --data FILE and --out FILE (or --backtest)")
    write = forecast_panel_file if panel else forecast_file
    rows = write(args.run_dir, args.data, args.out, encoding=args.encoding)
    for row in rows:
        print(json.dumps(row, ensure_ascii=False))
    print(f"{len(rows)} forecast step(s) written to {args.out}")
    return 0


def _add_recipes_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    recipes = commands.add_parser(
        "recipes",
        help="list the packaged recipes (lstmkit train NAME runs one)",
        description=(
            "The recipes that ship with lstmkit: name, task, data set, the figure the seed's "
            "lecture note reports (when it reports one) and the description. `lstmkit train "
            "NAME` runs one; `--path` prints the files (copy one to start a recipe of your own)."
        ),
    )
    recipes.add_argument("--path", action="store_true", help="print each recipe's file instead")
    recipes.set_defaults(handler=_run_recipes)


def _run_recipes(args: argparse.Namespace) -> int:
    from lstmkit.config import load_recipe
    from lstmkit.recipes import folder, names

    rows = []
    for name in names():
        path = folder() / f"{name}.toml"
        if args.path:
            print(path)
            continue
        recipe, _ = load_recipe(path)
        figure = "-" if recipe.seed_figure is None else f"{recipe.seed_figure:.2%}"
        rows.append((name, recipe.task, recipe.data.dataset, figure, recipe.description))
    if rows:
        head = ("name", "task", "data", "seed figure", "description")
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
        for row in [head, *rows]:
            print("  ".join(c.ljust(w) for c, w in zip(row[:4], widths, strict=True)), row[4])
    return 0


STORAGE_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.EFBIG}
)


def storage_message(err: OSError) -> str:
    """``FILE: No space left on device (...)``: a refused write in words, with what to do."""
    where = err.filename or "a file"
    hint = {
        errno.ENOSPC: "free some space (or choose another --out) and run again with --resume",
        errno.EDQUOT: "free some space (or choose another --out) and run again with --resume",
        errno.EROFS: "the folder is read-only: choose another --out or make it writable",
    }.get(err.errno or 0, "check the folder's permissions or choose another --out")
    return f"{where}: {err.strerror or err}; {hint}; what was saved before is intact"


def build_parser() -> argparse.ArgumentParser:
    """The ``lstmkit`` argument parser with every command registered."""
    parser = argparse.ArgumentParser(
        prog="lstmkit",
        description="Verified, fast recurrent sequence models (LSTM, GRU, SimpleRNN) on PyTorch.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_demo_parser(commands)
    _add_train_parsers(commands)
    _add_sample_parser(commands)
    _add_compare_parser(commands)
    _add_tune_parser(commands)
    _add_serve_parsers(commands)
    _add_inspect_parser(commands)
    _add_forecast_parser(commands)
    _add_studio_parser(commands)
    _add_recipes_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``lstmkit`` command line on ``argv`` (default ``sys.argv[1:]``); return the exit
    status (0 success, 2 usage error) instead of exiting, so it can be called from tests."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors: argparse already printed
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    handler: Handler = args.handler
    try:
        return handler(args)
    except LstmkitError as err:  # every error lstmkit raises on purpose: its message, no traceback
        print(f"lstmkit {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        # the machine refused a write (full disk, read-only folder, no permission): one line
        # naming the file; every write is temp + rename, so what was saved before is intact
        if err.errno not in STORAGE_ERRNOS:
            raise
        print(f"lstmkit {args.command}: error: {storage_message(err)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
