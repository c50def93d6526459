"""lstmkit.data.text: reading labelled texts (CSV/TSV/JSONL/Parquet), errors naming file/line/column,
class names, stratified split, class balance."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lstmkit.data.text import (
    DataFileError,
    class_balance,
    class_names,
    label_ids,
    read_labelled_texts,
    stratified_split,
)

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


def test_class_balance_counts_and_notes() -> None:
    bal = class_balance(np.array([0, 0, 0, 1, 0, 0, 1, 1, 0]), ["neg", "pos"])
    assert bal.counts == {"neg": 6, "pos": 3}
    assert bal.majority_fraction == pytest.approx(6 / 9)
    assert bal.notes == ["class 'pos' has only 3 record(s)"]
    assert bal.describe() == "'neg' 6 (66.7%), 'pos' 3 (33.3%)"
