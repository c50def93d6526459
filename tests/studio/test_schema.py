"""lstmkit studio's API against its own OpenAPI schema: schemathesis generates requests for every
operation (valid and invalid bodies, paths, queries, auth) and runs its stateless checks (no 5xx,
status codes as documented, auth enforced). Runs are stand-in processes that finish at once."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.config._checks import POSITIVE_DATA_ACCEPTANCE_EXPECTED_STATUSES
from studio_support import TINY_RECIPE

from lstmkit.studio import create_studio_app

TOKEN = "s3cret-token"
ROOT = Path(tempfile.gettempdir()) / f"lstmkit-test-studio-schema-{os.getpid()}"
STAND_IN = "import json, sys; out = sys.argv[sys.argv.index('--out') + 1]; " + (
    "open(out + '/metrics.json', 'w').write(json.dumps({'steps': 0}))"
)


def _launch(argv: list[str], log_path: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with open(log_path, "ab") as log:
        return subprocess.Popen([sys.executable, "-c", STAND_IN, *argv[4:]], stdout=log, stderr=log)


# Made at import (schemathesis' schema comes from the app); the home and the recipe folder are
# written by _folders before the first request starts the app's lifespan.
(ROOT / "recipes").mkdir(parents=True, exist_ok=True)
app = create_studio_app(
    ROOT / "home", recipes_dir=ROOT / "recipes", token=TOKEN, launcher=_launch, poll_s=0.02
)
CONFIG = SchemathesisConfig.from_dict(
    {
        "checks": {
            # a schema-valid request may name a recipe, run or upload that does not exist (404,
            # 422 naming the field) or ask for what the run's state forbids now (409)
            "positive_data_acceptance": {
                "expected-statuses": [*POSITIVE_DATA_ACCEPTANCE_EXPECTED_STATUSES, 422]
            },
            # /api/runs and /api/uploads have a GET and a POST route; Starlette answers an
            # unsupported method with the Allow header of the first route only
            "allow_header_conformance": {"enabled": False},
        }
    }
)
schema = schemathesis.openapi.from_dict(app.openapi(), config=CONFIG)
schema.app = app


@pytest.fixture(scope="module", autouse=True)
def _folders() -> Iterator[None]:
    (ROOT / "recipes" / "tiny.toml").write_text(TINY_RECIPE)
    yield
    shutil.rmtree(ROOT, ignore_errors=True)


def test_schema_covers_every_route() -> None:
    ops = {(op.method.upper(), op.path) for op in (r.ok() for r in schema.get_all_operations())}
    assert {
        ("GET", "/api/options"),
        ("GET", "/api/runs"),
        ("POST", "/api/runs"),
        ("GET", "/api/runs/{run_id}"),
        ("GET", "/api/runs/{run_id}/metrics"),
        ("GET", "/api/runs/{run_id}/log"),
        ("GET", "/api/runs/{run_id}/events"),
        ("POST", "/api/runs/{run_id}/cancel"),
        ("POST", "/api/runs/{run_id}/resume"),
        ("POST", "/api/runs/{run_id}/bundle"),
        ("GET", "/api/compare"),
        ("POST", "/api/uploads"),
        ("GET", "/api/uploads"),
        ("GET", "/health"),
    } <= ops


def test_every_answer_is_typed() -> None:
    """Each JSON answer of the API is a named response model (lstmkit.studio.schemas), so the
    conformance checks below validate every field; the metric rows stay plain objects."""
    untyped = []
    for path, ops in app.openapi()["paths"].items():
        for method, op in ops.items():
            ok = next(code for code in op["responses"] if code.startswith("2"))
            content = op["responses"][ok]["content"]
            if "application/json" not in content or path.endswith("/metrics"):
                continue
            answer = content["application/json"]["schema"]
            if "$ref" not in answer and "$ref" not in answer.get("items", {}):
                untyped.append((method.upper(), path))
    assert untyped == []


@schema.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    database=None,
)
def test_api_conforms_to_its_schema(case: Any) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"})


def test_nothing_escaped_the_home() -> None:
    """Whatever the generated requests asked, files were written only inside the home."""
    written = {p.relative_to(ROOT).parts[0] for p in ROOT.rglob("*")}
    assert written <= {"home", "recipes"}
    for path in (ROOT / "home" / "uploads").glob("*"):
        assert path.name.split(".")[0].isalnum() and path.suffix in (".csv", ".tsv", ".jsonl")
    assert (ROOT / "recipes" / "tiny.toml").read_text() == TINY_RECIPE
