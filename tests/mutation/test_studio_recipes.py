"""The studio's recipe catalogue (lstmkit.studio.params.recipe_catalog): a file whose name is no
recipe name is left out without hiding the ones after it; a recipe that does not load is listed
with its file and its error. (Written against the survivors of ``python
benchmarks/mutation.py --only names``.)"""

from __future__ import annotations

from pathlib import Path

from lstmkit.studio.params import recipe_catalog

GOOD = 'name = "{name}"\n[data]\ndataset = "imdb"\n'


def test_a_file_that_is_no_recipe_name_is_skipped_not_the_rest(tmp_path: Path) -> None:
    for name in ("-starts-with-a-dash", "has space", "good", "zeta"):  # sorted: the bad first
        (tmp_path / f"{name}.toml").write_text(GOOD.format(name=name))
    catalog = recipe_catalog(tmp_path)
    assert sorted(catalog) == ["good", "zeta"]
    assert all(info.recipe is not None and info.error is None for info in catalog.values())


def test_a_recipe_that_does_not_load_is_listed_with_its_file_and_error(tmp_path: Path) -> None:
    (tmp_path / "broken.toml").write_text("[data\n")
    (tmp_path / "fine.toml").write_text(GOOD.format(name="fine"))
    catalog = recipe_catalog(tmp_path)
    broken = catalog["broken"]
    assert broken.path == tmp_path / "broken.toml" and broken.recipe is None
    assert broken.error is not None and "broken.toml" in broken.error
    assert catalog["fine"].path == tmp_path / "fine.toml" and catalog["fine"].error is None
