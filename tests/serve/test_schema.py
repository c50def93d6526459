"""lstmkit.serve against its own OpenAPI schema: schemathesis generates requests for every
operation (valid and invalid bodies, headers, auth) and runs all its stateless checks (no 5xx,
status codes and bodies as documented, auth enforced, ...). Tiny untrained model, no data set."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import torch
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.config._checks import POSITIVE_DATA_ACCEPTANCE_EXPECTED_STATUSES

from lstmkit.checkpoint import model_state, save_tensors
from lstmkit.config import Recipe
from lstmkit.data.vocabulary import Vocabulary
from lstmkit.models import ClassifierConfig, SequenceClassifier
from lstmkit.serve import create_app

TOKEN = "s3cret-token"
WORDS = ["good", "bad", "film", "plot", "great", "awful", "acting", "boring", "fun", "long"]


def make_run(run_dir: Path) -> Path:
    """A finished run directory as ``run_recipe`` writes it, for a tiny untrained model."""
    torch.manual_seed(0)
    net = SequenceClassifier(ClassifierConfig(vocab_size=50, embedding_dim=8, hidden_size=8))
    run_dir.mkdir(parents=True)
    save_tensors(model_state(net), run_dir / "model.safetensors")
    recipe = Recipe().model_dump()
    recipe["data"]["maxlen"] = 40
    config = {
        "recipe": recipe,
        "raw": {},
        "model": net.config.to_dict(),
        "task": "classify",
        "real_valued": False,
        "labels": ["negative", "positive"],
    }
    (run_dir / "config.json").write_text(json.dumps(config))
    Vocabulary({w: i + 4 for i, w in enumerate(WORDS)}).save(run_dir / "vocab.json")
    (run_dir / "metrics.json").write_text(json.dumps({"test": {"accuracy": 0.5}}))
    return run_dir


# The app is made at import (schemathesis' lazy ``from_fixture`` schemas do not run under pytest 9),
# but loads its model only when the first request starts its lifespan: by then ``_built_run`` has
# written the tiny run to RUN_DIR (one per pytest worker process). A token and small limits, so
# that 401 and 413 are reachable.
RUN_DIR = Path(tempfile.gettempdir()) / f"lstmkit-test-schema-{os.getpid()}" / "run"
app = create_app(RUN_DIR, token=TOKEN, max_texts=8, max_chars=2000)
# 413 is a documented answer to a schema-valid body: the character limit is over all texts together,
# which JSON Schema cannot say
CONFIG = SchemathesisConfig.from_dict(
    {
        "checks": {
            "positive_data_acceptance": {
                "expected-statuses": [*POSITIVE_DATA_ACCEPTANCE_EXPECTED_STATUSES, 413]
            }
        }
    }
)
schema = schemathesis.openapi.from_dict(app.openapi(), config=CONFIG)
schema.app = app  # requests (and the checks' probes) go to the app in-process


@pytest.fixture(scope="module", autouse=True)
def _built_run() -> Iterator[None]:
    shutil.rmtree(RUN_DIR.parent, ignore_errors=True)
    make_run(RUN_DIR)
    yield
    shutil.rmtree(RUN_DIR.parent, ignore_errors=True)


def test_schema_covers_every_route() -> None:
    """The generated tests below reach every operation of the API."""
    ops = {(op.method.upper(), op.path) for op in (r.ok() for r in schema.get_all_operations())}
    assert {("POST", "/v1/predict"), ("GET", "/v1/model"), ("GET", "/health")} <= ops


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    database=None,
)
def test_api_conforms_to_its_schema(case: Any) -> None:
    """Every stateless check passes, for requests with the right token (the ``ignored_auth`` check
    also sends them without it and wants 401)."""
    case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"})
