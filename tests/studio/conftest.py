"""Fixtures of the studio tests: a tiny Reuters-layout data set (3 topics, 60 words; a run on it
takes seconds) and a recipe folder with a tiny recipe, so that real ``lstmkit train`` runs are
quick and need no downloaded data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from studio_support import SLOW_RECIPE, TINY_RECIPE, write_tiny_reuters


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_reuters(tmp_path_factory.mktemp("tiny-data"))


@pytest.fixture(scope="session")
def recipes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("recipes")
    (folder / "tiny.toml").write_text(TINY_RECIPE)
    return folder


@pytest.fixture(scope="session")
def recipes_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The API tests' recipes: tiny, slow (steps of tens of milliseconds) and one that does not
    load."""
    folder = tmp_path_factory.mktemp("api-recipes")
    (folder / "tiny.toml").write_text(TINY_RECIPE)
    (folder / "slow.toml").write_text(SLOW_RECIPE)
    (folder / "broken.toml").write_text('name = "broken"\n[model]\nhidden_size = -1\n')
    return folder


@pytest.fixture(scope="session")
def run_env(tiny_data: Path) -> dict[str, str]:
    """Environment of the runs: the tiny data, one thread each."""
    return {"LSTMKIT_DATA": str(tiny_data), "OMP_NUM_THREADS": "1", "PYTHONPATH": _root()}


def _root() -> str:
    root = str(Path(__file__).resolve().parents[2])
    extra = os.environ.get("PYTHONPATH")
    return root + (os.pathsep + extra if extra else "")
