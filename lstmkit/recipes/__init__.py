"""The recipes that ship with lstmkit: one TOML file per experiment (``imdb-seed003.toml`` ...),
package data read with :mod:`importlib.resources`, so that ``lstmkit train imdb-seed003`` and the
studio work from an installed wheel as from a clone.

A recipe argument is either a *name* (``imdb-seed003``: the packaged recipe) or a *path* (it has a
folder part or ends in ``.toml``: that file). :func:`resolve` tells them apart; ``lstmkit recipes``
lists the names. This module imports nothing of lstmkit but its errors.
"""

from __future__ import annotations

import os
import re
from importlib.resources import files
from pathlib import Path

from lstmkit.errors import ConfigError

# a recipe name: what the studio and the CLI accept as a name (also a file stem)
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")


def folder() -> Path:
    """The folder of the packaged ``*.toml`` recipes (inside the installed package)."""
    # setuptools installs package data as plain files, so the resource is a real folder; a
    # zipped install (no such thing for lstmkit's wheel) would fail here, not later
    return Path(str(files(__name__)))


def names() -> list[str]:
    """The names of the packaged recipes, sorted."""
    return sorted(p.stem for p in folder().glob("*.toml") if NAME.match(p.stem))


def is_name(recipe: str | os.PathLike[str]) -> bool:
    """True when ``recipe`` reads as a recipe name (no folder part, no ``.toml`` suffix)."""
    text = os.fspath(recipe)
    return (
        bool(NAME.match(text))
        and not text.endswith(".toml")
        and os.sep not in text
        and "/" not in text
    )


def resolve(recipe: str | os.PathLike[str]) -> Path:
    """The file of ``recipe``: a packaged recipe's for a name, the path itself for a path.

    A name that is not packaged (and no file of that name exists) raises one
    :class:`~lstmkit.errors.ConfigError` listing the packaged names; a missing path whose stem is a
    packaged name (an old ``recipes/imdb-seed003.toml``) says which name to use.
    """
    text = os.fspath(recipe)
    if is_name(text):
        packaged = folder() / f"{text}.toml"
        if packaged.is_file():
            return packaged
        if Path(text).is_file():  # a recipe file of one's own without the .toml suffix
            return Path(text)
        raise ConfigError(
            f"recipe {text!r} is not a packaged recipe nor a file; give a path to a .toml file or "
            f"one of: {', '.join(names())} (lstmkit recipes lists them)"
        )
    path = Path(text)
    if not path.exists() and path.stem in names():
        raise ConfigError(
            f"recipe {text} does not exist; the packaged recipe of that name is {path.stem!r} "
            f"(lstmkit train {path.stem})"
        )
    return path
