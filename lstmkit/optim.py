"""What the Trainer steps with: the optimizer a recipe names, the learning-rate schedule (by
steps and by the time budget) and Keras-style L1 / L2 kernel penalties."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from lstmkit.config import TrainConfig


def kernel_penalty(model: nn.Module, l1: float, l2: float) -> Tensor | None:
    """Keras-style kernel regularisers on every weight matrix (biases and gains excluded)."""
    if not (l1 or l2):
        return None
    total: Tensor | None = None
    for p in model.parameters():
        if p.dim() < 2:
            continue
        term = p.new_zeros(())
        if l1:
            term = term + l1 * p.abs().sum()
        if l2:
            term = term + l2 * p.pow(2).sum()
        total = term if total is None else total + term
    return total


def make_optimizer(params: Sequence[nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    """torch optimizer named by ``cfg.optimizer`` with lr, momentum, nesterov, weight decay."""
    p = list(params)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(p, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(p, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "rmsprop":
        # Keras' RMSprop defaults: rho 0.9, epsilon 1e-7
        return torch.optim.RMSprop(
            p, lr=cfg.lr, alpha=0.9, eps=1e-7, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            p,
            lr=cfg.lr,
            momentum=cfg.momentum,
            nesterov=cfg.nesterov,
            weight_decay=cfg.weight_decay,
        )
    return torch.optim.Adagrad(p, lr=cfg.lr, weight_decay=cfg.weight_decay)


def lr_factor(step: int, total: int, cfg: TrainConfig, time_fraction: float = 0.0) -> float:
    """Multiplier of the base learning rate after ``step`` optimizer steps. With a time budget
    (``max_minutes``), ``time_fraction`` is the share of it used so far: the cosine and linear
    schedules follow whichever of steps and time is further along, so the rate has decayed when
    the budget runs out."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    rest = max(1, total - cfg.warmup_steps)
    progress = min(1.0, max((step - cfg.warmup_steps) / rest, time_fraction))
    if cfg.schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * progress))
    if cfg.schedule == "linear":
        return 1.0 - progress
    if cfg.schedule == "step":
        return cfg.gamma ** ((step - cfg.warmup_steps) // cfg.step_size)
    return 1.0
