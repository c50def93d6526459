"""TF-IDF word and character n-grams + logistic regression: the classic text baseline.

:func:`tfidf_logistic` fits scikit-learn's ``TfidfVectorizer`` twice on the training texts --
words (runs of ``\\w``, 1-2-grams) and characters within word boundaries (``char_wb``, 1-3-grams),
both with sublinear term frequency -- joins the two feature sets and fits a
``LogisticRegression`` (multinomial for more than two classes) for each inverse regularisation
strength in ``C_GRID``, keeping the one with the lowest validation log-loss. The character
n-grams make it work for scripts written without spaces between words (Chinese, Japanese, Thai)
as well as for agglutinative ones (Korean, Turkish, Finnish), where the word n-grams alone are
weak. It reads the texts as they are in the files (no tokenizer of lstmkit), so it is what a user
would write in ten lines.

A baseline that cannot be fitted (no n-gram occurs in two training texts, a scikit-learn error)
is one :class:`~lstmkit.errors.BaselineError` that says how to skip it (``--baseline none``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from lstmkit.errors import BaselineError
from lstmkit.extras import needs

NAME = "tfidf-logreg"
DESCRIPTION = "TF-IDF word 1-2-grams + char 1-3-grams, logistic regression (scikit-learn)"
C_GRID = (1.0, 4.0, 16.0)


@dataclass
class TextBaseline:
    """A fitted baseline's figures.

    Attributes:
        name, description: what it is.
        C: the regularisation chosen on validation. features: columns of the joined features.
        valid: accuracy, macro-F1 and log-loss on the validation records.
        test: accuracy and macro-F1 on the test records (None without a test file).
        seconds: fitting and scoring time.
        tried: validation log-loss of every C tried.
    """

    name: str
    description: str
    C: float
    features: int
    valid: dict[str, float]
    test: dict[str, float] | None
    seconds: float
    tried: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``evaluation.json``, ``metrics.json``). Every field, as it is."""
        return asdict(self)


def _scores(y: np.ndarray, proba: np.ndarray, classes: int) -> dict[str, float]:
    pred = proba.argmax(1)
    eps = 1e-12
    loss = float(-np.mean(np.log(np.clip(proba[np.arange(len(y)), y], eps, 1.0))))
    f1s = []
    for c in range(classes):
        tp = float(np.sum((pred == c) & (y == c)))
        p_n, t_n = float(np.sum(pred == c)), float(np.sum(y == c))
        if p_n + t_n == 0:
            continue
        f1s.append(2 * tp / (p_n + t_n))
    return {
        "accuracy": float(np.mean(pred == y)),
        "macro_f1": float(np.mean(f1s)) if f1s else float("nan"),
        "loss": loss,
    }


def _full_proba(model: Any, x: Any, classes: int) -> np.ndarray:
    """Probabilities over all ``classes`` (a class absent from training gets 0)."""
    p = model.predict_proba(x)
    out = np.zeros((p.shape[0], classes))
    out[:, model.classes_] = p
    return out


def tfidf_logistic(
    train: tuple[Sequence[str], np.ndarray],
    valid: tuple[Sequence[str], np.ndarray],
    test: tuple[Sequence[str], np.ndarray] | None,
    classes: int,
    *,
    seed: int = 0,
) -> TextBaseline:
    """Fit the baseline on ``train`` (texts, label ids), choose C on ``valid``, score ``valid``
    and ``test``. Raises BaselineError when it cannot be fitted."""
    with needs("text", "the TF-IDF baseline", hint="or skip it with --baseline none"):
        from scipy.sparse import hstack
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
    start = time.perf_counter()
    texts, y = list(train[0]), np.asarray(train[1], dtype=np.int64)
    if len(np.unique(y)) < 2:
        raise BaselineError(
            "the TF-IDF baseline needs at least two classes in the training split; "
            "skip it with --baseline none"
        )
    min_df = 2 if len(texts) >= 50 else 1
    vectorizers = [
        TfidfVectorizer(
            analyzer="word",
            ngram_range=(1, 2),
            token_pattern=r"(?u)\b\w+\b",
            sublinear_tf=True,
            min_df=min_df,
            dtype=np.float32,
        ),
        TfidfVectorizer(
            analyzer="char_wb",
            ngram_range=(1, 3),
            sublinear_tf=True,
            min_df=min_df,
            dtype=np.float32,
        ),
    ]
    parts = []
    fitted = []
    for v in vectorizers:
        try:
            parts.append(v.fit_transform(texts))
            fitted.append(v)
        except ValueError:  # "empty vocabulary": no n-gram of this kind occurs min_df times
            continue
    if not fitted:
        raise BaselineError(
            f"the TF-IDF baseline found no word or character n-gram in {min_df} or more of the "
            f"{len(texts)} training texts; skip it with --baseline none"
        )

    def features(batch: Sequence[str]) -> Any:
        return hstack([v.transform(list(batch)) for v in fitted]).tocsr()

    x_train = hstack(parts).tocsr()
    x_valid = features(valid[0])
    y_valid = np.asarray(valid[1], dtype=np.int64)
    best: tuple[float, float, Any] | None = None
    tried = {}
    for c in C_GRID:
        try:
            model = LogisticRegression(C=c, max_iter=1000, random_state=seed).fit(x_train, y)
        except ValueError as err:
            raise BaselineError(
                f"the TF-IDF baseline cannot be fitted: {err}; skip it with --baseline none"
            ) from None
        loss = _scores(y_valid, _full_proba(model, x_valid, classes), classes)["loss"]
        tried[f"{c:g}"] = loss
        if best is None or loss < best[0]:
            best = (loss, c, model)
    assert best is not None
    _, c_best, model = best
    valid_scores = _scores(y_valid, _full_proba(model, x_valid, classes), classes)
    test_scores = None
    if test is not None:
        y_test = np.asarray(test[1], dtype=np.int64)
        test_scores = _scores(y_test, _full_proba(model, features(test[0]), classes), classes)
    return TextBaseline(
        NAME,
        DESCRIPTION,
        c_best,
        int(x_train.shape[1]),
        valid_scores,
        test_scores,
        time.perf_counter() - start,
        tried,
    )
