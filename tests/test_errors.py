"""lstmkit.errors: one base every deliberate error derives from; the CLI catches it once."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

import lstmkit.errors as errors
from lstmkit.cli import main

# the built-in type each error keeps, so that `except ValueError` (and the like) still works
BUILTIN = {
    "ConfigError": ValueError,
    "DataError": ValueError,
    "DataFileError": ValueError,
    "EmptyEncodingError": ValueError,
    "ArraysError": ValueError,
    "VectorsError": ValueError,
    "DataNotFoundError": FileNotFoundError,
    "DataIntegrityError": ValueError,
    "DownloadError": OSError,
    "RunDirError": FileNotFoundError,
    "RunExistsError": FileExistsError,
    "RunKindError": ValueError,
    "CheckpointError": ValueError,
    "TrainingDiverged": RuntimeError,
    "BundleError": ValueError,
    "ExportError": ValueError,
    "CompiledKernelError": RuntimeError,
    "UnsupportedModelError": ValueError,
    "InputError": ValueError,
    "MissingDependencyError": ImportError,
    "BaselineError": ValueError,
    "StorageError": OSError,
}


def test_every_error_is_an_lstmkit_error_and_keeps_its_builtin_type() -> None:
    classes = {
        name: cls
        for name, cls in vars(errors).items()
        if inspect.isclass(cls) and issubclass(cls, Exception) and cls is not errors.LstmkitError
    }
    assert set(classes) == set(BUILTIN)  # a new error is listed here with its built-in type
    for name, cls in classes.items():
        assert issubclass(cls, errors.LstmkitError), name
        assert issubclass(cls, BUILTIN[name]), name


def test_the_old_homes_re_export_the_same_classes() -> None:
    from lstmkit.bundle import BundleError
    from lstmkit.checkpoint import CheckpointError
    from lstmkit.config import ConfigError
    from lstmkit.data.resolve import DataNotFoundError
    from lstmkit.data.text import DataFileError
    from lstmkit.train import TrainingDiverged

    assert BundleError is errors.BundleError and CheckpointError is errors.CheckpointError
    assert ConfigError is errors.ConfigError and DataNotFoundError is errors.DataNotFoundError
    assert DataFileError is errors.DataFileError
    assert TrainingDiverged is errors.TrainingDiverged


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["evaluate", "{tmp}"], "is not a run directory: config.json is missing"),
        (["export", "{tmp}"], "say what to write: --bundle OUT_DIR and/or --onnx FILE"),
        (["predict", "{tmp}"], "give at least one text or --file"),
        (["predict", "{tmp}", "x", "--file", "{tmp}/none.txt"], "cannot read {tmp}/none.txt"),
        (["sample", "{tmp}", "--prime", "a", "--temperature", "0"], "--temperature must be > 0"),
        (["forecast", "{tmp}", "--data", "d.csv", "--out", "o.csv"], "is not a run directory"),
        (["demo", "memory", "--steps", "2"], "steps must be >= 4, got 2"),
    ],
)
def test_cli_prints_one_line_per_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err  # one line, no traceback
    assert err.startswith(f"lstmkit {argv[0]}: error: ")
    assert message.replace("{tmp}", str(tmp_path)) in err


def test_cli_lets_a_programming_error_through(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only LstmkitError is caught: a bug is a traceback, not a one-line 'error' that hides it."""

    def broken(_: object) -> dict[str, object]:
        raise KeyError("bug")

    monkeypatch.setattr("lstmkit.experiment.evaluate_run", broken)
    with pytest.raises(KeyError):
        main(["evaluate", "anything"])
