"""Why LSTMs exist: SimpleRNN vs GRU vs LSTM on a long-range memory task, no download needed.

Seed 000's point: a SimpleRNN is trained by backpropagation through time (BPTT), and the gradient
that reaches a step ``k`` steps before the loss is a product of ``k`` Jacobians
``diag(tanh') W_hh``, so it shrinks geometrically and the network cannot learn what happened long
ago (the vanishing gradient). The LSTM's cell state is updated additively, ``c' = f * c + i * g``,
so the gradient along it is scaled by the forget gate ``f`` (close to 1 when the network wants to
remember) instead of by ``W_hh`` — and it reaches far back. The GRU's ``h' = (1 - z) n + z h`` has
the same additive path.

This module trains the three layers of :mod:`lstmkit.layers` with the same budget on

- the **adding problem** (Hochreiter & Schmidhuber, 1997; the variant of Le et al., 2015): input
  ``(B, T, 2)``, channel 0 uniform values in [0, 1), channel 1 two markers, one in the first half
  of the sequence and one in the second half; the target is the sum of the two marked values.
  Predicting the mean, 1.0, gives MSE ``Var(v1 + v2) = 2/12 = 0.167`` (the baseline); a
  prediction counts as correct when ``|pred - target| < 0.04``;
- the **copy task** (Arjovsky et al., 2016): ``S`` symbols out of 8 at the start, blanks, a
  delimiter, and the network must output the ``S`` symbols during the last ``S`` steps. Baseline
  cross-entropy ``log 8 = 2.08``, chance accuracy 1/8.

and measures the vanishing gradient directly: ``||dL/dx_t||`` (per sequence, averaged over a
batch) against the distance from the loss ``T - 1 - t``, at initialisation and after training.

Entry point: :func:`run_memory_demo` (``lstmkit demo memory``). It writes ``learning_curves.png``,
``gradient_norms.png`` and ``summary.json`` to the output folder.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from torch import Tensor, nn

from lstmkit.demos.memory_config import MODEL_KINDS, TASKS, MemoryConfig
from lstmkit.files import atomic_write_text
from lstmkit.layers import GRU, LSTM, RNN, Recurrent

ADDING_TOLERANCE = 0.04
"""A prediction of the adding problem is correct when ``|pred - target| < 0.04``."""
COPY_ALPHABET = 8
DEFAULT_THREADS = 1
"""CPU threads when ``MemoryConfig.threads`` is None. One, not ``min(2, cpus)``: these matrices
(batch 64, hidden 32) are too small for a second thread to pay off (measured per iteration at
T = 100: 1 thread 6.0 / 17.2 / 6.6 ms for SimpleRNN / GRU / LSTM, 2 threads 9.6 / 21.6 / 7.9 ms),
and when another process keeps the second core busy every one of the ~100 per-step OpenMP
barriers waits for a time slice: 2 threads then took seconds per iteration."""
COPY_MAX_SYMBOLS = 10

LossFn = Callable[[Tensor, Tensor], Tensor]


# -- tasks ------------------------------------------------------------------------------------
class MemoryTask(Protocol):
    """A synthetic long-range memory task: how to draw a batch and how to score predictions.

    The model sees ``x`` (B, T, input_size) and predicts ``(B, num_outputs, output_size)`` from
    its last ``num_outputs`` steps.
    """

    @property
    def name(self) -> str:
        """'adding' or 'copy'."""
        ...

    @property
    def steps(self) -> int:
        """T, the sequence length."""
        ...

    @property
    def input_size(self) -> int:
        """D, features per step."""
        ...

    @property
    def output_size(self) -> int:
        """Outputs per scored step (1 for adding, 8 logits for copy)."""
        ...

    @property
    def num_outputs(self) -> int:
        """How many final steps are scored."""
        ...

    @property
    def loss_name(self) -> str:
        """'MSE' or 'CE'."""
        ...

    @property
    def baseline(self) -> float:
        """The loss of the best input-blind guess."""
        ...

    @property
    def chance_accuracy(self) -> float:
        """The accuracy of the best input-blind guess."""
        ...

    def batch(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Draw ``n`` sequences: ``(x, target)``."""
        ...

    def loss(self, pred: Tensor, target: Tensor) -> Tensor:
        """Mean loss over the batch (and the scored steps)."""
        ...

    def accuracy(self, pred: Tensor, target: Tensor) -> float:
        """Fraction of correct predictions."""
        ...


@dataclass(frozen=True)
class AddingTask:
    """The adding problem: ``x`` (B, T, 2) = (value, marker); target (B, 1, 1) = sum of the two
    marked values. One marker lies in steps ``[0, T/2)``, the other in ``[T/2, T)``."""

    steps: int
    name: str = "adding"
    input_size: int = 2
    output_size: int = 1
    num_outputs: int = 1
    loss_name: str = "MSE"
    baseline: float = 2.0 / 12.0  # Var(v1 + v2), v ~ U(0, 1): the MSE of always predicting 1.0
    chance_accuracy: float = 0.0

    def batch(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Draw ``n`` sequences: ``x`` (n, T, 2) and the target (n, 1, 1)."""
        half = self.steps // 2
        values = torch.rand(n, self.steps, generator=generator)
        first = torch.randint(0, half, (n,), generator=generator)
        second = torch.randint(half, self.steps, (n,), generator=generator)
        markers = torch.zeros(n, self.steps)
        rows = torch.arange(n)
        markers[rows, first] = 1.0
        markers[rows, second] = 1.0
        x = torch.stack([values, markers], dim=-1)  # (n, T, 2)
        target = (values * markers).sum(1).view(n, 1, 1)
        return x, target

    def loss(self, pred: Tensor, target: Tensor) -> Tensor:
        """Mean squared error."""
        return F.mse_loss(pred, target)

    def accuracy(self, pred: Tensor, target: Tensor) -> float:
        """Fraction with ``|pred - target| < 0.04``."""
        return float(((pred - target).abs() < ADDING_TOLERANCE).float().mean())


@dataclass(frozen=True)
class CopyTask:
    """The copy task: ``S = min(10, (T - 1) // 2)`` symbols out of 8 at steps ``0..S-1``, blanks,
    a delimiter at step ``T - S - 1``; the model must output the symbols at the last ``S`` steps.
    ``x`` is one-hot (B, T, 10) (8 symbols, blank, delimiter); the target is (B, S) int64."""

    steps: int
    name: str = "copy"
    input_size: int = COPY_ALPHABET + 2
    output_size: int = COPY_ALPHABET
    loss_name: str = "CE"
    baseline: float = math.log(COPY_ALPHABET)  # cross-entropy of the uniform guess
    chance_accuracy: float = 1.0 / COPY_ALPHABET

    @property
    def num_outputs(self) -> int:
        """S, the number of symbols to remember."""
        return min(COPY_MAX_SYMBOLS, (self.steps - 1) // 2)

    def batch(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Draw ``n`` sequences: one-hot ``x`` (n, T, 10) and the symbols (n, S)."""
        s = self.num_outputs
        blank, delimiter = COPY_ALPHABET, COPY_ALPHABET + 1
        symbols = torch.randint(0, COPY_ALPHABET, (n, s), generator=generator)
        tokens = torch.full((n, self.steps), blank, dtype=torch.long)
        tokens[:, :s] = symbols
        tokens[:, self.steps - s - 1] = delimiter
        return F.one_hot(tokens, self.input_size).float(), symbols

    def loss(self, pred: Tensor, target: Tensor) -> Tensor:
        """Cross-entropy over the recalled symbols."""
        return F.cross_entropy(pred.reshape(-1, self.output_size), target.reshape(-1))

    def accuracy(self, pred: Tensor, target: Tensor) -> float:
        """Fraction of recalled symbols that are right."""
        return float((pred.argmax(-1) == target).float().mean())


def make_task(name: str, steps: int) -> MemoryTask:
    """Return the task called ``name`` ('adding' or 'copy') over sequences of ``steps`` steps."""
    if name == "adding":
        return AddingTask(steps)
    if name == "copy":
        return CopyTask(steps)
    raise ValueError(f"task must be one of {TASKS}, got {name!r}")


# -- model ------------------------------------------------------------------------------------
class MemoryModel(nn.Module):
    """A one-layer recurrent network (``kind`` in SimpleRNN, GRU, LSTM) and a Linear head applied
    to its last ``num_outputs`` steps: (B, T, D) -> (B, num_outputs, output_size)."""

    def __init__(
        self,
        kind: str,
        input_size: int,
        hidden_size: int,
        output_size: int,
        num_outputs: int = 1,
    ) -> None:
        super().__init__()
        layers: dict[str, type[Recurrent]] = {"SimpleRNN": RNN, "GRU": GRU, "LSTM": LSTM}
        if kind not in layers:
            raise ValueError(f"kind must be one of {MODEL_KINDS}, got {kind!r}")
        self.kind = kind
        self.num_outputs = int(num_outputs)
        self.rnn = layers[kind](input_size, hidden_size, return_sequences=True, return_state=False)
        self.head = nn.Linear(hidden_size, output_size)

    def forward(self, x: Tensor) -> Tensor:
        """(B, T, D) -> (B, num_outputs, output_size)."""
        out = self.rnn(x)  # (B, T, H)
        assert isinstance(out, Tensor)
        return self.head(out[:, -self.num_outputs :])


def build_model(kind: str, task: MemoryTask, hidden_size: int, seed: int) -> MemoryModel:
    """A :class:`MemoryModel` for ``task``, initialised from ``seed`` (the caller's global RNG is
    left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return MemoryModel(kind, task.input_size, hidden_size, task.output_size, task.num_outputs)


# -- the vanishing-gradient measurement -------------------------------------------------------
def input_gradient_norms(
    model: nn.Module, x: Tensor, target: Tensor, loss_fn: LossFn = F.mse_loss
) -> np.ndarray:
    """``||dL_i/dx_{i,t}||`` for every step ``t``, averaged over the batch: a (T,) float64 array.

    ``L_i`` is the loss of sequence ``i`` alone (the batch-mean loss times B), so the numbers do
    not depend on the batch size. Entry ``t`` is ``T - 1 - t`` steps away from the end of the
    sequence, where the loss is read. Computed in float64 on a copy of the model, so gradients
    that vanish to 1e-40 are measured rather than flushed to zero. Parameter gradients of
    ``model`` are not touched.
    """
    probe = copy.deepcopy(model).double()
    xd = x.detach().double().requires_grad_(True)
    tgt = target.detach().double() if target.is_floating_point() else target.detach()
    loss = loss_fn(probe(xd), tgt) * x.shape[0]
    (grad,) = torch.autograd.grad(loss, xd)
    return grad.norm(dim=-1).mean(0).numpy()


def gradient_ratio(norms: np.ndarray) -> float:
    """``||dL/dx_0|| / ||dL/dx_{T-1}||``: how much of the gradient survives the whole sequence."""
    return float(norms[0] / norms[-1])


# -- training ---------------------------------------------------------------------------------
@dataclass
class ModelResult:
    """What training one model produced."""

    model: str
    train_loss: float  # mean minibatch loss over the last 5% of the iterations
    test_loss: float
    accuracy: float
    seconds: float  # training time
    curve: list[float] = field(repr=False)  # minibatch loss at every iteration
    grad_init: np.ndarray = field(repr=False)  # (T,) input_gradient_norms at initialisation
    grad_trained: np.ndarray = field(repr=False)  # (T,) the same after training

    def to_json(self, task: MemoryTask) -> dict[str, Any]:
        """The JSON record of ``summary.json`` (``mse`` is the test MSE, adding problem only)."""
        out: dict[str, Any] = {
            "model": self.model,
            "train_loss": self.train_loss,
            "test_loss": self.test_loss,
            "accuracy": self.accuracy,
            "seconds": round(self.seconds, 3),
            "grad_ratio_init": gradient_ratio(self.grad_init),
            "grad_ratio_trained": gradient_ratio(self.grad_trained),
        }
        if task.loss_name == "MSE":
            out["mse"] = self.test_loss
        return out


@dataclass
class MemoryDemoResult:
    """Everything :func:`run_memory_demo` produced: the results and the files it wrote."""

    config: MemoryConfig
    results: list[ModelResult]
    summary: dict[str, Any]
    learning_curves: Path
    gradient_norms: Path
    summary_path: Path


@torch.no_grad()
def evaluate(model: nn.Module, task: MemoryTask, x: Tensor, target: Tensor) -> tuple[float, float]:
    """``(loss, accuracy)`` of ``model`` on the fixed set ``(x, target)``."""
    model.eval()
    preds = torch.cat([model(chunk) for chunk in x.split(500)])
    return float(task.loss(preds, target)), task.accuracy(preds, target)


def train_model(
    model: nn.Module,
    task: MemoryTask,
    config: MemoryConfig,
    generator: torch.Generator,
    on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Train ``model`` for ``config.iters`` minibatches drawn from ``generator`` (Adam, gradient
    norm clipped to ``config.clip``); return the minibatch loss of every iteration.
    ``on_step(iteration, loss)`` is called after each update."""
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    # constant learning rate, then a linear decay to 5% over the last (1 - decay_from) of the run:
    # the constant phase gives the gated models time to leave the baseline plateau, the decay
    # lets them settle to a low MSE.
    start = int(config.decay_from * config.iters)
    span = max(1, config.iters - start)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda it: 1.0 if it < start else max(0.05, 1.0 - (it - start) / span)
    )
    losses: list[float] = []
    for it in range(config.iters):
        x, target = task.batch(config.batch_size, generator)
        loss = task.loss(model(x), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), config.clip)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if on_step is not None:
            on_step(it, losses[-1])
    return losses


# -- plots ------------------------------------------------------------------------------------
COLORS = {"SimpleRNN": "tab:red", "GRU": "tab:blue", "LSTM": "tab:green"}


def _moving_average(values: list[float], window: int) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if window <= 1 or len(arr) < window:
        return arr
    kernel = np.ones(window) / window
    return np.convolve(arr, kernel, mode="valid")


def plot_learning_curves(
    results: list[ModelResult], task: MemoryTask, config: MemoryConfig, path: Path
) -> Path:
    """Save the minibatch loss against the iteration for every model, with the baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    window = max(1, config.iters // 50)
    for r in results:
        color = COLORS.get(r.model)
        ax.plot(np.arange(1, len(r.curve) + 1), r.curve, color=color, alpha=0.15, linewidth=0.6)
        smooth = _moving_average(r.curve, window)
        start = len(r.curve) - len(smooth) + 1
        ax.plot(
            np.arange(start, start + len(smooth)),
            smooth,
            color=color,
            linewidth=2,
            label=f"{r.model} (test {task.loss_name} {r.test_loss:.3g})",
        )
    what = "predict 1.0" if task.name == "adding" else "uniform guess"
    ax.axhline(
        task.baseline,
        color="black",
        linestyle="--",
        linewidth=1,
        label=f"baseline: {what} ({task.loss_name} {task.baseline:.3g})",
    )
    ax.set_yscale("log")
    ax.set_xlabel("training iteration")
    ax.set_ylabel(f"training {task.loss_name} (minibatch; bold: moving average of {window})")
    title = "Adding problem" if task.name == "adding" else "Copy task"
    ax.set_title(
        f"{title}, T = {config.steps}: same budget for every model\n"
        f"({config.iters} iterations x batch {config.batch_size}, hidden {config.hidden_size}, "
        f"Adam lr {config.lr:g})"
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_gradient_norms(
    results: list[ModelResult], task: MemoryTask, config: MemoryConfig, path: Path
) -> Path:
    """Save ``||dL/dx_t||`` against the distance ``T - 1 - t`` from the loss, at initialisation
    (left) and after training (right), log y axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 5), dpi=120, sharey=True)
    distance = np.arange(config.steps)[::-1]  # entry t is T - 1 - t steps before the loss
    tiny = np.finfo(np.float64).tiny
    xlabel = (
        "distance from the loss, T - 1 - t (steps)"
        if task.num_outputs == 1
        else f"steps before the end, T - 1 - t (the loss is read on the last {task.num_outputs})"
    )
    for ax, attr, when in (
        (axes[0], "grad_init", "at initialisation"),
        (axes[1], "grad_trained", f"after {config.iters} training iterations"),
    ):
        for r in results:
            norms: np.ndarray = getattr(r, attr)
            ax.plot(
                distance,
                np.maximum(norms, tiny),
                color=COLORS.get(r.model),
                linewidth=2,
                label=f"{r.model} (x_0 / x_T-1: {gradient_ratio(norms):.1e})",
            )
        ax.set_yscale("log")
        ax.set_title(when)
        ax.set_xlabel(xlabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="lower left")
    axes[0].set_ylabel("||dL/dx_t|| (per sequence, batch mean)")
    fig.suptitle(
        f"Vanishing gradients through time (BPTT), T = {config.steps}: "
        "how much gradient reaches input x_t"
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


# -- the demo ---------------------------------------------------------------------------------
def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write atomically: a temporary file in the same folder, fsync, rename."""
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def results_table(results: list[ModelResult], task: MemoryTask, config: MemoryConfig) -> Table:
    """The rich table printed at the end of the demo."""
    title = "Adding problem" if task.name == "adding" else "Copy task"
    criterion = (
        f"accuracy: |pred - target| < {ADDING_TOLERANCE}"
        if task.name == "adding"
        else f"accuracy: symbols recalled (chance {task.chance_accuracy:.3f})"
    )
    table = Table(
        title=f"{title}, T = {config.steps}, {config.iters} iterations x batch {config.batch_size}",
        caption=(
            f"baseline {task.loss_name} {task.baseline:.3f}; {criterion}; grad ratio = "
            "||dL/dx_0|| / ||dL/dx_T-1||, how much gradient crosses the sequence"
        ),
    )
    table.add_column("model")
    table.add_column(f"train\n{task.loss_name}", justify="right")
    table.add_column(f"test\n{task.loss_name}", justify="right")
    table.add_column("accuracy", justify="right")
    table.add_column("grad ratio\ninit", justify="right")
    table.add_column("grad ratio\ntrained", justify="right")
    table.add_column("seconds", justify="right")
    for r in results:
        solved = r.test_loss < 0.1 * task.baseline
        style = "green" if solved else ("red" if r.test_loss > 0.5 * task.baseline else "yellow")
        table.add_row(
            r.model,
            f"{r.train_loss:.4f}",
            f"[{style}]{r.test_loss:.4f}[/{style}]",
            f"{r.accuracy:.1%}",
            f"{gradient_ratio(r.grad_init):.1e}",
            f"{gradient_ratio(r.grad_trained):.1e}",
            f"{r.seconds:.1f}",
        )
    return table


def run_memory_demo(
    config: MemoryConfig, out_dir: str | Path, *, console: Console | None = None
) -> MemoryDemoResult:
    """Train SimpleRNN, GRU and LSTM on ``config.task`` with the same budget, print a table and
    write ``learning_curves.png``, ``gradient_norms.png`` and ``summary.json`` to ``out_dir``.

    Deterministic for a given ``config`` (seed and thread count): every model starts from
    ``config.seed`` and sees the same minibatches and the same test set. Uses
    ``config.threads`` CPU threads (default :data:`DEFAULT_THREADS`, 1) and restores torch's
    thread count afterwards; the caller's global RNG is not touched.
    """
    console = console or Console()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    task = make_task(config.task, config.steps)
    threads = config.threads or DEFAULT_THREADS
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        results = _train_all(config, task, console)
    finally:
        torch.set_num_threads(previous_threads)

    console.print(results_table(results, task, config))
    curves = plot_learning_curves(results, task, config, out / "learning_curves.png")
    grads = plot_gradient_norms(results, task, config, out / "gradient_norms.png")
    summary: dict[str, Any] = {
        "task": task.name,
        "T": config.steps,
        "iters": config.iters,
        "seed": config.seed,
        "batch_size": config.batch_size,
        "hidden_size": config.hidden_size,
        "lr": config.lr,
        "threads": threads,
        "loss": task.loss_name,
        "baseline_loss": task.baseline,
        "accuracy_criterion": (
            f"|pred - target| < {ADDING_TOLERANCE}" if task.name == "adding" else "symbol recalled"
        ),
        "models": [r.to_json(task) for r in results],
    }
    summary_path = out / "summary.json"
    _write_json(summary_path, summary)
    console.print(f"wrote {curves}, {grads}, {summary_path}")
    return MemoryDemoResult(config, results, summary, curves, grads, summary_path)


def _train_all(config: MemoryConfig, task: MemoryTask, console: Console) -> list[ModelResult]:
    test_x, test_y = task.batch(config.test_size, torch.Generator().manual_seed(config.seed + 1))
    probe_n = min(256, config.test_size)
    probe_x, probe_y = test_x[:probe_n], test_y[:probe_n]
    results: list[ModelResult] = []
    progress = Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[loss]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )
    with progress:
        for kind in config.models:
            model = build_model(kind, task, config.hidden_size, config.seed)
            grad_init = input_gradient_norms(model, probe_x, probe_y, task.loss)
            bar = progress.add_task(kind, total=config.iters, loss="")
            every = max(1, config.iters // 100)

            def on_step(it: int, loss: float, bar: Any = bar, every: int = every) -> None:
                if (it + 1) % every == 0 or it + 1 == config.iters:
                    progress.update(
                        bar, completed=it + 1, loss=f"{task.loss_name} {loss:.4f}", refresh=False
                    )

            # every model sees the same minibatches
            generator = torch.Generator().manual_seed(config.seed)
            start = time.perf_counter()
            curve = train_model(model, task, config, generator, on_step)
            seconds = time.perf_counter() - start
            test_loss, accuracy = evaluate(model, task, test_x, test_y)
            tail = max(1, config.iters // 20)
            results.append(
                ModelResult(
                    model=kind,
                    train_loss=float(np.mean(curve[-tail:])),
                    test_loss=test_loss,
                    accuracy=accuracy,
                    seconds=seconds,
                    curve=curve,
                    grad_init=grad_init,
                    grad_trained=input_gradient_norms(model, probe_x, probe_y, task.loss),
                )
            )
    return results
