"""A write the machine refuses (full disk, read-only folder) is one error line, exit 2."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
import torch

from lstmkit.checkpoint import save_tensors
from lstmkit.cli import main, storage_message
from lstmkit.errors import StorageError


def _series(path: Path) -> Path:
    path.write_text("y\n" + "\n".join(str(i % 7 + 0.1 * i) for i in range(80)) + "\n")
    return path


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (errno.ENOSPC, "free some space"),
        (errno.EROFS, "the folder is read-only"),
        (errno.EACCES, "permissions"),
    ],
)
def test_a_refused_write_is_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    code: int,
    words: str,
) -> None:
    import lstmkit.experiment as experiment

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(code, "refused by the test", str(tmp_path / "run" / "config.json"))

    monkeypatch.setattr(experiment, "save_config", refuse)
    csv = _series(tmp_path / "s.csv")
    argv = ["train", "--task", "forecast", "--train", str(csv), "--target", "y"]
    assert main([*argv, "--out", str(tmp_path / "run"), "--set", "train.max_steps=1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0]
    assert err[0].startswith("lstmkit train: error: ")
    assert f"{tmp_path / 'run' / 'config.json'}: refused by the test; " in err[0]
    assert words in err[0]


def test_other_os_errors_are_not_hidden(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import lstmkit.experiment as experiment

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EIO, "an input/output error")

    monkeypatch.setattr(experiment, "save_config", broken)
    csv = _series(tmp_path / "s.csv")
    with pytest.raises(OSError, match="input/output"):
        main(["train", "--task", "forecast", "--train", str(csv), "--target", "y",
              "--out", str(tmp_path / "run")])  # fmt: skip


def test_storage_message_names_the_file() -> None:
    msg = storage_message(OSError(errno.ENOSPC, "No space left on device", "/x/model.safetensors"))
    assert msg.startswith("/x/model.safetensors: No space left on device; free some space")
    assert msg.endswith("what was saved before is intact")


def test_safetensors_write_failure_is_a_storage_error(tmp_path: Path) -> None:
    target = tmp_path / "missing-folder" / "w.safetensors"  # the folder does not exist
    with pytest.raises(StorageError, match="cannot write the tensors"):
        save_tensors({"w": torch.zeros(3)}, target)
