"""The materializer: warehouse rows -> point-in-time canvas windows in shard files.

Output directory:

    manifest.json              layout hash, field order, normalisation stats, dates, splits
    window_end.npy             (N,) datetime64[us] start of each window's last step
    edges.npy                  (S+1,) datetime64[us] step boundaries; with k cutoffs per
                               step, window n covers steps n//k .. n//k+T-1 and sees what
                               was known by its cutoff (`canvas.align.window_cutoffs`)
    shard_00000/values.npy     (n, T, F) float32, normalised; 0 where absent
    shard_00000/presence.npy   (n, T, F) uint8, 1 where a value was known by the cutoff
    shard_00000/vectors.npy    (n, T, V, D) float16, vector fields (if the layout has any)
    shard_00000/levels.npy     (n, T, L) float32, the observed level of each differenced
                               field (NaN where absent), to invert predictions to field units

Values are the fields' transformed values (`canvas.stationary`), normalised with the
training period's statistics of those transformed values.

Windows overlap: window n holds steps n//k .. n//k+T-1, and once every vintage a window
could see of a step is known, each window holding the step holds the same row there.
Work runs in two passes. The first reads the warehouse a run of fields at a time (at
most ROW_BUDGET rows) and keeps, per step and field, that settled row's normalised value,
level and vector (`canvas.align.settle`): tables of steps x fields, 1/T of the output.
The second writes the shards a block of windows at a time (PLACEMENT_BUDGET cells),
copying each window's T steps from the tables and recomputing only the cells of windows
cut before their step settled (from `canvas.align.place` over the rows concerned). The
result is written to a staging directory and swapped in whole.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TypeVar

import duckdb
import numpy as np
import polars as pl
from numpy.lib.stride_tricks import sliding_window_view

from canvas.align import DEFAULT_SPLIT, is_sorted, place, run_ends, settle, split_bounds, step_edges
from canvas.layout import CanvasLayout
from canvas.stationary import (
    differenced,
    field_stats,
    forward,
    step_moments,
    step_transforms,
    transform_codes,
)
from warehouse.clock import as_timestamp
from warehouse.heap import retained_heap
from warehouse.paths import staged_directory
from warehouse.reader import WarehouseReader, sql_literal

log = logging.getLogger("guwm.canvas")
Prepared = TypeVar("Prepared")
MANIFEST = "manifest.json"
PLACEMENT_BUDGET = 500_000  # canvas cells of one block of windows (~5 MB of arrays)
ROW_BUDGET = 1_000_000  # warehouse rows read at once (~50 MB of arrays)
_KEYS = ("field", "observed_at", "known_at")  # a run's sort order


@dataclass
class CanvasManifest:
    """What a set of canvas shards holds; everything needed to read and de-normalise it."""

    layout_hash: str
    layout: dict[str, object]  # grid, step, d_model, vector_slots: enough to rebuild it
    fields: list[str]
    vector_fields: list[str]
    vector_dim: int
    T: int
    step: str
    n_windows: int
    start: str
    end: str
    splits: dict[str, list[int]]  # name -> [first window, end window)
    split_dates: dict[str, str]
    stats: dict[str, dict[str, float]]  # field -> mean, std, count
    shards: list[dict[str, object]]  # dir, first, end
    sources: list[str] | None = None
    untrained_fields: list[str] = field(default_factory=list)  # no training data: absent
    transforms: dict[str, str] = field(default_factory=dict)  # field -> its non-level transform
    level_fields: list[str] = field(default_factory=list)  # the fields of levels.npy
    cutoffs_per_step: int = 1  # windows per end step, cut at moments inside it
    observations: int = 0
    created_at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat())

    def save(self, directory: Path) -> None:
        (directory / MANIFEST).write_text(json.dumps(vars(self), indent=1))

    @classmethod
    def load(cls, directory: str | Path) -> CanvasManifest:
        path = Path(directory) / MANIFEST
        if not path.is_file():
            raise FileNotFoundError(f"no canvas manifest at {path}; materialize the canvas first")
        return cls(**json.loads(path.read_text()))

    @property
    def mean(self) -> np.ndarray:
        return np.array([self.stats[f]["mean"] for f in self.fields], dtype=np.float32)

    @property
    def std(self) -> np.ndarray:
        return np.array([self.stats[f]["std"] for f in self.fields], dtype=np.float32)


def _default_split(edges: np.ndarray, T: int) -> tuple[dt.datetime, dt.datetime]:
    """The windows split at `DEFAULT_SPLIT` of them, cut at window cutoffs."""
    cutoffs = edges[T:]
    train_end, val_end = (cutoffs[int((len(cutoffs) - 1) * f)] for f in DEFAULT_SPLIT)
    return train_end.astype(dt.datetime), val_end.astype(dt.datetime)


def _field_filter(sources: list[str] | None) -> tuple[str, dict[str, object]]:
    if sources is None:
        return "", {}
    return " AND list_contains($sources, source)", {"sources": list(sources)}


def _runs(counts: np.ndarray, budget: int) -> list[range]:
    """Consecutive fields grouped so each group's rows stay within the budget (a field with
    more rows is a group of its own). The first groups are smaller (budget / 8, / 4, / 2):
    the first is read before any work can start."""
    runs, first, load, limit = [], 0, 0, max(budget // 8, 1)
    for f, n in enumerate(counts):
        if f > first and load + n > limit:
            runs.append(range(first, f))
            first, load, limit = f, 0, min(2 * limit, budget)
        load += n
    return [*runs, range(first, len(counts))]


@dataclass(frozen=True)
class _Rows:
    """Observation vintages of a run of a layout's fields, sorted by field, observed_at,
    known_at and source (so ties between sources resolve alike from any storage)."""

    fields: range  # the layout indices of the run's fields
    field: np.ndarray  # int64 layout index
    observed: np.ndarray  # datetime64[us]
    known: np.ndarray  # datetime64[us]
    value: np.ndarray  # float64; 0 for a vector field's row
    vector: np.ndarray  # int64 row of `vectors`; -1 for a scalar field's row
    vectors: np.ndarray  # (rows of vector fields, D) float16

    def where(self, keep: np.ndarray) -> _Rows:
        """The rows where `keep` is true."""
        if keep.all():
            return self
        kept = (self.field, self.observed, self.known, self.value, self.vector)
        return _Rows(self.fields, *(a[keep] for a in kept), self.vectors)


def _read(
    wh: WarehouseReader,
    layout: CanvasLayout,
    window: dict[str, object],
    sources: list[str] | None,
    vector_dim: int,
    prepare: Callable[[_Rows], Prepared],
) -> Iterator[Prepared]:
    """The layout's rows observed in [lo, hi) and known by known_by (`window`), a run of
    fields at a time (`ROW_BUDGET` rows each, or one field), each through `prepare`. A
    thread reads and prepares the next run while the caller works on one (DuckDB, NumPy
    and Polars release the GIL)."""
    extra, params = _field_filter(sources)
    where = f"observed_at >= $lo AND observed_at < $hi AND known_at <= $known_by{extra}"
    with wh.connect() as con:  # one connection, used by the reader thread alone once counted
        counts = dict(
            con.sql(
                f"SELECT field_path, count(*) FROM observations WHERE {where} GROUP BY field_path",
                params={**window, **params},
            ).fetchall()
        )
        yield from _read_runs(con, layout, counts, where, {**window, **params}, vector_dim, prepare)


def _read_runs(
    con: duckdb.DuckDBPyConnection,
    layout: CanvasLayout,
    counts: dict[str, int],
    where: str,
    params: dict[str, object],
    vector_dim: int,
    prepare: Callable[[_Rows], Prepared],
) -> Iterator[Prepared]:
    """`_read`'s runs of fields, read on `con` by a thread while the caller works."""
    runs = _runs(np.array([counts.get(p, 0) for p in layout.paths]), ROW_BUDGET)
    vector_fields = np.zeros(layout.n_fields, dtype=bool)
    vector_fields[layout.vector_fields] = True

    def fetch(run: range) -> _Rows:
        paths = layout.paths[run.start : run.stop]
        with_vectors = bool(vector_fields[run].any())
        selected = "field, observed_at, known_at, value" + (", vector" if with_vectors else "")
        # each row's field as its index among the run's paths: a cast to an ENUM of them
        # keeps the rows in storage order, where a join would not
        members = ", ".join(sql_literal(p) for p in paths)
        rows = (
            f"SELECT enum_code(TRY_CAST(field_path AS ENUM({members}))) AS field, "
            "observed_at, known_at, coalesce(value, 0) AS value, vector, source FROM observations "
            f"WHERE field_path BETWEEN $low AND $high AND {where}"
        )
        query = f"SELECT {selected} FROM ({rows}) WHERE field IS NOT NULL"
        bounds = {"low": min(paths), "high": max(paths), **params}
        # an ingest stores a new field's rows in key order: such runs come sorted, and are
        # only checked; others (and ties between sources) are sorted by DuckDB
        columns = _fetch(con, query, bounds, vectors=with_vectors)
        if not is_sorted(*(columns[k] for k in _KEYS), strict=True):
            ordered = f"{query} ORDER BY field, observed_at, known_at, source"
            columns = _fetch(con, ordered, bounds, vectors=with_vectors)
        field, observed, known, value = (columns[k] for k in (*_KEYS, "value"))
        field = field.astype(np.int64)
        field += run.start
        vector_rows = np.flatnonzero(vector_fields[field])
        vector = np.full(len(field), -1, dtype=np.int64)
        vector[vector_rows] = np.arange(len(vector_rows))
        vectors = np.zeros((len(vector_rows), vector_dim), dtype=np.float16)
        if len(vector_rows):
            vectors = _vector_matrix(columns["vector"].gather(vector_rows), vector_dim)
        return prepare(_Rows(run, field, observed, known, value, vector, vectors))

    with ThreadPoolExecutor(max_workers=1) as reader:
        upcoming = reader.submit(fetch, runs[0])
        for later in [*runs[1:], None]:
            prepared = upcoming.result()
            if later is not None:
                upcoming = reader.submit(fetch, later)
            yield prepared


def _fetch(
    con: duckdb.DuckDBPyConnection, query: str, params: dict[str, object], *, vectors: bool
) -> dict[str, np.ndarray | pl.Series]:
    """The query's columns as NumPy arrays (straight from DuckDB: no pyarrow conversion,
    which imports pandas the first time), the list column `vector` as a Polars series."""
    if not vectors:
        return con.sql(query, params=params).fetchnumpy()
    frame = con.sql(query, params=params).pl()
    return {k: frame[k] if k == "vector" else frame[k].to_numpy() for k in frame.columns}


def _stats(
    rows: _Rows, layout: CanvasLayout, train_end: dt.datetime
) -> dict[str, dict[str, float]]:
    """Mean/std of the run's fields' transformed values over the training period (`rows`
    from its start), as known at its end: each observation's latest vintage known by then
    (see `canvas.stationary.step_statistics`)."""
    end = np.datetime64(train_end, "us")
    run = slice(rows.fields.start, rows.fields.stop)
    kept = (rows.known <= end) & (rows.observed < end)
    if len(rows.vectors):
        kept &= ~np.isin(rows.field, layout.vector_fields)
    # rows come sorted by (field, observed_at, known_at), so a kept row is its observation's
    # latest vintage known by the end unless the next row is a kept one of the same
    latest = kept
    latest[:-1] &= ~(
        kept[1:] & (rows.field[1:] == rows.field[:-1]) & (rows.observed[1:] == rows.observed[:-1])
    )
    latest = np.flatnonzero(latest)
    codes = transform_codes(layout.fields[run])
    moments = step_moments(
        rows.field[latest] - run.start,
        rows.observed[latest],
        rows.value[latest],
        codes,
        layout.step,
    )
    return field_stats(moments, layout.paths[run])


@dataclass(frozen=True)
class _Cells:
    """Canvas cells (window n, slot j, field f) computed one by one, sorted by window."""

    n: np.ndarray
    j: np.ndarray
    f: np.ndarray
    value: np.ndarray  # float32, normalised; 0 where absent
    presence: np.ndarray  # bool
    level: np.ndarray  # float64 observed level; NaN where nothing is placed
    vector: np.ndarray  # row of the vector matrix (its last row, zeros, where none)

    def windows(self, first: int, end: int) -> _Cells:
        """The cells of windows first .. end-1."""
        a, b = np.searchsorted(self.n, [first, end])
        return _Cells(*(getattr(self, k)[a:b] for k in self.__dataclass_fields__))


class _Windows:
    """Every window's arrays, block by block: copied from per-step tables of the row each
    step settles on (`canvas.align.settle`), then recomputed where a window is cut before
    one of its steps settles.

    The tables hold, per step and field, the normalised transformed value (a differenced
    field's change from the latest earlier step holding a level), its presence, the
    observed level and the vector's row; `gap` is the first slot of a window at which a
    change shows (the step it changes from must be in the window). `add` each run of
    fields, then `finish` before writing.
    """

    def __init__(
        self, layout: CanvasLayout, edges: np.ndarray, per_step: int, vector_dim: int
    ) -> None:
        T, F, S = layout.T, layout.n_fields, len(edges) - 1
        self.edges, self.T, self.m, self.n_fields = edges, T, per_step, F
        self.codes = transform_codes(layout.fields)
        self.is_vector = np.zeros(F, dtype=bool)
        self.is_vector[layout.vector_fields] = True
        level_fields = differenced(self.codes)
        self.level_slot = np.full(F, -1, dtype=np.int64)
        self.level_slot[level_fields] = np.arange(len(level_fields))
        self.vector_slot = np.full(F, -1, dtype=np.int64)
        self.vector_slot[layout.vector_fields] = np.arange(len(layout.vector_fields))
        self.mean, self.std = np.zeros(F), np.ones(F)
        slot = np.min_scalar_type(T)
        self.level = np.full((S, F), np.nan)  # settled levels, float64 as transformed
        self.since = np.full((S, F), -1, dtype=np.int32)
        self.back = np.full((S, F), T, dtype=slot)  # steps to the previous level, at most T
        self.gap = np.zeros((S, F), dtype=slot)  # a change shows from this slot on
        self.table = {
            "values": np.zeros((S, F), dtype=np.float32),
            "presence": np.zeros((S, F), dtype=np.uint8),
        }
        if len(level_fields):
            self.table["levels"] = np.full((S, len(level_fields)), np.nan, dtype=np.float32)
        if layout.vector_fields:
            self.table["vectors"] = np.full((S, len(layout.vector_fields)), -1, dtype=np.int64)
        self._matrices = [np.zeros((0, vector_dim), dtype=np.float16)]
        empty = np.zeros(0, dtype=np.int64)
        self._early = [(empty, empty.astype(np.float64), empty)]

    def add(self, rows: _Rows, mean: np.ndarray, std: np.ndarray) -> None:
        """The tables of the run of fields of `rows`, normalised by their `mean` and `std`."""
        T, m = self.T, self.m
        run = slice(rows.fields.start, rows.fields.stop)
        self.mean[run], self.std[run] = mean, std
        offset = sum(len(a) for a in self._matrices)
        self._matrices.append(rows.vectors)
        vector = np.where(rows.vector >= 0, rows.vector + offset, -1)
        local = rows.field - run.start
        settled = settle(local, rows.observed, rows.known, self.edges, T, len(rows.fields), m)
        has = settled.row >= 0
        level = np.append(rows.value, np.nan)[settled.row]  # row -1, none: NaN
        t, back = step_transforms(level, has, self.codes[run])
        value = ((t - mean) / std).astype(np.float32)
        is_vector = self.is_vector[run]
        present = has & (is_vector | ~np.isnan(value))
        back = np.minimum(back, T)
        changes = self.level_slot[run] >= 0
        # a change shows once the level before it is in the window: from slot `back` on
        shows = present & (~changes | (back < T))
        self.level[:, run], self.since[:, run], self.back[:, run] = level, settled.since, back
        self.gap[:, run] = np.where(shows & changes, back, 0)
        self.table["values"][:, run] = np.where(shows & ~is_vector, value, np.float32(0))
        self.table["presence"][:, run] = shows
        own = np.flatnonzero(self.level_slot[run] >= 0)
        if len(own):
            self.table["levels"][:, self.level_slot[run][own]] = level[:, own]
        own = np.flatnonzero(self.vector_slot[run] >= 0)
        if len(own):
            rows_of = np.append(vector, -1)[settled.row[:, own]]
            self.table["vectors"][:, self.vector_slot[run][own]] = rows_of
        # windows cut before a step settles may hold an earlier row: where `place` puts it
        early = settled.earlier
        p = place(local[early], rows.observed[early], rows.known[early], self.edges, T, m)
        key = (p.window.astype(np.int64) * T + p.slot) * self.n_fields + p.field + run.start
        source = early[p.row]
        self._early.append((key, rows.value[source], vector[source]))

    def finish(self) -> None:
        """Index what the runs of fields left: the vector matrix, the earlier rows and the
        steps that some window holding them is cut before they settle."""
        T, m = self.T, self.m
        self.vector_matrix = np.concatenate(
            [*self._matrices, np.zeros((1, self._matrices[0].shape[1]), dtype=np.float16)]
        )
        key, value, vector = (np.concatenate(part) for part in zip(*self._early, strict=True))
        order = np.argsort(key)
        self.early_key, self.early_value, self.early_vector = (
            key[order],
            value[order],
            vector[order],
        )
        self.gap_max = self.gap.max(axis=1)
        # each window's arrays: dtype and shape
        self.arrays = {k: (v.dtype, (T, *v.shape[1:])) for k, v in self.table.items()}
        if "vectors" in self.arrays:  # rows of the vector matrix
            shape = (*self.arrays["vectors"][1], self.vector_matrix.shape[1])
            self.arrays["vectors"] = (self.vector_matrix.dtype, shape)
        steps = np.arange(len(self.since))[:, None]
        self.late_step, self.late_field = np.nonzero(
            self.since > np.maximum(steps * m, (T - 1) * m)
        )

    def block(self, first: int, end: int) -> dict[str, np.ndarray]:
        """The arrays of windows first .. end-1 as if every step had settled."""
        T, m = self.T, self.m
        s0, s1 = first // m, (end - 1) // m + 1
        # the windows cut in steps s0 .. s1-1 hold steps s0+j .. s1-1+j at slot j: sliding
        # views of the tables, copied once; the windows cut inside one step are alike
        # until patched
        span = slice(s0, s1 + T - 1)
        out = {}
        for name, table in self.table.items():
            data = self.vector_matrix[table[span]] if name == "vectors" else table[span]
            windows = np.moveaxis(sliding_window_view(data, T, axis=0), -1, 1)
            out[name] = np.empty((s1 - s0, m, *windows.shape[1:]), self.arrays[name][0])
            out[name][...] = windows[:, None]
        for j in range(T):
            rows = slice(s0 + j, s1 + j)
            if self.gap_max[rows].max(initial=0) > j:  # changes before their level
                hidden = (self.gap[rows] > j)[:, None]
                np.copyto(out["values"][:, :, j], 0, where=hidden)
                np.copyto(out["presence"][:, :, j], False, where=hidden)
        cut = slice(first - s0 * m, end - s0 * m)
        return {k: v.reshape(-1, *v.shape[2:])[cut] for k, v in out.items()}

    def late(self, first: int, end: int) -> _Cells:
        """The cells of windows first .. end-1 that differ from `block`'s: those cut before
        their step settles, and after each the rest of its window's field (a change needs
        the level before it)."""
        T, m, F = self.T, self.m, self.n_fields
        held = slice(*np.searchsorted(self.late_step, [first // m, (end - 1) // m + T]))
        step, f = self.late_step[held], self.late_field[held]
        # a step is late in the windows from the first holding it to its settling cutoff
        cut = np.maximum(np.maximum(step * m, (T - 1) * m), first + (T - 1) * m)
        count = np.maximum(np.minimum(self.since[step, f], end + (T - 1) * m) - cut, 0)
        which = np.repeat(np.arange(len(step)), count)
        n = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
        n += cut[which] - (T - 1) * m
        j, f = step[which] - n // m, f[which]
        # one column per (window, field), from its first late slot on
        column = n * F + f
        order = np.lexsort((-j, column))
        head = order[run_ends(column[order])]
        n, f, j0 = n[head], f[head], j[head]
        start = n // m + j0
        back = self.back[start, f].astype(np.int64)
        previous = np.where(back <= j0, self.level[start - np.minimum(back, j0), f], np.nan)
        cells = []
        for j in range(int(j0.min(initial=T)), T):
            c = np.flatnonzero(j0 <= j)
            cn, cf = n[c], f[c]
            step = cn // m + j
            since = self.since[step, cf]
            placed = since >= 0
            level = np.where(placed, self.level[step, cf], np.nan)
            vector = np.full(len(c), -1, dtype=np.int64)
            if "vectors" in self.table:
                v = self.is_vector[cf]
                vector[v] = self.table["vectors"][step[v], self.vector_slot[cf[v]]]
            early = np.flatnonzero(cn + (T - 1) * m < since)
            placed[early], level[early], vector[early] = self._early_cells(cn[early], j, cf[early])
            t = forward(self.codes[cf], level, previous[c])
            value = ((t - self.mean[cf]) / self.std[cf]).astype(np.float32)
            presence = placed & (self.is_vector[cf] | ~np.isnan(value))
            vector = np.where(placed, vector, -1)
            value = np.where(presence & ~self.is_vector[cf], value, np.float32(0))
            cells.append((cn, np.full(len(c), j), cf, value, presence, level, vector))
            previous[c] = np.where(placed, level, previous[c])
        if not cells:
            empty = np.zeros(0, dtype=np.int64)
            return _Cells(empty, empty, empty, empty, empty.astype(bool), empty, empty)
        parts = [np.concatenate(part) for part in zip(*cells, strict=True)]
        order = np.argsort(parts[0], kind="stable")
        return _Cells(*(part[order] for part in parts))

    def _early_cells(
        self, n: np.ndarray, j: int, f: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Whether `place` puts an earlier row at (window n, slot j, field f), its level and
        its vector's row (NaN and -1 where none)."""
        key = (n * self.T + j) * self.n_fields + f
        i = np.searchsorted(self.early_key, key)
        found = i < len(self.early_key)
        found[found] = self.early_key[i[found]] == key[found]
        level = np.full(len(key), np.nan)
        vector = np.full(len(key), -1, dtype=np.int64)
        level[found], vector[found] = self.early_value[i[found]], self.early_vector[i[found]]
        return found, level, vector

    def patch(self, arrays: dict[str, np.ndarray], cells: _Cells, first: int) -> None:
        """Write `cells` into the block `arrays` of windows from `first` on."""
        n, j, f = cells.n - first, cells.j, cells.f
        arrays["values"][n, j, f] = cells.value
        arrays["presence"][n, j, f] = cells.presence
        if "levels" in arrays:
            k = self.level_slot[f] >= 0
            arrays["levels"][n[k], j[k], self.level_slot[f[k]]] = cells.level[k]
        if "vectors" in arrays:
            k = self.vector_slot[f] >= 0
            rows = self.vector_matrix[cells.vector[k]]
            arrays["vectors"][n[k], j[k], self.vector_slot[f[k]]] = rows


def _write_shards(
    root: Path, windows: _Windows, n_windows: int, shard_windows: int
) -> list[dict[str, object]]:
    """Shard directories of `shard_windows` windows, each file written block by block.

    Threads write one block, a file each, while the next is computed: the kernel's copies
    into new page-cache pages are most of the work, and they release the GIL.
    """
    per_block = max(1, PLACEMENT_BUDGET // (windows.T * windows.n_fields))
    shards = []
    with ThreadPoolExecutor(max_workers=2) as writers:
        for s, first in enumerate(range(0, n_windows, shard_windows)):
            end = min(first + shard_windows, n_windows)
            directory = root / f"shard_{s:05d}"
            directory.mkdir()
            late = windows.late(first, end)
            with ExitStack() as stack:
                files: dict[str, BinaryIO] = {}
                for name, (dtype, shape) in windows.arrays.items():
                    files[name] = stack.enter_context(open(directory / f"{name}.npy", "wb"))
                    header = {
                        "descr": np.lib.format.dtype_to_descr(dtype),
                        "fortran_order": False,
                        "shape": (end - first, *shape),
                    }
                    np.lib.format.write_array_header_1_0(files[name], header)
                pending: list[Future] = []
                for a in range(first, end, per_block):
                    z = min(a + per_block, end)
                    arrays = windows.block(a, z)
                    windows.patch(arrays, late.windows(a, z), a)
                    for done in pending:  # a file's blocks are written in order
                        done.result()
                    pending = [writers.submit(files[k].write, v.data) for k, v in arrays.items()]
                for done in pending:
                    done.result()
            shards.append({"dir": directory.name, "first": first, "end": end})
    return shards


@retained_heap()  # each run of fields reuses the last one's freed arrays
def materialize_canvas(
    warehouse: WarehouseReader,
    layout: CanvasLayout,
    out_dir: str | Path,
    *,
    start: dt.datetime | dt.date | str,
    end: dt.datetime | dt.date | str,
    train_end: dt.datetime | dt.date | str | None = None,
    val_end: dt.datetime | dt.date | str | None = None,
    sources: list[str] | None = None,
    shard_windows: int = 1024,
    stats: dict[str, dict[str, float]] | None = None,
    known_by: dt.datetime | dt.date | str | None = None,
    cutoffs_per_step: int = 1,
) -> CanvasManifest:
    """Materialize point-in-time windows of `layout` from the warehouse into `out_dir`.

    `warehouse` is the DuckDB `Warehouse` or a `warehouse.lake.LakeReader` over its
    Parquet export (the same rows give the same shards).

    Windows end at every step from start+T-1 to end; a window ending at step e sees only
    values known by the end of that step, and with `cutoffs_per_step` = k > 1 there are
    k windows per end step, each seeing what was known at one of k evenly spaced moments
    inside it (the ragged edge during the step; the last is the step's end). Splits are
    by window cutoff (default 70% / 15% / 15%); normalisation statistics come from the
    training period only, or from `stats` (a manifest's) so new windows are normalised
    as a model was trained.
    `known_by` caps every cutoff at that moment: the windows hold only what had been
    released by then (a nowcast for a moment inside its last step).
    """
    started = time.perf_counter()
    T = layout.T
    edges = step_edges(start, end, layout.step)
    n_windows = (len(edges) - T) * cutoffs_per_step
    if len(edges) - T < 1:
        raise ValueError(
            f"{start} .. {end} has {len(edges) - 1} steps of {layout.step}; a window needs T={T}"
        )
    start_ts = edges[0].astype(dt.datetime)
    default_train, default_val = _default_split(edges, T)
    train_end_ts = as_timestamp(train_end) if train_end else default_train
    val_end_ts = as_timestamp(val_end) if val_end else default_val
    if not start_ts < train_end_ts <= val_end_ts:
        raise ValueError(
            f"need start < train_end <= val_end, got {start_ts}, {train_end_ts}, {val_end_ts}"
        )
    window_end = np.repeat(edges[T - 1 : -1], cutoffs_per_step)
    bounds = split_bounds(edges, T, train_end_ts, val_end_ts, cutoffs_per_step)
    splits = {k: list(v) for k, v in bounds.items()}

    level_fields = differenced(transform_codes(layout.fields))
    vector_dim = max((layout.fields[i].dimension for i in layout.vector_fields), default=0)
    last_cutoff = edges[-1].astype(dt.datetime)
    cap = min(as_timestamp(known_by), last_cutoff) if known_by else last_cutoff
    hi, known = last_cutoff, cap
    if stats is None:  # one read serves the windows and the training period's statistics
        hi, known = max(hi, train_end_ts), max(known, train_end_ts)
    read = {"lo": start_ts, "hi": hi, "known_by": known}
    windows = _Windows(layout, edges, cutoffs_per_step, vector_dim)

    def prepare(rows: _Rows) -> tuple[_Rows, dict[str, dict[str, float]]]:
        """A run's rows of the windows and its fields' statistics."""
        if stats is not None:
            return rows, {p: stats[p] for p in layout.paths[rows.fields.start : rows.fields.stop]}
        within = (rows.observed < np.datetime64(last_cutoff, "us")) & (
            rows.known <= np.datetime64(cap, "us")
        )
        return rows.where(within), _stats(rows, layout, train_end_ts)

    by_path: dict[str, dict[str, float]] = {}
    untrained = np.zeros(layout.n_fields, dtype=bool)
    observations = 0
    for rows, run_by_path in _read(warehouse, layout, read, sources, vector_dim, prepare):
        run = slice(rows.fields.start, rows.fields.stop)
        by_path.update(run_by_path)
        run_stats = list(run_by_path.values())
        # a scalar field with no value in the training period has no statistics: its values
        # would enter un-normalised, so it stays absent (and is listed in the manifest)
        untrained[run] = [
            not f.is_vector and s["count"] == 0
            for f, s in zip(layout.fields[run], run_stats, strict=True)
        ]
        observations += len(rows.field)
        windows.add(
            rows.where(~untrained[rows.field]),
            np.array([s["mean"] for s in run_stats], dtype=np.float64),
            np.array([s["std"] for s in run_stats], dtype=np.float64),
        )
    windows.finish()
    if stats is None:
        stats = {p: by_path[p] for p in layout.paths}
    out_dir = Path(out_dir)
    with staged_directory(out_dir) as staging:
        np.save(staging / "window_end.npy", window_end)
        np.save(staging / "edges.npy", edges)
        shards = _write_shards(staging, windows, n_windows, shard_windows)
        manifest = CanvasManifest(
            layout_hash=layout.layout_hash(),
            layout=layout.describe(),
            fields=layout.paths,
            vector_fields=[layout.paths[i] for i in layout.vector_fields],
            vector_dim=vector_dim,
            T=T,
            step=layout.step,
            n_windows=n_windows,
            start=str(edges[0]),
            end=str(edges[-1]),
            splits=splits,
            split_dates={"train_end": str(train_end_ts), "val_end": str(val_end_ts)},
            stats=stats,
            shards=shards,
            sources=sources,
            untrained_fields=[p for p, u in zip(layout.paths, untrained, strict=True) if u],
            transforms={f.path: f.transform.value for f in layout.fields if f.transform != "level"},
            level_fields=[layout.paths[i] for i in level_fields],
            cutoffs_per_step=cutoffs_per_step,
            observations=observations,
        )
        manifest.save(staging)
    log.info(
        "canvas: %d windows x %d steps x %d fields from %d rows in %.1fs",
        n_windows,
        T,
        layout.n_fields,
        observations,
        time.perf_counter() - started,
    )
    return manifest


def _vector_matrix(column: pl.Series, dim: int) -> np.ndarray:
    """A (rows, dim) float16 matrix from a list column (null rows and short lists padded)."""
    pad = pl.lit([0.0] * dim, dtype=pl.List(pl.Float32))
    padded = pl.select(column.fill_null([]).list.concat(pad).list.head(dim)).to_series()
    return (
        padded.explode(empty_as_null=False).to_numpy().astype(np.float16).reshape(len(column), dim)
    )
