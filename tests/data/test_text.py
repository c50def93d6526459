"""lstmkit.data.text: reading labelled texts (CSV/TSV/JSONL/Parquet), errors naming file/line/column,
class names, stratified split, class balance."""

from __future__ import annotations

import csv
import json
import random
import warnings
from pathlib import Path

import numpy as np
import pytest

from lstmkit.data import text as text_module
from lstmkit.data.text import (
    DataFileError,
    LabelledTexts,
    class_balance,
    class_names,
    label_ids,
    read_labelled_texts,
    stratified_split,
)
from lstmkit.errors import ConfigError

ROWS = [
    ("정말 재미있는 영화였어요", "pos"),
    ('He said "wow",\nthen left.', "neg"),  # quotes, a comma and a line break inside the field
    ("東京は晴れです。😀", "pos"),
    ("Café déjà vu", "neg"),
]


def _csv_text(rows: list[tuple[str, str]], delimiter: str = ",") -> str:
    def quote(s: str) -> str:
        return '"' + s.replace('"', '""') + '"'

    lines = [delimiter.join(["review", "label"])]
    lines += [delimiter.join([quote(t), lab]) for t, lab in rows]
    return "\r\n".join(lines) + "\r\n"


def test_csv_with_bom_crlf_and_multiline_quoted_fields(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_bytes(b"\xef\xbb\xbf" + _csv_text(ROWS).encode("utf-8"))
    data = read_labelled_texts(path, "review", "label")
    assert data.texts == [t for t, _ in ROWS]
    assert data.labels == ["pos", "neg", "pos", "neg"]
    # the record with a line break inside its text starts on line 3 and ends on line 4
    assert data.lines == [2, 3, 5, 6]


def test_tsv_jsonl_and_parquet_read_the_same_records(tmp_path: Path) -> None:
    tsv = tmp_path / "a.tsv"
    tsv.write_text(_csv_text(ROWS, "\t"), encoding="utf-8")
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text(
        "\n".join(json.dumps({"review": t, "label": lab}, ensure_ascii=False) for t, lab in ROWS)
        + "\n\n",
        encoding="utf-8",
    )
    for path in (tsv, jsonl):
        data = read_labelled_texts(path, "review", "label")
        assert data.texts == [t for t, _ in ROWS], path
        assert data.labels == ["pos", "neg", "pos", "neg"], path
    assert read_labelled_texts(jsonl, "review", "label").lines == [1, 2, 3, 4]
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    parquet = tmp_path / "a.parquet"
    pq.write_table(pa.table({"review": [t for t, _ in ROWS], "label": [1, 0, 1, 0]}), str(parquet))
    data = read_labelled_texts(parquet, "review", "label")
    assert data.texts == [t for t, _ in ROWS]
    assert data.labels == ["1", "0", "1", "0"]
    assert data.where == "row"


def test_integer_labels_sort_numerically_and_json_ints_equal_strings(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    labels = [10, 2, "2", 1, 10]
    path.write_text(
        "\n".join(json.dumps({"text": f"t{i}", "label": lab}) for i, lab in enumerate(labels)),
        encoding="utf-8",
    )
    data = read_labelled_texts(path, "text", "label")
    names = class_names(data, "label")
    assert names == ["1", "2", "10"]
    assert label_ids(data, names, "label", path).tolist() == [2, 1, 1, 0, 2]


def test_other_encodings_with_the_flag(tmp_path: Path) -> None:
    path = tmp_path / "kr.csv"
    path.write_bytes("text,label\n안녕하세요,a\n감사합니다,b\n".encode("cp949"))
    data = read_labelled_texts(path, "text", "label", encoding="cp949")
    assert data.texts == ["안녕하세요", "감사합니다"]


# -- bad input: one error naming the file, line and column ------------------------------------
def _err(path: Path, *args: str, **kwargs: str) -> str:
    with pytest.raises(DataFileError) as info:
        read_labelled_texts(path, *args, **kwargs)  # type: ignore[arg-type]
    return str(info.value)


def test_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("text,label\nhello,a\n", encoding="utf-8")
    msg = _err(path, "review", "label")
    assert str(path) in msg and "line 1" in msg and "'review'" in msg and "'text'" in msg


def test_empty_text_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text('text,label\nhello,a\n"  ",b\n', encoding="utf-8")
    msg = _err(path, "text", "label")
    assert f"{path}: line 3, column 'text'" in msg and "empty" in msg


def test_missing_label_csv_and_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("text,label\nhello,a\nworld,\n", encoding="utf-8")
    assert f"{path}: line 3, column 'label': the label is missing" in _err(path, "text", "label")
    js = tmp_path / "a.jsonl"
    js.write_text('{"text": "a", "label": "x"}\n{"text": "b"}\n', encoding="utf-8")
    assert f"{js}: line 2: no 'label' key" in _err(js, "text", "label")
    js.write_text('{"text": "a", "label": "x"}\n{"text": "b", "label": null}\n', encoding="utf-8")
    assert f"{js}: line 2, column 'label'" in _err(js, "text", "label")


def test_single_class(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("text,label\na,x\nb,x\nc,x\n", encoding="utf-8")
    data = read_labelled_texts(path, "text", "label")
    with pytest.raises(DataFileError, match=r"single class \('x' in all 3 records\)"):
        class_names(data, "label")


def test_unknown_label_in_valid_names_the_line(tmp_path: Path) -> None:
    train = tmp_path / "train.csv"
    train.write_text("text,label\na,x\nb,y\n", encoding="utf-8")
    valid = tmp_path / "valid.csv"
    valid.write_text("text,label\na,x\nb,z\n", encoding="utf-8")
    names = class_names(read_labelled_texts(train, "text", "label"), "label")
    data = read_labelled_texts(valid, "text", "label")
    with pytest.raises(DataFileError) as info:
        label_ids(data, names, "label", train)
    msg = str(info.value)
    assert f"{valid}: line 3, column 'label': label 'z'" in msg and str(train) in msg
    assert "'x', 'y'" in msg


def test_non_utf8_bytes_name_the_line_and_suggest_encoding(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(b"text,label\nok,a\n" + "caf\xe9 noir,b\n".encode("latin-1"))
    msg = _err(path, "text", "label")
    assert f"{path}: line 3, byte 4: 0xe9 is not valid utf-8" in msg
    assert "--encoding" in msg


def test_wrong_field_count_unclosed_quote_bad_json_and_suffix(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("text,label\nhello, world,a\n", encoding="utf-8")
    assert "line 2 has 3 fields but the header has 2" in _err(path, "text", "label")
    js = tmp_path / "a.jsonl"
    js.write_text('{"text": "a", "label": "x"}\n{"text": "b", \n', encoding="utf-8")
    assert f"{js}: line 2: not valid JSON" in _err(js, "text", "label")
    txt = tmp_path / "a.txt"
    txt.write_text("x", encoding="utf-8")
    assert "unknown file type '.txt'" in _err(txt, "text", "label")
    assert "does not exist" in _err(tmp_path / "nope.csv", "text", "label")


# -- split and balance ------------------------------------------------------------------------
def test_stratified_split_keeps_each_class_share() -> None:
    labels = np.array([0] * 60 + [1] * 30 + [2] * 10 + [3])
    tr, va = stratified_split(labels, 0.2, seed=7)
    assert np.bincount(labels[va], minlength=4).tolist() == [12, 6, 2, 0]  # class 3 has 1 record
    assert len(np.intersect1d(tr, va)) == 0
    assert sorted(np.concatenate([tr, va]).tolist()) == list(range(len(labels)))
    tr2, va2 = stratified_split(labels, 0.2, seed=7)
    assert va.tolist() == va2.tolist()  # seeded
    assert va.tolist() != stratified_split(labels, 0.2, seed=8)[1].tolist()


@pytest.mark.parametrize(
    ("fraction", "sizes", "held"),
    [
        # round(2 * 0.2) = 0 -> at least one; 3 and 4 round to one; 8 rounds to two
        (0.2, [1, 2, 3, 4, 8], [0, 1, 1, 1, 2]),
        # round(2 * 0.8) = 2 -> at most n - 1, so one stays in training; 4 * 0.8 rounds to 3
        (0.8, [1, 2, 3, 4, 5], [0, 1, 2, 3, 4]),
        # round(10 * 0.05) = round(0.5) = 0 (to even) -> one
        (0.05, [2, 10, 30], [1, 1, 2]),
    ],
)
def test_stratified_split_holds_out_one_and_keeps_one_of_every_small_class(
    fraction: float, sizes: list[int], held: list[int]
) -> None:
    """The clamp: every class of two or more records has at least one record on each side."""
    labels = np.repeat(np.arange(len(sizes)), sizes)
    np.random.default_rng(0).shuffle(labels)
    tr, va = stratified_split(labels, fraction, seed=3)
    assert np.bincount(labels[va], minlength=len(sizes)).tolist() == held
    assert np.bincount(labels[tr], minlength=len(sizes)).tolist() == [
        n - h for n, h in zip(sizes, held, strict=True)
    ]
    assert tr.tolist() == sorted(tr.tolist()) and va.tolist() == sorted(va.tolist())
    assert sorted([*tr.tolist(), *va.tolist()]) == list(range(len(labels)))


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_stratified_split_fraction_outside_0_1_is_an_error(fraction: float) -> None:
    with pytest.raises(
        ConfigError, match=f"validation fraction must be in \\(0, 1\\), got {fraction}"
    ):
        stratified_split(np.array([0, 0, 1, 1]), fraction, seed=0)


@pytest.mark.parametrize("classes", [20, 21])
def test_an_unknown_label_lists_at_most_20_of_the_training_labels(classes: int) -> None:
    names = [f"c{i:02d}" for i in range(classes)]
    data = LabelledTexts(Path("v.csv"), ["a", "b"], ["c00", "nope"], [2, 3])
    with pytest.raises(DataFileError) as info:
        label_ids(data, names, "label", Path("t.csv"))
    listed = ", ".join(repr(n) for n in names[:20])
    assert str(info.value).endswith(f"its labels are {listed}" + (" ..." if classes > 20 else ""))


def test_label_ids_are_int64_and_need_a_line_per_label() -> None:
    data = LabelledTexts(Path("v.csv"), ["a", "b", "c"], ["y", "x", "y"], [2, 3, 4])
    ids = label_ids(data, ["x", "y"], "label", Path("t.csv"))
    assert ids.dtype == np.int64 and ids.tolist() == [1, 0, 1]
    broken = LabelledTexts(Path("v.csv"), ["a", "b"], ["y", "x"], [2])  # one line short
    with pytest.raises(ValueError, match="zip"):
        label_ids(broken, ["x", "y"], "label", Path("t.csv"))


def test_stratified_split_of_no_records_is_two_empty_int_arrays() -> None:
    tr, va = stratified_split(np.array([], dtype=np.int64), 0.2, seed=0)
    assert tr.dtype == va.dtype == np.int64 and tr.shape == va.shape == (0,)


def test_class_balance_of_small_absent_and_no_classes() -> None:
    bal = class_balance(np.array([0] * 5 + [1] * 4), ["five", "four", "none"])
    assert bal.to_dict() == {
        "counts": {"five": 5, "four": 4, "none": 0},
        "total": 9,
        "majority_fraction": pytest.approx(5 / 9),
        "notes": ["class 'four' has only 4 record(s)", "class 'none' has only 0 record(s)"],
    }
    one = class_balance(np.array([0]), ["a", "b"])
    assert one.describe() == "'a' 1 (100.0%), 'b' 0 (0.0%)"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no 0 / 0 on the way to NaN
        empty = class_balance(np.array([], dtype=np.int64), ["a", "b"])
    assert empty.counts == {"a": 0, "b": 0} and empty.total == 0
    assert np.isnan(empty.majority_fraction)


def test_class_balance_counts_and_notes() -> None:
    bal = class_balance(np.array([0, 0, 0, 1, 0, 0, 1, 1, 0]), ["neg", "pos"])
    assert bal.counts == {"neg": 6, "pos": 3}
    assert bal.majority_fraction == pytest.approx(6 / 9)
    assert bal.notes == ["class 'pos' has only 3 record(s)"]
    assert bal.describe() == "'neg' 6 (66.7%), 'pos' 3 (33.3%)"


# -- the fast CSV reader (pyarrow) gives the csv module's records ------------------------------
def _exact(path: Path, *args: str, **kwargs: str) -> LabelledTexts | str:
    """read_labelled_texts with the csv module only (the records, or the error message)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(text_module, "_arrow_csv_columns", lambda *a: None)
        try:
            return read_labelled_texts(path, *args, **kwargs)  # type: ignore[arg-type]
        except DataFileError as err:
            return str(err)


def _fast_used(path: Path, encoding: str = "utf-8") -> bool:
    raw = path.read_bytes()
    try:
        fast, _ = text_module._fast_csv(path, raw, encoding, ",", [])
    except DataFileError:  # not decodable: the csv module's error
        return False
    return fast is not None


def test_fast_csv_reader_gives_the_same_records_and_lines(tmp_path: Path) -> None:
    cases = {
        "bom_crlf.csv": b"\xef\xbb\xbf" + _csv_text(ROWS).encode("utf-8"),
        "lf.csv": _csv_text(ROWS).replace("\r\n", "\n").encode("utf-8"),
        # a lone CR ends a line for the csv module, also inside a quoted field
        "cr.csv": b'review,label\r"a\rb",x\rc,y\r"d\r\ne",x',
        "quoted_header.csv": b'"review","label","other"\n"a,""b""",1,"x\n\ny"\nc,01,\n',
        "one_column.csv": b"review\nabc\n  def  \n",
    }
    for name, raw in cases.items():
        path = tmp_path / name
        path.write_bytes(raw)
        assert _fast_used(path), name
        label = None if name == "one_column.csv" else "label"
        fast = read_labelled_texts(path, "review", label)
        assert fast == _exact(path, "review", label), name
    quoted = read_labelled_texts(tmp_path / "quoted_header.csv", "review", "label")
    assert quoted.texts == ['a,"b"', "c"] and quoted.labels == ["1", "01"]
    assert quoted.lines == [2, 5]
    cr = read_labelled_texts(tmp_path / "cr.csv", "review", "label")
    assert cr.texts == ["a\rb", "c", "d\r\ne"] and cr.lines == [2, 4, 5]
    # the first bad record gives the error, as record by record: a missing label before an
    # empty text, an empty text before a missing label, both in one record (the text first)
    for name, raw in {
        "label_first.csv": b'review,label\na,x\n"b\nc", \n" ",y\n',
        "text_first.csv": b'review,label\na,x\n"\n",y\nb,\n',
        "both.csv": b"review,label\na,x\n ,\n",
    }.items():
        path = tmp_path / name
        path.write_bytes(raw)
        assert _fast_used(path), name
        assert _err(path, "review", "label") == _exact(path, "review", "label"), name
    assert "line 3, column 'label': the label is missing" in _err(
        tmp_path / "label_first.csv", "review", "label"
    )
    assert "line 3, column 'review': the text is empty" in _err(
        tmp_path / "text_first.csv", "review", "label"
    )
    assert "line 3, column 'review'" in _err(tmp_path / "both.csv", "review", "label")
    kr = tmp_path / "kr.csv"
    kr.write_bytes('text,label\n안녕하세요,a\n"감사,합니다",b\n'.encode("cp949"))
    assert _fast_used(kr, "cp949")
    data = read_labelled_texts(kr, "text", "label", encoding="cp949")
    assert data == _exact(kr, "text", "label", encoding="cp949")
    assert data.texts == ["안녕하세요", "감사,합니다"] and data.lines == [2, 3]


def test_files_the_fast_reader_does_not_model_go_to_the_csv_module(tmp_path: Path) -> None:
    cases = {
        # read by the csv module: a quote inside an unquoted field, blank lines (line numbers)
        "inner_quote.csv": (b'text,label\nab"c,x\nd,y\n', ['ab"c', "d"], [2, 3]),
        "blank_lines.csv": (b"text,label\n\na,x\n\n\nb,y\n\n", ["a", "b"], [3, 6]),
        "nul.csv": (b"text,label\na\x00b,x\nc,y\n", ["a\x00b", "c"], [2, 3]),
        # errors of the csv module (strict): pyarrow would read these on
        "stray_quote.csv": (b'text,label\n"ab"c,x\nd,y\n', "line 2: ',' expected after '\"'", []),
        "unclosed.csv": (b'text,label\na,x\n"b,y\n', "line 3: unexpected end of data", []),
        "fields.csv": (b"text,label\na,x,z\nc,y\n", "line 2 has 3 fields but the header has 2", []),
        "dup.csv": (b"text,text,label\na,b,x\n", "the header names column 'text' twice", []),
        "bad_utf8.csv": (b"text,label\nok,a\ncaf\xe9,b\n", "line 3, byte 4: 0xe9 is not valid", []),
    }
    for name, (raw, want, lines) in cases.items():
        path = tmp_path / name
        path.write_bytes(raw)
        assert not _fast_used(path), name
        got = _exact(path, "text", "label")
        if isinstance(want, str):
            assert isinstance(got, str) and want in got, (name, got)
            assert want in _err(path, "text", "label"), name
        else:
            data = read_labelled_texts(path, "text", "label")
            assert data == got and data.texts == want and data.lines == lines, name
    big = tmp_path / "big.csv"
    big.write_bytes(b"text,label\n" + b"a" * (csv.field_size_limit() + 1) + b",x\n")
    assert not _fast_used(big) and "field larger than field limit" in _err(big, "text", "label")


def _random_csv(rnd: random.Random) -> str:
    chars = ["a", "b", " ", ",", '"', "\n", "\r", "\r\n", "é", "\t", "1"]

    def field() -> str:
        body = "".join(rnd.choice(chars) for _ in range(rnd.randint(0, 5)))
        if rnd.random() < 0.5:
            return '"' + body.replace('"', '""') + '"'
        return "".join(c for c in body if c not in ',"\r\n') if rnd.random() < 0.9 else body

    ncol = rnd.randint(1, 3)
    rows = [[f"h{k}" for k in range(ncol)]]
    rows += [[field() for _ in range(ncol)] for _ in range(rnd.randint(0, 4))]
    text = "".join(",".join(r) + rnd.choice(["\n", "\r\n", "\r"]) for r in rows)
    if rnd.random() < 0.3:
        text = text.rstrip("\r\n")
    if rnd.random() < 0.3:  # a stray character somewhere
        k = rnd.randint(0, len(text))
        text = text[:k] + rnd.choice([*chars, '""', "\n\n", "\x00"]) + text[k:]
    return text


def test_fast_csv_reader_matches_the_csv_module_on_random_files() -> None:
    # whenever the fast reader answers, the csv module reads the same fields and line numbers
    # (and does not fail); 2,000 small files with quotes, line breaks and stray characters
    rnd = random.Random(0)
    answered = 0
    for _ in range(2000):
        text = _random_csv(rnd)
        fast = text_module._arrow_csv_columns(text.encode("utf-8"), ",", [])
        if fast is None:
            continue
        answered += 1
        lines, values = fast
        rows = zip(*values.values(), strict=True)
        got = [(n, dict(zip(values, r, strict=True))) for n, r in zip(lines, rows, strict=True)]
        assert got == list(text_module._csv_records(Path("r.csv"), text, ",", [])), repr(text)
    assert answered > 1200  # the fast reader answered most of them


@pytest.mark.slow
def test_fast_csv_reader_on_the_50k_imdb_reviews(tmp_path: Path) -> None:
    import sys

    from lstmkit.data.resolve import resolve

    sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
    from data_pipeline import write_imdb_csv

    path = tmp_path / "imdb.csv"
    assert write_imdb_csv(resolve("aclImdb_v1_text.tar.gz"), path, None) == 50000
    assert _fast_used(path)
    data = read_labelled_texts(path, "review", "label")
    assert data == _exact(path, "review", "label")
    assert len(data) == 50000 and data.lines[-1] > 50000
