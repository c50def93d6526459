"""HTTP serving of a model bundle (FastAPI): ``lstmkit serve BUNDLE_OR_RUN``.

:mod:`lstmkit.serve.app` builds the app (:func:`create_app`: the model loaded once in its
lifespan), :mod:`lstmkit.serve.routes` and :mod:`lstmkit.serve.schemas` are the API,
:mod:`lstmkit.serve.batcher` batches concurrent requests, and :mod:`lstmkit.serve.server` runs
the app under uvicorn (``serve``, ``--workers N``). FastAPI and uvicorn are imported only here,
never by ``import lstmkit``.
"""

from lstmkit.serve.app import create_app

__all__ = ["create_app"]
