"""The materializer: warehouse rows -> point-in-time canvas windows in memory-mapped shards.

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

Work streams over chunks of fields, sized so the placements of one chunk stay within a
fixed budget; shards are written in place through memory maps. The result is written to
a staging directory and swapped in whole.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from canvas.align import Placements, place, split_bounds, step_edges
from canvas.layout import CanvasLayout
from canvas.stationary import (
    differenced,
    field_stats,
    stationary_placements,
    step_statistics,
    transform_codes,
)
from warehouse.paths import staged_directory
from warehouse.store import WarehouseReader, as_timestamp

log = logging.getLogger("guwm.canvas")
MANIFEST = "manifest.json"
PLACEMENT_BUDGET = 5_000_000  # placements per field chunk (~0.2 GB of index arrays)


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
        (directory / MANIFEST).write_text(json.dumps(asdict(self), indent=1))

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
    """70% / 15% / 15% of the windows, cut at window cutoffs."""
    cutoffs = edges[T:]
    train_end = cutoffs[int((len(cutoffs) - 1) * 0.7)]
    val_end = cutoffs[int((len(cutoffs) - 1) * 0.85)]
    return train_end.astype(dt.datetime), val_end.astype(dt.datetime)


def _field_filter(sources: list[str] | None) -> tuple[str, dict[str, object]]:
    if sources is None:
        return "", {}
    return " AND list_contains($sources, source)", {"sources": list(sources)}


def _stats(
    wh: WarehouseReader,
    layout: CanvasLayout,
    start: dt.datetime,
    train_end: dt.datetime,
    sources: list[str] | None,
) -> dict[str, dict[str, float]]:
    """Per-field mean/std of the transformed values over the training period, as known at
    its end (see `canvas.stationary.step_statistics`)."""
    extra, params = _field_filter(sources)
    frame = wh.sql(
        f"""
        SELECT field_path, observed_at, arg_max(value, known_at) AS value
        FROM observations
        WHERE known_at <= $train_end AND observed_at >= $start AND observed_at < $train_end
          AND vector IS NULL AND list_contains($fields, field_path){extra}
        GROUP BY field_path, observed_at
        """,
        {"train_end": train_end, "start": start, "fields": layout.paths, **params},
    )
    frame = frame.select(
        pl.col("field_path").replace_strict(layout.index, return_dtype=pl.Int64).alias("field"),
        "observed_at",
        "value",
    )
    codes = transform_codes(layout.fields)
    return field_stats(step_statistics(frame, codes, layout.step), layout.paths)


def _chunks(counts: dict[str, int], paths: list[str], T: int) -> list[list[str]]:
    """Fields grouped so each group's placements (rows x T) stay within the budget."""
    chunks, current, load = [], [], 0
    for path in paths:
        n = counts.get(path, 0) * T
        if current and load + n > PLACEMENT_BUDGET:
            chunks.append(current)
            current, load = [], 0
        current.append(path)
        load += n
    if current:
        chunks.append(current)
    return chunks


class _ShardWriter:
    """Memory-mapped shard files, written by placements sorted into window ranges.

    Besides the normalised values, `levels.npy` keeps the observed level of each
    differenced field (NaN where absent): what inverts a prediction to field units.
    """

    def __init__(
        self,
        root: Path,
        layout: CanvasLayout,
        n_windows: int,
        shard_windows: int,
        vector_dim: int,
        level_fields: np.ndarray,
    ) -> None:
        self.bounds = list(range(0, n_windows, shard_windows)) + [n_windows]
        self.layout = layout
        self.shards = []
        n_vec = len(layout.vector_fields)
        self.vector_slot = np.full(layout.n_fields, -1, dtype=np.int64)
        self.vector_slot[layout.vector_fields] = np.arange(n_vec)
        self.level_slot = np.full(layout.n_fields, -1, dtype=np.int64)
        self.level_slot[level_fields] = np.arange(len(level_fields))
        self.n_levels = len(level_fields)
        for s, (lo, hi) in enumerate(zip(self.bounds[:-1], self.bounds[1:], strict=True)):
            d = root / f"shard_{s:05d}"
            d.mkdir()
            shape = (hi - lo, layout.T, layout.n_fields)
            arrays = {
                "values": np.lib.format.open_memmap(d / "values.npy", "w+", np.float32, shape),
                "presence": np.lib.format.open_memmap(d / "presence.npy", "w+", np.uint8, shape),
            }
            if n_vec:
                arrays["vectors"] = np.lib.format.open_memmap(
                    d / "vectors.npy", "w+", np.float16, (hi - lo, layout.T, n_vec, vector_dim)
                )
            if len(level_fields):
                levels_shape = (hi - lo, layout.T, len(level_fields))
                levels = np.lib.format.open_memmap(d / "levels.npy", "w+", np.float32, levels_shape)
                levels[:] = np.nan
                arrays["levels"] = levels
            self.shards.append((d.name, lo, hi, arrays))

    def write(
        self,
        p: Placements,
        values: np.ndarray,
        levels: np.ndarray,
        vectors: np.ndarray | None,
    ) -> None:
        """Write placement i's normalised value values[i] (NaN: absent) and observed level
        levels[i]; vector placements take vectors[p.row[i]]."""
        T, F = self.layout.T, self.layout.n_fields
        flat = (p.window.astype(np.int64) * T + p.slot) * F + p.field
        if len(self.shards) > 1:  # group by shard: a radix sort of small shard ids
            shard_id = np.searchsorted(self.bounds[1:], p.window, side="right").astype(np.uint16)
            order = np.argsort(shard_id, kind="stable")
            flat, rows, shard_id = flat[order], p.row[order], shard_id[order]
            values, levels = values[order], levels[order]
            cuts = np.searchsorted(shard_id, np.arange(len(self.shards) + 1))
        else:
            rows, cuts = p.row, np.array([0, len(flat)])
        is_vector = self.vector_slot >= 0
        level_slot = self.level_slot
        for (_, lo, _, arrays), a, b in zip(self.shards, cuts[:-1], cuts[1:], strict=True):
            if a == b:
                continue
            local, r, v, lv = flat[a:b] - lo * T * F, rows[a:b], values[a:b], levels[a:b]
            f = local % F
            if "levels" in arrays:
                keep = level_slot[f] >= 0
                cell = local[keep] // F
                arrays["levels"].reshape(-1)[cell * self.n_levels + level_slot[f[keep]]] = lv[keep]
            vec = is_vector[f]
            scalar = ~vec & ~np.isnan(v)
            arrays["presence"].reshape(-1)[local[scalar | vec]] = 1
            arrays["values"].reshape(-1)[local[scalar]] = v[scalar]
            if vectors is not None and vec.any():
                cell, fv = np.divmod(local[vec], F)
                n, j = np.divmod(cell, T)
                arrays["vectors"][n, j, self.vector_slot[fv]] = vectors[r[vec]]

    def flush(self) -> list[dict[str, object]]:
        out = []
        for name, lo, hi, arrays in self.shards:
            for array in arrays.values():
                array.flush()
            out.append({"dir": name, "first": lo, "end": hi})
        return out


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

    if stats is None:
        stats = _stats(warehouse, layout, start_ts, train_end_ts, sources)
    # a scalar field with no value in the training period has no statistics: its values
    # would enter un-normalised, so it stays absent (and is listed in the manifest)
    untrained = np.array(
        [not f.is_vector and stats[f.path]["count"] == 0 for f in layout.fields], dtype=bool
    )
    mean = np.array([stats[p]["mean"] for p in layout.paths], dtype=np.float64)
    std = np.array([stats[p]["std"] for p in layout.paths], dtype=np.float64)
    codes = transform_codes(layout.fields)
    level_fields = differenced(codes)
    vector_dim = max((layout.fields[i].dimension for i in layout.vector_fields), default=0)
    extra, params = _field_filter(sources)
    last_cutoff = edges[-1].astype(dt.datetime)
    window_params = {
        "lo": edges[0].astype(dt.datetime),
        "hi": last_cutoff,
        "known_by": min(as_timestamp(known_by), last_cutoff) if known_by else last_cutoff,
        **params,
    }
    counts = dict(
        warehouse.sql(
            "SELECT field_path, count(*) FROM observations WHERE observed_at >= $lo AND "
            f"observed_at < $hi AND known_at <= $known_by{extra} GROUP BY field_path",
            window_params,
        ).iter_rows()
    )

    out_dir = Path(out_dir)
    with staged_directory(out_dir) as staging:
        writer = _ShardWriter(staging, layout, n_windows, shard_windows, vector_dim, level_fields)
        np.save(staging / "window_end.npy", window_end)
        np.save(staging / "edges.npy", edges)
        total = 0
        chunks = _chunks(counts, [p for p in layout.paths if counts.get(p)], T * cutoffs_per_step)
        for i, chunk in enumerate(chunks, 1):
            rows = warehouse.sql(
                "SELECT field_path, observed_at, known_at, value, vector FROM observations "
                "WHERE list_contains($fields, field_path) AND observed_at >= $lo AND "
                f"observed_at < $hi AND known_at <= $known_by{extra} "  # known by the last cutoff
                # a fixed order: ties between sources resolve alike from any storage
                "ORDER BY field_path, observed_at, known_at, source",
                {"fields": chunk, **window_params},
            )
            total += len(rows)
            f_idx = rows["field_path"].replace_strict(layout.index, return_dtype=pl.Int64)
            f_idx = f_idx.to_numpy()
            placements = place(
                f_idx,
                rows["observed_at"].to_numpy(),
                rows["known_at"].to_numpy(),
                edges,
                T,
                cutoffs_per_step,
            )
            if untrained.any():
                placements = placements.where(~untrained[placements.field])
            raw = rows["value"].fill_null(0.0).to_numpy()
            placements, t, levels = stationary_placements(placements, raw, codes)
            f = placements.field
            values = ((t - mean[f]) / std[f]).astype(np.float32)
            vectors = None
            if layout.vector_fields and rows["vector"].null_count() < len(rows):
                vectors = _vector_matrix(rows["vector"], vector_dim)
            writer.write(placements, values, levels, vectors)
            log.info(
                "canvas: chunk %d/%d, %d fields, %d rows, %d placements",
                i,
                len(chunks),
                len(chunk),
                len(rows),
                len(placements),
            )
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
            shards=writer.flush(),
            sources=sources,
            untrained_fields=[p for p, u in zip(layout.paths, untrained, strict=True) if u],
            transforms={f.path: f.transform.value for f in layout.fields if f.transform != "level"},
            level_fields=[layout.paths[i] for i in level_fields],
            cutoffs_per_step=cutoffs_per_step,
            observations=total,
        )
        manifest.save(staging)
    log.info(
        "canvas: %d windows x %d steps x %d fields from %d rows in %.1fs",
        n_windows,
        T,
        layout.n_fields,
        total,
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
