"""Many series in one file, the long format: one row per (series id, time, value).

The field's forecasting tools (statsforecast / neuralforecast, GluonTS, darts) keep their data
so: columns ``unique_id, ds, y`` (the names are free: ``id_column``, ``time_column``,
``target``). :func:`read_panel` reads such a file into a :class:`Panel`, one
:class:`lstmkit.data.series.Series` per id (a single series is the case of one id): the ids in
the order they first appear, each series' rows sorted by its times (a warning names the first
row out of order), the same checks as :func:`lstmkit.data.series.read_series` (finite numbers,
one row per id and time: a duplicate names both lines and the id). Series may have different
lengths and start dates.

:func:`panel_origins` gives each series' forecast origins for the two protocols (``m4``: the
last ``horizon`` points of every series are the test, the ``horizon`` (or more) before them the
validation; ``rolling``: the rolling-origin protocol of a single series, per series); a series
too short for ``lookback + horizon`` training points is reported and left out, never an error
for the whole file. :class:`PanelWindows` serves the windows of all series from one flat array
(memory linear in the rows, not in rows x lookback).

Calendar columns (:func:`calendar_columns`): from the time column's frequency, the position of
each row in the calendar's cycles (month of year, quarter of year, day of week, hour of day ...)
as sine / cosine pairs. They are known in advance, and the position of the forecast origin fixes
that of every step ahead, so a window carrying them tells the network where in the year (week,
day) each target falls.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from lstmkit.data.series import Series, _number, test_rows, time_key
from lstmkit.data.text import DataFileError, file_format, iter_records

DEFAULT_ID_COLUMN = "unique_id"


def header_columns(path: str | Path, encoding: str = "utf-8") -> list[str]:
    """The column names of a CSV / TSV (its header), JSONL (the first record's keys) or Parquet
    file (its schema); an unreadable file is one :class:`DataFileError`."""
    path = Path(path)
    fmt = file_format(path)
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
        with open(path, encoding=encoding, errors="replace", newline="") as f:
            first = f.readline().lstrip("\ufeff")
        if fmt == "jsonl":
            rec = json.loads(first) if first.strip() else {}
            return list(rec) if isinstance(rec, dict) else []
        delimiter = "," if fmt == "csv" else "\t"
        return next(csv.reader(io.StringIO(first), delimiter=delimiter), [])
    except (OSError, ValueError) as err:
        raise DataFileError(f"{path}: cannot read its columns: {err}") from None


def find_id_column(path: str | Path, id_column: str | None, encoding: str = "utf-8") -> str | None:
    """The id column a file's series are keyed by: ``id_column`` when given (it must exist;
    ``"none"``: the file is one series whatever its columns), else ``unique_id`` when the file
    has that column, else None (one series)."""
    if id_column == "none":
        return None
    names = header_columns(path, encoding)
    if id_column is not None:
        if id_column not in names:
            raise DataFileError(
                f"{path}: no id column {id_column!r}; the columns are {', '.join(names)}"
            )
        return id_column
    return DEFAULT_ID_COLUMN if DEFAULT_ID_COLUMN in names else None


@dataclass
class Panel:
    """Many series read from one long-format file.

    Attributes:
        path: the file. id_column: its id column.
        ids: the series' ids, in the order they first appear.
        series: one :class:`Series` per id (its rows in time order).
        warnings: what was changed while reading (e.g. sorting).
    """

    path: Path
    id_column: str
    ids: list[str]
    series: list[Series]
    warnings: list[str] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        """``[target, *features]``."""
        return self.series[0].columns

    @property
    def rows(self) -> int:
        """All rows of all series."""
        return sum(len(s.values) for s in self.series)


def read_panel(
    path: str | Path,
    target: str,
    id_column: str,
    features: Sequence[str] = (),
    time_column: str | None = None,
    *,
    encoding: str = "utf-8",
) -> Panel:
    """Read a long-format file (see the module docstring for the rules and errors)."""
    path = Path(path)
    features = [f for f in features if f]
    columns = [target, *[f for f in features if f != target]]
    named = columns + ([time_column] if time_column else [])
    if id_column in named:
        raise DataFileError(
            f"{path}: the id column {id_column!r} cannot also be the target, a feature or the "
            "time column"
        )
    if len(set(named)) != len(named):
        raise DataFileError(f"{path}: a column is named twice in {named}")
    wanted = [id_column, *named]
    where, records = iter_records(path, wanted, encoding)
    index: dict[str, int] = {}
    ids: list[str] = []
    rows: list[list[list[float]]] = []
    lines: list[list[int]] = []
    times: list[list[str]] = []
    keys: list[list[float]] = []
    for line, rec in records:
        for col in wanted:
            if col not in rec:
                raise DataFileError(f"{path}: {where} {line}: no {col!r} key")
        raw_id = rec[id_column]
        sid = "" if raw_id is None else str(raw_id).strip()
        if not sid:
            raise DataFileError(
                f"{path}: {where} {line}, column {id_column!r}: the series id is empty"
            )
        k = index.get(sid)
        if k is None:
            k = index[sid] = len(ids)
            ids.append(sid)
            rows.append([])
            lines.append([])
            times.append([])
            keys.append([])
        rows[k].append([_number(path, where, line, c, rec[c]) for c in columns])
        lines[k].append(line)
        if time_column:
            stamp, text = time_key(path, where, line, time_column, rec[time_column])
            keys[k].append(stamp)
            times[k].append(text)
    if not ids:
        raise DataFileError(f"{path} has no rows")
    warnings: list[str] = []
    out: list[Series] = []
    for k, sid in enumerate(ids):
        values = np.asarray(rows[k], dtype=np.float64)
        line_arr = np.asarray(lines[k], dtype=np.int64)
        own: list[str] = []
        stamps: list[str] | None = None
        if time_column:
            key = np.asarray(keys[k])
            order = np.argsort(key, kind="stable")
            dup = np.flatnonzero(np.diff(key[order]) == 0)
            if dup.size:
                a, b = sorted((int(line_arr[order[dup[0]]]), int(line_arr[order[dup[0] + 1]])))
                raise DataFileError(
                    f"{path}: {where}s {a} and {b}: series {sid!r} has the time "
                    f"{times[k][order[dup[0]]]!r} twice; keep one row per series and time"
                )
            back = np.flatnonzero(np.diff(key) < 0)
            stamps = times[k]
            if back.size:
                i = int(back[0]) + 1
                own.append(
                    f"{path}: {where} {int(line_arr[i])}: series {sid!r}: time {stamps[i]!r} "
                    f"comes before its row above ({stamps[i - 1]!r}); its rows were sorted by "
                    f"{time_column!r}"
                )
                values, line_arr = values[order], line_arr[order]
                stamps = [stamps[i] for i in order]
        warnings += own
        out.append(Series(path, columns, values, stamps, line_arr, own))
    if len(warnings) > 3:
        warnings = [*warnings[:3], f"... and {len(warnings) - 3} more series were sorted"]
    return Panel(path, id_column, ids, out, warnings)


def head_records(path: str | Path, limit: int, encoding: str = "utf-8") -> list[dict[str, Any]]:
    """The first ``limit`` records of a CSV / TSV / JSONL / Parquet file, reading no more of it
    than that (a look at a file's columns, not a reader: :func:`read_panel` checks every row)."""
    path = Path(path)
    fmt = file_format(path)
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            batch = next(pq.ParquetFile(path).iter_batches(batch_size=limit), None)
            return [] if batch is None else batch.to_pylist()
        with open(path, encoding=encoding, errors="replace", newline="") as f:
            if fmt == "jsonl":
                out = []
                for line in itertools.islice(f, limit):
                    rec = json.loads(line) if line.strip() else None
                    if isinstance(rec, dict):
                        out.append(rec)
                return out
            reader = csv.DictReader(
                (line.lstrip("\ufeff") for line in f), delimiter="," if fmt == "csv" else "\t"
            )
            return list(itertools.islice(reader, limit))
    except (OSError, ValueError, csv.Error) as err:
        raise DataFileError(f"{path}: cannot read its first rows: {err}") from None


def string_columns(path: str | Path, names: Sequence[str], encoding: str = "utf-8") -> list[str]:
    """Those of ``names`` whose first 200 values include one that is not a number: the
    candidates for an id column (a time column is excluded by the caller). Reads only those
    rows."""
    if not names:
        return []
    seen: dict[str, bool] = dict.fromkeys(names, False)
    for rec in head_records(path, 201, encoding):
        for c in names:
            v = rec.get(c)
            if v is not None and not seen[c]:
                try:
                    float(v)
                except (TypeError, ValueError):
                    seen[c] = True
    return [c for c, s in seen.items() if s]


# -- protocols ---------------------------------------------------------------------------------
@dataclass
class PanelSplit:
    """Forecast origins per series and part (``origins[part][i]``: int array, ascending; origin
    ``t`` forecasts ``y[t:t+H]`` from ``y[:t]``), the training rows of each series (``[0,
    train_end[i])``: the MASE scale and the baselines' fit), the kept series' indices and the
    series left out with the reason."""

    protocol: str
    kept: list[int]
    train_end: list[int]
    valid_end: list[int]
    origins: dict[str, list[np.ndarray]]
    skipped: dict[str, str] = field(default_factory=dict)


def panel_split(
    panel: Panel,
    lookback: int,
    horizon: int,
    *,
    protocol: str = "m4",
    valid_fraction: float = 0.15,
    test_fraction: float = 0.2,
    stride: int = 1,
    min_season_rows: int = 1,
) -> PanelSplit:
    """Cut every series by time (see the module docstring).

    ``m4``: test origin ``n - H``; validation origins every ``t`` whose targets lie in the
    ``V = max(H, round(valid_fraction * n))`` rows before the test; training origins every
    ``stride`` rows whose targets end before the validation rows. ``rolling``: the test origins
    of :func:`lstmkit.data.series.rolling_origins` (``test_fraction``), the validation the
    ``round(valid_fraction * n)`` rows (at least H) before them. A series is left out (with
    the reason in ``skipped``) when it cannot give one training window, or its training part is
    not longer than ``min_season_rows`` (MASE's in-sample scale needs one season)."""
    if protocol not in ("m4", "rolling"):
        raise DataFileError(f"protocol must be 'm4' or 'rolling', got {protocol!r}")
    kept: list[int] = []
    skipped: dict[str, str] = {}
    train_end: list[int] = []
    valid_end: list[int] = []
    origins: dict[str, list[np.ndarray]] = {"train": [], "valid": [], "test": []}
    h = horizon
    for i, (sid, s) in enumerate(zip(panel.ids, panel.series, strict=True)):
        n = len(s.values)
        if protocol == "m4":
            test = np.array([n - h], dtype=np.int64)
        else:
            first = n - test_rows(n, test_fraction)
            test = np.arange(first, n - h + 1, dtype=np.int64)
        v_end = int(test[0]) if len(test) else n
        n_valid = max(h, round(valid_fraction * n))
        t_end = v_end - n_valid
        need = lookback + h
        if len(test) == 0 or t_end < need or t_end <= min_season_rows:
            skipped[sid] = (
                f"{n} rows: too short for lookback {lookback} + horizon {h} training rows, "
                f"{n_valid} validation and {h} test rows (needs {need + n_valid + h})"
            )
            continue
        kept.append(i)
        train_end.append(t_end)
        valid_end.append(v_end)
        first_train = lookback
        origins["train"].append(np.arange(first_train, t_end - h + 1, stride, dtype=np.int64))
        origins["valid"].append(np.arange(max(t_end, lookback), v_end - h + 1, dtype=np.int64))
        origins["test"].append(test)
    return PanelSplit(protocol, kept, train_end, valid_end, origins, skipped)


class PanelWindows(Dataset[tuple[np.ndarray, np.ndarray]]):
    """The windows of many series from one flat float32 array: ``ds[i] = (inputs (lookback, C),
    targets (horizon,))`` where the inputs are the rows ``t - lookback .. t - 1`` of one series
    (its columns; with ``series_index`` a last column holding the series' index) and the
    targets its target column at ``t .. t + H - 1``. Memory: the rows once, plus two integers
    per window."""

    def __init__(
        self,
        values: Sequence[np.ndarray],
        origins: Sequence[np.ndarray],
        lookback: int,
        horizon: int,
        series_index: Sequence[int] | None = None,
    ) -> None:
        if len(values) != len(origins):
            raise ValueError("one origins array per series")
        cols = [np.asarray(v, dtype=np.float32) for v in values]
        if series_index is not None:
            cols = [
                np.concatenate([c, np.full((len(c), 1), float(k), dtype=np.float32)], 1)
                for c, k in zip(cols, series_index, strict=True)
            ]
        offsets = np.cumsum([0] + [len(c) for c in cols])[:-1]
        self.flat = np.concatenate(cols) if cols else np.zeros((0, 1), dtype=np.float32)
        self.starts = np.concatenate(
            [o.astype(np.int64) + off for o, off in zip(origins, offsets, strict=True)]
            or [np.zeros(0, dtype=np.int64)]
        )
        self.series = np.concatenate(
            [np.full(len(o), k, dtype=np.int64) for k, o in enumerate(origins)]
            or [np.zeros(0, dtype=np.int64)]
        )
        self.lookback = lookback
        self.horizon = horizon
        self.lengths = np.full(len(self.starts), lookback, dtype=np.int64)

    def __len__(self) -> int:
        """Number of windows."""
        return len(self.starts)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Window ``i``."""
        t = int(self.starts[i])
        return self.flat[t - self.lookback : t], self.flat[t : t + self.horizon, 0]

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """All windows at once: inputs (n, lookback, C) and targets (n, horizon)."""
        idx_in = self.starts[:, None] + np.arange(-self.lookback, 0)[None, :]
        idx_out = self.starts[:, None] + np.arange(self.horizon)[None, :]
        return self.flat[idx_in], self.flat[idx_out, 0]


# -- calendar ----------------------------------------------------------------------------------
CALENDAR_CYCLES: dict[str, tuple[tuple[str, int], ...]] = {
    "monthly": (("month_of_year", 12),),
    "quarterly": (("quarter_of_year", 4),),
    "weekly": (("week_of_year", 52),),
    "daily": (("day_of_week", 7), ("day_of_year", 365)),
    "business-daily": (("day_of_week", 5),),
    "hourly": (("hour_of_day", 24), ("day_of_week", 7)),
    "half-hourly": (("half_hour_of_day", 48), ("day_of_week", 7)),
}


def _stamp(text: str) -> datetime:
    return datetime.fromisoformat(text + "-01" if len(text) == 7 else text)


def _position(stamp: datetime, cycle: str) -> float:
    if cycle == "month_of_year":
        return stamp.month - 1
    if cycle == "quarter_of_year":
        return (stamp.month - 1) // 3
    if cycle == "week_of_year":
        return min(stamp.isocalendar()[1] - 1, 51)
    if cycle == "day_of_week":
        return stamp.weekday() % 7
    if cycle == "day_of_year":
        return min(stamp.timetuple().tm_yday - 1, 364)
    if cycle == "hour_of_day":
        return stamp.hour
    if cycle == "half_hour_of_day":
        return 2 * stamp.hour + stamp.minute // 30
    raise ValueError(cycle)


def calendar_columns(times: Sequence[str], frequency: str) -> tuple[np.ndarray, list[str]]:
    """``(values (n, 2 * cycles), names)``: sine and cosine of each row's position in the
    calendar cycles of ``frequency`` (:data:`CALENDAR_CYCLES`); no columns for another
    frequency or times that are not dates."""
    cycles = CALENDAR_CYCLES.get(frequency, ())
    if not cycles or not times:
        return np.zeros((len(times), 0)), []
    try:
        stamps = [_stamp(t) for t in times]
    except ValueError:
        return np.zeros((len(times), 0)), []
    cols, names = [], []
    for name, period in cycles:
        pos = np.array([_position(s, name) for s in stamps], dtype=np.float64)
        angle = 2 * math.pi * pos / period
        cols += [np.sin(angle), np.cos(angle)]
        names += [f"{name}_sin", f"{name}_cos"]
    return np.stack(cols, 1), names
