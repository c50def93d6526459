"""Every recipe file in recipes/ validates and runs end to end on its real data in quick mode
(``lstmkit train RECIPE --quick``: two steps on a few examples; no accuracy is claimed)."""

from __future__ import annotations

import json
import os
import runpy
from pathlib import Path

import pytest

from lstmkit.cli import main
from lstmkit.config import load_recipe
from lstmkit.data.resolve import ENV_VAR

RECIPES = sorted((Path(__file__).parents[1] / "recipes").glob("*.toml"))
DATA_FILE = {
    "imdb": "imdb.npz",
    "reuters": "reuters.npz",
    "mnist": "mnist.npz",
    "chars": "tinyshakespeare.txt",
}


def test_there_are_recipes_for_every_seed_model() -> None:
    names = {p.stem for p in RECIPES}
    for want in (
        "imdb-seed000",
        "imdb-seed003",
        "imdb-conv-lstm",
        "imdb-best",
        "reuters-seed002",
        "reuters-best",
        "mnist-rows-seed001",
        "mnist-rows-best",
        "shakespeare-char",
        "stacked-seed004",
    ):
        assert want in names


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_runs_in_quick_mode(path: Path, tmp_path: Path) -> None:
    recipe, _ = load_recipe(path)
    assert recipe.name == path.stem
    data_file = DATA_FILE.get(recipe.data.dataset, "mnist.npz" if recipe.data.arrays else None)
    if data_file is None:
        pytest.skip(f"{path.name} reads the user's own files")
    if not (Path(os.environ.get(ENV_VAR, "/nonexistent")) / data_file).exists():
        pytest.skip(f"{ENV_VAR} does not point at a directory with {data_file}")
    extra = []
    if recipe.data.arrays is not None:  # the documented example's file, made as the docs say
        example = runpy.run_path(str(Path(__file__).parents[1] / "examples/make_digit_arrays.py"))
        arrays = example["make"](tmp_path / "digits.npz", 500)
        extra = ["--set", f"data.arrays.x={json.dumps(str(arrays))}"]
    out = tmp_path / "run"
    args = ["train", str(path), "--quick", "--out", str(out), "--no-progress", *extra]
    assert main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 2
    assert (out / "model.safetensors").exists()
    assert not (Path("results") / f"{recipe.name}-quick.json").exists()


def test_quick_refuses_to_record(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "train",
            str(RECIPES[0]),
            "--quick",
            "--record",
            str(tmp_path),
            "--out",
            str(tmp_path / "r"),
        ]
    )
    assert code == 2
    assert "--quick runs claim no accuracy: drop --record" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
