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

**Virtual adversarial training** (Miyato et al. 2017, section 4; Miyato et al. 2018, "Virtual
Adversarial Training"): on unlabelled texts, the loss is the KL divergence between the model's
prediction on the word vectors ``v`` and on ``v + r_vadv``, where ``r_vadv`` is the direction of
length ``eps`` in which that divergence grows fastest, found by one power iteration::

    p      = f(v)                                  (no gradient: the target)
    d      = xi * u / ||u||_2                      (u: a random direction per example)
    g      = d KL(p || f(v + d)) / d d
    r_vadv = eps * g / ||g||_2
    loss   = KL(p || f(v + r_vadv))

It needs no labels, so it reads IMDB's 50,000 unlabelled reviews (``[train] vat_eps``). The three
passes use the same dropout masks (the trainer replays the random state), so the divergence is
the perturbation's alone. ``u`` is drawn per example from a generator seeded by
(seed, step, the example's index in the unlabelled set): it does not depend on how the batch
is split over processes, so two processes train as one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
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


# -- virtual adversarial training (see the module docstring) ----------------------------------


def kl_divergence(target_logits: Tensor, logits: Tensor) -> Tensor:
    """Per-example ``KL(p || q)`` (B,) with ``p`` from ``target_logits`` and ``q`` from
    ``logits``: Bernoulli distributions for (B, 1) sigmoid logits, categorical for (B, C)
    softmax logits (C >= 2); a deep ensemble's (B, members, 1 or C): the mean over its
    members of each member's own divergence. No gradient flows into ``target_logits``."""
    if target_logits.shape == logits.shape and logits.dim() == 3:
        members = logits.shape[1]
        each = kl_divergence(target_logits.flatten(0, 1), logits.flatten(0, 1))
        return each.view(-1, members).mean(1)
    if target_logits.shape != logits.shape or logits.dim() != 2:
        raise ValueError(
            f"logits must both be (B, 1) or (B, C); got {tuple(target_logits.shape)} and "
            f"{tuple(logits.shape)}"
        )
    t = target_logits.detach()
    if logits.shape[1] == 1:
        p = torch.sigmoid(t)
        ls = torch.nn.functional.logsigmoid
        kl = p * (ls(t) - ls(logits)) + (1 - p) * (ls(-t) - ls(-logits))
        return kl.reshape(-1)
    log_p = torch.log_softmax(t, dim=1)
    return (log_p.exp() * (log_p - torch.log_softmax(logits, dim=1))).sum(1)


def random_directions(
    indices: Sequence[int], lengths: Tensor, steps: int, dim: int, *, seed: int, step: int
) -> Tensor:
    """(B, steps, dim) standard normal directions, zero past each example's length: example
    ``b`` draws its ``lengths[b] x dim`` values from a generator seeded by ``(seed, step,
    indices[b])``, so an example's direction does not depend on the rest of its batch."""
    if len(indices) != len(lengths):
        raise ValueError(f"{len(indices)} indices for {len(lengths)} lengths")
    out = torch.zeros(len(indices), steps, dim)
    gen = torch.Generator()
    for b, (index, length) in enumerate(zip(indices, lengths.tolist(), strict=True)):
        n = min(int(length), steps)
        key = np.random.SeedSequence([seed, step, int(index)]).generate_state(2, np.uint64)
        gen.manual_seed(int(key[0] >> np.uint64(1)))
        out[b, :n] = torch.randn(n, dim, generator=gen)
    return out
