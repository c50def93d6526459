"""Adversarial training on the word embeddings (Miyato, Dai & Goodfellow 2017, "Adversarial
Training Methods for Semi-Supervised Text Classification", section 3).

Per training step, with ``v`` the (dropped-out) word vectors of a batch, shape (B, T, E)::

    g     = d CE(v) / d v                           (detached; one backward of the clean loss)
    r_adv = eps * s * g / ||g||_2                   (L2 norm per example over its whole (T, E)
                                                     matrix; padding positions are zero)
    loss  = CE(v) + CE(v + r_adv)

The Trainer (``[train] adversarial_eps``) does this in two forward and two backward passes: the
clean loss's backward yields both its parameter gradients and ``g`` (the gradient of a zero
perturbation added to ``v``), the perturbed loss's backward adds its own. ``r_adv`` is a constant
(no gradient flows through it), as in the paper.

The scale ``s`` (our decision, see :func:`embedding_scale`). Miyato et al. normalise the
embeddings in the model, ``v' = (v - E[v]) / sqrt(Var[v])`` with frequency-weighted mean and
variance, so that a fixed ``eps`` (5.0 on IMDB) has a fixed meaning and the model cannot make
the perturbation insignificant by growing its word vectors. Our embedding starts from word2vec
vectors scaled to ``pretrain.init_std`` (0.1) and is fine-tuned; its scale drifts during
training. Rather than change the model (a normalising layer would change every existing
recipe's predictions), we measure ``eps`` in the same units as the paper: ``s`` is the
frequency-weighted standard deviation of the current word vectors (their spread per
coordinate, averaged over the E coordinates as a variance), estimated on the batch's own
non-padding tokens (a sample of the corpus' word frequencies) and recomputed every step. So
``eps = 5`` perturbs each example's sequence by 5 standard deviations in total, as the
paper's 5.0 on unit-variance vectors does (a scalar ``s`` rather than one per coordinate: the
perturbation's direction stays the raw gradient's). Growing the vectors grows ``s`` with them.

One difference in size remains: the paper's vectors have 256 coordinates, ours (imdb-best)
128, so a word's vector is ``sqrt(2)`` times shorter in units of ``s`` and the same ``eps``
perturbs it relatively more (``eps = 5 / sqrt(2) ~ 3.5`` matches the paper's ratio of
perturbation to word-vector length).
"""

from __future__ import annotations

import torch
from torch import Tensor


def valid_mask(lengths: Tensor, steps: int, device: torch.device | None = None) -> Tensor:
    """(B, T) bool: True at the first ``lengths[b]`` steps of each row (the real tokens)."""
    lengths = lengths.to(device)
    return torch.arange(steps, device=device)[None, :] < lengths[:, None]


def adversarial_perturbation(grad: Tensor, lengths: Tensor | None, eps: float) -> Tensor:
    """``eps * g / ||g||_2`` per example: ``grad`` (B, T, E) is the loss's gradient with respect
    to the embedded input; the norm of each example is taken over its whole (T, E) matrix with
    the padding positions (steps ``>= lengths[b]``) set to zero first, so they are zero in the
    result too. An example whose gradient is all zero gets a zero perturbation."""
    if grad.dim() != 3:
        raise ValueError(f"grad must be (B, T, E), got shape {tuple(grad.shape)}")
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    g = grad.detach()
    if lengths is not None:
        g = g * valid_mask(lengths, g.shape[1], g.device).unsqueeze(-1).to(g.dtype)
    norm = torch.linalg.vector_norm(g, dim=(1, 2), keepdim=True)  # (B, 1, 1)
    return eps * g / norm.clamp_min(torch.finfo(g.dtype).tiny)


@torch.no_grad()
def embedding_moments(weight: Tensor, tokens: Tensor, lengths: Tensor | None) -> Tensor:
    """``[n, sum_e..., sumsq_e...]`` (float64, shape (1 + 2E,)) of the word vectors of the
    non-padding ``tokens`` (B, T) of a batch, a word counted as often as it occurs; ``weight``
    (V, E) is the embedding matrix. Additive: a distributed job sums them over its ranks."""
    if lengths is not None:
        ids = tokens[valid_mask(lengths, tokens.shape[1], tokens.device)]
    else:
        ids = tokens.reshape(-1)
    vectors = weight.detach()[ids].double()  # (N, E)
    n = torch.tensor([float(ids.numel())], dtype=torch.float64, device=vectors.device)
    return torch.cat([n, vectors.sum(0), vectors.pow(2).sum(0)])


def scale_from_moments(moments: Tensor) -> float:
    """``sqrt(mean_e Var[v_e])`` from :func:`embedding_moments` (summed over ranks, if any)."""
    n = float(moments[0])
    if n <= 0:
        raise ValueError("the embedding scale needs at least one non-padding token")
    dim = (moments.numel() - 1) // 2
    mean = moments[1 : 1 + dim] / n
    var = (moments[1 + dim :] / n - mean.pow(2)).clamp_min(0.0)
    return float(var.mean().sqrt())


def embedding_scale(weight: Tensor, tokens: Tensor, lengths: Tensor | None) -> float:
    """Frequency-weighted standard deviation of the word vectors: ``sqrt(mean_e Var[v_e])``,
    the variance of each coordinate ``e`` taken over the vectors of the non-padding ``tokens``
    (B, T) of a batch (so a word counts as often as it occurs), about their mean. ``weight``
    (V, E) is the embedding matrix. Miyato et al. divide by this (per coordinate) to normalise
    their embeddings; see the module docstring."""
    return scale_from_moments(embedding_moments(weight, tokens, lengths))
