"""Every packaged recipe (lstmkit/recipes/*.toml) validates and runs end to end on its real data in
quick mode (``lstmkit train NAME --quick``: two steps on a few examples; no accuracy is claimed);
a name resolves to the packaged recipe, a path to its file, anything else is one clear error."""

from __future__ import annotations

import json
import math
import os
import runpy
from pathlib import Path

import pytest

from lstmkit import recipes as packaged
from lstmkit.cli import main
from lstmkit.config import ConfigError, load_recipe
from lstmkit.data.resolve import ENV_VAR

RECIPES = [packaged.folder() / f"{name}.toml" for name in packaged.names()]
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
    args = ["train", path.stem, "--quick", "--out", str(out), "--no-progress", *extra]
    assert main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 2
    # the two steps trained something: the step-2 train row has a finite loss and every layer
    # moved (update ratio finite, > 0); the untrained-ish model's test loss is near ln(classes)
    rows = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if r["split"] == "train" and r["step"] == 2]
    assert len(train_rows) == 1, rows
    row = train_rows[0]
    assert math.isfinite(row["loss"]), row
    assert row["layers"], row
    for layer, stats in row["layers"].items():
        ratio = stats["update_ratio"]
        assert math.isfinite(ratio) and ratio > 0, (layer, stats)
    model = json.loads((out / "config.json").read_text())["model"]
    classes = model["num_classes"] if "num_classes" in model else model["vocab_size"]
    chance = math.log(classes)
    test_loss = metrics["test"]["loss"]
    assert math.isfinite(test_loss) and abs(test_loss - chance) <= 0.25 * chance, (
        test_loss,
        classes,
    )
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


def test_the_packaged_recipes_are_the_package_s_own_files() -> None:
    assert packaged.folder() == Path(__file__).parents[1] / "lstmkit" / "recipes"
    assert packaged.names() == [p.stem for p in RECIPES]
    assert len(RECIPES) >= 10


def test_a_name_is_the_packaged_recipe_and_a_path_is_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no recipes/ folder here: the name alone must find it
    seed3, _ = load_recipe("imdb-seed003")
    assert seed3.name == "imdb-seed003" and seed3.seed_figure == 0.8658
    assert packaged.resolve("imdb-seed003") == packaged.folder() / "imdb-seed003.toml"
    mine = tmp_path / "mine.toml"
    mine.write_text("[model]\nhidden_size = 7\n")
    for given in ("mine.toml", str(mine), "./mine.toml"):
        recipe, _ = load_recipe(given)
        assert recipe.name == "mine" and recipe.classifier.hidden_size == 7
    # a file of one's own named like a packaged recipe is read as a file when given as a path
    (tmp_path / "imdb-seed003.toml").write_text("[model]\nhidden_size = 5\n")
    assert load_recipe("./imdb-seed003.toml")[0].classifier.hidden_size == 5
    assert load_recipe("imdb-seed003")[0].classifier.hidden_size == 32


def test_an_unknown_name_lists_the_packaged_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_recipe("imdb-seed999")
    message = str(err.value)
    assert message.startswith("recipe 'imdb-seed999' is not a packaged recipe nor a file")
    assert "imdb-seed003, " in message and "stacked-seed004" in message
    assert "\n" not in message
    # the path recipes had before they were packaged says which name to use
    with pytest.raises(ConfigError, match=r"the packaged recipe of that name is 'imdb-seed003'"):
        load_recipe(tmp_path / "recipes" / "imdb-seed003.toml")
    with pytest.raises(ConfigError, match=r"recipe .*nope\.toml does not exist$"):
        load_recipe(tmp_path / "nope.toml")


def test_lstmkit_recipes_lists_names_and_seed_figures(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["recipes"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["name", "task", "data"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == set(packaged.names())
    assert rows["imdb-seed003"].split()[1:4] == ["classify", "imdb", "86.58%"]
    assert rows["shakespeare-char"].split()[1:4] == ["language_model", "chars", "-"]
    assert main(["recipes", "--path"]) == 0
    paths = capsys.readouterr().out.split()
    assert paths == [str(p) for p in RECIPES]
