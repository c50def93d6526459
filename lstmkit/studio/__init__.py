"""The training studio (``lstmkit studio``): a web page to set a recipe's parameters, train it in
the background through ``lstmkit train``, watch it live, compare runs and use the model.

Modules, top to bottom (each imports only those below it)::

    server      serve_studio: uvicorn runs the app (lstmkit studio)
    app         create_studio_app: the factory, its lifespan, the same-site guard
    routes/     one router per resource (options, runs, events, bundles, compare, uploads, pages)
    views       a stored run as the API shows it
    deps        the Studio state (app.state.studio) and the routes' dependencies
    mounts      /models/<id>/: each exported model's serving app (lstmkit.serve)
    jobs        the job queue: lstmkit train subprocesses
    params      the new-run form: RunRequest, recipe catalogue, --set overrides
    uploads     uploaded data files, checked and stored
    schemas     the API's response models
    store       the SQLite store (runs, metric rows, uploads; migrations)
    diagnose    training hints from metric rows

FastAPI is imported only here, never by ``import lstmkit``.
"""

from lstmkit.studio.app import create_studio_app

__all__ = ["create_studio_app"]
