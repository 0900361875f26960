"""Heterogeneous sources placed on one canvas: the seed's HeterogeneousDataset and loader.

    loader = build_mixed_dataloader(
        bound, sources=[(fred_spec, fred_data), (yahoo_spec, yahoo_data)], batch_size=32
    )

Every source is a ``(DatasetSpec, data)`` pair. `data` is a Polars (or pandas) frame in
one of two shapes:

* **long** (what every adapter returns): ``field_path, observed_at, value[, vector],
  known_at``, one row per observation vintage. Every field path must be one the spec
  declares; an unknown one is an error naming source and field.
* **wide**: a ``date`` (or ``observed_at``) column plus one column per spec key (scalars,
  or lists for vector fields); other columns are ignored. A wide value is taken as known
  at its date (``known_at = date``), so give wide data only where that is true, or
  convert it to long format with real release times first.

``InputSpec.transform`` is applied per field to the raw values before normalisation: it
gets a NumPy float64 array (shape ``(n,)``, or ``(n, D)`` for a vector field) of that
field's rows sorted by observed_at then known_at, and returns an array of the same shape;
non-finite results (``np.log`` of 0, a first difference's first row) count as absent.

Alignment is on real dates, never by row number: all sources share the step grid of the
layout (``layout.step``) over the union of their dates (or ``start``/``end``), and the
rows of all sources are pooled per field and placed with :func:`canvas.align.place`. A
window ending at step e holds, per field and step, the latest observation of the step
known by the window's cutoff; when two sources provide the same field and date, the
later-known value wins. Sources with no field in common simply fill disjoint fields of
the same windows. Windows where no source has any value are dropped.

Values are normalised per field with mean / population std over the training period
(``train_end``; default: all data), computed as in :mod:`canvas.materialize`. Splits are
by window end date: train ends at ``train_end``, val at ``val_end``, test is the rest.

The aligned arrays are stored once, shape (N, T, F); ``__getitems__`` returns a whole
collated batch by fancy indexing (the batch contract below), so loaders built here use
:func:`collate_batch`, a pass-through:

    values         (B, T, F) float32   normalised scalars; 0 where absent and for vectors
    presence       (B, T, F) float32   1 where a value was known by the window's cutoff
    target_weight  (B, T, F) float32   presence x the providing source's output loss_weight
    presence_mask  (B, T, H*W) float32 layout.expand(presence)
    vectors        (B, T, V, D) float32  only when the layout has vector fields
    window_end     (B,) int64          days since 1970-01-01 of the last step's start
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np
import polars as pl
import torch
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from canvas.align import place, split_bounds, step_edges
from canvas.layout import CanvasLayout
from canvas.stationary import field_stats, stationary_placements, step_statistics, transform_codes
from warehouse.clock import as_timestamp
from warehouse.spec import DatasetSpec

Split = Literal["train", "val", "test"]
DateLike = dt.datetime | dt.date | str
Batch = dict[str, torch.Tensor]
DATE_COLUMNS = ("date", "observed_at")
_US = "datetime64[us]"


def collate_batch(batch: Batch) -> Batch:
    """Pass-through collate: ``__getitems__`` already returns the collated batch."""
    return batch


@dataclass(frozen=True)
class _Rows:
    """Observations as arrays: layout field index, dates, scalar value or vector."""

    field: np.ndarray
    observed: np.ndarray
    known: np.ndarray
    value: np.ndarray  # (n,) float64, NaN on vector rows
    vector: np.ndarray  # (n, D) float32, zeros on scalar rows

    def __len__(self) -> int:
        return len(self.field)

    def take(self, keep: np.ndarray) -> _Rows:
        return _Rows(*(getattr(self, f.name)[keep] for f in fields(self)))

    @staticmethod
    def concat(parts: list[_Rows]) -> _Rows:
        return _Rows(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(_Rows)))


class HeterogeneousDataset(Dataset):
    """Point-in-time canvas windows from several sources with their own field sets.

    `sources` are ``(DatasetSpec, data)`` pairs (see the module doc for the data formats).
    `split` selects windows by end date (``None``: all); ``"val"`` needs `train_end`,
    ``"test"`` needs `val_end`. Exposes `stats` (per-field mean/std/count of the training
    period), `output_losses` (field index -> custom elementwise loss) and `window_end`.
    """

    def __init__(
        self,
        layout: CanvasLayout,
        sources: Sequence[tuple[DatasetSpec, Any]],
        *,
        split: Split | None = None,
        start: DateLike | None = None,
        end: DateLike | None = None,
        train_end: DateLike | None = None,
        val_end: DateLike | None = None,
    ) -> None:
        if not sources:
            raise ValueError("HeterogeneousDataset needs at least one (spec, data) source")
        if len(sources) > 254:
            raise ValueError(f"at most 254 sources, got {len(sources)}")
        names = [spec.name for spec, _ in sources]
        if len(set(names)) != len(names):
            raise ValueError(f"source names must be unique (weights go by name), got {names}")
        if split not in (None, "train", "val", "test"):
            raise ValueError(f"split must be 'train', 'val', 'test' or None, got {split!r}")
        if split == "val" and train_end is None:
            raise ValueError("split='val' needs train_end")
        if split == "test" and val_end is None:
            raise ValueError("split='test' needs val_end")
        self.layout = layout
        self.split = split
        self.source_names = names
        self.vector_dim = max((layout.fields[i].dimension for i in layout.vector_fields), default=0)
        self._vector_slot = np.full(layout.n_fields, -1, dtype=np.int64)
        self._vector_slot[layout.vector_fields] = np.arange(len(layout.vector_fields))

        # (S+1, F) loss weight of each source's outputs; row 0 is "absent"
        weights = np.zeros((len(sources) + 1, layout.n_fields), dtype=np.float32)
        self._source_fields = np.zeros((len(sources), layout.n_fields), dtype=bool)
        self.output_losses: dict[int, Callable] = {}
        parts = []
        for s, (spec, data) in enumerate(sources):
            paths = _check_spec(spec, layout)
            self._source_fields[s, [layout.index[p] for p in paths]] = True
            for out in spec.output_specs:
                f = layout.index[out.field_path]
                weights[s + 1, f] = out.loss_weight
                self._add_loss(f, out.loss, spec.name)
            parts.append(self._rows(spec, data))
        pooled = _Rows.concat(parts)
        source = np.repeat(np.arange(1, len(parts) + 1, dtype=np.uint8), [len(p) for p in parts])

        if not len(pooled):
            raise ValueError("the sources hold no observation; nothing to place on the canvas")
        lo = as_timestamp(start) if start is not None else pooled.observed.min().astype(dt.datetime)
        hi = as_timestamp(end) if end is not None else pooled.observed.max().astype(dt.datetime)
        edges = step_edges(lo, hi, layout.step)
        T = layout.T
        n_windows = len(edges) - T
        if n_windows < 1:
            raise ValueError(
                f"{edges[0]} .. {edges[-1]} has {len(edges) - 1} steps of {layout.step}; "
                f"a window needs T={T}"
            )
        train_ts = as_timestamp(train_end) if train_end is not None else None
        val_ts = as_timestamp(val_end) if val_end is not None else None
        if train_ts and val_ts and val_ts < train_ts:
            raise ValueError(f"val_end {val_ts} is before train_end {train_ts}")

        codes = transform_codes(layout.fields)
        self.stats = self._statistics(pooled, edges, train_ts, codes)
        mean = np.array([self.stats[q]["mean"] for q in layout.paths])
        std = np.array([self.stats[q]["std"] for q in layout.paths])

        p = place(pooled.field, pooled.observed, pooled.known, edges, T)
        # as in canvas.materialize: a scalar field without training data stays absent
        untrained = np.array(
            [not f.is_vector and self.stats[f.path]["count"] == 0 for f in layout.fields]
        )
        p = p.where(~untrained[p.field])
        # transformed as the schema declares; a value that cannot be transformed is absent
        p, t, _ = stationary_placements(p, pooled.value, codes)
        keep = np.isfinite(t) | (self._vector_slot[p.field] >= 0)
        p, t = p.where(keep), t[keep]
        normalised = ((t - mean[p.field]) / std[p.field]).astype(np.float32)
        self.untrained_fields = [q for q, u in zip(layout.paths, untrained, strict=True) if u]
        values = np.zeros((n_windows, T, layout.n_fields), dtype=np.float32)
        source_of = np.zeros((n_windows, T, layout.n_fields), dtype=np.uint8)
        source_of[p.window, p.slot, p.field] = source[p.row]
        scalar = self._vector_slot[p.field] < 0
        values[p.window[scalar], p.slot[scalar], p.field[scalar]] = normalised[scalar]
        vectors = None
        if layout.vector_fields:
            vectors = np.zeros(
                (n_windows, T, len(layout.vector_fields), self.vector_dim), dtype=np.float32
            )
            v = ~scalar
            vectors[p.window[v], p.slot[v], self._vector_slot[p.field[v]]] = pooled.vector[p.row[v]]

        keep = source_of.reshape(n_windows, -1).any(axis=1) & self._split_mask(
            edges, T, split, train_ts, val_ts
        )
        if not keep.any():
            raise ValueError(
                f"no window with data in split {split!r} ({edges[0]} .. {edges[-1]}, "
                f"train_end={train_ts}, val_end={val_ts})"
            )
        self._values = values[keep]
        self._source = source_of[keep]
        self._vectors = vectors[keep] if vectors is not None else None
        self.window_end: np.ndarray = edges[T - 1 : -1][keep]
        self._window_days = self.window_end.astype("datetime64[D]").astype(np.int64)
        self._target_weight = weights[self._source, np.arange(layout.n_fields)]

    # -- construction helpers ----------------------------------------------------------

    def _add_loss(self, f: int, loss: Callable | None, source: str) -> None:
        if loss is None:
            return
        if self.output_losses.get(f, loss) is not loss:
            raise ValueError(
                f"dataset '{source}': {self.layout.paths[f]} already has a different custom "
                "loss from another source; one field trains with one loss"
            )
        self.output_losses[f] = loss

    def _rows(self, spec: DatasetSpec, data: Any) -> _Rows:
        """The source's rows (long or wide) as arrays, transformed, nulls dropped."""
        frame = data if isinstance(data, pl.DataFrame) else pl.from_pandas(data)
        to_long = _long if "field_path" in frame.columns else _wide_to_long
        frame = to_long(spec, frame).sort("field_path", "observed_at", "known_at")
        field = (
            frame["field_path"].replace_strict(self.layout.index, return_dtype=pl.Int64).to_numpy()
        )
        is_vec = self._vector_slot[field] >= 0
        value = frame["value"].cast(pl.Float64).fill_null(np.nan).to_numpy().copy()
        value[is_vec] = np.nan
        vector = np.zeros((len(frame), self.vector_dim), dtype=np.float32)
        present = ~is_vec & np.isfinite(value)
        if is_vec.any():
            vec_rows = np.flatnonzero(is_vec)
            matrix, has = _vector_matrix(
                spec.name,
                frame["vector"].gather(vec_rows),
                field[vec_rows],
                self.layout,
                self.vector_dim,
            )
            vector[vec_rows] = matrix
            present[vec_rows] = has
        for inp in spec.input_specs:
            if inp.transform is None:
                continue
            rows = np.flatnonzero(field == self.layout.index[inp.field_path])
            is_vector = self._vector_slot[self.layout.index[inp.field_path]] >= 0
            raw = vector[rows].astype(np.float64) if is_vector else value[rows]
            out = np.asarray(inp.transform(raw), dtype=np.float64)
            if out.shape != raw.shape:
                raise ValueError(
                    f"dataset '{spec.name}', key '{inp.key}': transform returned shape "
                    f"{out.shape} for input of shape {raw.shape}"
                )
            finite = np.isfinite(out) if not is_vector else np.isfinite(out).all(axis=1)
            present[rows] &= finite
            if is_vector:
                vector[rows] = np.where(finite[:, None], out, 0.0)
            else:
                value[rows] = out
        return _Rows(
            field,
            frame["observed_at"].to_numpy().astype(_US),
            frame["known_at"].to_numpy().astype(_US),
            value,
            vector,
        ).take(present)

    def _statistics(
        self, rows: _Rows, edges: np.ndarray, train_end: dt.datetime | None, codes: np.ndarray
    ) -> dict[str, dict[str, float]]:
        """Per-field mean / population std of the transformed values of the latest vintage
        per date in the training period (see `canvas.stationary.step_statistics`)."""
        frame = pl.DataFrame(
            {
                "field": rows.field,
                "observed_at": rows.observed,
                "known_at": rows.known,
                "value": rows.value,
            }
        ).filter(
            pl.col("value").is_not_nan(),
            pl.col("observed_at") >= edges[0].astype(dt.datetime),
            pl.col("observed_at") < (train_end or edges[-1].astype(dt.datetime)),
        )
        if train_end is not None:
            frame = frame.filter(pl.col("known_at") <= train_end)
        latest = (
            frame.sort("field", "observed_at", "known_at")
            .group_by("field", "observed_at", maintain_order=True)
            .agg(pl.col("value").last())
        )
        return field_stats(step_statistics(latest, codes, self.layout.step), self.layout.paths)

    @staticmethod
    def _split_mask(
        edges: np.ndarray,
        T: int,
        split: Split | None,
        train_end: dt.datetime | None,
        val_end: dt.datetime | None,
    ) -> np.ndarray:
        """Windows of `split` (see canvas.align.split_bounds); all windows for None."""
        n = len(edges) - T
        lo, hi = split_bounds(edges, T, train_end, val_end)[split] if split else (0, n)
        mask = np.zeros(n, dtype=bool)
        mask[lo:hi] = True
        return mask

    # -- access -----------------------------------------------------------------------

    @property
    def mean(self) -> np.ndarray:
        """(F,) float32 normalisation means, in layout field order."""
        return np.array([self.stats[p]["mean"] for p in self.layout.paths], dtype=np.float32)

    @property
    def std(self) -> np.ndarray:
        """(F,) float32 normalisation standard deviations, in layout field order."""
        return np.array([self.stats[p]["std"] for p in self.layout.paths], dtype=np.float32)

    def __len__(self) -> int:
        return len(self._values)

    def __getitems__(self, indices: Sequence[int]) -> Batch:
        """A collated batch (the contract of the module doc) by fancy indexing."""
        idx = np.asarray(indices, dtype=np.int64)
        presence = (self._source[idx] > 0).astype(np.float32)
        batch = {
            "values": torch.from_numpy(self._values[idx]),
            "presence": torch.from_numpy(presence),
            "target_weight": torch.from_numpy(self._target_weight[idx]),
            "presence_mask": torch.from_numpy(self.layout.expand(presence)),
            "window_end": torch.from_numpy(self._window_days[idx]),
        }
        if self._vectors is not None:
            batch["vectors"] = torch.from_numpy(self._vectors[idx])
        return batch

    def __getitem__(self, index: int) -> Batch:
        """One window: the batch contract without the batch dimension."""
        return {k: v[0] for k, v in self.__getitems__([index]).items()}

    def sampling_weights(self, source_weights: Mapping[str, float]) -> np.ndarray:
        """(N,) per-window weight: sum over sources of weight x fraction of its fields present.

        A field counts for source s when s supplied its value at some step of the window;
        sources missing from `source_weights` weigh 1.
        """
        unknown = sorted(set(source_weights) - set(self.source_names))
        if unknown:
            raise ValueError(
                f"source_weights names unknown sources {unknown}; have {self.source_names}"
            )
        weights = np.zeros(len(self), dtype=np.float64)
        for s, name in enumerate(self.source_names):
            w = float(source_weights.get(name, 1.0))
            if w < 0 or not np.isfinite(w):
                raise ValueError(f"source weight of '{name}' must be finite and >= 0, got {w}")
            supplied = (self._source == s + 1).any(axis=1)  # (N, F)
            weights += w * supplied.sum(axis=1) / self._source_fields[s].sum()
        return weights


def build_mixed_dataloader(
    bound: CanvasLayout,
    sources: Sequence[tuple[DatasetSpec, Any]],
    batch_size: int = 32,
    *,
    source_weights: Mapping[str, float] | None = None,
    split: Split | None = None,
    start: DateLike | None = None,
    end: DateLike | None = None,
    train_end: DateLike | None = None,
    val_end: DateLike | None = None,
    shuffle: bool = True,
    num_samples: int | None = None,
    drop_last: bool = False,
    num_workers: int = 0,
    generator: torch.Generator | None = None,
) -> DataLoader:
    """A DataLoader of mixed-source canvas batches (``loader.dataset`` is the dataset).

    With `source_weights` (by spec name) windows are drawn with replacement by
    :meth:`HeterogeneousDataset.sampling_weights` (`num_samples` per epoch, default N);
    otherwise they are shuffled (or kept in date order with ``shuffle=False``).
    """
    dataset = HeterogeneousDataset(
        bound, sources, split=split, start=start, end=end, train_end=train_end, val_end=val_end
    )
    sampler = None
    if source_weights is not None:
        if not shuffle:
            raise ValueError("source_weights sample at random; they need shuffle=True")
        sampler = WeightedRandomSampler(
            torch.from_numpy(dataset.sampling_weights(source_weights)),
            num_samples=num_samples or len(dataset),
            replacement=True,
            generator=generator,
        )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        drop_last=drop_last,
        num_workers=num_workers,
        collate_fn=collate_batch,
        generator=generator,
    )


# -- source frames ---------------------------------------------------------------------


def _check_spec(spec: DatasetSpec, layout: CanvasLayout) -> list[str]:
    """The spec's field paths, after checking them against each other and the layout."""
    spec.validate()
    if not spec.field_paths:
        raise ValueError(f"dataset '{spec.name}' declares no field")
    pairs = sorted({(s.key, s.field_path) for s in [*spec.input_specs, *spec.output_specs]})
    for side, other in ((0, 1), (1, 0)):
        names = [pair[side] for pair in pairs]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            clash = [pair[other] for pair in pairs if pair[side] == twice[0]]
            raise ValueError(
                f"dataset '{spec.name}': {twice[0]!r} is paired with {clash}; "
                "keys and fields must map one to one"
            )
    missing = [p for p in spec.field_paths if p not in layout.index]
    if missing:
        listed = ", ".join(repr(p) for p in missing)
        raise ValueError(
            f"dataset '{spec.name}': fields {missing} are not on the layout "
            f"(layout {layout.layout_hash()}, {layout.n_fields} fields); compile the layout "
            f"with them, e.g. compile_layout(<your patterns>, {listed})"
        )
    return spec.field_paths


def _datetime(column: pl.Series, what: str) -> pl.Series:
    """A naive-UTC Datetime(us) column from dates, datetimes (any zone) or ISO strings."""
    if column.dtype == pl.Utf8:
        column = column.str.to_datetime(time_unit="us")
    if isinstance(column.dtype, pl.Datetime) and column.dtype.time_zone is not None:
        column = column.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    if not isinstance(column.dtype, pl.Datetime | pl.Date):
        raise ValueError(f"{what} must hold dates or datetimes, got {column.dtype}")
    if column.null_count():
        raise ValueError(f"{what} has {column.null_count()} empty dates")
    return column.cast(pl.Datetime("us"))


def _long(spec: DatasetSpec, frame: pl.DataFrame) -> pl.DataFrame:
    """Long rows checked against the spec: field_path, observed_at, known_at, value, vector."""
    needed = {"observed_at", "known_at"} | ({"value"} if "vector" not in frame.columns else set())
    lacking = sorted(needed - set(frame.columns))
    if lacking:
        raise ValueError(
            f"dataset '{spec.name}': long-format data lacks columns {lacking} "
            f"(has {frame.columns}); it needs field_path, observed_at, value[, vector], known_at"
        )
    unknown = sorted(set(frame["field_path"].unique().to_list()) - set(spec.field_paths))
    if unknown:
        raise ValueError(
            f"dataset '{spec.name}': data has rows of fields its spec does not declare: "
            f"{unknown[:10]}{' ...' if len(unknown) > 10 else ''}; add them to the spec or "
            "filter them out"
        )
    return frame.select(
        pl.col("field_path"),
        _datetime(frame["observed_at"], f"dataset '{spec.name}' observed_at"),
        _datetime(frame["known_at"], f"dataset '{spec.name}' known_at"),
        pl.col("value").cast(pl.Float64)
        if "value" in frame.columns
        else pl.lit(None, pl.Float64).alias("value"),
        _vectors(frame["vector"] if "vector" in frame.columns else None, len(frame)),
    )


def _wide_to_long(spec: DatasetSpec, frame: pl.DataFrame) -> pl.DataFrame:
    """A date column plus one column per key -> long rows, known at their date."""
    date = next((c for c in DATE_COLUMNS if c in frame.columns), None)
    if date is None:
        raise ValueError(
            f"dataset '{spec.name}': data has neither a field_path column (long format) nor "
            f"a date column {DATE_COLUMNS} (wide format); columns: {frame.columns}"
        )
    keys = spec.key_to_path
    missing = [k for k in keys if k not in frame.columns]
    if missing:
        raise ValueError(
            f"dataset '{spec.name}': spec keys {missing} have no column in the wide data; "
            f"available columns: {frame.columns}"
        )
    dates = _datetime(frame[date], f"dataset '{spec.name}' column '{date}'")
    parts = []
    for key, path in keys.items():
        column, scalar = frame[key], _is_scalar(frame[key])
        parts.append(
            pl.DataFrame(
                {
                    "field_path": pl.repeat(path, len(frame), eager=True, dtype=pl.Utf8),
                    "observed_at": dates,
                    "known_at": dates,
                    "value": column if scalar else pl.repeat(None, len(frame), eager=True),
                    "vector": _vectors(None if scalar else column, len(frame)),
                }
            ).with_columns(pl.col("value").cast(pl.Float64))
        )
    return pl.concat(parts)


def _is_scalar(column: pl.Series) -> bool:
    return not isinstance(column.dtype, pl.List | pl.Array)


def _vectors(column: pl.Series | None, n: int) -> pl.Series:
    """A List(Float32) `vector` column from a list/array column, or n nulls."""
    if column is None:
        return pl.repeat(None, n, dtype=pl.List(pl.Float32), eager=True).alias("vector")
    if isinstance(column.dtype, pl.Array):
        column = column.arr.to_list()
    return column.cast(pl.List(pl.Float32)).alias("vector")


def _vector_matrix(
    source: str, column: pl.Series, field: np.ndarray, layout: CanvasLayout, dim: int
) -> tuple[np.ndarray, np.ndarray]:
    """(n, dim) float32 vectors (zero-padded) and which rows have one; lengths checked."""
    lengths = column.list.len().fill_null(0).to_numpy().astype(np.int64)
    expected = np.array([f.dimension for f in layout.fields], dtype=np.int64)[field]
    bad = (lengths > 0) & (lengths != expected)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"dataset '{source}': {bad.sum()} vectors of the wrong length, e.g. "
            f"{layout.paths[field[i]]} has {lengths[i]} values, its dimension is {expected[i]}"
        )
    flat = (
        column.filter(column.list.len() > 0)
        .explode(empty_as_null=False)
        .cast(pl.Float32)
        .to_numpy()
    )
    out = np.zeros((len(column), dim), dtype=np.float32)
    rows = np.repeat(np.arange(len(column)), lengths)
    cols = np.arange(len(flat)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    out[rows, cols] = flat
    return out, (lengths > 0) & np.isfinite(out).all(axis=1)
