"""Hostile input, property-based (hypothesis): the CSV / TSV / JSONL readers of lstmkit.data.text
and ``POST /v1/predict`` of lstmkit.serve, given arbitrary bytes and arbitrary Unicode, give a
result or one clear error (an LstmkitError; an HTTP 4xx with a JSON detail), never another
exception, a 5xx or a traceback. Files written by Python's csv / json modules read back as
written, and pyarrow's fast CSV path reads what the csv module reads."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lstmkit.data.text import _csv_records, decode_text, iter_records, read_labelled_texts
from lstmkit.errors import DataFileError, LstmkitError
from lstmkit.serve import create_app

SUFFIXES = [".csv", ".tsv", ".jsonl"]
SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# bytes that look like the formats: delimiters, quotes, line ends, braces, a BOM, bad UTF-8
_PIECES = st.sampled_from(
    [
        b",",
        b"\t",
        b'"',
        b"\n",
        b"\r",
        b"\r\n",
        b"{",
        b"}",
        b":",
        b"[",
        b"]",
        b"\x00",
        b"\xef\xbb\xbf",
    ]
    + [
        b"text",
        b"label",
        b'"text"',
        b'"label"',
        b"text,label\n",
        b"text\tlabel\n",
        b"\xff",
        b"\xc3",
    ]
    + [b"a", b" ", b"\xc3\xa9", b"null", b"1", b'"text": ', b"\\", b"\\u0000", b"\xed\xa0\x80"]
)
HOSTILE_BYTES = st.one_of(st.binary(max_size=300), st.lists(_PIECES, max_size=40).map(b"".join))
# any code point, surrogates included where an encoding can carry them (here: none, so not)
ANY_TEXT = st.text(st.characters(codec="utf-8"), max_size=40)


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp)


def _read_everything(path: Path) -> None:
    """Every reader on ``path``: a result, or an LstmkitError (anything else fails the test)."""
    for label in ("label", None):
        try:
            got = read_labelled_texts(path, "text", label)
        except LstmkitError as err:
            assert str(err)  # a message, one line or more, naming the file
            assert str(path) in str(err)
        else:
            assert len(got.texts) == len(got.labels) == len(got.lines) >= 1
            assert all(isinstance(t, str) and t.strip() for t in got.texts)
    try:
        _, records = iter_records(path, ["text"])
        for line, record in records:
            assert isinstance(line, int) and line >= 1 and isinstance(record, dict)
    except LstmkitError as err:
        assert str(path) in str(err)


@SETTINGS
@given(data=HOSTILE_BYTES, suffix=st.sampled_from(SUFFIXES))
def test_arbitrary_bytes_give_a_result_or_a_clear_error(
    folder: Path, data: bytes, suffix: str
) -> None:
    path = folder / f"bytes{suffix}"
    path.write_bytes(data)
    _read_everything(path)
    # another encoding: every byte decodes in latin-1, so the records are read as text
    with contextlib.suppress(LstmkitError):
        read_labelled_texts(path, "text", "label", encoding="latin-1")


@SETTINGS
@given(text=st.text(max_size=200), suffix=st.sampled_from(SUFFIXES))
def test_arbitrary_unicode_gives_a_result_or_a_clear_error(
    folder: Path, text: str, suffix: str
) -> None:
    path = folder / f"unicode{suffix}"
    path.write_text(text, encoding="utf-8", newline="")
    _read_everything(path)


_ROWS = st.lists(st.tuples(ANY_TEXT, ANY_TEXT), min_size=1, max_size=8)


@SETTINGS
@given(rows=_ROWS, suffix=st.sampled_from([".csv", ".tsv"]), crlf=st.booleans())
def test_what_the_csv_module_writes_reads_back(
    folder: Path, rows: list[tuple[str, str]], suffix: str, crlf: bool
) -> None:
    """A file written by csv.writer (header text,label) reads back as written (labels stripped),
    or it is refused for an empty text or label, naming its line. (With LF line ends the writer
    is told to quote every field: QUOTE_MINIMAL quotes only the characters of its line
    terminator, so a lone CR in a field would be written bare and read as a line break.)"""
    out = io.StringIO()
    writer = csv.writer(
        out,
        delimiter="," if suffix == ".csv" else "\t",
        lineterminator="\r\n" if crlf else "\n",
        quoting=csv.QUOTE_MINIMAL if crlf else csv.QUOTE_ALL,
    )
    writer.writerow(["text", "label"])
    writer.writerows(rows)
    path = folder / f"written{suffix}"
    path.write_text(out.getvalue(), encoding="utf-8", newline="")
    first_bad = next(
        (k for k, (t, lab) in enumerate(rows) if not t.strip() or not lab.strip()), None
    )
    try:
        got = read_labelled_texts(path, "text", "label")
    except DataFileError as err:
        assert first_bad is not None, f"refused a good file: {err}"
        assert "is empty" in str(err) or "is missing" in str(err), str(err)
        return
    assert first_bad is None
    assert got.texts == [t for t, _ in rows]
    assert got.labels == [lab.strip() for _, lab in rows]
    # the fast path (pyarrow) and the csv module read the same records on the same lines
    slow = list(_csv_records(path, decode_text(path), writer.dialect.delimiter, ["text", "label"]))
    assert [n for n, _ in slow] == got.lines
    assert [r["text"] for _, r in slow] == got.texts


@SETTINGS
@given(
    data=HOSTILE_BYTES | st.text(max_size=200).map(str.encode),
    suffix=st.sampled_from([".csv", ".tsv"]),
)
def test_the_fast_csv_path_reads_what_the_csv_module_reads(
    folder: Path, data: bytes, suffix: str
) -> None:
    """Wherever pyarrow's reader is used, its records and line numbers (or the refusal) are
    those of the csv module's."""
    path = folder / f"both{suffix}"
    path.write_bytes(b"text,label\n".replace(b",", b"," if suffix == ".csv" else b"\t") + data)
    delimiter = "," if suffix == ".csv" else "\t"
    try:
        slow: list[tuple[int, dict[str, Any]]] | LstmkitError = list(
            _csv_records(path, decode_text(path), delimiter, ["text", "label"])
        )
    except LstmkitError as err:
        slow = err
    try:
        _, records = iter_records(path, ["text", "label"])
        fast: list[tuple[int, dict[str, Any]]] | LstmkitError = list(records)
    except LstmkitError as err:
        fast = err
    if isinstance(slow, LstmkitError) or isinstance(fast, LstmkitError):
        assert type(slow) is type(fast) and str(slow) == str(fast), (slow, fast)
    else:
        assert fast == slow


@SETTINGS
@given(
    records=st.lists(
        st.dictionaries(
            st.sampled_from(["text", "label", "x"]),
            ANY_TEXT | st.none() | st.integers(),
            max_size=3,
        ),
        min_size=1,
        max_size=6,
    )
)
def test_what_json_writes_reads_back_or_is_refused(
    folder: Path, records: list[dict[str, Any]]
) -> None:
    path = folder / "written.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    try:
        got = read_labelled_texts(path, "text", "label")
    except DataFileError as err:
        assert "line" in str(err), str(err)
        return
    assert got.texts == [str(r["text"]) for r in records]
    assert got.labels == [str(r["label"]).strip() for r in records]


# ---- POST /v1/predict ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    from test_api import make_bundle

    bundle = make_bundle(tmp_path_factory.mktemp("hypothesis-serve"))
    # raise_server_exceptions (the default): an exception in the app fails the test
    with TestClient(create_app(bundle, max_texts=8, max_chars=500)) as c:
        yield c


def _check(response: Any) -> None:
    assert response.status_code < 500, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    if response.status_code == 200:
        assert isinstance(body["predictions"], list) and body["predictions"]
        for p in body["predictions"]:
            assert p["label"] in ("negative", "positive")
    else:
        assert body["detail"], body


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(st.characters(exclude_categories=()), max_size=20),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=20,
)
# any code point, lone surrogates included: json.dumps escapes them (\ud800), Python reads them
_TEXTS = st.lists(st.text(st.characters(exclude_categories=()), max_size=80), max_size=10)


@SETTINGS
@given(
    body=_JSON | st.fixed_dictionaries({"texts": _TEXTS}) | st.fixed_dictionaries({"texts": _JSON})
)
@example(body=float("inf"))  # FastAPI's own 422 handler: 500 on NaN / Infinity
@example(body={"texts": float("nan")})
@example(body={"texts": "\ud800"})  # ... and on a lone surrogate echoed as the input
def test_predict_answers_any_json_with_a_result_or_a_4xx(client: TestClient, body: Any) -> None:
    content = json.dumps(body, allow_nan=True)  # NaN / Infinity: Python's reader takes them
    _check(
        client.post("/v1/predict", content=content, headers={"content-type": "application/json"})
    )


@SETTINGS
@given(
    data=HOSTILE_BYTES | st.text(max_size=200).map(str.encode),
    content_type=st.sampled_from(
        ["application/json", "text/plain", "application/json; charset=latin-1", ""]
    ),
)
@example(data=b"\x80", content_type="")  # FastAPI's own 422 handler: 500 on non-UTF-8 bytes
def test_predict_answers_any_bytes_with_a_4xx(
    client: TestClient, data: bytes, content_type: str
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    _check(client.post("/v1/predict", content=data, headers=headers))


@SETTINGS
@given(
    body=_JSON
    | st.fixed_dictionaries({"text": st.text(st.characters(exclude_categories=()), max_size=80)})
)
def test_inspect_answers_any_json_with_a_result_or_a_4xx(client: TestClient, body: Any) -> None:
    content = json.dumps(body, allow_nan=True)
    r = client.post("/v1/inspect", content=content, headers={"content-type": "application/json"})
    assert r.status_code < 500, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.json()


@pytest.fixture(scope="module")
def studio_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """A studio whose recipe folder is empty: no body can start a run."""
    from lstmkit.studio import create_studio_app

    root = tmp_path_factory.mktemp("hypothesis-studio")
    (root / "recipes").mkdir()
    with TestClient(create_studio_app(root / "home", recipes_dir=root / "recipes")) as c:
        yield c


@SETTINGS
@example(data=b"\x80")  # FastAPI's own 422 handler: 500 on non-UTF-8 bytes, NaN, surrogates
@example(data=b'{"recipe": NaN}')
@example(data=b'{"recipe": "\\ud800"}')
@given(data=HOSTILE_BYTES | _JSON.map(lambda v: json.dumps(v).encode()))
def test_the_studio_answers_any_run_body_with_a_4xx(studio_client: TestClient, data: bytes) -> None:
    r = studio_client.post("/api/runs", content=data, headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500, r.text
    assert r.json()["detail"]
    r = studio_client.post("/api/runs", content=data)  # no content type
    assert 400 <= r.status_code < 500, r.text
