"""lstmkit.config: TOML recipes, seed parameter names, --set overrides, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from lstmkit.config import (
    ConfigError,
    apply_overrides,
    load_recipe,
    parse_override,
    recipe_from_dict,
)

RECIPES = Path(__file__).resolve().parents[1] / "lstmkit" / "recipes"


def test_every_shipped_recipe_loads() -> None:
    paths = sorted(RECIPES.glob("*.toml"))
    assert paths
    for path in paths:
        recipe, _ = load_recipe(path)
        assert recipe.name == path.stem


def test_seed000_parameters_map_to_ours() -> None:
    r, _ = load_recipe(RECIPES / "imdb-seed000.toml")
    assert r.data.maxlen == 100 and r.model.embedding_dim == 100 and r.model.num_classes == 2
    assert r.model.hidden_size == 30 and r.model.num_layers == 2
    assert r.model.output_dropout == pytest.approx(0.5) and r.model.dropout == pytest.approx(0.5)
    assert r.train.epochs == 20 and r.train.batch_size == 1000 and r.train.evaluate_every == 150
    assert r.train.lr == pytest.approx(0.001)
    assert r.model.cell_options["forget_bias"] == 1.0
    assert r.seed_figure == pytest.approx(0.863)


def test_seed003_recipe() -> None:
    r, _ = load_recipe(RECIPES / "imdb-seed003.toml")
    assert (r.data.num_words, r.data.maxlen, r.data.validation_split) == (10000, 500, 0.2)
    assert (r.model.embedding_dim, r.model.hidden_size, r.train.optimizer) == (32, 32, "rmsprop")
    assert (r.train.epochs, r.train.batch_size) == (10, 128)


def test_overrides() -> None:
    assert parse_override("train.lr=3e-4") == (["train", "lr"], 3e-4)
    assert parse_override("cell=gru") == (["cell"], "gru")
    assert parse_override("bidirectional=true") == (["bidirectional"], True)
    raw = apply_overrides(
        {},
        [
            "learn_rate=0.01",
            "hidden_size=64",
            "bidirectional=true",
            "model.cell_options.peephole=true",
        ],
    )
    r = recipe_from_dict(raw)
    assert r.train.lr == 0.01 and r.model.hidden_size == 64 and r.model.bidirectional
    assert r.model.cell_options == {"peephole": True}
    r, _ = load_recipe(RECIPES / "imdb-seed003.toml", ["epochs=2", "data.maxlen=200"])
    assert r.train.epochs == 2 and r.data.maxlen == 200


def test_bad_recipes_name_the_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[model]\nhidden_size = "big"\n')
    with pytest.raises(ConfigError, match=r"bad\.toml: model\.hidden_size: .*integer.*got 'big'"):
        load_recipe(bad)
    bad.write_text("[model]\nhiden_size = 3\n")
    with pytest.raises(ConfigError, match=r"model\.hiden_size: Extra inputs are not permitted"):
        load_recipe(bad)
    bad.write_text("[train]\nlr = -1\n")
    with pytest.raises(ConfigError, match=r"train\.lr: Input should be greater than 0"):
        load_recipe(bad)
    bad.write_text("dropout_keep_prob = 0\n")
    with pytest.raises(ConfigError, match=r"dropout_keep_prob must be in \(0, 1\]"):
        load_recipe(bad)
    bad.write_text("[model\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_recipe(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_recipe(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="unknown key"):
        apply_overrides({}, ["nonsense=1"])
    with pytest.raises(ConfigError, match="expected key=value"):
        apply_overrides({}, ["lr"])
    with pytest.raises(
        ConfigError, match=r"hidden_size: Input should be less than or equal to 8192"
    ):
        recipe_from_dict(apply_overrides({}, ["hidden_size=1000000000"]))
