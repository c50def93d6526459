"""The wide branch of the packaged recipe ``imdb-best`` alone, as a baseline for the recipe.

NB-weighted, binarised, hashed uni+bigram logistic regression (NBSVM's features, Wang & Manning
2012; :class:`lstmkit.ngrams.NgramBranch` plus a bias), trained with Adam on the recipe's 90%
training split, the epoch chosen on its 10% validation split, scored on the 25k test set.
Prints one JSON line per epoch and a summary line::

    LSTMKIT_DATA=../shared/data .venv/bin/python examples/imdb_ngram_alone.py [--l2 0] [--lr 0.01]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from lstmkit.config import load_recipe
from lstmkit.data.batching import SequenceDataset, collate_tokens
from lstmkit.ngrams import NgramBranch
from lstmkit.tasks.classify import prepare


def batches(
    ds: SequenceDataset, size: int, rng: np.random.Generator | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    order = rng.permutation(len(ds)) if rng is not None else np.arange(len(ds))
    for i in range(0, len(ds), size):
        yield collate_tokens([ds[j] for j in order[i : i + size]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", default="imdb-best")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--l2", type=float, default=0.0, help="penalty on the branch weights")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    start = time.perf_counter()
    recipe, _ = load_recipe(args.recipe)
    data = prepare(recipe)
    assert data.valid is not None, "the recipe needs a validation split"
    model = recipe.classifier
    branch = NgramBranch(model.ngrams or 2, model.ngram_buckets, 1)
    branch.fit_ratios(batches(data.train, 256))
    bias = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([branch.weight, bias], lr=args.lr)

    def accuracy(ds: SequenceDataset) -> float:
        right = 0
        with torch.no_grad():
            for x, lengths, y in batches(ds, 1024):
                pred = (branch(x, lengths) + bias).reshape(-1) > 0
                right += int(pred.long().eq(y.reshape(-1)).sum())
        return right / len(ds)

    rng = np.random.default_rng(recipe.train.seed)
    best: dict[str, float] = {"val": -1.0}
    for epoch in range(1, args.epochs + 1):
        for x, lengths, y in batches(data.train, recipe.train.batch_size, rng):
            logit = (branch(x, lengths) + bias).reshape(-1)
            loss = F.binary_cross_entropy_with_logits(logit, y.float().reshape(-1))
            loss = loss + args.l2 * branch.weight.pow(2).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        row = {"epoch": epoch, "val": accuracy(data.valid), "test": accuracy(data.test)}
        print(json.dumps(row), flush=True)
        if row["val"] > best["val"]:
            best = row
    summary = {"best_val": best["val"], "test_at_best_val": best["test"], "epoch": best["epoch"]}
    print(json.dumps({**summary, "seconds": round(time.perf_counter() - start, 1)}))


if __name__ == "__main__":
    main()
