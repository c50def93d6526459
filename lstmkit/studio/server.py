"""``lstmkit studio``: the studio app (:func:`lstmkit.studio.app.create_studio_app`) run by
uvicorn, apart from the factory so that the app imports no server."""

from __future__ import annotations

import os
import threading
from types import FrameType
from typing import Any

import uvicorn

from lstmkit.studio.app import create_studio_app

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def serve_studio(
    home: str | os.PathLike[str],
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    **kwargs: Any,
) -> None:
    """Run the studio with uvicorn (errors in the arguments come out before it starts).
    ``kwargs`` go to :func:`~lstmkit.studio.app.create_studio_app`."""
    if host in LOOPBACK_HOSTS:  # only this machine's names reach a loopback studio
        kwargs.setdefault("allowed_hosts", LOOPBACK_HOSTS)
    app = create_studio_app(home, **kwargs)
    closing: threading.Event = app.state.closing

    class Server(uvicorn.Server):
        """Ctrl-C also ends the live streams (they would hold the shutdown open); then the
        lifespan's shutdown interrupts the running runs, which checkpoint."""

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            closing.set()
            super().handle_exit(sig, frame)

    # timeout_graceful_shutdown: a backstop for any other request that does not end
    config = uvicorn.Config(app, host=host, port=port, timeout_graceful_shutdown=5)
    Server(config).run()
