"""The command line answers at once: ``lstmkit --help``, ``lstmkit train --help`` and ``lstmkit
tune --help`` import no torch (nor numpy, pydantic, rich or matplotlib), nor does ``import
lstmkit``; the public names still load on first use. (How long they take is measured by
benchmarks/cli_start.py, not here.)"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "numpy", "pydantic", "rich", "matplotlib", "optuna", "mlflow", "tensorboard")
RUNNER = """
import json, sys
from lstmkit.cli import main
code = main({argv!r})
heavy = sorted(m for m in {heavy!r} if m in sys.modules)
print(json.dumps({{"code": code, "heavy": heavy}}))
"""


def imported(argv: list[str]) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", RUNNER.format(argv=argv, heavy=HEAVY)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "argv", [["--help"], ["train", "--help"], ["tune", "--help"], ["--version"]]
)
def test_help_imports_no_heavy_module(argv: list[str]) -> None:
    assert imported(argv) == {"code": 0, "heavy": []}


def test_import_lstmkit_is_light_and_its_names_load_on_first_use() -> None:
    code = (
        "import sys, lstmkit; light = 'torch' not in sys.modules; "
        "lstm = lstmkit.LSTM(3, 4); "
        "print(light, type(lstm).__module__, lstmkit.fit.__module__, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "lstmkit.layers", "lstmkit.train", "True"]
    import lstmkit

    assert set(lstmkit.__all__) <= set(dir(lstmkit))
    with pytest.raises(AttributeError, match="module 'lstmkit' has no attribute 'Nope'"):
        lstmkit.Nope  # noqa: B018
