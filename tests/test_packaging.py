"""lstmkit as a library installs it: a lean core whose ``import lstmkit`` pulls no extra, a missing
extra that is one line naming ``pip install 'lstmkit[EXTRA]'``, the packaged recipes in the
studio, and the dependencies' bounds (the exact pins live in constraints.txt).

The core-only test runs a fresh interpreter in which every optional package is made impossible to
import (None in ``sys.modules``, as for a package that is not installed), so it checks what a ``pip install lstmkit`` user has, without
a second environment. ``tests/wheel_check.py`` (``make test-wheel``, CI) checks the real wheel.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from lstmkit import recipes as packaged
from lstmkit.extras import MODULES, needs
from lstmkit.studio import create_studio_app

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
OPTIONAL = sorted(set().union(*MODULES.values()) | {"onnxruntime", "keras"})

CORE_ONLY = """
import io, json, sys
from pathlib import Path
from contextlib import redirect_stderr

BLOCKED = set({blocked!r})
for name in BLOCKED:  # None in sys.modules: `import name` raises ModuleNotFoundError(name=name)
    sys.modules[name] = None

import torch
import lstmkit

loaded = sorted(m for m in BLOCKED | {{"matplotlib"}} if sys.modules.get(m) is not None)
out = {{"imported": loaded}}
torch.manual_seed(0)
layer, head = lstmkit.GRU(2, 8), torch.nn.Linear(8, 1)
opt = torch.optim.Adam([*layer.parameters(), *head.parameters()], lr=0.02)
x = torch.randn(16, 6, 2)
y = x[:, :, 1].sum(1, keepdim=True)
losses = []
for _ in range(25):
    h, _ = layer(x)
    loss = torch.nn.functional.mse_loss(head(h[:, -1]), y)
    opt.zero_grad(); loss.backward(); opt.step()
    losses.append(loss.item())
out["losses"] = [losses[0], losses[-1]]

from lstmkit.cli import main
for name, argv in {{"serve": ["serve", "nowhere"], "studio": ["studio", "--port", "1"]}}.items():
    err = io.StringIO()
    with redirect_stderr(err):
        code = main(argv)
    out[name] = [code, err.getvalue()]

from lstmkit.data.text import iter_records  # the csv module reads it when pyarrow is absent
with open("reviews.csv", "w", encoding="utf-8") as f:
    f.write('text,label\\n"good, very good",pos\\nbad,neg\\n')
_, records = iter_records(Path("reviews.csv"), ["text", "label"])
out["records"] = [r for _, r in records]
print(json.dumps(out))
"""


def test_a_core_only_install_imports_trains_and_names_the_missing_extra(tmp_path: Path) -> None:
    got = subprocess.run(
        [sys.executable, "-c", CORE_ONLY.format(blocked=OPTIONAL)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
        check=False,
    )
    assert got.returncode == 0, got.stderr[-3000:]
    out = json.loads(got.stdout.strip().splitlines()[-1])
    assert out["imported"] == []  # import lstmkit pulls no optional (or plotting) package
    first, last = out["losses"]
    assert last < 0.5 * first
    for extra in ("serve", "studio"):
        code, err = out[extra]
        assert code == 2
        assert err.count("\n") == 1 and "Traceback" not in err
        assert err.startswith(f"lstmkit {extra}: error: lstmkit {extra} needs ")
        assert err.rstrip().endswith(f"which is not installed: pip install 'lstmkit[{extra}]'")
    assert out["records"] == [
        {"text": "good, very good", "label": "pos"},
        {"text": "bad", "label": "neg"},
    ]


def test_needs_names_the_extra_and_lets_other_import_errors_through() -> None:
    from lstmkit.errors import MissingDependencyError

    with pytest.raises(MissingDependencyError) as err, needs("export", "the ONNX export"):
        raise ModuleNotFoundError("No module named 'onnx'", name="onnx")
    assert str(err.value) == (
        "the ONNX export needs onnx, which is not installed: pip install 'lstmkit[export]'"
    )
    with (
        pytest.raises(MissingDependencyError, match=r"needs scikit-learn, .*; or skip"),
        needs("text", "the TF-IDF baseline", hint="or skip it"),
    ):
        raise ModuleNotFoundError("No module named 'sklearn.svm'", name="sklearn.svm")
    # a module of no extra (a bug, or lstmkit's own) is not dressed up as a missing extra
    with pytest.raises(ModuleNotFoundError, match="lstmkit.nothing"), needs("serve", "x"):
        raise ModuleNotFoundError("No module named 'lstmkit.nothing'", name="lstmkit.nothing")


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!;\[ ]", r, maxsplit=1)[0].lower() for r in requirements}


def test_the_core_is_lean_and_bounded_below_with_the_pin_in_constraints() -> None:
    project = PYPROJECT["project"]
    core = project["dependencies"]
    assert _names(core) == {
        "torch",
        "numpy",
        "safetensors",
        "pydantic",
        "rich",
        "tokenizers",
        "matplotlib",
        "ninja",
    }
    assert not [r for r in core if "==" in r]  # lower bounds only: a library lives beside others
    torch_req = next(r for r in core if r.startswith("torch"))
    assert re.fullmatch(r"torch>=2\.\d+(\.\d+)?", torch_req)
    pins = (ROOT / "constraints.txt").read_text().split()
    assert "torch==2.13.0" in pins
    extras = project["optional-dependencies"]
    assert {"serve", "studio", "text", "forecast", "export", "all"} <= set(extras)
    assert "lstmkit[all,test]" in extras["dev"]  # make test installs every extra
    assert {"fastapi", "uvicorn"} <= _names(extras["serve"])
    assert {"scikit-learn", "sentencepiece", "gensim", "pyarrow"} <= _names(extras["text"])
    assert {"statsmodels", "statsforecast"} <= _names(extras["forecast"])
    package_data = PYPROJECT["tool"]["setuptools"]["package-data"]
    assert package_data["lstmkit.recipes"] == ["*.toml"]


def test_the_studio_offers_the_packaged_recipes_and_adds_a_folder(tmp_path: Path) -> None:
    with TestClient(create_studio_app(tmp_path / "home")) as client:
        offered = {r["name"]: r for r in client.get("/api/options").json()["recipes"]}
    assert set(offered) == set(packaged.names())
    assert offered["imdb-seed003"]["seed_figure"] == 0.8658

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "my-run.toml").write_text('description = "mine"\n[data]\ndataset = "reuters"\n')
    (mine / "imdb-seed003.toml").write_text(
        'description = "my seed 003"\n[model]\nhidden_size = 9\n'
    )
    app = create_studio_app(tmp_path / "home2", recipes_dir=mine, packaged_recipes=True)
    with TestClient(app) as client:
        offered = {r["name"]: r for r in client.get("/api/options").json()["recipes"]}
    assert set(offered) == {*packaged.names(), "my-run"}
    # one's own recipe of a packaged name takes its place
    assert offered["imdb-seed003"]["description"] == "my seed 003"
    assert offered["imdb-seed003"]["values"]["hidden_size"] == 9
    # a folder alone (the factory's own default): only its recipes
    with TestClient(create_studio_app(tmp_path / "home3", recipes_dir=mine)) as client:
        names = {r["name"] for r in client.get("/api/options").json()["recipes"]}
    assert names == {"my-run", "imdb-seed003"}
