"""Warehouse ingest throughput and no-op re-ingest, against a Parquet write of the same table."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from bench.common import BenchResult, timed
from warehouse.store import Warehouse


def synthetic_observations(n_fields: int, n_days: int, seed: int = 0) -> pl.DataFrame:
    """n_fields x n_days daily observations on firm fields (any ticker is a valid entity)."""
    rng = np.random.default_rng(seed)
    days = pl.datetime_range(
        dt.datetime(1990, 1, 1),
        dt.datetime(1990, 1, 1) + dt.timedelta(days=n_days - 1),
        "1d",
        eager=True,
    )
    fields = pl.Series(
        "field_path", [f"firm_B{i:05d}.earnings.eps_actual" for i in range(n_fields)]
    )
    frame = (
        pl.DataFrame({"field_path": fields})
        .join(pl.DataFrame({"observed_at": days}), how="cross")
        .with_columns(
            value=pl.Series(rng.standard_normal(n_fields * n_days)),
            known_at=pl.col("observed_at") + pl.duration(hours=21),
        )
    )
    return frame


def run(*, quick: bool = False) -> BenchResult:
    """Ingest 10M observations (1k fields x 10k days; 1M in quick mode)."""
    n_fields, n_days = (1000, 10_000) if not quick else (100, 10_000)
    frame = synthetic_observations(n_fields, n_days)
    n = len(frame)
    result = BenchResult("ingest")
    with tempfile.TemporaryDirectory() as tmp:
        parquet_s, _ = timed(lambda: pq.write_table(frame.to_arrow(), Path(tmp) / "b.parquet"))
        wh = Warehouse(Path(tmp) / "bench.duckdb")
        ingest_s, report = timed(lambda: wh.ingest(frame, source="bench"))
        assert report.rows_inserted == n, report
        noop_s, again = timed(lambda: wh.ingest(frame, source="bench"))
        assert again.rows_unchanged == n and again.rows_inserted == 0, again
    result.add(
        "ingest throughput",
        n / ingest_s,
        "obs/s",
        "parquet write",
        n / parquet_s,
        note=f"{n:,} observations; first ingest {ingest_s:.1f}s vs "
        f"pyarrow Parquet write {parquet_s:.1f}s",
    )
    result.add(
        "no-op re-ingest time",
        noop_s,
        "s",
        "parquet write",
        parquet_s,
        note="the same batch again: validated, classified, nothing written",
    )
    result.add("first ingest time", ingest_s, "s", "parquet write", parquet_s)
    return result
