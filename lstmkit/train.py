"""The one Trainer: optimisation, evaluation, early stopping, checkpoints, exact resume, DDP.

Data comes as a :class:`torch.utils.data.Dataset` of ``(sequence, label)`` items and a collate
function returning ``(inputs, lengths, labels)``; batches are drawn by
:class:`lstmkit.data.batching.BucketBatchSampler` (length bucketing, DistributedSampler
semantics). The model maps ``(inputs, lengths)`` to logits: ``(B, 1)`` for two classes (sigmoid
+ binary cross-entropy) or ``(B, C)`` (softmax + cross-entropy). A
:class:`lstmkit.models.LanguageModel` maps ``(inputs, state, lengths=)`` to ``(logits, state)``:
the Trainer keeps the state of the training streams (:attr:`Trainer.carry`, detached after every
chunk, zeros at every epoch start; under DDP each rank its own) and checkpoints it, so a resumed
run continues its streams exactly; every evaluation starts its streams from zeros.

Run directory written by rank 0 only::

    history.jsonl / history.csv   one row per evaluation: step, epoch, split, loss, accuracy, ...
    curves.png                    loss and accuracy, train vs validation (seed 003's plots)
    checkpoints/                  see lstmkit.checkpoint (resume is exact)
    best.safetensors              weights of the best evaluation (restored at the end when
                                  early stopping is on)

Multi-process: launch with ``torchrun --nproc_per_node=N -m lstmkit train ...``; the trainer
joins the process group (gloo on CPU, nccl on GPU), wraps the model in DDP, splits every global
batch of ``batch_size`` across ranks, and scales the loss so that the averaged gradient equals
the single-process gradient of the same global batch.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from pydantic import ValidationError
from torch import Tensor, nn
from torch.utils.data import Dataset, default_collate

from lstmkit.adversarial import (
    adversarial_perturbation,
    embedding_moments,
    kl_divergence,
    random_directions,
    scale_from_moments,
)
from lstmkit.checkpoint import (
    atomic_write_text,
    latest_checkpoint,
    load_carry,
    load_checkpoint,
    load_model_state,
    model_state,
    newest_verified_checkpoint,
    rng_state,
    save_checkpoint,
    save_tensors,
    set_rng_state,
)
from lstmkit.config import TrainConfig
from lstmkit.data.batching import BucketBatchSampler
from lstmkit.distributed import DistInfo, init_distributed, shutdown_distributed
from lstmkit.errors import ConfigError, RunDirError, TrainingDiverged
from lstmkit.models import LanguageModel, LMState, SequenceClassifier
from lstmkit.objectives import (
    LOWER_IS_BETTER,
    Classification,
    Objective,
    add_sums,
    confusion_matrix,
    metrics_from_confusion,
)
from lstmkit.optim import kernel_penalty, lr_factor, make_optimizer
from lstmkit.plots import pyplot, save_png
from lstmkit.tracking import Tracker, make_trackers, run_artifacts

__all__ = [
    "DistInfo",
    "ModelLoss",
    "Trainer",
    "fit",
    "collate_pairs",
    "TrainingDiverged",
    "confusion_matrix",
    "init_distributed",
    "shutdown_distributed",
    "metrics_from_confusion",
]

logger = logging.getLogger(__name__)

Collate = Callable[[list[Any]], tuple[Tensor, Tensor, Tensor]]


def detach_state(state: LMState) -> LMState:
    """``state`` cut from the graph: the gradient of the next chunk stops at the boundary
    (truncated BPTT)."""
    if isinstance(state, Tensor):
        return state.detach()
    return tuple(s.detach() for s in state)


def state_tensors(state: LMState) -> dict[str, Tensor]:
    """``{"h": h, "c": c}`` of an LSTM's ``(h, c)``, ``{"h": h}`` of a GRU's / RNN's ``h``."""
    parts = (state,) if isinstance(state, Tensor) else tuple(state)
    if len(parts) > 2:
        raise ValueError(f"expected a state h or (h, c), got {len(parts)} tensors")
    return dict(zip(("h", "c"), parts, strict=False))


def state_from_tensors(tensors: dict[str, Tensor]) -> LMState:
    """The inverse of :func:`state_tensors`."""
    return (tensors["h"], tensors["c"]) if "c" in tensors else tensors["h"]


class ModelLoss(Objective):
    """The model computes its own loss: its output *is* the loss of the batch, a scalar (the
    batch's mean) or 1-D per-item losses; the batch's targets are not used. The history's
    ``loss`` is the mean over batches (over items for per-item losses). No other metric: the
    monitor is ``val_loss``."""

    monitor = "loss"

    def losses(self, output: Tensor, target: Tensor) -> Tensor:
        if output.dim() > 1:
            raise ValueError(
                f"a model that returns its loss returns a scalar or per-item losses (N,); "
                f"got shape {tuple(output.shape)}"
            )
        return output.reshape(-1)

    def sums(self, output: Tensor, target: Tensor, losses: Tensor) -> dict[str, Tensor]:
        return {
            "loss": losses.detach().double().sum().cpu(),
            "count": torch.tensor(float(losses.numel()), dtype=torch.float64),
        }

    def empty(self) -> dict[str, Tensor]:
        return {
            "loss": torch.zeros((), dtype=torch.float64),
            "count": torch.zeros((), dtype=torch.float64),
        }

    def summarise(self, sums: dict[str, Tensor]) -> dict[str, float]:
        count = float(sums["count"])
        return {"loss": float(sums["loss"]) / count if count else float("nan")}


def collate_pairs(items: list[Any]) -> tuple[Any, None, Any]:
    """``(x, y)`` items -> ``(X, None, Y)`` stacked by torch's ``default_collate`` (no
    lengths: the model is called as ``model(X)``)."""
    try:
        xs, ys = zip(*items, strict=True)
    except (TypeError, ValueError):
        raise ValueError(
            f"expected dataset items (input, target), got a {type(items[0]).__name__}; "
            "give collate= for another layout"
        ) from None
    return default_collate(list(xs)), None, default_collate(list(ys))


def collate_whole(items: list[Any]) -> tuple[Any, None, Tensor]:
    """Items -> ``(batch, None, placeholder)``: the whole collated batch goes to the model
    (:class:`ModelLoss`: ``model(batch)`` returns the loss)."""
    return default_collate(items), None, torch.zeros(len(items))


VAT_SEED_OFFSET = 7919  # the unlabelled batches' order: seed + this (not the labelled order)


class _RandomReplay:
    """Snapshot of the random state of the CPU and of ``device`` (a CUDA device): ``restore``
    puts it back, so the next forward pass draws the same dropout masks again."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.device = device
        self.cpu_state = torch.get_rng_state()
        self.cuda_state = torch.cuda.get_rng_state(device) if self.cuda else None

    def restore(self) -> None:
        torch.set_rng_state(self.cpu_state)
        if self.cuda_state is not None:
            torch.cuda.set_rng_state(self.cuda_state, self.device)


def layer_groups(model: nn.Module) -> dict[str, list[tuple[str, nn.Parameter]]]:
    """Parameters grouped by layer: the name up to and including the first numeric index
    (``rnn.cells.0.weight_ih`` -> ``rnn.cells.0``), else the first component
    (``embedding.weight`` -> ``embedding``)."""
    groups: dict[str, list[tuple[str, nn.Parameter]]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        parts = name.split(".")
        cut = next((i + 1 for i, part in enumerate(parts[:-1]) if part.isdigit()), 1)
        groups.setdefault(".".join(parts[:cut]), []).append((name, p))
    return groups


class Trainer:
    """Train ``model`` on ``train`` with ``config``; evaluate on ``valid``. See the module docstring.

    The same loop trains every recipe and any ``nn.Module`` of one's own: progress bar,
    evaluation every ``evaluate_every`` steps, early stopping on ``monitor`` with the best weights
    restored, atomic checkpoints, exact resume (weights, optimizer, random state, data order),
    DDP under torchrun, and the trackers of ``config.log``. :func:`fit` is the short way in::

        import torch
        from torch import nn
        import lstmkit

        class Tagger(nn.Module):  # any module: a batch (B, T, 8) -> logits (B, 3)
            def __init__(self) -> None:
                super().__init__()
                self.rnn = lstmkit.LSTM(8, 32, return_state=False)
                self.head = nn.Linear(32, 3)

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return self.head(self.rnn(x)[:, -1])

        data = [(torch.randn(20, 8), i % 3) for i in range(256)]  # (input, target) items
        trainer = lstmkit.fit(
            Tagger(), data[:200], data[200:], num_classes=3, run_dir="runs/tagger",
            epochs=5, lr=3e-3, evaluate_every=10, early_stopping=3, log=["tensorboard"],
        )
        trainer.best            # {"value": best val_accuracy, "step": ...}
        # interrupted? the same call with resume=True continues exactly where it stopped

    Args:
        model: maps a batch's inputs to the output the objective expects: ``model(inputs,
            lengths)`` when the collate gives lengths (lstmkit's models), ``model(inputs)``
            when it gives None (:func:`collate_pairs`, the default); logits for
            classification, the loss itself for :class:`ModelLoss`.
        config: :class:`lstmkit.config.TrainConfig`.
        objective: :class:`lstmkit.objectives.Objective` (loss and metrics); default
            ``Classification(num_classes)``.
        num_classes: C (2 = sigmoid head), for the default classification objective.
        run_dir: where history, plots and checkpoints go (None: nothing is written).
        collate: ``list[item] -> (inputs, lengths, targets)``; default :func:`collate_pairs`
            (``(x, y)`` items stacked), :func:`collate_whole` for :class:`ModelLoss`. Inputs may
            be a tensor or tuples / lists / dicts of tensors (moved to the device whole).
        bucketing: batch sequences of similar length together (see
            :class:`lstmkit.data.batching.BucketBatchSampler`). A dataset with a
            ``batch_sampler(batch_size, *, num_replicas, rank)`` method (e.g. a language model's
            consecutive chunks) chooses its own batches instead.
        bucket_chunk: a bucket holds this many batches, sorted by length.
        progress: show a rich progress bar (rank 0 only).
        dist_info: position in a distributed job (default: from the environment).
        callbacks: :class:`lstmkit.tracking.Tracker` objects of one's own (rank 0 only), called
            like the trackers ``config.log`` names: ``start`` / ``log_row`` per history row /
            ``finish``.
        hparams: the hyperparameters the trackers record (a nested dict; default: ``config``).
        experiment: the MLflow experiment of ``config.log = ["mlflow"]`` (a recipe's name).

    Every training row of the history also holds ``grad_norm`` (global, before clipping),
    ``layers`` (per layer, see :func:`layer_groups`: ``grad_norm`` and ``update_ratio`` =
    ||w_after - w_before|| / ||w_before|| of the last step), ``tokens_per_s``, ``total_steps``
    and ``eta_s``.
    """

    def __init__(
        self,
        model: nn.Module,
        config: TrainConfig,
        *,
        collate: Collate | None = None,
        objective: Objective | None = None,
        num_classes: int | None = None,
        run_dir: Path | None = None,
        bucketing: bool = True,
        bucket_chunk: int = 50,
        progress: bool = True,
        dist_info: DistInfo | None = None,
        callbacks: Sequence[Tracker] = (),
        hparams: dict[str, Any] | None = None,
        experiment: str = "lstmkit",
    ) -> None:
        if objective is None:
            if num_classes is None:
                raise ValueError("give an objective or num_classes (for classification)")
            objective = Classification(num_classes)
        self.objective = objective
        self.monitor = (config.monitor or f"val_{objective.monitor}").removeprefix("val_")
        self.cfg = config
        self.collate: Collate = collate or (  # type: ignore[assignment]
            collate_whole if isinstance(objective, ModelLoss) else collate_pairs
        )
        self.run_dir = run_dir
        self.bucketing = bucketing
        self.bucket_chunk = bucket_chunk
        self.progress = progress
        self.dist = dist_info or DistInfo.from_env()
        # before the process group and the model: a tracker that cannot run is one error now
        trackers = make_trackers(config.log, run_dir, experiment=experiment)
        self.trackers: list[Tracker] = [*trackers, *callbacks] if self.dist.is_main else []
        self.hparams = hparams if hparams is not None else config.model_dump()
        self._tracking_open = False
        self.device = init_distributed(self.dist)
        if config.num_threads:
            torch.set_num_threads(config.num_threads)
        for key in ("adversarial_eps", "vat_eps"):
            eps = getattr(config, key)
            if eps and not (isinstance(model, SequenceClassifier) and model.embedding is not None):
                raise ConfigError(
                    f"train.{key} = {eps} perturbs the word vectors of a SequenceClassifier "
                    f"with an embedding; got a {type(model).__name__} "
                    + ("without one" if isinstance(model, SequenceClassifier) else "")
                    + f" -- set train.{key} = 0"
                )
        self.model = model.to(self.device)
        self.optimizer = make_optimizer(list(self.model.parameters()), config)
        if self.dist.world_size > 1:
            self.ddp: nn.Module = nn.parallel.DistributedDataParallel(self.model)
        else:
            self.ddp = self.model
        if self.writes:
            assert run_dir is not None
            run_dir.mkdir(parents=True, exist_ok=True)
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] = {"value": None, "step": None}
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        # the state this rank's training streams end with so far (a LanguageModel's, detached):
        # the next batch starts from it; None = zeros (every epoch start)
        self.carry: LMState | None = None
        self.evals_without_improvement = 0
        self.vat_epoch = 0  # position in the unlabelled texts of virtual adversarial training
        self.vat_batch = 0
        self._layer_stats: dict[str, dict[str, float]] = {}
        self.elapsed_before = 0.0  # training seconds of earlier sessions of a resumed run
        self._used = 0.0  # share of the max_minutes budget used
        self._grad_norm = float("nan")

    # -- helpers ---------------------------------------------------------------------------
    @property
    def writes(self) -> bool:
        """Whether this process writes the run directory."""
        return self.run_dir is not None and self.dist.is_main

    @property
    def stateful(self) -> bool:
        """Whether the model takes and returns a recurrent state (a :class:`LanguageModel`,
        whose batches are consecutive chunks of the same streams: truncated BPTT)."""
        return isinstance(self.model, LanguageModel)

    def _forward(
        self, net: nn.Module, inputs: Tensor, lens: Tensor, state: LMState | None
    ) -> tuple[Tensor, LMState | None]:
        """``net``'s output of a batch and, for a stateful model, the state it ends with
        (detached); ``state`` is where it starts (None: zeros; ignored by other models)."""
        if not self.stateful:
            # a collate without lengths (lstmkit.fit's default): the model takes the inputs only
            return (net(inputs) if lens is None else net(inputs, lens)), None
        if state is not None:
            first = state if isinstance(state, Tensor) else state[0]  # (L, B, H)
            if first.shape[1] != inputs.shape[0]:
                state = None  # a batch of another size (e.g. the last, shorter one) starts afresh
        output, new = net(inputs, state, lengths=lens)
        return output, detach_state(new)

    def _sampler(self, dataset: Dataset[Any], lengths: np.ndarray, *, train: bool) -> Any:
        batch_size = self.cfg.batch_size if train else self.cfg.eval_batch_size
        own = getattr(dataset, "batch_sampler", None)
        if callable(own):
            return own(batch_size, num_replicas=self.dist.world_size, rank=self.dist.rank)
        return BucketBatchSampler(
            lengths,
            batch_size,
            shuffle=train,
            bucketing=self.bucketing,
            chunk=self.bucket_chunk,
            seed=self.cfg.seed,
            num_replicas=self.dist.world_size,
            rank=self.dist.rank,
        )

    def _batch(self, dataset: Dataset[Any], indices: list[int]) -> tuple[Any, Any, Tensor]:
        inputs, lengths, labels = self.collate([dataset[i] for i in indices])
        return _to_device(inputs, self.device), lengths, _to_device(labels, self.device)

    def _all_sum(self, *values: Tensor) -> list[Tensor]:
        if self.dist.world_size == 1:
            return list(values)
        flat = torch.cat([v.double().reshape(-1) for v in values]).to(self.device)
        dist.all_reduce(flat)
        out, i = [], 0
        for v in values:
            out.append(flat[i : i + v.numel()].reshape(v.shape).to(v.dtype).cpu())
            i += v.numel()
        return out

    def _all_sum_dict(self, sums: dict[str, Tensor]) -> dict[str, Tensor]:
        keys = sorted(sums)
        return dict(zip(keys, self._all_sum(*(sums[k] for k in keys)), strict=True))

    def _budget_used(self) -> float:
        """Share of the ``max_minutes`` budget used (0 without one). In a distributed job the
        ranks agree (the largest share), so they change the rate and stop at the same step."""
        budget = self.cfg.max_minutes
        if not budget or not hasattr(self, "_t_fit"):
            return 0.0
        used = torch.tensor([self.elapsed() / (60 * budget)], dtype=torch.float64)
        if self.dist.world_size > 1:
            used = used.to(self.device)
            dist.all_reduce(used, op=dist.ReduceOp.MAX)
        return float(used[0])

    def _set_lr(self, total_steps: int) -> float:
        self._used = self._budget_used()
        lr = self.cfg.lr * lr_factor(self.step, total_steps, self.cfg, self._used)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    # -- evaluation ------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(
        self, dataset: Dataset[Any], lengths: np.ndarray | None = None
    ) -> dict[str, float]:
        """The objective's metrics on ``dataset`` (sharded across ranks, summed exactly);
        ``lengths`` as in :meth:`fit`."""
        lengths = _lengths_of(dataset, lengths)
        was_training = self.model.training
        self.model.eval()
        sums = self.objective.empty()
        state: LMState | None = None  # the evaluation streams start from zeros every time
        for indices in self._sampler(dataset, lengths, train=False):
            inputs, lens, targets = self._batch(dataset, indices)
            output, state = self._forward(self.model, inputs, lens, state)
            losses = self.objective.losses(output, targets)
            sums = add_sums(sums, self.objective.sums(output, targets, losses))
        sums = self._all_sum_dict(sums)
        self.model.train(was_training)
        return self.objective.summarise(sums)

    # -- training --------------------------------------------------------------------------
    def fit(
        self,
        train: Dataset[Any],
        train_lengths: np.ndarray | None = None,
        valid: Dataset[Any] | None = None,
        valid_lengths: np.ndarray | None = None,
        *,
        resume: bool = False,
        unlabelled: Dataset[Any] | None = None,
        unlabelled_lengths: np.ndarray | None = None,
        finish: bool = True,
    ) -> list[dict[str, Any]]:
        """Train for ``epochs`` (or ``max_steps``); returns the history rows.

        ``finish``: close the trackers at the end (:meth:`end_tracking` with
        :meth:`final_metrics`); False leaves that to the caller (a recipe run sends its test
        metrics first).

        ``unlabelled`` (with ``unlabelled_lengths``): the texts virtual adversarial training
        reads (``vat_eps > 0``; their labels are ignored); None = ``train``'s. They are drawn
        in shuffled, bucketed batches of ``vat_batch_size``, epoch after epoch, independently
        of the labelled batches (the position is checkpointed: resume stays exact).

        ``train_lengths`` / ``valid_lengths``: the sequence lengths the batches are bucketed by;
        None = the dataset's ``lengths`` attribute, else all equal (no bucketing)."""
        cfg = self.cfg
        train_lengths = _lengths_of(train, train_lengths)
        if valid is not None:
            valid_lengths = _lengths_of(valid, valid_lengths)
        sampler = self._sampler(train, train_lengths, train=True)
        if cfg.vat_eps:
            if unlabelled is None:
                unlabelled, unlabelled_lengths = train, train_lengths
            if unlabelled_lengths is None:
                raise ValueError("unlabelled needs unlabelled_lengths")
            self._vat_data = unlabelled
            self._vat_sampler = BucketBatchSampler(
                unlabelled_lengths,
                cfg.vat_batch_size or cfg.batch_size,
                shuffle=True,
                bucketing=self.bucketing,
                chunk=self.bucket_chunk,
                seed=cfg.seed + VAT_SEED_OFFSET,
                num_replicas=self.dist.world_size,
                rank=self.dist.rank,
            )
            self._vat_iter: Any = None
        steps_per_epoch = len(sampler)
        total_steps = cfg.max_steps or steps_per_epoch * cfg.epochs
        if resume:
            self._resume()
        else:
            torch.manual_seed(cfg.seed + self.dist.rank)
            self.carry = None
        self.model.train()
        bar = self._progress(total_steps)
        window = self._new_window()
        stop = False
        lr = self._set_lr(total_steps)
        self._total_steps = total_steps
        self._t_fit = time.perf_counter()
        self._step_at_fit = self.step
        self._elapsed_at_fit = self.elapsed_before
        for tracker in self.trackers:
            tracker.start(self.hparams, step=self.step)
        self._tracking_open = bool(self.trackers)
        try:
            while self.epoch < cfg.epochs and not stop:
                sampler.set_epoch(self.epoch)
                for indices in sampler.iter_from(self.batch_in_epoch):
                    lr = self._set_lr(total_steps)
                    inputs, lens, labels = self._batch(train, indices)
                    due = self._record_due(steps_per_epoch, total_steps)
                    self._train_step(inputs, lens, labels, window, layer_stats=due)
                    self.step += 1
                    self.batch_in_epoch += 1
                    if bar is not None:
                        elapsed = time.perf_counter() - window["t0"]
                        bar[0].update(
                            bar[1],
                            advance=1,
                            loss=float(window["sums"]["loss"]) / max(1.0, window["items"]),
                            tps=window["tokens"] / max(elapsed, 1e-9),
                        )
                    if cfg.evaluate_every and self.step % cfg.evaluate_every == 0:
                        stop = self._evaluate_and_record(window, lr, valid, valid_lengths)
                        window = self._new_window()
                    if (
                        stop
                        or (cfg.max_steps and self.step >= cfg.max_steps)
                        or self._out_of_time()
                    ):
                        stop = True
                        break
                else:
                    self.epoch += 1
                    self.batch_in_epoch = 0
                    self.carry = None  # the streams start again from the top of the text
                    if window["items"] or not cfg.evaluate_every:
                        stop = self._evaluate_and_record(window, lr, valid, valid_lengths) or stop
                        window = self._new_window()
            if window["items"]:
                self._evaluate_and_record(
                    window, self.optimizer.param_groups[0]["lr"], valid, valid_lengths
                )
        except KeyboardInterrupt:
            self._checkpoint()
            self.end_tracking(self.final_metrics(), status="KILLED")
            raise
        except BaseException:
            self.end_tracking(self.final_metrics(), status="FAILED")
            raise
        finally:
            if bar is not None:
                bar[0].stop()
        self._checkpoint()
        if cfg.early_stopping and self.best["step"] is not None and self.run_dir is not None:
            self._restore_best()
        if self.writes:
            self._write_history_files()
        if finish:
            self.end_tracking(self.final_metrics())
        return self.history

    def final_metrics(self) -> dict[str, Any]:
        """What the trackers record at the end of a plain :meth:`fit`: the best and the last
        validation row and the number of steps (a recipe run sends its ``metrics.json``)."""
        val_rows = [r for r in self.history if r["split"] == "val"]
        return {
            "best_val": self.best,
            "last_val": val_rows[-1] if val_rows else None,
            "steps": self.step,
        }

    def end_tracking(
        self,
        metrics: dict[str, Any],
        artifacts: Sequence[Path] | None = None,
        *,
        status: str = "FINISHED",
    ) -> None:
        """Send the final ``metrics`` and ``artifacts`` (default: the run directory's plots,
        metrics, config and history) to the trackers and close them; :meth:`fit` calls it
        unless ``finish=False`` (a recipe run calls it after its test evaluation). Once only:
        later calls do nothing."""
        if not self._tracking_open:
            return
        self._tracking_open = False
        if artifacts is None:
            artifacts = run_artifacts(self.run_dir) if self.run_dir is not None else []
        for tracker in self.trackers:
            tracker.finish(metrics, artifacts, status=status)

    def _new_window(self) -> dict[str, Any]:
        return {
            "sums": self.objective.empty(),
            "items": 0.0,
            "tokens": 0.0,
            "t0": time.perf_counter(),
        }

    def elapsed(self) -> float:
        """Seconds of training so far (all sessions of a resumed run)."""
        return self._elapsed_at_fit + time.perf_counter() - self._t_fit

    def _out_of_time(self) -> bool:
        """Whether the time budget is spent (as of the current step's :meth:`_set_lr`)."""
        return self._used >= 1.0

    def _record_due(self, steps_per_epoch: int, total_steps: int) -> bool:
        """Whether the step about to run is followed by a history row (then its per-layer
        gradient norms and update ratios are measured)."""
        nxt = self.step + 1
        ev = self.cfg.evaluate_every
        return (
            bool(ev and nxt % ev == 0)
            or self.batch_in_epoch + 1 >= steps_per_epoch
            or nxt >= total_steps
        )

    def _train_step(
        self,
        inputs: Tensor,
        lens: Tensor,
        labels: Tensor,
        window: dict[str, Any],
        *,
        layer_stats: bool = False,
    ) -> None:
        cfg = self.cfg
        # with VAT, the labelled backward(s) only accumulate; VAT's backward syncs under DDP
        last_sync = not cfg.vat_eps
        state = None  # the adversarial paths run classifiers only (checked in __init__)
        if cfg.adversarial_eps:
            output, losses, adv_sum = self._adversarial_backward(
                inputs, lens, labels, sync=last_sync
            )
            window["adv_loss"] = window.get("adv_loss", 0.0) + adv_sum
        else:
            with self._no_sync(not last_sync):
                output, state = self._forward(self.ddp, inputs, lens, self.carry)
                losses = self.objective.losses(output, labels)
                loss = self._batch_loss(losses, with_penalty=True)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
        if cfg.vat_eps:
            vat_sum, vat_items = self._vat_backward()
            window["vat_loss"] = window.get("vat_loss", 0.0) + vat_sum
            window["vat_items"] = window.get("vat_items", 0.0) + vat_items
        params = [p for p in self.model.parameters() if p.grad is not None]
        if cfg.clip_norm:
            self._grad_norm = float(nn.utils.clip_grad_norm_(params, cfg.clip_norm))
        elif layer_stats:
            self._grad_norm = float(
                torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))  # type: ignore[union-attr]
            )
        before = None
        if layer_stats:
            groups = layer_groups(self.model)
            before = {g: [p.detach().clone() for _, p in ps] for g, ps in groups.items()}
        self.optimizer.step()
        if before is not None:
            self._layer_stats = self._measure_layers(groups, before)
        self.carry = state  # only now: an interrupted step leaves the checkpointed carry as it was
        window["sums"] = add_sums(window["sums"], self.objective.sums(output, labels, losses))
        window["items"] += float(losses.numel())
        window["tokens"] += _token_count(inputs, lens)

    def _batch_loss(self, losses: Tensor, *, with_penalty: bool) -> Tensor:
        """The training loss of a batch's per-item ``losses``: their mean over the global batch
        (+ the l1/l2 penalty); raises :class:`TrainingDiverged` when it is not finite."""
        cfg = self.cfg
        local = torch.tensor([float(losses.numel())])
        (global_count,) = self._all_sum(local)
        # sum / global count * world: DDP averages over ranks, so the gradient is exactly the
        # mean over the global batch, as in one process
        loss = losses.sum() / float(global_count) * self.dist.world_size
        penalty = kernel_penalty(self.model, cfg.l1, cfg.l2) if with_penalty else None
        if penalty is not None:
            loss = loss + penalty
        if not torch.isfinite(loss):
            last = latest_checkpoint(self.run_dir) if self.run_dir is not None else None
            where = (
                f"the last good checkpoint is {last}" if last else "no checkpoint was written yet"
            )
            raise TrainingDiverged(
                f"loss became {float(loss.detach())} at step {self.step + 1} (epoch {self.epoch + 1}); {where}. "
                f"Try a lower learning rate (train.lr, now {cfg.lr}) or gradient clipping (train.clip_norm=1.0)."
            )
        return loss

    def _no_sync(self, active: bool) -> Any:
        """DDP's ``no_sync`` (gradients accumulate locally, the next synced backward averages
        them) when ``active`` in a distributed job; a no-op otherwise."""
        if active and self.dist.world_size > 1:
            return self.ddp.no_sync()  # type: ignore[operator]
        return nullcontext()

    def _adversarial_backward(
        self, inputs: Tensor, lens: Tensor, labels: Tensor, *, sync: bool = True
    ) -> tuple[Tensor, Tensor, float]:
        """Gradients of CE(v) + CE(v + r_adv) into ``.grad`` (:mod:`lstmkit.adversarial`);
        returns the clean output and per-item losses (the history's loss and accuracy are the
        clean ones) and the sum of the perturbed losses (the history's ``adv_loss``).

        The clean pass adds a zero perturbation that requires grad, so its one backward gives
        the parameter gradients and g = dCE/dv together; under DDP it runs in ``no_sync`` and
        the second backward averages the summed gradients across ranks (one all-reduce).
        """
        model = self.model
        assert isinstance(model, SequenceClassifier) and model.embedding is not None
        zero = torch.zeros(
            (*inputs.shape, model.config.embedding_dim),
            dtype=model.embedding.weight.dtype,
            device=self.device,
            requires_grad=True,
        )
        self.optimizer.zero_grad(set_to_none=True)
        with self._no_sync(True):
            output = self.ddp(inputs, lens, perturb=zero)
            losses = self.objective.losses(output, labels)
            self._batch_loss(losses, with_penalty=True).backward()
        assert zero.grad is not None
        scale = self._embedding_scale(inputs, lens)
        r_adv = adversarial_perturbation(zero.grad, lens, self.cfg.adversarial_eps * scale)
        with self._no_sync(not sync):
            adv_output = self.ddp(inputs, lens, perturb=r_adv)
            adv_losses = self.objective.losses(adv_output, labels)
            self._batch_loss(adv_losses, with_penalty=False).backward()
        return output, losses, float(adv_losses.detach().double().sum())

    def _embedding_scale(self, inputs: Tensor, lens: Tensor) -> float:
        """The word vectors' frequency-weighted std over the whole global batch
        (:func:`lstmkit.adversarial.scale_from_moments`), so every rank perturbs by the same
        measure."""
        model = self.model
        assert isinstance(model, SequenceClassifier) and model.embedding is not None
        (moments,) = self._all_sum(embedding_moments(model.embedding.weight, inputs, lens).cpu())
        return scale_from_moments(moments)

    def _next_unlabelled(self) -> list[int]:
        """This rank's indices of the next batch of unlabelled texts (epoch after epoch)."""
        while True:
            if self._vat_iter is None:
                self._vat_sampler.set_epoch(self.vat_epoch)
                self._vat_iter = self._vat_sampler.iter_from(self.vat_batch)
            indices = next(self._vat_iter, None)
            if indices is not None:
                self.vat_batch += 1
                return indices
            self.vat_epoch += 1
            self.vat_batch = 0
            self._vat_iter = None

    def _vat_backward(self) -> tuple[float, float]:
        """Add the gradients of the virtual adversarial loss of the next unlabelled batch
        (:mod:`lstmkit.adversarial`); returns the sum of its per-text KL divergences and the
        number of texts. Three passes: the target (no gradient), the power iteration (the
        gradient with respect to the perturbation only) and the loss; the random state is
        replayed so that all three draw the same dropout masks."""
        model = self.model
        assert isinstance(model, SequenceClassifier) and model.embedding is not None
        indices = self._next_unlabelled()
        inputs, lens, _ = self._batch(self._vat_data, indices)
        scale = self._embedding_scale(inputs, lens)
        replay = _RandomReplay(self.device)
        with torch.no_grad():
            target = model(inputs, lens)
        u = random_directions(
            indices,
            lens,
            inputs.shape[1],
            model.config.embedding_dim,
            seed=self.cfg.seed,
            step=self.step,
        ).to(device=self.device, dtype=model.embedding.weight.dtype)
        d = adversarial_perturbation(u, lens, self.cfg.vat_xi * scale).requires_grad_(True)
        replay.restore()
        divergence = kl_divergence(target, model(inputs, lens, perturb=d)).sum()
        (grad,) = torch.autograd.grad(divergence, [d])
        r_vadv = adversarial_perturbation(grad, lens, self.cfg.vat_eps * scale)
        replay.restore()
        losses = kl_divergence(target, self.ddp(inputs, lens, perturb=r_vadv))
        self._batch_loss(losses, with_penalty=False).backward()
        return float(losses.detach().double().sum()), float(losses.numel())

    @staticmethod
    def _measure_layers(
        groups: dict[str, list[tuple[str, nn.Parameter]]], before: dict[str, list[Tensor]]
    ) -> dict[str, dict[str, float]]:
        stats = {}
        with torch.no_grad():
            for g, ps in groups.items():
                grads = [p.grad.double().pow(2).sum() for _, p in ps if p.grad is not None]
                delta = sum(
                    float((p.double() - b.double()).pow(2).sum())
                    for (_, p), b in zip(ps, before[g], strict=True)
                )
                norm = sum(float(b.double().pow(2).sum()) for b in before[g])
                stats[g] = {
                    "grad_norm": math.sqrt(float(sum(grads))) if grads else 0.0,
                    "update_ratio": math.sqrt(delta) / max(math.sqrt(norm), 1e-12),
                }
        return stats

    def _evaluate_and_record(
        self,
        window: dict[str, Any],
        lr: float,
        valid: Dataset[Any] | None,
        valid_lengths: np.ndarray | None,
    ) -> bool:
        """Append train and validation rows; update best / early stopping; checkpoint.
        Returns True when early stopping says stop."""
        sums = self._all_sum_dict(window["sums"])
        (extra,) = self._all_sum(
            torch.tensor(
                [
                    window["items"],
                    window["tokens"],
                    window.get("adv_loss", 0.0),
                    window.get("vat_loss", 0.0),
                    window.get("vat_items", 0.0),
                ]
            ).double()
        )
        elapsed = time.perf_counter() - window["t0"]
        base = {
            "step": self.step,
            "epoch": self.epoch + (self.batch_in_epoch > 0),
            "lr": lr,
            "elapsed_s": self.elapsed(),
        }
        if extra[0] > 0:
            done = self.step - self._step_at_fit
            per_step = (time.perf_counter() - self._t_fit) / max(1, done)
            self._record(
                {
                    **base,
                    "split": "train",
                    **self.objective.summarise(sums),
                    "tokens_per_s": float(extra[1]) / max(elapsed, 1e-9),
                    **(
                        {"adv_loss": float(extra[2]) / float(extra[0])}
                        if self.cfg.adversarial_eps
                        else {}
                    ),
                    **(
                        {"vat_loss": float(extra[3]) / max(float(extra[4]), 1.0)}
                        if self.cfg.vat_eps
                        else {}
                    ),
                    "grad_norm": self._grad_norm,
                    "layers": self._layer_stats,
                    "total_steps": self._total_steps,
                    "eta_s": per_step * max(0, self._total_steps - self.step),
                }
            )
        stop = False
        if valid is not None and valid_lengths is not None:
            m = self.evaluate(valid, valid_lengths)
            self._record({**base, "split": "val", **m})
            stop = self._update_best(m)
        self._checkpoint()
        return stop

    def _update_best(self, m: dict[str, float]) -> bool:
        key = self.monitor
        if key not in m:
            raise ConfigError(
                f"train.monitor=val_{key}: the {type(self.objective).__name__} objective reports {', '.join('val_' + k for k in m)}"
            )
        value = m[key]
        better = self.best["value"] is None or (
            value < self.best["value"] if key in LOWER_IS_BETTER else value > self.best["value"]
        )
        if better:
            self.best = {"value": value, "step": self.step}
            self.evals_without_improvement = 0
            if self.writes:
                assert self.run_dir is not None
                tmp = self.run_dir / ".best.safetensors.tmp"
                save_tensors(model_state(self.model), tmp)
                tmp.replace(self.run_dir / "best.safetensors")
        else:
            self.evals_without_improvement += 1
        return (
            bool(self.cfg.early_stopping)
            and self.evals_without_improvement >= self.cfg.early_stopping
        )

    def _restore_best(self) -> None:
        assert self.run_dir is not None
        if self.dist.world_size > 1:
            dist.barrier()
        load_model_state(self.model, self.run_dir / "best.safetensors")
        logger.info(
            "restored the best weights (step %s, %s=%s)",
            self.best["step"],
            "val_" + self.monitor,
            self.best["value"],
        )

    def _record(self, row: dict[str, Any]) -> None:
        self.history.append(row)
        if self.writes:
            assert self.run_dir is not None
            with open(self.run_dir / "history.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")
        for tracker in self.trackers:
            tracker.log_row(row)

    # -- checkpoints -----------------------------------------------------------------------
    def _trainer_state(self) -> dict[str, Any]:
        rngs = [rng_state()]
        if self.dist.world_size > 1:
            gathered: list[Any] = [None] * self.dist.world_size
            dist.all_gather_object(gathered, rngs[0])
            rngs = gathered
        return {
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "rng": rngs,
            "best": self.best,
            "evals_without_improvement": self.evals_without_improvement,
            "vat_position": [self.vat_epoch, self.vat_batch],
            "history": self.history,
            "world_size": self.dist.world_size,
            "elapsed_s": self.elapsed() if hasattr(self, "_t_fit") else self.elapsed_before,
        }

    def _gather_carry(self) -> dict[str, Tensor] | None:
        """Every rank's :attr:`carry` as ``{"h": (W, L, B, H), "c": ...}``, rank r's at [r]
        (collective: every rank takes part); None when there is none (every rank agrees: they
        run the same steps)."""
        if self.carry is None:
            return None
        out = {}
        for name, part in state_tensors(self.carry).items():
            parts = [part]
            if self.dist.world_size > 1:
                parts = [torch.empty_like(part) for _ in range(self.dist.world_size)]
                dist.all_gather(parts, part.contiguous())
            out[name] = torch.stack(parts).cpu()
        return out

    def _checkpoint(self) -> None:
        if self.run_dir is None:
            return
        state = self._trainer_state()  # collective: every rank takes part
        carry = self._gather_carry()  # collective too
        if self.dist.is_main:
            save_checkpoint(
                self.run_dir,
                step=self.step,
                model=self.model,
                optimizer=self.optimizer,
                trainer_state=state,
                keep=self.cfg.keep_checkpoints,
                carry=carry,
            )
        if self.dist.world_size > 1:
            dist.barrier()

    def _resume(self) -> None:
        if self.run_dir is None:
            raise ValueError("resume needs a run directory")
        # the newest checkpoint that verifies: a corrupt or incomplete newer one is named in one
        # warning line and skipped (kill -9 mid-write, a truncated copy, a full disk)
        path = newest_verified_checkpoint(self.run_dir, report=self.dist.is_main)
        if path is None:
            raise RunDirError(f"nothing to resume: {self.run_dir}/checkpoints holds no checkpoint")
        state = load_checkpoint(path, self.model, self.optimizer)
        if state["world_size"] != self.dist.world_size:
            raise ConfigError(
                f"{path} was written by {state['world_size']} process(es); resume with the same number, got {self.dist.world_size}"
            )
        self.step = int(state["step"])
        self.epoch = int(state["epoch"])
        self.batch_in_epoch = int(state["batch_in_epoch"])
        self.best = state["best"]
        self.evals_without_improvement = int(state["evals_without_improvement"])
        self.vat_epoch, self.vat_batch = (int(v) for v in state.get("vat_position", (0, 0)))
        self.history = list(state["history"])
        self.elapsed_before = float(state.get("elapsed_s", 0.0))
        self._elapsed_at_fit = self.elapsed_before
        set_rng_state(state["rng"][self.dist.rank])
        carry = load_carry(path)  # None: the checkpoint holds no carried state
        self.carry = (
            state_from_tensors({k: v[self.dist.rank].to(self.device) for k, v in carry.items()})
            if carry is not None
            else None
        )
        if self.writes:
            assert self.run_dir is not None
            atomic_write_text(
                self.run_dir / "history.jsonl", "".join(json.dumps(r) + "\n" for r in self.history)
            )
        logger.info("resumed from %s (step %d)", path, self.step)

    # -- output ----------------------------------------------------------------------------
    def _progress(self, total: int) -> tuple[Any, Any] | None:
        if not (self.progress and self.dist.is_main):
            return None
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        bar = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}"),
            TextColumn("{task.fields[tps]:,.0f} tok/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
        )
        task = bar.add_task("train", total=total, completed=self.step, loss=float("nan"), tps=0.0)
        bar.start()
        return bar, task

    def _write_history_files(self) -> None:
        assert self.run_dir is not None
        rows = [_flatten(row) for row in self.history]
        keys: list[str] = []
        for row in rows:
            keys += [k for k in row if k not in keys]
        tmp = self.run_dir / ".history.csv.tmp"
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=keys)
            writer.writeheader()
            writer.writerows(rows)
        tmp.replace(self.run_dir / "history.csv")
        plot_history(self.history, self.run_dir / "curves.png")


def fit(
    model: nn.Module,
    train: Dataset[Any],
    valid: Dataset[Any] | None = None,
    *,
    config: TrainConfig | dict[str, Any] | None = None,
    objective: Objective | str | None = None,
    num_classes: int | None = None,
    run_dir: str | Path | None = None,
    collate: Collate | None = None,
    resume: bool = False,
    progress: bool = True,
    callbacks: Sequence[Tracker] = (),
    **options: Any,
) -> Trainer:
    """Train any ``nn.Module`` with lstmkit's :class:`Trainer`; returns the trainer (its
    ``history``, ``best``, ``step`` and the trained ``model``). See :class:`Trainer` for an
    example.

    Args:
        model: ``model(inputs)`` -> logits (with ``num_classes``), a regression output
            (``objective=Regression()``) or the batch's loss (``objective="loss"``).
        train, valid: datasets of ``(input, target)`` items (any items with ``objective="loss"``
            or your own ``collate``); a ``lengths`` attribute buckets batches by length.
        config: a :class:`~lstmkit.config.TrainConfig` or its fields as a dict; ``options``
            (``epochs=5, lr=3e-3, log=["mlflow"]``, ...) override it.
        objective: an :class:`~lstmkit.objectives.Objective`, or ``"loss"`` for
            :class:`ModelLoss`; default ``Classification(num_classes)``.
        run_dir: history, plots, checkpoints, best weights, trackers (None: nothing written;
            no resume).
        resume: continue the run in ``run_dir`` from its newest checkpoint, exactly.
    """
    if isinstance(config, TrainConfig):
        fields = {**config.model_dump(), **options}
    else:
        fields = {**(config or {}), **options}
    try:
        cfg = TrainConfig(**fields)
    except ValidationError as err:
        bad = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']} (got {e.get('input')!r})"
            for e in err.errors()
        )
        raise ConfigError(f"lstmkit.fit: {bad}") from None
    if objective == "loss":
        objective = ModelLoss()
    elif isinstance(objective, str):
        raise ConfigError(f'objective: expected an Objective or "loss", got {objective!r}')
    if objective is None and num_classes is None:
        raise ConfigError(
            'lstmkit.fit: give num_classes (classification), objective="loss" (the model '
            "returns its loss) or an Objective"
        )
    trainer = Trainer(
        model,
        cfg,
        collate=collate,
        objective=objective,
        num_classes=num_classes,
        run_dir=Path(run_dir) if run_dir is not None else None,
        progress=progress,
        callbacks=callbacks,
    )
    trainer.fit(train, None, valid, None, resume=resume)
    return trainer


def _to_device(value: Any, device: torch.device) -> Any:
    """A batch's tensors on ``device``: a tensor, or tuples / lists / dicts of them (any other
    value is left as it is)."""
    if isinstance(value, Tensor):
        return value.to(device)
    if isinstance(value, tuple | list):
        return type(value)(_to_device(v, device) for v in value)
    if isinstance(value, dict):
        return {k: _to_device(v, device) for k, v in value.items()}
    return value


def _token_count(inputs: Any, lens: Tensor | None) -> float:
    """What ``tokens_per_s`` counts in a batch: the lengths' sum, else B * T of a (B, T, ...)
    input, else the batch's size."""
    if lens is not None:
        return float(lens.sum())
    first = inputs
    while isinstance(first, tuple | list) and first:
        first = first[0]
    if isinstance(first, dict) and first:
        first = next(iter(first.values()))
    if isinstance(first, Tensor) and first.dim() >= 2:
        return float(first.shape[0] * first.shape[1])
    return float(first.shape[0]) if isinstance(first, Tensor) and first.dim() else 1.0


def _lengths_of(dataset: Dataset[Any], lengths: np.ndarray | None) -> np.ndarray:
    if lengths is not None:
        return lengths
    own = getattr(dataset, "lengths", None)
    if own is not None:
        return np.asarray(own)
    return np.ones(len(dataset), dtype=np.int64)  # type: ignore[arg-type]


def _flatten(row: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted columns (``layers.head.grad_norm``) for the CSV history."""
    out: dict[str, Any] = {}
    for k, v in row.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def plot_history(history: list[dict[str, Any]], path: Path) -> None:
    """Loss and a second metric (accuracy; MAE for regression), train vs validation, against
    steps (PNG)."""
    plt = pyplot()

    second = next((k for k in ("accuracy", "mae") if history and k in history[0]), "loss")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for split, style in (("train", "o-"), ("val", "s-")):
        rows = [r for r in history if r["split"] == split]
        if not rows:
            continue
        steps = [r["step"] for r in rows]
        axes[0].plot(steps, [r["loss"] for r in rows], style, label=split, markersize=3)
        axes[1].plot(steps, [r.get(second) for r in rows], style, label=split, markersize=3)
    for ax, name in zip(axes, ("loss", second), strict=True):
        ax.set_xlabel("step")
        ax.set_ylabel(name)
        ax.set_title(f"{name}: train vs validation")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    save_png(fig, path)
