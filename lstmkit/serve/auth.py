"""The bearer-token check of ``lstmkit serve`` and ``lstmkit studio --token``: one comparison,
in constant time, one 401; and where ``lstmkit serve`` reads its token (:func:`resolve_token`:
``--token-file``, ``LSTMKIT_TOKEN`` or ``--token``)."""

from __future__ import annotations

import os
import secrets
import warnings
from collections.abc import Mapping
from pathlib import Path

from fastapi import HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials

from lstmkit.errors import ConfigError


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


TOKEN_ENV = "LSTMKIT_TOKEN"


def resolve_token(
    flag: str | None, token_file: str | os.PathLike[str] | None, environ: Mapping[str, str]
) -> str | None:
    """The server's token from ``--token-file FILE`` (its first line, stripped), the
    ``LSTMKIT_TOKEN`` environment variable or ``--token`` (which every user of the machine sees
    in ``ps``: a warning says so, once) -- at most one of them. None: no token. An empty token,
    an unreadable file or two sources at once is one :class:`~lstmkit.errors.ConfigError`."""
    env = environ.get(TOKEN_ENV)
    given = [n for n, v in (("--token", flag), ("--token-file", token_file), (TOKEN_ENV, env)) if v]
    if len(given) > 1:
        raise ConfigError(f"give the token one way, not {' and '.join(given)}")
    if token_file:
        try:
            lines = Path(token_file).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"--token-file {token_file}: cannot be read ({err})") from None
        token = lines[0].strip() if lines else ""
        if not token:
            raise ConfigError(f"--token-file {token_file}: its first line is empty")
        return token
    if env is not None:
        if not env.strip():
            raise ConfigError(f"{TOKEN_ENV} is set but empty; unset it or give a token")
        return env.strip()
    if flag is not None:
        warnings.warn(
            "--token is visible to every user of this machine (ps shows the command line); "
            f"use --token-file FILE or the {TOKEN_ENV} environment variable",
            UserWarning,
            stacklevel=2,
        )
        if not flag:
            raise ConfigError("--token must not be empty")
    return flag
