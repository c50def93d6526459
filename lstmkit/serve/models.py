"""What a served directory holds, loaded: :func:`load_served` reads a run directory (or a
bundle of a classifier or a forecaster) and returns the model of its task -- a
:class:`~lstmkit.bundle.Predictor` (text classifier), a :class:`ForecastModel` (one series or a
panel) or a :class:`CharModel` (character language model). :func:`served_task` says which, from
``config.json`` alone, so the app can pick its routes before the model is loaded.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lstmkit.bundle import Predictor, load, verify_bundle
from lstmkit.data.chars import CharVocabulary
from lstmkit.errors import BundleError, LstmkitError
from lstmkit.forecasting import is_panel_config, load_forecast_run, load_panel_run
from lstmkit.models import Forecaster, LanguageModel, PanelForecaster
from lstmkit.sampling import load_language_model

TASKS = ("classify", "forecast", "language_model")


def _metrics(path: Path) -> dict[str, Any] | None:
    file = path / "metrics.json"
    if not file.is_file():
        return None
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise BundleError(f"{file}: cannot be read as JSON ({err})") from None
    return data if isinstance(data, dict) else None


@dataclass(frozen=True)
class ForecastModel:
    """A loaded forecasting run: the model (eval mode), its ``config.json``, whether it is a
    panel (many series, long format) model, and its metrics."""

    model: Forecaster | PanelForecaster
    config: dict[str, Any]
    panel: bool
    metrics: dict[str, Any] | None
    name: str | None

    @property
    def columns(self) -> list[str]:
        """``[target, *features]`` of the run's training file."""
        return list(self.config["columns"])

    @property
    def quantiles(self) -> list[float]:
        """The forecast quantiles (empty for a single-series run without a band)."""
        return list(self.model.config.quantiles)

    def metadata(self) -> dict[str, Any]:
        """What the history must hold and what comes back (JSON-safe)."""
        c = self.config
        return {
            "name": self.name,
            "task": "forecast",
            "panel": self.panel,
            "target": self.columns[0],
            "features": self.columns[1:],
            "time_column": c.get("time_column"),
            "id_column": c.get("id_column") if self.panel else None,
            "ids": list(c.get("ids", [])) if self.panel else None,
            "series_embedding": bool(getattr(self.model.config, "num_series", 0)),
            "frequency": c.get("frequency"),
            "lookback": int(c["lookback"]),
            "horizon": int(c["horizon"]),
            "quantiles": self.quantiles,
            "metrics": self.metrics,
        }


@dataclass(frozen=True)
class CharModel:
    """A loaded character language model: the model (eval mode), its vocabulary, config and
    metrics."""

    model: LanguageModel
    vocab: CharVocabulary
    config: dict[str, Any]
    metrics: dict[str, Any] | None
    name: str | None

    def metadata(self) -> dict[str, Any]:
        """The characters it knows, its architecture and metrics (JSON-safe)."""
        return {
            "name": self.name,
            "task": "language_model",
            "chars": "".join(self.vocab.chars),
            "model": self.model.config.to_dict(),
            "metrics": self.metrics,
        }


Served = Predictor | ForecastModel | CharModel


def served_task(path: str | os.PathLike[str]) -> str | None:
    """The task of the run or bundle at ``path`` (``config.json["task"]``, ``classify`` when
    absent); None when there is no readable ``config.json`` (loading it then says why)."""
    try:
        config = json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    task = config.get("task", "classify")
    if task == "text":  # a classifier of one's own texts: served as a classifier
        return "classify"
    return task if isinstance(task, str) else None


def task_of(model: Served) -> str:
    """``classify``, ``forecast`` or ``language_model``."""
    if isinstance(model, ForecastModel):
        return "forecast"
    if isinstance(model, CharModel):
        return "language_model"
    return "classify"


def load_served(path: str | os.PathLike[str]) -> Served:
    """The model at ``path`` (a run directory, or a bundle: its files checked against its
    ``bundle.json`` first), by its task. Every failure is one
    :class:`~lstmkit.errors.BundleError` naming the file at fault."""
    path = Path(path)
    task = served_task(path)
    if task not in ("forecast", "language_model"):
        return load(path)  # a classifier, or the error that says what is missing
    verify_bundle(path)
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        name = (config.get("recipe") or {}).get("name")
        if task == "forecast":
            if is_panel_config(config):
                panel_model, config = load_panel_run(path)
                return ForecastModel(panel_model, config, True, _metrics(path), name)
            model, config, _ = load_forecast_run(path)
            return ForecastModel(model, config, False, _metrics(path), name)
        lm, vocab, config = load_language_model(path)
        return CharModel(lm, vocab, config, _metrics(path), name)
    except BundleError:
        raise
    except (LstmkitError, OSError, ValueError, KeyError) as err:
        raise BundleError(f"{path}: cannot load the {task} run: {err}") from None
