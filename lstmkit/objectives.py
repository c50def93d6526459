"""What the :class:`lstmkit.train.Trainer` optimises and measures: one class per task.

An objective turns a model's output and the batch's targets into

- ``losses(output, target)``: a 1-D tensor of per-item losses (an item is an example for
  classification, a predicted token for language modelling, a predicted value for regression);
  the Trainer minimises their mean over the (global) batch;
- ``sums(output, target, losses)``: additive statistics (summed over batches and, in a
  distributed job, over ranks) from which ``summarise`` computes the metrics exactly, whatever the
  batch boundaries.

=====================  ===========================  ====================================  ==========
objective              output / target              metrics                               monitor
=====================  ===========================  ====================================  ==========
Classification(C)      (B, 1) or (B, C) / (B,) int  loss, accuracy, macro_f1              accuracy
LanguageModeling()     (B, T, V) / (B, T) int,      loss (nats/token), bits_per_token,    loss
                       IGNORE (-100) = no target    perplexity, accuracy
Regression()           any shape / the same shape   loss (MSE), mae, rmse                 loss
Pinball(quantiles)     (B, [K,] H, Q) / (B, H)      loss (mean pinball), mae (of the      loss
                                                    median), coverage (outer quantiles)
=====================  ===========================  ====================================  ==========
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

IGNORE = -100  # target id of a position without a target (padding), as torch's ignore_index

LOWER_IS_BETTER = frozenset({"loss", "mae", "rmse", "bits_per_token", "perplexity"})


def confusion_matrix(pred: Tensor, target: Tensor, num_classes: int) -> Tensor:
    """(C, C) int64 counts, rows = true class, columns = predicted."""
    idx = target.long() * num_classes + pred.long()
    return torch.bincount(idx, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes
    )


def metrics_from_confusion(cm: Tensor) -> dict[str, float]:
    """Accuracy and macro-F1 (classes absent from both truth and prediction are skipped)."""
    cm = cm.double()
    total = float(cm.sum())
    tp = cm.diag()
    precision_den = cm.sum(0)
    recall_den = cm.sum(1)
    f1 = []
    for c in range(cm.shape[0]):
        if precision_den[c] + recall_den[c] == 0:
            continue
        f1.append(float(2 * tp[c] / (precision_den[c] + recall_den[c])))
    return {
        "accuracy": float(tp.sum()) / total if total else float("nan"),
        "macro_f1": float(np.mean(f1)) if f1 else float("nan"),
    }


class Objective(ABC):
    """Loss and metrics of one task (see the module docstring)."""

    #: the validation metric early stopping and "best" follow by default
    monitor: str = "loss"

    @abstractmethod
    def losses(self, output: Tensor, target: Tensor) -> Tensor:
        """Per-item losses, 1-D (their mean is the training loss)."""

    @abstractmethod
    def sums(self, output: Tensor, target: Tensor, losses: Tensor) -> dict[str, Tensor]:
        """Additive statistics of one batch (CPU tensors; float64 or int64)."""

    @abstractmethod
    def summarise(self, sums: dict[str, Tensor]) -> dict[str, float]:
        """Metrics from statistics summed over batches."""

    def empty(self) -> dict[str, Tensor]:
        """Statistics of no data (the start of a sum)."""
        return {}


def add_sums(total: dict[str, Tensor], new: dict[str, Tensor]) -> dict[str, Tensor]:
    """``total + new`` key by key (a missing key counts as zero)."""
    out = dict(total)
    for k, v in new.items():
        out[k] = out[k] + v if k in out else v.clone()
    return out


class Classification(Objective):
    """Binary (one sigmoid logit, binary cross-entropy) or C-way (softmax, cross-entropy).

    Outputs (B, 1 or C), or (B, members, 1 or C) from a deep ensemble in training
    (:attr:`lstmkit.models.ClassifierConfig.members`): then an item's loss is the mean of its
    members' losses (each member learns on its own) and its prediction comes from the members'
    mean logits, as the ensemble predicts."""

    monitor = "accuracy"

    def __init__(self, num_classes: int) -> None:
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        self.num_classes = num_classes

    def _pred(self, output: Tensor) -> Tensor:
        if output.dim() == 3:
            output = output.mean(1)
        return (output[:, 0] > 0).long() if output.shape[-1] == 1 else output.argmax(-1)

    def losses(self, output: Tensor, target: Tensor) -> Tensor:
        if output.dim() == 3:  # a deep ensemble's members: the mean of their own losses
            members = output.shape[1]
            each = self.losses(output.flatten(0, 1), target.repeat_interleave(members))
            return each.view(-1, members).mean(1)
        if output.shape[-1] == 1:
            z = output[:, 0]
            return F.binary_cross_entropy_with_logits(z, target.to(z.dtype), reduction="none")
        return F.cross_entropy(output, target, reduction="none")

    def sums(self, output: Tensor, target: Tensor, losses: Tensor) -> dict[str, Tensor]:
        pred = self._pred(output.detach())
        return {
            "loss": losses.detach().double().sum().cpu(),
            "cm": confusion_matrix(pred.cpu(), target.cpu(), self.num_classes),
        }

    def empty(self) -> dict[str, Tensor]:
        return {
            "loss": torch.zeros((), dtype=torch.float64),
            "cm": torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64),
        }

    def summarise(self, sums: dict[str, Tensor]) -> dict[str, float]:
        cm = sums["cm"]
        count = int(cm.sum())
        return {
            "loss": float(sums["loss"]) / max(1, count),
            **metrics_from_confusion(cm),
            "examples": count,
        }


class LanguageModeling(Objective):
    """Next-token cross-entropy over (B, T, V) logits; targets equal to :data:`IGNORE` are
    skipped. ``bits_per_token`` = loss / ln 2 (bits per character for a character model)."""

    monitor = "loss"

    def losses(self, output: Tensor, target: Tensor) -> Tensor:
        flat_t = target.reshape(-1)
        keep = flat_t != IGNORE
        return F.cross_entropy(
            output.reshape(-1, output.shape[-1])[keep], flat_t[keep], reduction="none"
        )

    def sums(self, output: Tensor, target: Tensor, losses: Tensor) -> dict[str, Tensor]:
        flat_t = target.reshape(-1)
        keep = flat_t != IGNORE
        pred = output.detach().reshape(-1, output.shape[-1])[keep].argmax(-1)
        return {
            "loss": losses.detach().double().sum().cpu(),
            "correct": (pred == flat_t[keep]).sum().cpu().double(),
            "count": keep.sum().cpu().double(),
        }

    def summarise(self, sums: dict[str, Tensor]) -> dict[str, float]:
        count = float(sums.get("count", torch.zeros(())))
        loss = float(sums["loss"]) / count if count else float("nan")
        return {
            "loss": loss,
            "bits_per_token": loss / math.log(2),
            "perplexity": math.exp(min(loss, 700.0)),
            "accuracy": float(sums["correct"]) / count if count else float("nan"),
            "examples": int(count),
        }


class Regression(Objective):
    """Mean squared error; output and target of the same shape (e.g. (B, horizon))."""

    monitor = "loss"

    def losses(self, output: Tensor, target: Tensor) -> Tensor:
        if output.shape != target.shape:
            raise ValueError(
                f"regression output shape {tuple(output.shape)} != target shape {tuple(target.shape)}"
            )
        return (output - target.to(output.dtype)).pow(2).reshape(-1)

    def sums(self, output: Tensor, target: Tensor, losses: Tensor) -> dict[str, Tensor]:
        err = (output.detach() - target.to(output.dtype)).abs()
        return {
            "loss": losses.detach().double().sum().cpu(),
            "abs": err.double().sum().cpu(),
            "count": torch.tensor(float(err.numel()), dtype=torch.float64),
        }

    def summarise(self, sums: dict[str, Tensor]) -> dict[str, float]:
        count = float(sums.get("count", torch.zeros(())))
        mse = float(sums["loss"]) / count if count else float("nan")
        return {
            "loss": mse,
            "mae": float(sums["abs"]) / count if count else float("nan"),
            "rmse": math.sqrt(mse) if count else float("nan"),
            "examples": int(count),
        }


def pinball_loss(pred: Tensor, target: Tensor, quantiles: Tensor) -> Tensor:
    """Elementwise pinball (quantile) loss ``max(q e, (q - 1) e)`` with ``e = target - pred``:
    ``pred`` (..., Q), ``target`` broadcastable to ``pred[..., 0]``, ``quantiles`` (Q,) in (0, 1).
    Its mean over a sample is minimised by the sample's q-quantile (Koenker & Bassett 1978; the
    MQLoss of neuralforecast)."""
    err = target.to(pred.dtype)[..., None] - pred
    q = quantiles.to(pred.dtype)
    return torch.maximum(q * err, (q - 1.0) * err)


class Pinball(Objective):
    """Quantile regression: outputs ``(B, H, Q)`` (or ``(B, K, H, Q)``: K ensemble members, each
    trained on the same loss) for targets ``(B, H)``; the quantiles must be ascending and hold
    0.5 (the point forecast). ``losses`` are the pinball losses of every member, step and
    quantile; ``mae`` is that of the members' mean median, ``coverage`` the share of targets
    between the outermost quantiles of the members' mean."""

    monitor = "loss"

    def __init__(self, quantiles: Sequence[float]) -> None:
        qs = [float(q) for q in quantiles]
        if not qs or any(not 0.0 < q < 1.0 for q in qs) or sorted(set(qs)) != qs or 0.5 not in qs:
            raise ValueError(
                f"quantiles must be ascending, distinct, in (0, 1) and hold 0.5, got {qs}"
            )
        self.quantiles = torch.tensor(qs, dtype=torch.float64)
        self.median = qs.index(0.5)

    def _mean(self, output: Tensor) -> Tensor:
        return output.mean(1) if output.dim() == 4 else output

    def losses(self, output: Tensor, target: Tensor) -> Tensor:
        if output.dim() not in (3, 4) or output.shape[-1] != len(self.quantiles):
            raise ValueError(
                f"pinball output must be (B, [K,] H, {len(self.quantiles)}), got "
                f"{tuple(output.shape)}"
            )
        t = target[:, None] if output.dim() == 4 else target
        if t.shape[-1] != output.shape[-2]:
            raise ValueError(
                f"pinball target {tuple(target.shape)} does not match output {tuple(output.shape)}"
            )
        return pinball_loss(output, t, self.quantiles.to(output.device)).reshape(-1)

    def sums(self, output: Tensor, target: Tensor, losses: Tensor) -> dict[str, Tensor]:
        mean = self._mean(output.detach())
        t = target.to(mean.dtype)
        inside = (t >= mean[..., 0]) & (t <= mean[..., -1])
        return {
            "loss": losses.detach().double().sum().cpu(),
            "loss_count": torch.tensor(float(losses.numel()), dtype=torch.float64),
            "abs": (mean[..., self.median] - t).abs().double().sum().cpu(),
            "inside": inside.double().sum().cpu(),
            "count": torch.tensor(float(t.numel()), dtype=torch.float64),
        }

    def summarise(self, sums: dict[str, Tensor]) -> dict[str, float]:
        count = float(sums.get("count", torch.zeros(())))
        n_loss = float(sums.get("loss_count", torch.zeros(())))
        return {
            "loss": float(sums["loss"]) / n_loss if n_loss else float("nan"),
            "mae": float(sums["abs"]) / count if count else float("nan"),
            "coverage": float(sums["inside"]) / count if count else float("nan"),
            "examples": int(count),
        }
