"""The optional parts of lstmkit and the one error a missing one gives.

``pip install lstmkit`` installs the core (torch, numpy, safetensors, pydantic, rich, tokenizers,
matplotlib, ninja): the layers and cells, training a recipe, bundles, ``lstmkit.load``. The rest
comes with an extra, named after what it is for (``pyproject.toml`` lists the packages):

=============  ==============================================================================
extra          what needs it
=============  ==============================================================================
``serve``      ``lstmkit serve`` and ``lstmkit demo`` (FastAPI, uvicorn)
``studio``     ``lstmkit studio`` (serve + text + forecast: it trains every kind of run)
``text``       your own texts (``--task text``): the TF-IDF baseline (scikit-learn), the unigram
               tokenizer (sentencepiece), word2vec vectors (gensim), the fast CSV reader and
               Parquet (pyarrow)
``forecast``   forecasting runs' baselines: Holt-Winters (statsmodels), AutoETS / AutoTheta on a
               panel (statsforecast)
``export``     ``lstmkit export --onnx`` (onnx, onnxruntime)
``all``        every one of them
=============  ==============================================================================

A command that reaches a missing one stops with one line naming the extra
(:func:`needs`): ``lstmkit serve: error: lstmkit serve needs fastapi, which is not installed:
pip install 'lstmkit[serve]'`` (exit status 2, no traceback).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from lstmkit.errors import MissingDependencyError

# the top-level modules each extra brings (an ImportError naming another module is a bug, not a
# missing extra: it is raised as it is)
MODULES: dict[str, frozenset[str]] = {
    "serve": frozenset({"fastapi", "starlette", "uvicorn", "httptools", "uvloop", "anyio"}),
    "text": frozenset({"sklearn", "scipy", "sentencepiece", "gensim", "pyarrow"}),
    "forecast": frozenset({"statsmodels", "statsforecast", "scipy", "pandas"}),
    "export": frozenset({"onnx", "onnxruntime"}),
}
MODULES["studio"] = MODULES["serve"] | MODULES["text"] | MODULES["forecast"]
# what pip calls a module's package, where the names differ
PACKAGES = {"sklearn": "scikit-learn"}


def install_hint(extra: str) -> str:
    """``pip install 'lstmkit[EXTRA]'``."""
    return f"pip install 'lstmkit[{extra}]'"


def missing(
    extra: str, what: str, module: str | None, *, verb: str = "needs"
) -> MissingDependencyError:
    """The error of ``what`` (a command or a feature) needing ``module`` of ``extra``."""
    name = PACKAGES.get(module, module) if module else "a package"
    return MissingDependencyError(
        f"{what} {verb} {name}, which is not installed: {install_hint(extra)}"
    )


@contextmanager
def needs(extra: str, what: str, *, hint: str = "", verb: str = "needs") -> Iterator[None]:
    """Turn an ImportError of one of ``extra``'s modules inside the block into one
    :class:`~lstmkit.errors.MissingDependencyError` line naming ``pip install 'lstmkit[EXTRA]'``
    (``hint``, when given, is added after a semicolon: e.g. how to skip the feature; ``verb``
    "need" for a plural ``what``)::

        with needs("serve", "lstmkit serve"):
            from lstmkit.serve.server import serve
    """
    try:
        yield
    except ImportError as err:
        module = (err.name or "").partition(".")[0]
        if module not in MODULES.get(extra, frozenset()):
            raise
        error = missing(extra, what, module, verb=verb)
        if hint:
            error = MissingDependencyError(f"{error}; {hint}")
        raise error from None
