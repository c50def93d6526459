"""Unsupervised pretraining of a classifier's embedding on the run's own texts.

``[pretrain] method = "word2vec"`` trains skip-gram word vectors with negative sampling
(Mikolov et al. 2013; gensim's implementation, the well-kept one) on the training split's token
sequences -- and, with ``unlabelled = true``, on IMDB's 50,000 unlabelled reviews
(:func:`lstmkit.data.imdb_texts.load_imdb_unlabelled`) -- then copies them into the model's
embedding, which training fine-tunes. Validation and test texts are never read. It is the
cheapest form of the semi-supervised idea behind Dai & Le (2015, "Semi-supervised Sequence
Learning") and Maas et al. (2011): the unlabelled reviews teach which words behave alike,
before any label is seen.

The vectors are trained on token ids (as strings), so they line up with the embedding rows
exactly, whatever the tokenizer. Rows of ids word2vec did not keep (rarer than ``min_count``)
keep a random start with the same spread; the padding row stays 0.

gensim's word2vec is bit-reproducible only with one worker thread (the words' first vectors are
seeded with :func:`stable_hash`, the same in every process); the run uses ``train.num_threads``
workers (default: every core), so two runs with several workers may differ slightly.
"""

from __future__ import annotations

import logging
import os
import time
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from lstmkit.config import PretrainConfig, Recipe
from lstmkit.data.imdb_texts import load_imdb_unlabelled
from lstmkit.errors import ConfigError, DataError
from lstmkit.extras import needs

logger = logging.getLogger(__name__)


def stable_hash(text: str) -> int:
    """The same number for the same text in every process (Python's own ``hash`` of a str
    changes between interpreter runs); gensim seeds each word's first vector with it."""
    return zlib.crc32(text.encode("utf-8"))


def word2vec_matrix(
    sequences: Sequence[np.ndarray],
    vocab_size: int,
    dim: int,
    cfg: PretrainConfig,
    *,
    seed: int = 0,
    workers: int = 1,
) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """Skip-gram vectors of the ids in ``sequences`` as a ``(vocab_size, dim)`` float32 matrix.

    Returns ``(matrix, kept, facts)``: ``kept`` is a bool mask of the rows word2vec learned
    (the others are random with the same standard deviation, ``cfg.init_std``; row 0, padding,
    is 0); facts: tokens, kept ids, seconds.
    """
    with needs("text", 'word2vec pretraining ([pretrain] method = "word2vec")'):
        from gensim.models import Word2Vec  # a heavy import, needed only here

    if dim < 1 or vocab_size < 2:
        raise ValueError(f"need dim >= 1 and vocab_size >= 2, got {dim}, {vocab_size}")
    start = time.perf_counter()
    sentences: list[list[str]] = []
    tokens = 0
    for seq in sequences:
        ids = np.asarray(seq)
        if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= vocab_size):
            raise ValueError(
                f"token ids must be in 0..{vocab_size - 1} for the word vectors, got "
                f"{int(ids.min())}..{int(ids.max())}"
            )
        ids = ids[ids != 0]  # padding is not a word
        tokens += int(ids.size)
        if ids.size:
            sentences.append(ids.astype(str).tolist())
    if not sentences:
        raise DataError("no tokens to train word vectors on")
    # gensim reports every second at INFO; our log line below says what matters
    gensim_log = logging.getLogger("gensim")
    level = gensim_log.level
    gensim_log.setLevel(logging.WARNING)
    try:
        w2v = Word2Vec(
            vector_size=dim,
            window=cfg.window,
            min_count=cfg.min_count,
            sg=1,
            negative=cfg.negative,
            sample=cfg.sample,
            workers=workers,
            epochs=cfg.passes,
            seed=seed,
            hashfxn=stable_hash,
        )
        w2v.build_vocab(sentences)
        if not w2v.wv.key_to_index:
            raise ConfigError(
                f"word2vec kept no ids: every id is rarer than pretrain.min_count = {cfg.min_count}"
            )
        w2v.train(sentences, total_examples=w2v.corpus_count, epochs=cfg.passes)
    finally:
        gensim_log.setLevel(level)
    rows = np.asarray([int(k) for k in w2v.wv.index_to_key], dtype=np.int64)
    vectors = np.asarray(w2v.wv.vectors, dtype=np.float64)
    vectors *= cfg.init_std / max(float(vectors.std()), 1e-12)
    rng = np.random.default_rng(seed)
    matrix = rng.normal(0.0, cfg.init_std, (vocab_size, dim))
    matrix[rows] = vectors
    matrix[0] = 0.0
    kept = np.zeros(vocab_size, dtype=bool)
    kept[rows] = True
    facts = {
        "sentences": float(len(sentences)),
        "tokens": float(tokens),
        "kept_ids": float(kept.sum()),
        "seconds": time.perf_counter() - start,
    }
    return matrix.astype(np.float32), kept, facts


def imdb_unlabelled(recipe: Recipe, reader: str = "pretrain.unlabelled") -> list[np.ndarray]:
    """IMDB's 50,000 unlabelled reviews in the recipe's vocabulary (``data.num_words``,
    ``data.index_from``; ``data.limit`` cuts them as it cuts every split), untruncated.
    ``reader`` names the setting that asked for them in the error about ``skip_top``."""
    d = recipe.data
    if d.skip_top:
        raise ConfigError(
            f"{reader} with data.skip_top > 0 is not supported (Keras' skip_top "
            "also hides the start character); set data.skip_top = 0"
        )
    return load_imdb_unlabelled(d.num_words, index_from=d.index_from, limit=d.limit)


def pretrain_embedding(
    embedding: torch.nn.Embedding,
    recipe: Recipe,
    train_sequences: Sequence[np.ndarray],
    unlabelled_sequences: Sequence[np.ndarray] | None = None,
) -> dict[str, Any] | None:
    """Run ``recipe.pretrain`` on the training split's sequences (plus IMDB's unlabelled
    reviews when asked) and copy the vectors into ``embedding``. None when the method is 'none'.
    ``unlabelled_sequences``: those reviews when the caller has already loaded them
    (:func:`imdb_unlabelled`); None loads them here when ``pretrain.unlabelled`` asks.
    """
    cfg = recipe.pretrain
    if cfg.method == "none":
        return None
    sequences: list[np.ndarray] = list(train_sequences)
    unlabelled = 0
    if cfg.unlabelled:
        extra = imdb_unlabelled(recipe) if unlabelled_sequences is None else unlabelled_sequences
        unlabelled = len(extra)
        sequences.extend(extra)
    workers = recipe.train.num_threads or os.cpu_count() or 1
    matrix, kept, facts = word2vec_matrix(
        sequences,
        embedding.num_embeddings,
        embedding.embedding_dim,
        cfg,
        seed=recipe.train.seed,
        workers=workers,
    )
    with torch.no_grad():
        embedding.weight.copy_(torch.from_numpy(matrix))
    facts = {**facts, "unlabelled_reviews": float(unlabelled), "workers": float(workers)}
    logger.info(
        "pretrain: word2vec (skip-gram, %d passes) on %d texts (%d unlabelled), %d tokens: "
        "vectors for %d of %d ids in %.1f s",
        cfg.passes,
        int(facts["sentences"]),
        unlabelled,
        int(facts["tokens"]),
        int(kept.sum()),
        embedding.num_embeddings,
        facts["seconds"],
    )
    return facts
