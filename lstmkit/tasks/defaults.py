"""Defaults chosen from the data: what ``lstmkit train --task text|forecast`` picks when you
give nothing but your files.

A task's :meth:`~lstmkit.tasks.base.Task.setup` looks at the data (script and language of the
texts, how many records, the season of a series, ...) and proposes :class:`Choice` s -- a
recipe key, a value, and the reason in words. :func:`apply_choices` keeps only the choices for
keys the user did not set (a flag, ``--set``, or a recipe file given as the base: every key of the
run's ``raw`` recipe, :func:`given_keys`), validates the result as a :class:`~lstmkit.config.Recipe`
and logs each choice once. The run's ``config.json`` keeps them under ``"defaults"`` and its
``recipe`` is the recipe that ran, so ``--resume``, ``evaluate`` and ``predict`` see the same
settings.

The rules are general -- they read properties of the data, never the name of a data set.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lstmkit.config import Recipe

logger = logging.getLogger(__name__)

# keys that only name or locate things: they are "given" without saying anything about settings
_NOT_SETTINGS = frozenset({"name", "description", "data.dataset"})


@dataclass(frozen=True)
class Choice:
    """One default chosen from the data.

    Attributes:
        key: dotted recipe key (``data.text.tokenizer``, ``model.hidden_size``, ``train.epochs``).
        value: the chosen value.
        reason: why, in words (logged and kept in ``config.json``).
    """

    key: str
    value: Any
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """``{"key", "value", "reason"}`` for ``config.json``."""
        return {"key": self.key, "value": self.value, "reason": self.reason}


def given_keys(raw: Mapping[str, Any], prefix: str = "") -> frozenset[str]:
    """Every dotted key set in the raw recipe (tables flattened: ``{"model": {"hidden_size":
    64}}`` -> ``model.hidden_size``). A table itself counts as given only through its keys."""
    out: set[str] = set()
    for k, v in raw.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out |= given_keys(v, key + ".")
        else:
            out.add(key)
    return frozenset(out - _NOT_SETTINGS)


def _set(tree: dict[str, Any], key: str, value: Any) -> None:
    *tables, last = key.split(".")
    node = tree
    for t in tables:
        node = node.setdefault(t, {})
        if node is None:
            raise KeyError(key)
    node[last] = value


def apply_choices(
    recipe: Recipe, choices: Iterable[Choice], given: frozenset[str] | None
) -> tuple[Recipe, list[Choice]]:
    """``recipe`` with every choice whose key is not in ``given`` applied (validated), and the
    choices applied, each logged. ``given`` None: the caller gives no user keys (a recipe built
    in code) and nothing is chosen."""
    from lstmkit.config import Recipe

    if given is None:
        return recipe, []
    applied = [c for c in choices if c.key not in given]
    if not applied:
        return recipe, []
    tree = recipe.model_dump()
    for c in applied:
        _set(tree, c.key, c.value)
        logger.info("default %s = %r: %s", c.key, c.value, c.reason)
    return Recipe.model_validate(tree), applied
