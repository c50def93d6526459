"""The bearer-token check of ``lstmkit serve --token`` and ``lstmkit studio --token``: one
comparison, in constant time, one 401."""

from __future__ import annotations

import secrets

from fastapi import HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials


def check_bearer(credentials: HTTPAuthorizationCredentials | None, token: str | None) -> None:
    """401 unless ``token`` is None (no token asked for) or ``credentials`` carry it
    (``Authorization: Bearer TOKEN``, compared in constant time)."""
    if token is None:
        return
    if credentials is None or not secrets.compare_digest(
        credentials.credentials.encode(), token.encode()
    ):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="missing or wrong token: send 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
