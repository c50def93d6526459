"""The errors lstmkit raises for bad input, bad files and failed runs.

Every one derives from :class:`LstmkitError`, so a caller (``lstmkit.cli.main``, the studio, a
script) catches the base once and shows the message: each message is one sentence that names the
file, field or value and says what would be valid. Each also derives from the built-in type a
caller would expect (``ValueError`` for a bad value, ``FileNotFoundError`` for a missing file ...),
so ``except ValueError`` keeps working.

A subclass exists only where some caller must tell it apart from the others (the studio answers
a bad upload with 413 or 422, ``lstmkit serve`` exits with its worker's code, ``--resume`` reads a
corrupt checkpoint as "take the one before").

This module imports nothing of lstmkit: every layer may raise these.
"""

from __future__ import annotations


class LstmkitError(Exception):
    """The base of every error lstmkit raises on purpose; its message is meant for the user."""


class ConfigError(LstmkitError, ValueError):
    """A recipe, an override or a command-line option that is not valid (names the field)."""


class DataError(LstmkitError, ValueError):
    """A data file or data set that cannot be used as it is (names the file and the place)."""


class DataFileError(DataError):
    """A user's own data file (CSV / TSV / JSONL / Parquet, a series) that cannot be read as asked:
    the message names the file, the line or column, and what would be valid."""


class EmptyEncodingError(DataError):
    """A text that gives no token; ``index`` is its position in the batch that was encoded."""

    def __init__(self, index: int, text: str) -> None:
        super().__init__(f"text {index} gives no token: {text[:40]!r}")
        self.index = index


class ArraysError(DataError):
    """A numeric ``.npy`` / ``.npz`` data set of ``[data.arrays]`` that cannot be used."""


class VectorsError(DataError):
    """A pretrained word-vector file that cannot be read or does not fit the model."""


class DataNotFoundError(LstmkitError, FileNotFoundError):
    """A known data set is neither in ``$LSTMKIT_DATA`` nor in the cache, and cannot be
    downloaded."""


class DataIntegrityError(DataError):
    """A data file whose sha256 is not the registered one."""


class DownloadError(LstmkitError, OSError):
    """A download that failed (the URL and the reason are in the message)."""


class RunDirError(LstmkitError, FileNotFoundError):
    """A run directory that is not what the command needs: missing files, an unfinished run."""


class RunKindError(LstmkitError, ValueError):
    """A run directory of another task than the command reads (e.g. ``lstmkit sample`` on a
    classifier's run)."""


class RunExistsError(LstmkitError, FileExistsError):
    """A new run would overwrite a finished one (pass ``--resume`` or another ``--out``)."""


class CheckpointError(LstmkitError, ValueError):
    """A checkpoint or weights file that is missing, corrupt, or of another model."""


class TrainingDiverged(LstmkitError, RuntimeError):
    """The loss became NaN or infinite; the message names the step and the last good
    checkpoint."""


class BundleError(LstmkitError, ValueError):
    """A model bundle (or run directory) that cannot be loaded: missing or corrupt files, an
    unknown format version, a model the bundle format cannot hold."""


class ExportError(LstmkitError, ValueError):
    """A model the ONNX export cannot express (names the option that blocks it)."""


class CompiledKernelError(LstmkitError, RuntimeError):
    """The compiled LSTM step was asked for (``impl="kernel"`` with the compiled backend) and
    cannot be built or loaded on this machine."""


class UnsupportedModelError(LstmkitError, ValueError):
    """A model with an option the command cannot handle (names the option)."""


class InputError(LstmkitError, ValueError):
    """An input a loaded model cannot read: an empty text, a text for a model of numbers."""


class MissingDependencyError(LstmkitError, ImportError):
    """An optional dependency a command needs is not installed (says what to install)."""


class BaselineError(LstmkitError, ValueError):
    """A classic baseline measured beside the model cannot be fitted on these data (says why and
    how to skip it)."""


class StorageError(LstmkitError, OSError):
    """A file could not be written or created: the disk is full, the folder is read-only, no
    permission. The message names the file and what to do; what was saved before is intact."""
