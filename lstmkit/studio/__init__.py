"""The training studio (``lstmkit studio``): a web page to set a recipe's parameters, train it in
the background through ``lstmkit train``, watch it live, compare runs and use the model.

See :func:`lstmkit.studio.app.create_studio_app`. FastAPI is imported only here, never by
``import lstmkit``.
"""

from lstmkit.studio.app import create_studio_app

__all__ = ["create_studio_app"]
