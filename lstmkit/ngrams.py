"""An NBSVM-style linear branch over hashed, binarised n-grams of the token ids.

Wang & Manning (2012, "Baselines and Bigrams") showed that a linear classifier over binarised
uni+bigram indicators, each scaled by its naive-Bayes log-count ratio

    r_f = log( (p_f / |p|_1) / (q_f / |q|_1) ),   p = alpha + sum of x_f over positive examples,
                                                   q = alpha + sum of x_f over the other examples,

is a strong sentiment baseline (NBSVM-bigram: 91.22% on IMDB). :class:`NgramBranch` is that
model as a module: its logit ``sum_f x_f * r_f * w_f + b`` (``w`` learned, starting at 0, the
ratios ``r`` a buffer fitted once on the training split by :meth:`NgramBranch.fit_ratios`) is
added to a :class:`lstmkit.models.SequenceClassifier`'s recurrent logit and both are trained
together ("wide and deep"). More than two classes: one ratio per class, one-vs-rest.

n-grams are hashed into ``buckets`` slots (no n-gram vocabulary to store); an n-gram that appears
several times in a text counts once (binarised, as NBSVM). Positions at or past a row's length
are padding and never form an n-gram, so padding never changes a prediction.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

# odd multipliers below 2**31; the running hash stays below 2**32 and token ids below 2**24, so
# every product fits in int64
_MIXERS = (1_000_003, 1_664_525, 2_147_483_629, 1_103_515_245, 1_812_433_253)
_MASK32 = 2**32


def ngram_ids(
    tokens: Tensor, lengths: Tensor | None, n: int, buckets: int
) -> tuple[Tensor, Tensor]:
    """Hashed 1..n-grams of a padded batch and which of them count.

    Args:
        tokens: (B, T) int64 token ids, padded 'post' (0 = padding when ``lengths`` is None).
        lengths: (B,) true lengths, or None to treat id 0 as padding.
        n: the longest n-gram (1 to 5).
        buckets: hash slots; ids are in ``[0, buckets)``.

    Returns:
        ``(ids, keep)``: (B, K) int64 slot ids sorted within each row, and a (B, K) bool mask that
        is True exactly once for every distinct n-gram slot of a row (binarised features).
    """
    if tokens.dim() != 2 or tokens.is_floating_point():
        raise ValueError(
            f"expected token ids (B, T) int64, got {tuple(tokens.shape)} {tokens.dtype}"
        )
    if not 1 <= n <= len(_MIXERS):
        raise ValueError(f"n-gram order must be 1..{len(_MIXERS)}, got {n}")
    steps = tokens.shape[1]
    if lengths is None:
        valid = tokens != 0
    else:
        valid = (
            torch.arange(steps, device=tokens.device)[None, :] < lengths.to(tokens.device)[:, None]
        )
    parts: list[Tensor] = []
    masks: list[Tensor] = []
    for order in range(1, n + 1):
        if steps < order:
            break
        width = steps - order + 1
        h = torch.full((tokens.shape[0], width), order, dtype=torch.int64, device=tokens.device)
        ok = torch.ones_like(h, dtype=torch.bool)
        for k in range(order):
            h = (h * _MIXERS[k] + tokens[:, k : k + width]) % _MASK32
            ok = ok & valid[:, k : k + width]
        # a final mixing step so that the low bits, which pick the slot, depend on the high
        # bits too (multiply-add and integer division only: they export to ONNX)
        h = ((h + h // 65536) * 0x45D9F3B) % _MASK32
        h = h + h // 65536
        parts.append(h % buckets)
        masks.append(ok)
    ids = torch.cat(parts, 1)
    ok = torch.cat(masks, 1)
    # binarise: sort each row with the invalid positions pushed past every real slot, then keep
    # the first of each run of equal slots
    ids = torch.where(ok, ids, torch.full_like(ids, buckets))
    ids, _ = torch.sort(ids, dim=1)
    first = torch.ones_like(ids[:, :1], dtype=torch.bool)
    keep = (ids < buckets) & torch.cat([first, ids[:, 1:] != ids[:, :-1]], 1)
    return ids.clamp(max=buckets - 1), keep


class NgramBranch(nn.Module):
    """Linear model over binarised hashed n-grams with naive-Bayes feature scaling (see the
    module docstring). ``outputs`` is 1 for a two-class (sigmoid) head, C otherwise."""

    ratio: Tensor

    def __init__(self, n: int, buckets: int, outputs: int) -> None:
        super().__init__()
        self.n = n
        self.buckets = buckets
        self.weight = nn.Parameter(torch.zeros(buckets, outputs))
        self.register_buffer("ratio", torch.zeros(buckets, outputs))

    def forward(self, tokens: Tensor, lengths: Tensor | None = None) -> Tensor:
        """(B, outputs) logits (no bias: the classifier's head has one)."""
        ids, keep = ngram_ids(tokens, lengths, self.n, self.buckets)
        # gather first: only the rows a batch uses are scaled, not all ``buckets`` of them
        scaled = self.weight[ids] * self.ratio[ids]  # (B, K, outputs)
        return (scaled * keep.unsqueeze(-1).to(scaled.dtype)).sum(1)

    @torch.no_grad()
    def fit_ratios(
        self, batches: Iterable[tuple[Tensor, Tensor | None, Tensor]], alpha: float = 1.0
    ) -> dict[str, float]:
        """Fit the naive-Bayes log-count ratios from training batches ``(tokens, lengths,
        labels)`` (labels 0/1 for one output, 0..C-1 for C outputs, one-vs-rest) and store them.

        Returns facts for the log: examples, distinct slots seen, mean |r| over seen slots.
        """
        if alpha <= 0:
            raise ValueError(f"alpha (the ratios' smoothing) must be > 0, got {alpha}")
        outputs = self.ratio.shape[1]
        classes = 2 if outputs == 1 else outputs
        counts = torch.zeros(classes, self.buckets, dtype=torch.float64)
        seen = 0
        for tokens, lengths, labels in batches:
            ids, keep = ngram_ids(tokens, lengths, self.n, self.buckets)
            labels = labels.long()
            if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= classes):
                raise ValueError(
                    f"labels must be in 0..{classes - 1} for the n-gram ratios, got "
                    f"{int(labels.min())}..{int(labels.max())}"
                )
            flat = (labels[:, None] * self.buckets + ids)[keep]
            counts += (
                torch.bincount(flat, minlength=classes * self.buckets)
                .reshape(classes, self.buckets)
                .double()
            )
            seen += int(labels.numel())
        if seen == 0:
            raise ValueError("no training examples to fit the n-gram ratios on")
        total = counts.sum(0)
        ratios = []
        for c in range(1 if outputs == 1 else classes):
            pos_class = 1 if outputs == 1 else c
            p = counts[pos_class] + alpha
            q = total - counts[pos_class] + alpha
            ratios.append(torch.log((p / p.sum()) / (q / q.sum())))
        self.ratio.copy_(torch.stack(ratios, 1).to(self.ratio.dtype))
        used = total > 0
        return {
            "examples": float(seen),
            "slots_used": float(used.sum()),
            "mean_abs_ratio": float(self.ratio[used].abs().mean()),
        }
