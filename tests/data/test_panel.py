"""lstmkit.data.panel: the long format (unique_id, ds, y) read, cut by time and windowed."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from lstmkit.data.panel import (
    PanelWindows,
    calendar_columns,
    find_id_column,
    header_columns,
    panel_split,
    read_panel,
    string_columns,
)
from lstmkit.data.series import rolling_origins
from lstmkit.data.text import DataFileError


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_read_panel_keeps_first_seen_order_ragged_lengths_and_sorts_with_a_warning(
    tmp_path: Path,
) -> None:
    # B first (3 rows, out of order), then A (2 rows, an earlier start), then C (1 row)
    f = _write(
        tmp_path / "p.csv",
        "unique_id,ds,y,price\n"
        "B,2020-01,1,10\n"  # line 2
        "B,2020-03,3,30\n"  # line 3
        "A,2019-06,5,50\n"  # line 4
        "B,2020-02,2,20\n"  # line 5: before its series' row above (line 3)
        "A,2019-07,6,60\n"  # line 6
        "C,2021-01,7,70\n",  # line 7
    )
    panel = read_panel(f, "y", "unique_id", ["price"], "ds")
    assert panel.ids == ["B", "A", "C"]
    assert panel.columns == ["y", "price"]
    assert [len(s.values) for s in panel.series] == [3, 2, 1]
    assert panel.rows == 6
    b, a, c = panel.series
    np.testing.assert_array_equal(b.values, [[1, 10], [2, 20], [3, 30]])
    assert b.times == ["2020-01", "2020-02", "2020-03"]
    assert b.lines.tolist() == [2, 5, 3]  # each value row keeps its file line
    assert a.times == ["2019-06", "2019-07"] and a.values[:, 0].tolist() == [5, 6]
    assert c.times == ["2021-01"] and a.warnings == [] and c.warnings == []
    assert panel.warnings == [
        f"{f}: line 5: series 'B': time '2020-02' comes before its row above ('2020-03'); "
        "its rows were sorted by 'ds'"
    ]
    assert b.warnings == panel.warnings
    # without a time column the rows stay in file order
    plain = read_panel(f, "y", "unique_id")
    assert plain.series[0].values[:, 0].tolist() == [1, 3, 2] and plain.series[0].times is None


def test_read_panel_errors_name_the_line_the_column_and_the_id(tmp_path: Path) -> None:
    dup = _write(tmp_path / "dup.csv", "unique_id,ds,y\nB,2020-01,1\nA,2020-01,3\nB,2020-01,2\n")
    with pytest.raises(DataFileError) as err:
        read_panel(dup, "y", "unique_id", (), "ds")
    assert str(err.value) == (
        f"{dup}: lines 2 and 4: series 'B' has the time '2020-01' twice; keep one row per "
        "series and time"
    )
    # the same time in two different series is fine
    assert read_panel(_write(tmp_path / "ok.csv", "unique_id,ds,y\nB,1,1\nA,1,3\n"), "y",
                      "unique_id", (), "ds").ids == ["B", "A"]  # fmt: skip
    missing = _write(tmp_path / "m.csv", "unique_id,ds,y\nB,2020-01,1\nA,2020-01,\n")
    with pytest.raises(DataFileError, match=r"m.csv: line 3, column 'y': the value is missing"):
        read_panel(missing, "y", "unique_id", (), "ds")
    nan = _write(tmp_path / "n.csv", "unique_id,ds,y\nB,2020-01,1\nB,2020-02,2\nA,2020-01,NaN\n")
    with pytest.raises(DataFileError, match=r"n.csv: line 4, column 'y': the value is NaN"):
        read_panel(nan, "y", "unique_id", (), "ds")
    for blank in ("", "   "):
        empty = _write(tmp_path / "e.csv", f"unique_id,ds,y\nB,2020-01,1\n{blank},2020-01,3\n")
        with pytest.raises(
            DataFileError, match=r"e.csv: line 3, column 'unique_id': the series id is empty"
        ):
            read_panel(empty, "y", "unique_id", (), "ds")
    bad_time = _write(tmp_path / "t.csv", "unique_id,ds,y\nB,2020-01,1\nB,soon,2\n")
    with pytest.raises(DataFileError, match=r"line 3, column 'ds': 'soon' is not a time"):
        read_panel(bad_time, "y", "unique_id", (), "ds")
    with pytest.raises(DataFileError, match="cannot also be the target"):
        read_panel(dup, "y", "ds", (), "ds")
    with pytest.raises(DataFileError, match="has no rows"):
        read_panel(_write(tmp_path / "h.csv", "unique_id,ds,y\n"), "y", "unique_id", (), "ds")


def test_find_id_column_and_the_column_helpers(tmp_path: Path) -> None:
    f = _write(tmp_path / "p.csv", "unique_id,ds,y,shop\nA,2020-01,1,x\nA,2020-02,2,y\n")
    assert header_columns(f) == ["unique_id", "ds", "y", "shop"]
    assert find_id_column(f, None) == "unique_id"  # detected
    assert find_id_column(f, "shop") == "shop"  # given and present
    with pytest.raises(DataFileError) as err:
        find_id_column(f, "store")
    assert str(err.value) == f"{f}: no id column 'store'; the columns are unique_id, ds, y, shop"
    single = _write(tmp_path / "s.csv", "ds,y\n2020-01,1\n2020-02,2\n")
    assert find_id_column(single, None) is None
    assert string_columns(f, ["unique_id", "y", "shop"]) == ["unique_id", "shop"]


def _long_rows() -> list[dict[str, object]]:
    return [
        {"unique_id": "B", "ds": "2020-02", "y": 2.0},
        {"unique_id": "A", "ds": "2020-01", "y": 5.0},
        {"unique_id": "B", "ds": "2020-01", "y": 1.0},
        {"unique_id": "A", "ds": "2020-02", "y": 6.0},
    ]


def test_jsonl_and_parquet_read_as_the_csv_does(tmp_path: Path) -> None:
    jl = tmp_path / "p.jsonl"
    jl.write_text("".join(json.dumps(r) + "\n" for r in _long_rows()), encoding="utf-8")
    assert header_columns(jl) == ["unique_id", "ds", "y"]
    assert find_id_column(jl, None) == "unique_id"
    panel = read_panel(jl, "y", "unique_id", (), "ds")
    assert panel.ids == ["B", "A"]
    assert [s.values[:, 0].tolist() for s in panel.series] == [[1.0, 2.0], [5.0, 6.0]]
    assert panel.warnings == [
        f"{jl}: line 3: series 'B': time '2020-01' comes before its row above ('2020-02'); "
        "its rows were sorted by 'ds'"
    ]
    nan = tmp_path / "n.jsonl"
    nan.write_text('{"unique_id": "A", "ds": "2020-01", "y": NaN}\n', encoding="utf-8")
    with pytest.raises(DataFileError, match=r"line 1, column 'y': the value is NaN"):
        read_panel(nan, "y", "unique_id", (), "ds")

    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    rows = _long_rows()
    table = pa.table({k: [r[k] for r in rows] for k in ("unique_id", "ds", "y")})
    pf = tmp_path / "p.parquet"
    pq.write_table(table, pf)
    assert header_columns(pf) == ["unique_id", "ds", "y"]
    pp = read_panel(pf, "y", "unique_id", (), "ds")
    assert pp.ids == ["B", "A"]
    assert [s.values[:, 0].tolist() for s in pp.series] == [[1.0, 2.0], [5.0, 6.0]]
    assert [s.times for s in pp.series] == [["2020-01", "2020-02"]] * 2
    # integer ids in Parquet are read as their text
    ints = pa.table({"unique_id": [7, 7, 9], "ds": [1, 2, 1], "y": [1.0, 2.0, 3.0]})
    pq.write_table(ints, tmp_path / "i.parquet")
    assert read_panel(tmp_path / "i.parquet", "y", "unique_id", (), "ds").ids == ["7", "9"]


# -- protocols ---------------------------------------------------------------------------------
def _panel_of(tmp_path: Path, lengths: list[int]) -> Path:
    lines = ["unique_id,ds,y"]
    for k, n in enumerate(lengths):
        lines += [f"s{k},{t},{k * 100 + t}" for t in range(n)]
    return _write(tmp_path / "panel.csv", "\n".join(lines) + "\n")


def test_m4_protocol_origins_by_hand(tmp_path: Path) -> None:
    panel = read_panel(_panel_of(tmp_path, [40, 18, 17]), "y", "unique_id", (), "ds")
    split = panel_split(panel, lookback=6, horizon=4, protocol="m4", valid_fraction=0.15)
    # n = 40: test origin 36; V = max(4, round(0.15 * 40)) = 6 validation rows [30, 36):
    # origins 30, 31, 32; training origins from the lookback 6 to 26 (targets end at row 30)
    assert split.protocol == "m4" and split.kept == [0, 1]
    assert split.train_end[0] == 30 and split.valid_end[0] == 36
    assert split.origins["test"][0].tolist() == [36]
    assert split.origins["valid"][0].tolist() == [30, 31, 32]
    assert split.origins["train"][0].tolist() == list(range(6, 27))
    # n = 18 is the shortest kept: test 14, V = max(4, round(2.7)) = 4, train end 10 = 6 + 4
    assert (split.train_end[1], split.valid_end[1]) == (10, 14)
    assert split.origins["test"][1].tolist() == [14]
    assert split.origins["valid"][1].tolist() == [10]
    assert split.origins["train"][1].tolist() == [6]
    for k in range(2):  # training targets end before validation, validation before the test
        assert split.origins["train"][k].max() + 4 <= split.train_end[k]
        assert split.origins["valid"][k].max() + 4 <= split.valid_end[k]
    # n = 17: one row short
    assert split.skipped == {
        "s2": "17 rows: too short for lookback 6 + horizon 4 training rows, 4 validation and "
        "4 test rows (needs 18)"
    }
    strided = panel_split(panel, 6, 4, stride=5)
    assert strided.origins["train"][0].tolist() == [6, 11, 16, 21, 26]
    # a training part not longer than a season of MASE's scale is left out too
    seasonal = panel_split(panel, 6, 4, min_season_rows=10)
    assert seasonal.kept == [0] and set(seasonal.skipped) == {"s1", "s2"}
    with pytest.raises(DataFileError, match="protocol must be 'm4' or 'rolling', got 'last'"):
        panel_split(panel, 6, 4, protocol="last")


def test_rolling_protocol_origins_are_the_single_series_ones(tmp_path: Path) -> None:
    lengths = [40, 57, 100]
    panel = read_panel(_panel_of(tmp_path, lengths), "y", "unique_id", (), "ds")
    split = panel_split(panel, 8, 3, protocol="rolling", valid_fraction=0.1, test_fraction=0.2)
    assert split.kept == [0, 1, 2] and split.skipped == {}
    for k, n in enumerate(lengths):
        test = split.origins["test"][k]
        np.testing.assert_array_equal(test, rolling_origins(n, 3, 0.2))
        n_valid = max(3, round(0.1 * n))
        assert split.valid_end[k] == test[0] and split.train_end[k] == test[0] - n_valid
        assert split.origins["valid"][k].tolist() == list(
            range(split.train_end[k], split.valid_end[k] - 3 + 1)
        )
        assert split.origins["train"][k].tolist() == list(range(8, split.train_end[k] - 3 + 1))


def test_a_panel_of_only_short_series_keeps_none(tmp_path: Path) -> None:
    panel = read_panel(_panel_of(tmp_path, [9, 12]), "y", "unique_id", (), "ds")
    split = panel_split(panel, 6, 4)
    assert split.kept == [] and set(split.skipped) == {"s0", "s1"}
    assert all(len(o) == 0 for o in split.origins.values())


# -- windows -----------------------------------------------------------------------------------
def test_panel_windows_slice_each_series_and_never_cross_a_boundary() -> None:
    rng = np.random.default_rng(0)
    # two series of very different values: any window mixing them would show it
    a = np.stack([rng.uniform(0, 1, 30), rng.uniform(0, 1, 30)], 1)  # values in [0, 1)
    b = np.stack([rng.uniform(1000, 1001, 25), rng.uniform(1000, 1001, 25)], 1)
    oa, ob = np.arange(5, 27), np.arange(5, 22)  # every origin of lookback 5, horizon 4
    ds = PanelWindows([a, b], [oa, ob], lookback=5, horizon=4)
    assert len(ds) == len(oa) + len(ob) == 39
    assert ds.series.tolist() == [0] * 22 + [1] * 17
    assert ds.lengths.tolist() == [5] * 39
    for i, (values, t) in enumerate([(a, int(t)) for t in oa] + [(b, int(t)) for t in ob]):
        x, y = ds[i]
        assert x.dtype == np.float32 and x.shape == (5, 2) and y.shape == (4,)
        np.testing.assert_array_equal(x, values[t - 5 : t].astype(np.float32))
        np.testing.assert_array_equal(y, values[t : t + 4, 0].astype(np.float32))
        small = i < len(oa)
        assert (x.max() < 1.0 and y.max() < 1.0) if small else (x.min() >= 1000 and y.min() >= 1000)
    xs, ys = ds.arrays()
    assert xs.shape == (39, 5, 2) and ys.shape == (39, 4)
    np.testing.assert_array_equal(xs, np.stack([ds[i][0] for i in range(39)]))
    np.testing.assert_array_equal(ys, np.stack([ds[i][1] for i in range(39)]))
    # the series index as a last column: constant per window, the series' own index
    idx = PanelWindows([a, b], [oa, ob], 5, 4, series_index=[3, 7])
    x0, _ = idx[0]
    xl, yl = idx[len(idx) - 1]
    assert x0.shape == (5, 3) and x0[:, 2].tolist() == [3.0] * 5 and xl[:, 2].tolist() == [7.0] * 5
    np.testing.assert_array_equal(xl[:, :2], b[16:21].astype(np.float32))
    np.testing.assert_array_equal(yl, b[21:25, 0].astype(np.float32))
    np.testing.assert_array_equal(idx.arrays()[0][..., :2], xs)
    empty = PanelWindows([a], [np.zeros(0, dtype=np.int64)], 5, 4)
    assert len(empty) == 0 and empty.arrays()[0].shape == (0, 5, 2)
    with pytest.raises(ValueError, match="one origins array per series"):
        PanelWindows([a, b], [oa], 5, 4)


# -- calendar ----------------------------------------------------------------------------------
def test_calendar_columns_by_hand() -> None:
    months = [f"2023-{m:02d}" for m in range(1, 13)] + ["2024-01"]
    values, names = calendar_columns(months, "monthly")
    assert names == ["month_of_year_sin", "month_of_year_cos"] and values.shape == (13, 2)
    pos = [*range(12), 0]
    np.testing.assert_allclose(
        values[:, 0], [math.sin(2 * math.pi * p / 12) for p in pos], atol=1e-12
    )
    np.testing.assert_allclose(
        values[:, 1], [math.cos(2 * math.pi * p / 12) for p in pos], atol=1e-12
    )
    np.testing.assert_allclose(values[3], [1.0, 0.0], atol=1e-12)  # April: a quarter of the year
    # quarters starting in March: March, June, September, December take four distinct positions
    quarters = ["2020-03-01", "2020-06-01", "2020-09-01", "2020-12-01", "2021-03-01"]
    q, qnames = calendar_columns(quarters, "quarterly")
    assert qnames == ["quarter_of_year_sin", "quarter_of_year_cos"]
    np.testing.assert_allclose(
        q, [[0, 1], [1, 0], [0, -1], [-1, 0], [0, 1]], atol=1e-12
    )  # positions 0, 1, 2, 3, 0 of 4
    # daily: the day of the week (2024-01-01 is a Monday) and of the year
    d, dnames = calendar_columns(["2024-01-01", "2024-01-03"], "daily")
    assert dnames == ["day_of_week_sin", "day_of_week_cos", "day_of_year_sin", "day_of_year_cos"]
    np.testing.assert_allclose(d[1, :2], [math.sin(4 * math.pi / 7), math.cos(4 * math.pi / 7)])
    for freq, times in (("irregular", months), ("numbers", ["1", "2"]), ("rows", months)):
        none, no_names = calendar_columns(times, freq)
        assert none.shape == (len(times), 0) and no_names == []
    # a frequency with a calendar but times that are not dates: no columns either
    assert calendar_columns(["1", "2"], "monthly")[0].shape == (2, 0)
