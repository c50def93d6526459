"""HTTP serving of a model bundle (FastAPI): ``lstmkit serve BUNDLE_OR_RUN``.

See :func:`lstmkit.serve.app.create_app`. FastAPI and uvicorn are imported only here, never by
``import lstmkit``.
"""

from lstmkit.serve.app import create_app

__all__ = ["create_app"]
