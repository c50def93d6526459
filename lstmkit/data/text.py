"""Your own labelled texts: CSV / TSV / JSONL (/ Parquet) files -> texts, class names, label ids.

Formats are told apart by the file suffix: ``.csv``, ``.tsv`` / ``.tab``, ``.jsonl`` / ``.ndjson``
and ``.parquet`` (Parquet needs ``pyarrow``: ``pip install 'lstmkit[parquet]'``). CSV and TSV are
read as Python's :mod:`csv` module reads them: a header row, quoted fields (``"..."``, which may
hold the delimiter, doubled quotes and line breaks), LF or CRLF line ends; pyarrow's C++ CSV reader
reads the files it is known to read alike (the same records and line numbers, about 3x faster,
see :func:`_arrow_csv_columns`), the csv module all others (and gives every error message). Text files are decoded as UTF-8
(a byte-order mark is dropped) unless another ``encoding`` is given.

Every problem is one :class:`DataFileError` naming the file, the line (the line where the record
starts; for Parquet the row) and the column, and saying what would be valid: a missing column, an
empty text, a missing label, a record with the wrong number of fields, bytes that are not valid in
the encoding (with the hint to pass ``--encoding``), a training file with a single class, a
validation/test label that the training file does not have.

Class names are the distinct labels of the training file, sorted (numerically when every label is
an integer, so ``"2" < "10"``); a class id is the position in that list. :func:`stratified_split`
holds out the same fraction of every class (seeded), :func:`class_balance` reports the counts.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from lstmkit.errors import ConfigError, DataFileError

FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
}


class TextSource(BaseModel):
    """``[data.text]`` of a recipe (``dataset = "text"``): your labelled texts and how to read
    and tokenize them. Paths are relative to the working directory. ``[data] maxlen`` and
    ``truncating`` cut the token sequences as for the Keras data sets.

    Attributes:
        train, valid, test: CSV / TSV / JSONL / Parquet files. Without ``valid``, a stratified
            ``valid_fraction`` of ``train`` is held out (seeded by ``train.seed``). Without
            ``test``, the evaluation report is on the validation records.
        text_column, label_column: column names (JSON keys). encoding: of text files.
        tokenizer: 'word' | 'char' | 'bpe' | 'unigram' (:mod:`lstmkit.data.tokenize`), trained
            on the training records only; vocab_size (specials included), min_frequency,
            lowercase.
        vectors: a word2vec / GloVe / fastText file for the embedding (its size sets
            ``model.embedding_dim``); vectors_format 'auto' | 'text' | 'binary';
            freeze_vectors: keep them fixed during training.
        baseline: the classic baseline measured beside the model ('tfidf': TF-IDF word and
            character n-grams + logistic regression, :mod:`lstmkit.baselines.text`; 'none').
    """

    model_config = ConfigDict(extra="forbid")

    train: str
    valid: str | None = None
    test: str | None = None
    text_column: str = "text"
    label_column: str = "label"
    encoding: str = "utf-8"
    valid_fraction: float = Field(0.1, gt=0.0, lt=1.0)
    tokenizer: Literal["word", "char", "bpe", "unigram"] = "word"
    vocab_size: int = Field(20000, ge=3, le=10_000_000)
    min_frequency: int = Field(1, ge=1)
    lowercase: bool = False
    vectors: str | None = None
    vectors_format: Literal["auto", "text", "binary"] = "auto"
    freeze_vectors: bool = False
    baseline: Literal["tfidf", "none"] = "tfidf"


@dataclass
class LabelledTexts:
    """Texts and their labels (as strings) read from one file.

    Attributes:
        path: the file.
        texts: one text per record.
        labels: the label of each record as a string (``1`` and ``"1"`` are the same label).
        lines: where each record starts (1-based line; for Parquet the 1-based row).
        where: ``"line"`` or ``"row"`` (what ``lines`` counts).
    """

    path: Path
    texts: list[str]
    labels: list[str]
    lines: list[int]
    where: str = "line"

    def __len__(self) -> int:
        """Number of records."""
        return len(self.texts)

    def subset(self, indices: Sequence[int] | np.ndarray) -> LabelledTexts:
        """The records at ``indices`` (in that order)."""
        idx = [int(i) for i in indices]
        return LabelledTexts(
            self.path,
            [self.texts[i] for i in idx],
            [self.labels[i] for i in idx],
            [self.lines[i] for i in idx],
            self.where,
        )


def file_format(path: Path) -> str:
    """'csv' | 'tsv' | 'jsonl' | 'parquet' from the suffix; DataFileError for any other."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataFileError(
            f"{path}: unknown file type {path.suffix or '(no suffix)'!r}; use one of "
            f"{', '.join(sorted(FORMATS))}"
        )
    return fmt


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DataFileError(f"{path} does not exist") from None
    except OSError as err:
        raise DataFileError(f"cannot read {path}: {err.strerror or err}") from None


def _is_utf8(encoding: str) -> bool:
    return encoding.lower().replace("_", "-") in ("utf-8", "utf8")


def decode_text(path: Path, encoding: str = "utf-8", data: bytes | None = None) -> str:
    """The whole file decoded with ``encoding`` (UTF-8: a leading BOM is dropped); ``data``: the
    file's bytes when they were read already.

    Raises DataFileError naming the line and column of the first undecodable byte and suggesting
    ``--encoding``; FileNotFoundError-like problems become DataFileError too.
    """
    if data is None:
        data = _read_bytes(path)
    codec = "utf-8-sig" if _is_utf8(encoding) else encoding
    try:
        return data.decode(codec)
    except LookupError:
        raise DataFileError(
            f"unknown encoding {encoding!r} for {path}; use a Python codec name such as "
            "utf-8, cp949, euc-kr, shift_jis, gb18030, latin-1"
        ) from None
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        raise DataFileError(
            f"{path}: line {line}, byte {column}: 0x{data[err.start]:02x} is not valid {encoding} "
            f"({err.reason}); save the file as UTF-8 or pass its encoding, e.g. --encoding cp949 "
            "(Korean Windows), --encoding shift_jis, --encoding gb18030 or --encoding latin-1"
        ) from None


def _csv_records(
    path: Path, text: str, delimiter: str, columns: list[str]
) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    start = 1
    try:
        header = next(reader)
    except StopIteration:
        raise DataFileError(f"{path} is empty; the first line must be a header row") from None
    except csv.Error as err:
        raise DataFileError(f"{path}: line {reader.line_num}: {err}") from None
    dupes = [name for name, n in Counter(header).items() if n > 1]
    if dupes:
        raise DataFileError(f"{path}: line 1: the header names column {dupes[0]!r} twice")
    for col in columns:
        if col not in header:
            raise DataFileError(
                f"{path}: line 1: no column {col!r} in the header; the columns are "
                f"{', '.join(map(repr, header))}"
            )
    start = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            raise DataFileError(
                f"{path}: line {start}: {err} (a quote that is never closed?)"
            ) from None
        line, start = start, reader.line_num + 1
        if not row or (len(row) == 1 and not row[0].strip() and len(header) > 1):
            continue  # blank line
        if len(row) != len(header):
            raise DataFileError(
                f"{path}: line {line} has {len(row)} fields but the header has {len(header)} "
                f"({', '.join(map(repr, header))}); quote a field that contains "
                f"{'a tab' if delimiter == chr(9) else 'the delimiter ' + repr(delimiter)}"
            )
        yield line, dict(zip(header, row, strict=True))


def _arrow_csv_columns(
    raw: bytes, delimiter: str, columns: list[str]
) -> tuple[list[int], dict[str, list[str]]] | None:
    """``(the line each record starts on, header name -> the field of every record)`` of a CSV /
    TSV file (UTF-8 ``raw`` bytes, no BOM) read by pyarrow's C++ CSV reader (about 3x faster than
    the csv module on the 66 MB IMDB file), exactly as :func:`_csv_records` reads its records:
    the same fields and the same line numbers. None when the
    file is not one that both are known to read alike, and whenever pyarrow fails: the caller
    then reads it with the csv module, which gives the records or the error message.

    Both read alike a file (checked here, in a few NumPy passes) without NUL bytes whose quotes
    all belong to quoted fields (RFC 4180): by parity, every opening quote starts a field (after
    the delimiter, a line break or at the start) or follows a closing one (a doubled quote inside
    the field), every closing quote ends the field (before the delimiter, a line break or the end)
    or precedes an opening one, and the quotes are even in number. The csv module also reads a
    quote inside an unquoted field, and rejects a stray quote or an unclosed field (strict mode),
    where pyarrow would read on: such files go to it. Blank lines (skipped by both) would shift
    the line numbers, a field over the csv module's field size limit is an error there, a header
    naming a column twice or lacking one of ``columns`` is an error there: those files go to it
    too. Every field is read as a string, so that pyarrow checks all of them for valid UTF-8 and
    types nothing (``01`` stays ``01``). None too when pyarrow (the text extra) is not installed."""
    try:
        import pyarrow as pa
        import pyarrow.csv as pcsv
    except ImportError:  # pip install 'lstmkit[text]': the same records, about 3x faster
        return None

    if not raw or raw.find(b"\x00") >= 0:
        return None
    b = np.frombuffer(raw, dtype=np.uint8)
    quotes = np.flatnonzero(b == 0x22)
    if quotes.size % 2:
        return None
    if quotes.size:
        opens, closes = quotes[0::2], quotes[1::2]
        bounds = np.array([ord(delimiter), 0x0A, 0x0D], dtype=np.uint8)
        before = b[np.maximum(opens - 1, 0)]
        doubled = np.zeros(opens.size, dtype=bool)
        doubled[1:] = closes[:-1] + 1 == opens[1:]
        opening = np.isin(before, bounds) | doubled
        opening[0] |= opens[0] == 0
        after = b[np.minimum(closes + 1, b.size - 1)]
        doubled = np.zeros(closes.size, dtype=bool)
        doubled[:-1] = closes[:-1] + 1 == opens[1:]
        closing = np.isin(after, bounds) | doubled
        closing[-1] |= closes[-1] == b.size - 1
        if not (opening.all() and closing.all()):
            return None
    # the header: the first line, read by the csv module (a header with a line break inside a
    # quoted name goes to it whole); pyarrow then reads it as row 0, so that its line breaks,
    # its UTF-8 and its field count are checked like every row's
    ends = [k for k in (raw.find(b"\n"), raw.find(b"\r")) if k >= 0]
    head = raw[: min(ends)] if ends else raw
    if head.count(b'"') % 2:
        return None
    try:
        header = next(csv.reader([head.decode("utf-8")], delimiter=delimiter, strict=True))
    except (UnicodeDecodeError, csv.Error, StopIteration):
        return None
    if not header or len(set(header)) != len(header) or not set(columns) <= set(header):
        return None
    try:
        table = pcsv.read_csv(
            pa.py_buffer(raw),
            read_options=pcsv.ReadOptions(use_threads=False, column_names=header, skip_rows=0),
            parse_options=pcsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
            convert_options=pcsv.ConvertOptions(
                column_types={name: pa.string() for name in header},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowException, ValueError):
        return None
    # row 0 is the header itself; a record spans its line breaks + 1 lines, counted as the csv
    # module counts lines (LF, CRLF and a lone CR)
    values = [col.to_pylist() for col in table.columns]
    cr = np.flatnonzero(b == 0x0D)
    crlf = int(np.count_nonzero(b[np.minimum(cr + 1, b.size - 1)] == 0x0A))
    lone_cr = crlf != cr.size
    breaks = np.zeros(table.num_rows, dtype=np.int64)
    for vals in values:
        breaks += np.fromiter((v.count("\n") for v in vals), np.int64, len(vals))
        if lone_cr:
            breaks += np.fromiter((v.count("\r") - v.count("\r\n") for v in vals), np.int64)
        if max(map(len, vals), default=0) >= csv.field_size_limit():
            return None
    lines = np.cumsum(breaks + 1)  # the line each record (the header: row 0) ends on
    total = int(np.count_nonzero(b == 0x0A)) + cr.size - crlf
    total += raw[-1:] not in (b"\n", b"\r")
    if table.num_rows < 1 or int(lines[-1]) != total:  # blank lines: numbers would shift
        return None
    return (lines[:-1] + 1).tolist(), {name: v[1:] for name, v in zip(header, values, strict=True)}


def _jsonl_records(path: Path, text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as err:
            raise DataFileError(
                f"{path}: line {number}: not valid JSON ({err.msg} at column {err.colno})"
            ) from None
        if not isinstance(obj, dict):
            raise DataFileError(
                f"{path}: line {number}: expected a JSON object per line, got {type(obj).__name__}"
            )
        yield number, obj


def _parquet_records(path: Path, columns: list[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataFileError(
            f"{path}: reading Parquet needs pyarrow; pip install 'lstmkit[parquet]' or save the "
            "data as CSV"
        ) from None
    try:
        schema = pq.read_schema(path)
    except FileNotFoundError:
        raise DataFileError(f"{path} does not exist") from None
    except Exception as err:  # pyarrow raises its own ArrowInvalid / OSError types
        raise DataFileError(f"cannot read Parquet file {path}: {err}") from None
    missing = [c for c in columns if c not in schema.names]
    if missing:
        raise DataFileError(
            f"{path}: no column {missing[0]!r}; the columns are {', '.join(map(repr, schema.names))}"
        )
    table = pq.read_table(path, columns=columns)
    yield from enumerate(table.to_pylist(), 1)


def _fast_csv(
    path: Path, raw: bytes, encoding: str, delimiter: str, columns: list[str]
) -> tuple[tuple[list[int], dict[str, list[str]]] | None, str]:
    """``(_arrow_csv_columns' result, "")``, or ``(None, the decoded text)`` for the csv
    module (see :func:`_arrow_csv_columns`: the same records either way). UTF-8 bytes go to
    pyarrow as they are (it checks them); other encodings are decoded here first."""
    if _is_utf8(encoding):
        fast = _arrow_csv_columns(raw.removeprefix(b"\xef\xbb\xbf"), delimiter, columns)
        return (fast, "") if fast is not None else (None, decode_text(path, encoding, raw))
    text = decode_text(path, encoding, raw)
    return _arrow_csv_columns(text.encode("utf-8", "surrogatepass"), delimiter, columns), text


def iter_records(
    path: Path, columns: list[str], encoding: str = "utf-8"
) -> tuple[str, Iterator[tuple[int, dict[str, Any]]]]:
    """``("line" | "row", iterator of (line, record dict))`` for a CSV/TSV/JSONL/Parquet file.

    For CSV/TSV a column named in ``columns`` that the header lacks is an error here; for JSONL
    each record is checked by the caller (a key may be missing in one line only).
    """
    path = Path(path)
    fmt = file_format(path)
    if fmt == "parquet":
        return "row", _parquet_records(path, columns)
    raw = _read_bytes(path)
    if fmt == "jsonl":
        return "line", _jsonl_records(path, decode_text(path, encoding, raw))
    delimiter = "," if fmt == "csv" else "\t"
    fast, text = _fast_csv(path, raw, encoding, delimiter, columns)
    if fast is not None:
        lines, values = fast
        names = list(values)
        rows = zip(*values.values(), strict=True)
        return "line", (
            (n, dict(zip(names, r, strict=True))) for n, r in zip(lines, rows, strict=True)
        )
    records = _csv_records(path, text, delimiter, columns)
    first = next(records, None)  # reads the header now: a missing column fails here, not later
    return "line", itertools.chain([first] if first is not None else [], records)


def _cell(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value != value:  # NaN (Parquet / JSON null-ish)
        return None
    return str(value)


def read_labelled_texts(
    path: str | Path,
    text_column: str,
    label_column: str | None,
    *,
    encoding: str = "utf-8",
) -> LabelledTexts:
    """Read ``text_column`` and ``label_column`` of every record of ``path``.

    ``label_column=None`` reads texts only (labels are empty strings), e.g. for prediction.
    Raises DataFileError (one message naming file, line and column) for a missing column, an
    empty text, a missing label, and the format errors listed in the module docstring.
    """
    path = Path(path)
    columns = [text_column] + ([label_column] if label_column else [])
    if file_format(path) in ("csv", "tsv"):
        delimiter = "," if file_format(path) == "csv" else "\t"
        fast, _ = _fast_csv(path, _read_bytes(path), encoding, delimiter, columns)
        if fast is not None:
            return _from_columns(path, *fast, text_column, label_column)
    where, records = iter_records(path, columns, encoding)
    texts: list[str] = []
    labels: list[str] = []
    lines: list[int] = []
    for line, rec in records:
        if text_column not in rec:
            raise DataFileError(f"{path}: {where} {line}: no {text_column!r} key (the text column)")
        text = _cell(rec[text_column])
        if text is None or not text.strip():
            raise DataFileError(
                f"{path}: {where} {line}, column {text_column!r}: the text is empty; remove the "
                "record or give it a text"
            )
        label = ""
        if label_column:
            if label_column not in rec:
                raise DataFileError(
                    f"{path}: {where} {line}: no {label_column!r} key (the label column)"
                )
            value = _cell(rec[label_column])
            if value is None or not value.strip():
                raise DataFileError(
                    f"{path}: {where} {line}, column {label_column!r}: the label is missing; "
                    "every record needs a label"
                )
            label = value.strip()
        texts.append(text)
        labels.append(label)
        lines.append(line)
    if not texts:
        raise DataFileError(f"{path} has a header but no records")
    return LabelledTexts(path, texts, labels, lines, where)


def _from_columns(
    path: Path,
    lines: list[int],
    values: dict[str, list[str]],
    text_column: str,
    label_column: str | None,
) -> LabelledTexts:
    """:func:`read_labelled_texts` on the columns of a CSV / TSV file: the same checks, the same
    first error, one pass per column."""
    texts = values[text_column]
    raw_labels = values[label_column] if label_column else None
    bad_text = next((k for k, t in enumerate(texts) if not t.strip()), len(texts))
    bad_label = len(texts)
    if raw_labels is not None:
        bad_label = next((k for k, v in enumerate(raw_labels) if not v.strip()), len(texts))
    if bad_text < len(texts) and bad_text <= bad_label:
        raise DataFileError(
            f"{path}: line {lines[bad_text]}, column {text_column!r}: the text is empty; remove "
            "the record or give it a text"
        )
    if bad_label < len(texts):
        raise DataFileError(
            f"{path}: line {lines[bad_label]}, column {label_column!r}: the label is missing; "
            "every record needs a label"
        )
    if not texts:
        raise DataFileError(f"{path} has a header but no records")
    labels = [v.strip() for v in raw_labels] if raw_labels is not None else [""] * len(texts)
    return LabelledTexts(path, texts, labels, lines, "line")


def _as_int(label: str) -> int | None:
    try:
        return int(label)
    except ValueError:
        return None


def class_names(train: LabelledTexts, label_column: str) -> list[str]:
    """Distinct labels of the training records, sorted (numerically if all are integers).

    Raises DataFileError when there is only one class.
    """
    distinct = set(train.labels)
    if len(distinct) < 2:
        (only,) = distinct
        raise DataFileError(
            f"{train.path}: column {label_column!r} has a single class ({only!r} in all "
            f"{len(train)} records); a classifier needs at least two classes"
        )
    ints = {label: _as_int(label) for label in distinct}
    if all(v is not None for v in ints.values()):
        return sorted(distinct, key=lambda s: (ints[s], s))
    return sorted(distinct)


def label_ids(
    data: LabelledTexts, names: Sequence[str], label_column: str, train_path: Path
) -> np.ndarray:
    """Class id of every record; DataFileError naming the line of a label the training file lacks."""
    index = {name: i for i, name in enumerate(names)}
    out = np.empty(len(data), dtype=np.int64)
    for k, (label, line) in enumerate(zip(data.labels, data.lines, strict=True)):
        cid = index.get(label)
        if cid is None:
            shown = ", ".join(map(repr, names[:20])) + (" ..." if len(names) > 20 else "")
            raise DataFileError(
                f"{data.path}: {data.where} {line}, column {label_column!r}: label {label!r} does "
                f"not occur in the training file {train_path}; its labels are {shown}"
            )
        out[k] = cid
    return out


def stratified_split(
    labels: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Hold out ``fraction`` of every class: ``(train_indices, valid_indices)``, each sorted.

    Per class ``round(n_c * fraction)`` records are held out, at least one when the class has two
    or more (a class of one record stays in training). Seeded with ``seed`` (numpy PCG64).
    """
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"validation fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    held: list[np.ndarray] = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        n_hold = round(len(members) * fraction)
        n_hold = min(max(1, n_hold), len(members) - 1) if len(members) >= 2 else 0
        held.append(rng.permutation(members)[:n_hold])
    valid = np.sort(np.concatenate(held)) if held else np.empty(0, dtype=np.int64)
    mask = np.ones(len(labels), dtype=bool)
    mask[valid] = False
    return np.flatnonzero(mask), valid


@dataclass
class ClassBalance:
    """Records per class of one split, and the share of the largest class."""

    counts: dict[str, int]
    total: int
    majority_fraction: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "counts": self.counts,
            "total": self.total,
            "majority_fraction": self.majority_fraction,
            "notes": self.notes,
        }

    def describe(self) -> str:
        """One line: ``'neg' 60 (60.0%), 'pos' 40 (40.0%)``."""
        return ", ".join(
            f"{name!r} {n} ({n / max(1, self.total):.1%})" for name, n in self.counts.items()
        )


def class_balance(ids: np.ndarray, names: Sequence[str]) -> ClassBalance:
    """Counts per class (in class-id order), the majority share, and a note for each class
    that has fewer than 5 records or is absent."""
    counts = np.bincount(ids, minlength=len(names))
    total = int(counts.sum())
    notes = [
        f"class {names[i]!r} has only {int(n)} record(s)" for i, n in enumerate(counts) if n < 5
    ]
    return ClassBalance(
        {names[i]: int(n) for i, n in enumerate(counts)},
        total,
        float(counts.max() / total) if total else float("nan"),
        notes,
    )
