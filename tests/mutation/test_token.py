"""Where ``lstmkit serve`` reads its token (lstmkit.serve.auth.resolve_token): the exact words of
each refusal and of the --token warning. (Written against the
survivors of ``python benchmarks/mutation.py --only auth``.)"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from lstmkit.errors import ConfigError
from lstmkit.serve.auth import resolve_token


def test_an_empty_token_file_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "token"
    empty.write_text("")
    with pytest.raises(ConfigError) as info:
        resolve_token(None, empty, {})
    assert str(info.value) == f"--token-file {empty}: its first line is empty"


def test_a_token_file_is_read_as_utf8(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_bytes("  clé-секрет \nsecond line\n".encode())
    assert resolve_token(None, path, {}) == "clé-секрет"


def test_the_token_flag_warns_once() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert resolve_token("s3cret", None, {}) == "s3cret"
    (w,) = caught
    assert w.category is UserWarning
    assert str(w.message) == (
        "--token is visible to every user of this machine (ps shows the command line); use "
        "--token-file FILE or the LSTMKIT_TOKEN environment variable"
    )


def test_an_empty_token_flag_is_refused() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ConfigError) as info:
            resolve_token("", None, {})
    assert str(info.value) == "--token must not be empty"
