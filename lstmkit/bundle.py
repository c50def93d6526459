"""Model bundles: a finished run's inference files in one directory, and a :class:`Predictor`.

A bundle (``lstmkit export RUN --bundle OUT``) holds::

    bundle.json          {"format": "lstmkit-bundle", "version": 1, "lstmkit_version", "created",
                          "files": {name: sha256}}
    config.json          the run's config (recipe, model architecture, labels)
    model.safetensors    the weights (no pickle anywhere)
    vocab.json           word -> id (text models of the Keras data sets)
    tokenizer.json       the Hugging Face tokenizer of a model trained on your own texts
                         (lstmkit train --task text), used instead of vocab.json
    metrics.json         the run's validation and test metrics (when the run wrote them)

A classifier's bundle: :func:`load` accepts a bundle or a run directory and returns a
:class:`Predictor`; ``Predictor.predict(texts)`` labels texts in batches of similar length and
returns the results in input order. Every failure to load is one :class:`BundleError` naming the
file at fault.

A forecasting run's bundle (one series or many) holds ``config.json``, ``model.safetensors``
and ``metrics.json``: ``lstmkit serve BUNDLE`` serves ``POST /v1/forecast`` from it
(:func:`lstmkit.serve.models.load_served`, which checks the files with :func:`verify_bundle`
first), ``lstmkit forecast BUNDLE --data NEW.csv --out F.csv`` and ``lstmkit export BUNDLE
--onnx F`` read it as they read the run directory. :func:`load` is the classifier's loader and
says so for a forecaster (this module sits beside :mod:`lstmkit.forecasting` in the layers of
the house and cannot import it).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from safetensors import SafetensorError

from lstmkit.data.batching import collate_tokens
from lstmkit.data.tokenize import TOKENIZER_FILE, TextTokenizer
from lstmkit.data.vocabulary import Vocabulary
from lstmkit.errors import (
    BundleError,
    CheckpointError,
    InputError,
    LstmkitError,
    RunExistsError,
)
from lstmkit.files import fsync_dir, fsync_file
from lstmkit.models import (
    Forecaster,
    ForecasterConfig,
    PaddedClassifier,
    PanelForecaster,
    PanelForecasterConfig,
    SequenceClassifier,
    padded_blockers,
)
from lstmkit.runs import load_run, load_weights
from lstmkit.version import __version__

BUNDLE_FORMAT = "lstmkit-bundle"
BUNDLE_VERSION = 1
BUNDLE_FILE = "bundle.json"
REQUIRED_FILES = ("config.json", "model.safetensors")
OPTIONAL_FILES = ("vocab.json", "tokenizer.json", "metrics.json")
BATCH_SIZE = 64


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{path} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BundleError(f"cannot read {path}: {err}") from None
    if not isinstance(payload, dict):
        raise BundleError(f"{path} must hold a JSON object, got {type(payload).__name__}")
    return payload


def read_bundle_info(bundle_dir: Path) -> dict[str, Any]:
    """``bundle.json`` of ``bundle_dir``, its format and version checked."""
    path = bundle_dir / BUNDLE_FILE
    info = _read_json(path)
    if info.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{path}: format is {info.get('format')!r}, expected {BUNDLE_FORMAT!r}")
    if info.get("version") != BUNDLE_VERSION:
        raise BundleError(
            f"{path}: bundle version {info.get('version')!r} is not supported by this lstmkit "
            f"(it reads version {BUNDLE_VERSION}); export the bundle again with this version"
        )
    return info


def _check_loadable(path: Path) -> None:
    """The run (or bundle) at ``path`` loads: a classifier with :func:`load`; a forecaster's
    config and weights build its model (one :class:`BundleError` naming the file otherwise)."""
    verify_bundle(path)
    config = _read_json(path / "config.json")
    if config.get("task") != "forecast":
        load(path)
        return
    try:
        model_config = config["model"]
        if "panel_format" in config:
            load_weights(PanelForecaster(PanelForecasterConfig.model_validate(model_config)), path)
        else:
            load_weights(Forecaster(ForecasterConfig.model_validate(model_config)), path)
    except KeyError:
        raise BundleError(f"{path / 'config.json'} has no 'model' section") from None
    except CheckpointError as err:  # names the weights file already
        raise BundleError(str(err)) from None
    except SafetensorError as err:
        raise BundleError(f"cannot read weights {path / 'model.safetensors'}: {err}") from None
    except ValidationError as err:
        raise BundleError(f"{path / 'config.json'}: invalid model section: {err}") from None
    except (LstmkitError, OSError, ValueError, TypeError) as err:
        raise BundleError(f"{path}: {err}") from None


def export_bundle(run_dir: Path, out_dir: Path) -> Path:
    """Copy a finished run's inference files into the bundle directory ``out_dir``: a
    classifier's, or a forecasting run's (one series or many; ``config.json``,
    ``model.safetensors``, ``metrics.json``).

    The run is loaded first (a broken run makes no bundle). The files are written into
    ``OUT.tmp/``, fsync'ed, and the directory is renamed into place, so ``out_dir`` is either
    complete or absent. Refuses an existing non-empty ``out_dir``. Returns ``out_dir``.
    """
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if (run_dir / BUNDLE_FILE).exists():
        read_bundle_info(run_dir)  # re-exporting a bundle is fine; an unknown version is not
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise RunExistsError(
            f"{out_dir} already exists and is not empty; remove it or choose another --bundle"
        )
    _check_loadable(run_dir)  # every required file present and loadable
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    files: dict[str, str] = {}
    for name in REQUIRED_FILES + OPTIONAL_FILES:
        src = run_dir / name
        if not src.exists():
            continue
        shutil.copyfile(src, tmp / name)
        fsync_file(tmp / name)
        files[name] = _sha256(tmp / name)
    info = {
        "format": BUNDLE_FORMAT,
        "version": BUNDLE_VERSION,
        "lstmkit_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "files": files,
    }
    with open(tmp / BUNDLE_FILE, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(info, indent=2) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    fsync_dir(tmp)
    if out_dir.exists():  # an empty directory: replace it
        out_dir.rmdir()
    tmp.rename(out_dir)
    fsync_dir(out_dir.parent)
    return out_dir


class Predictor:
    """A loaded model ready to label texts. Build it with :func:`load`.

    Attributes:
        model: the classifier, in eval mode.
        config: the run's config.json.
        vocab: the run's vocabulary (None for models of real-valued sequences).
        tokenizer: the run's trained tokenizer (models of your own texts; then vocab is None).
        labels: class names, index = class id.
        metrics: the run's metrics.json (None when absent).
        bundle_info: bundle.json (None when loaded from a run directory).
    """

    def __init__(
        self,
        model: SequenceClassifier,
        config: dict[str, Any],
        vocab: Vocabulary | None,
        *,
        metrics: dict[str, Any] | None = None,
        bundle_info: dict[str, Any] | None = None,
        batch_size: int = BATCH_SIZE,
        tokenizer: TextTokenizer | None = None,
    ) -> None:
        self.model = model.eval()
        self.config = config
        self.vocab = vocab
        self.tokenizer = tokenizer
        self.metrics = metrics
        self.bundle_info = bundle_info
        self.batch_size = batch_size
        num_classes = model.config.num_classes
        self.labels: list[str] = [str(x) for x in config.get("labels") or range(num_classes)]
        if len(self.labels) != num_classes:
            raise BundleError(
                f"config.json lists {len(self.labels)} labels for a model of {num_classes} classes"
            )
        recipe = config.get("recipe") or {}
        self.maxlen: int | None = (recipe.get("data") or {}).get("maxlen")
        # the padded forward when it is exact for this model (padded_blockers says when): on CPU
        # it costs a fraction of the packed variable-length path on mixed lengths
        self._padded: PaddedClassifier | None = (
            PaddedClassifier(self.model).eval()
            if isinstance(model, SequenceClassifier) and not padded_blockers(model)
            else None
        )

    @property
    def accepts_text(self) -> bool:
        """True when the model reads text (it has a vocabulary or a tokenizer)."""
        return self.vocab is not None or self.tokenizer is not None

    @property
    def oov_id(self) -> int:
        """The id an unknown token reads as."""
        if self.tokenizer is not None:
            return self.tokenizer.unk_id
        if self.vocab is None:
            raise ValueError("this model has no vocabulary")
        return self.vocab.oov_char

    @property
    def metadata(self) -> dict[str, Any]:
        """What the model is: labels, architecture, metrics, versions (JSON-safe)."""
        recipe = self.config.get("recipe") or {}
        info = self.bundle_info or {}
        return {
            "name": recipe.get("name"),
            "task": self.config.get("task", "classify"),
            "labels": list(self.labels),
            "model": self.model.config.to_dict(),
            "maxlen": self.maxlen,
            "tokenizer": self.tokenizer.kind if self.tokenizer is not None else None,
            "metrics": self.metrics,
            "lstmkit_version": __version__,
            "bundle": (
                {
                    k: info[k]
                    for k in ("format", "version", "lstmkit_version", "created")
                    if k in info
                }
                if self.bundle_info is not None
                else None
            ),
        }

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text (the run's vocabulary and maxlen; ids the embedding does not
        hold read as OOV). Raises ValueError for an empty text, naming its index."""
        if not self.accepts_text:
            raise InputError(
                "this model was trained on real-valued sequences; it has no vocabulary to read "
                "text with"
            )
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise InputError(f"text {i} must be a string, got {type(text).__name__}")
            if not text.strip():
                raise InputError(f"text {i} is empty; give at least one word")
        vocab_size = self.model.config.vocab_size or 0
        if self.tokenizer is not None:
            tok = self.tokenizer
            return [
                [i if i < vocab_size else tok.unk_id for i in s] for s in tok.encode_batch(texts)
            ]
        vocab = self.vocab
        assert vocab is not None
        seqs = [vocab.encode(t, self.maxlen) for t in texts]
        return [[i if i < vocab_size else vocab.oov_char for i in s] for s in seqs]

    def predict(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        """``{"label", "scores": {label: probability}}`` for each text, in input order.

        Texts are sorted by length and run in batches of at most ``batch_size`` whose longest text
        is at most twice as long as their shortest (little padding: in a micro-batch of random
        IMDB reviews, a quarter less model time than one padded call); padding never changes a
        prediction, so the batching does not change a result. Models the
        ONNX export takes run as it does (:class:`lstmkit.models.PaddedClassifier`: one fused
        call per layer over the padded batch, no packing), the others through
        :meth:`SequenceClassifier.predict_proba`; both are exact.
        """
        seqs = self.encode(texts)
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
        proba: list[list[float]] = [[] for _ in seqs]
        forward = self._padded if self._padded is not None else self.model.predict_proba
        batches: list[list[int]] = []
        for i in order:
            if (
                not batches
                or len(batches[-1]) >= self.batch_size
                or len(seqs[i]) > 2 * len(seqs[batches[-1][0]])
            ):
                batches.append([])
            batches[-1].append(i)
        with torch.inference_mode():
            for idx in batches:
                tokens, lengths, _ = collate_tokens([(seqs[i], 0) for i in idx])
                for i, p in zip(idx, forward(tokens, lengths).tolist(), strict=True):
                    proba[i] = p
        out = []
        for p in proba:
            k = max(range(len(p)), key=p.__getitem__)
            scores = dict(zip(self.labels, p, strict=True))
            out.append({"label": self.labels[k], "scores": scores})
        return out


def _check_files(path: Path, info: dict[str, Any] | None) -> None:
    """Every required file present; in a bundle, every listed file matches its checksum."""
    if not path.is_dir():
        raise BundleError(f"{path} is not a directory (expected a bundle or a run directory)")
    kind = "bundle" if info is not None else "run directory"
    for name in REQUIRED_FILES:
        if not (path / name).is_file():
            raise BundleError(f"{path / name} is missing: {path} is not a {kind}")
    if info is None:
        return
    files = info.get("files") or {}
    for name, digest in files.items():
        file = path / name
        if not file.is_file():
            raise BundleError(f"{file} is missing (listed in {BUNDLE_FILE})")
        if _sha256(file) != digest:
            raise BundleError(f"{file} is corrupted: its sha256 differs from {BUNDLE_FILE}")


def verify_bundle(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """Check the directory ``path``: a bundle (it has ``bundle.json``: its format and version,
    every listed file present with its sha256) or a run directory, with the required files.
    Returns ``bundle.json`` (None for a run directory); one :class:`BundleError` naming the file
    at fault otherwise. Loaders of every kind of model call it first."""
    path = Path(path)
    info = read_bundle_info(path) if (path / BUNDLE_FILE).exists() else None
    _check_files(path, info)
    return info


def load(path: str | os.PathLike[str]) -> Predictor:
    """A :class:`Predictor` for a classifier's bundle directory (with ``bundle.json``) or run
    directory. A forecaster's is one :class:`BundleError` saying what reads it."""
    path = Path(path)
    info = verify_bundle(path)
    config = _read_json(path / "config.json")
    if "model" not in config:
        raise BundleError(f"{path / 'config.json'} has no 'model' section")
    if config.get("task") == "forecast":
        raise BundleError(
            f"{path} is a forecasting run; use lstmkit forecast {path} --data NEW.csv --out F.csv "
            f"or lstmkit serve {path} (POST /v1/forecast)"
        )
    try:
        model, config, vocab = load_run(path)
    except CheckpointError as err:  # names the weights file already
        raise BundleError(str(err)) from None
    except SafetensorError as err:
        raise BundleError(f"cannot read weights {path / 'model.safetensors'}: {err}") from None
    except ValidationError as err:
        raise BundleError(f"{path / 'config.json'}: invalid model section: {err}") from None
    except (FileNotFoundError, ValueError, TypeError) as err:  # vocab.json errors name the file
        raise BundleError(f"{path}: {err}") from None
    tokenizer = None
    if (path / TOKENIZER_FILE).exists():
        data = (config.get("recipe") or {}).get("data") or {}
        try:
            tokenizer = TextTokenizer.load(
                path / TOKENIZER_FILE, data.get("maxlen"), data.get("truncating", "pre")
            )
        except ValueError as err:  # names the file
            raise BundleError(str(err)) from None
    elif vocab is None and not config.get("real_valued", False):
        raise BundleError(f"{path / 'vocab.json'} is missing: the model reads text")
    metrics = _read_json(path / "metrics.json") if (path / "metrics.json").exists() else None
    return Predictor(model, config, vocab, metrics=metrics, bundle_info=info, tokenizer=tokenizer)
