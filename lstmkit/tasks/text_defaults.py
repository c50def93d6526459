"""The defaults of ``lstmkit train --task text`` when you give only your files: chosen from the
data by general rules (:mod:`lstmkit.tasks.defaults`), never by the name of a data set.

:func:`text_choices` reads the training texts' :class:`~lstmkit.data.profile.TextProfile` and
their number, and proposes:

- **tokenizer** by writing system: ``char`` for syllabic / logographic scripts (Hangul, kana,
  Han: one character is a syllable or a morpheme); ``unigram`` subwords (sentencepiece, the
  language-agnostic default) for scripts written without spaces between words (Thai, Khmer, ...)
  and for spaced scripts whose words a word vocabulary misses too often (agglutinative languages:
  more than :data:`WORD_UNKNOWN_LIMIT` of held-out words unknown); ``word`` otherwise. Measured on
  100k Korean reviews (same model otherwise, test accuracy): char 87.3%, unigram-16k 86.5%,
  kiwipiepy morphemes 85.7%, word 78.9%.
- **vocabulary**: every character seen twice (char), 16,000 subwords, 30,000 words -- fewer for
  small data (sentencepiece needs enough text per piece).
- **model width** from the number of training records; a bidirectional LSTM with mean+max pooling,
  embedding and output dropout, and the naive-Bayes n-gram branch (NBSVM features of the
  tokens, :mod:`lstmkit.ngrams`: 1-3-grams of characters / subwords, 1-2-grams of words) beside
  it.
- **training**: the embedding starts from skip-gram vectors trained on the training texts
  (:mod:`lstmkit.pretrain`); Adam at 2e-3 decaying linearly to 0 over 4 epochs (at least
  :data:`MIN_STEPS` steps for small data) or over the time budget of :data:`BUDGET_MINUTES`
  minutes (``--max-minutes``), whichever ends first; validated three times an epoch, early
  stopping on the validation loss (patience 4 evaluations, the best weights restored).
  Measured on the Korean reviews (test accuracy): constant rate 87.29%, linear decay + word2vec
  87.56%; a 5-gram branch 87.40%, adversarial training or a wider model no better; a deep
  ensemble of two such networks (``model.members = 2``, twice the time) 87.51%, so one is the
  default. Averaging the char model's probabilities with a unigram model's (86.77% alone),
  weights chosen on validation, gave 88.07%: different units, not different seeds, is what an
  ensemble here would need. Measured again on a later default char run (87.44% alone), each
  blend's weight chosen on validation: with the in-run TF-IDF baseline's probabilities 87.80%;
  with an NBSVM of character 1-5-grams and word 1-2-grams (87.61% alone) 87.83%; with the
  unigram network (86.83% alone) 87.97% (88.02% at equal weights); all three 88.02%. The
  linear models add little to a network that already has the n-gram branch. Six epochs
  instead of four: 87.28% (validation stopped it at 5,159 of 8,442 steps).

Whatever the user gives (a flag, ``--set``, a recipe file as the base) is kept.
"""

from __future__ import annotations

import math

from lstmkit.data.profile import TextProfile
from lstmkit.tasks.defaults import Choice

WORD_UNKNOWN_LIMIT = 0.05
BUDGET_MINUTES = 8.0
MIN_STEPS = 600
MAX_EPOCHS = 20


def choose_tokenizer(profile: TextProfile) -> tuple[str, str]:
    """``(kind, reason)`` for these texts."""
    script = profile.main_script
    if profile.family == "syllabic":
        return "char", (
            f"{script} script: a character is a syllable or a morpheme, so characters are the units"
        )
    if profile.family == "unspaced":
        return "unigram", (
            f"{script} script is written without spaces between words: subwords (sentencepiece "
            "unigram) find the units"
        )
    unk = profile.word_unknown_rate
    if unk is not None and unk > WORD_UNKNOWN_LIMIT:
        return "unigram", (
            f"spaced {script} script, but a word vocabulary misses {unk:.0%} of held-out words "
            f"(over {WORD_UNKNOWN_LIMIT:.0%}): subwords (sentencepiece unigram) instead"
        )
    shown = f"{unk:.1%}" if unk is not None else "few"
    return "word", f"spaced {script} script; a word vocabulary misses {shown} of held-out words"


def text_choices(
    profile: TextProfile, n_train: int, num_classes: int, tokenizer: str | None = None
) -> list[Choice]:
    """The proposed defaults for ``n_train`` training records of ``num_classes`` classes;
    ``tokenizer``: the one the user gave (the vocabulary and n-grams follow it), None = choose."""
    if tokenizer is None:
        kind, why = choose_tokenizer(profile)
        out = [Choice("data.text.tokenizer", kind, why)]
    else:
        kind, out = tokenizer, []
    size_note = f"{n_train} training records"
    if kind == "char":
        out.append(Choice("data.text.min_frequency", 2, "a character seen once reads as [UNK]"))
        out.append(Choice("data.text.vocab_size", 20000, "every character seen twice"))
        ngrams = 3
    elif kind in ("unigram", "bpe"):
        vocab = int(min(16000, max(1000, 2 ** round(math.log2(max(n_train, 1) / 6)))))
        out.append(Choice("data.text.vocab_size", vocab, f"subwords for {size_note}"))
        ngrams = 3
    else:
        vocab = int(min(30000, max(2000, n_train)))
        out.append(Choice("data.text.vocab_size", vocab, f"words for {size_note}"))
        ngrams = 2
    if n_train < 2000:
        emb, hidden = 32, 32
    elif n_train < 20000:
        emb, hidden = 64, 64
    else:
        emb, hidden = 64, 128
    out += [
        Choice("model.embedding_dim", emb, size_note),
        Choice("model.hidden_size", hidden, size_note),
        Choice("model.bidirectional", True, "reads each text both ways"),
        Choice("model.pooling", "mean+max", "the whole text counts, not only its end"),
        Choice("model.embedding_dropout", 0.2, "regularises the embedding"),
        Choice("model.output_dropout", 0.4, "regularises the head"),
        Choice(
            "model.ngrams",
            ngrams,
            f"a naive-Bayes 1-{ngrams}-gram branch beside the LSTM (NBSVM features, wide and deep)",
        ),
    ]
    batch = 64 if n_train >= 2000 else 32
    per_epoch = max(1, math.ceil(n_train / batch))
    epochs = min(MAX_EPOCHS, max(4, math.ceil(MIN_STEPS / per_epoch)))
    out += [
        Choice("train.batch_size", batch, size_note),
        Choice("train.lr", 0.002, "Adam, decaying linearly to 0 over the epochs or the budget"),
        Choice("train.schedule", "linear", "the rate decays to 0 by the last epoch or minute"),
        Choice("train.clip_norm", 1.0, "keeps a bad batch from throwing the weights off"),
        Choice(
            "train.epochs",
            epochs,
            f"4 epochs, or at least {MIN_STEPS} steps for small data (at most {MAX_EPOCHS})",
        ),
        Choice(
            "pretrain.method",
            "word2vec",
            "skip-gram vectors of the tokens, trained on the training texts, start the embedding",
        ),
        Choice(
            "train.evaluate_every",
            max(1, per_epoch // 3),
            f"three validations per epoch of {per_epoch} steps",
        ),
        Choice("train.early_stopping", 4, "stop after 4 validations without a better loss"),
        Choice("train.monitor", "val_loss", "the validation loss (the best weights are kept)"),
        Choice(
            "train.max_minutes",
            BUDGET_MINUTES,
            f"a time budget of {BUDGET_MINUTES:g} minutes of training (--max-minutes)",
        ),
    ]
    del num_classes  # the rules read no class count yet: the head sizes itself
    return out
