"""Warehouse ingest throughput, no-op re-ingest and point-in-time query latency, against
Parquet writes and reads of the same table, at growing sizes."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from bench.common import BenchResult, GrowthPoint, timed
from ingest.synthetic import SyntheticWorldConfig, generate_world
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


# fields x 10,000 days: 1M, 10M and 50M observations; the 10M case is the headline
GROWTH_FIELDS = (100, 1000, 5000)
QUICK_GROWTH_FIELDS = (10, 100)
N_DAYS = 10_000


def measure(n_fields: int, n_days: int = N_DAYS) -> dict[str, float]:
    """Seconds of each warehouse operation on n_fields x n_days observations, and of the
    Parquet write and read of the same rows (pyarrow) as their baselines."""
    frame = synthetic_observations(n_fields, n_days)
    with tempfile.TemporaryDirectory() as tmp:
        parquet = Path(tmp) / "b.parquet"
        parquet_s, _ = timed(lambda: pq.write_table(frame.to_arrow(), parquet))
        wh = Warehouse(Path(tmp) / "bench.duckdb")
        ingest_s, report = timed(lambda: wh.ingest(frame, source="bench"))
        assert report.rows_inserted == len(frame), report
        noop_s, again = timed(lambda: wh.ingest(frame, source="bench"))
        assert again.rows_unchanged == len(frame) and again.rows_inserted == 0, again
        query = _point_in_time_query(wh, frame, parquet)
        stored_bytes = _checkpointed_bytes(wh)
        return {
            "observations": len(frame),
            "parquet_s": parquet_s,
            "ingest_s": ingest_s,
            "noop_s": noop_s,
            "stored_bytes": stored_bytes,
            "parquet_bytes": parquet.stat().st_size,
            **query,
        }


def run(*, quick: bool = False) -> BenchResult:
    """Ingest, re-ingest and point-in-time reads at 1M, 10M and 50M observations (10k
    and 1M in quick mode); the headline rows are the 10M (quick: 1M) case."""
    sizes = QUICK_GROWTH_FIELDS if quick else GROWTH_FIELDS
    runs = {n_fields: measure(n_fields) for n_fields in sizes}
    result = BenchResult("ingest")
    for m in runs.values():
        n = m["observations"]
        for measure_name, seconds, baseline, baseline_s in (
            ("ingest", m["ingest_s"], "parquet write", m["parquet_s"]),
            ("no-op re-ingest", m["noop_s"], "parquet write", m["parquet_s"]),
            ("as_of, 10 years", m["as_of_s"], "parquet read", m["parquet_read_s"]),
            ("as_of, wide monthly", m["wide_s"], "parquet read", m["parquet_read_s"]),
        ):
            result.growth.append(
                GrowthPoint(measure_name, n, "observations", seconds, baseline, baseline_s)
            )
    m = runs[sizes[1]]
    n = m["observations"]
    result.add(
        "ingest throughput",
        n / m["ingest_s"],
        "obs/s",
        "parquet write",
        n / m["parquet_s"],
        note=f"{n:,} observations; first ingest {m['ingest_s']:.1f}s vs "
        f"pyarrow Parquet write {m['parquet_s']:.1f}s",
    )
    result.add(
        "no-op re-ingest time",
        m["noop_s"],
        "s",
        "parquet write",
        m["parquet_s"],
        note="the same batch again: validated, classified (each field settled by its "
        "digest), nothing written",
    )
    result.add("first ingest time", m["ingest_s"], "s", "parquet write", m["parquet_s"])
    result.add(
        "warehouse size",
        m["stored_bytes"] / 2**20,
        "MiB",
        "parquet file",
        m["parquet_bytes"] / 2**20,
        note=f"{n:,} rows stored (one vintage each)",
    )
    result.add(
        "point-in-time query",
        m["as_of_s"],
        "s",
        "parquet read of the same rows",
        m["parquet_read_s"],
        note=f"as_of(t) over {m['fields']:,} fields x 10 years: {m['rows']:,} rows, "
        "latest vintage known at t per field and day",
    )
    result.add(
        "point-in-time panel (wide, monthly)",
        m["wide_s"],
        "s",
        "parquet read of the same rows",
        m["parquet_read_s"],
        note="the same query pivoted to one column per field on a monthly calendar",
    )
    with tempfile.TemporaryDirectory() as tmp:
        vintages = _vintage_cost(Path(tmp))
    result.add(
        "stored rows, synthetic world",
        vintages["rows"],
        "rows",
        "former no-news rule",
        vintages["rows_no_news"],
        note="every distinct vintage kept, also one that repeats the value before it",
    )
    result.add(
        "warehouse size, synthetic world",
        vintages["bytes"] / 2**20,
        "MiB",
        "former no-news rule",
        vintages["bytes_no_news"] / 2**20,
    )
    return result


def _checkpointed_bytes(wh: Warehouse) -> int:
    """The DuckDB file's size once its write-ahead log is folded in."""
    with wh.connect() as con:
        con.execute("CHECKPOINT")
    return wh.path.stat().st_size


def _vintage_cost(tmp: Path) -> dict[str, int]:
    """Rows and bytes of the synthetic world's sources stored with every vintage, against
    the same sources without the vintages that repeat the value before them (what the
    former "no news" rule dropped when vintages arrived in order)."""
    world = generate_world(SyntheticWorldConfig())
    out = {}
    for label, drop_repeats in (("", False), ("_no_news", True)):
        wh = Warehouse(tmp / f"vintages{label}.duckdb")
        for name, frame in world.sources.items():
            if drop_repeats:
                previous = pl.col("value").shift(1).over("field_path", "observed_at")
                frame = frame.sort("field_path", "observed_at", "known_at").filter(
                    previous.is_null() | (pl.col("value") != previous)
                )
            wh.ingest(frame, source=name)
        out[f"rows{label}"] = wh.count()
        out[f"bytes{label}"] = _checkpointed_bytes(wh)
    return out


def _point_in_time_query(wh: Warehouse, frame: pl.DataFrame, parquet: Path) -> dict[str, float]:
    """as_of over every field for the last 10 years of the table, against reading just
    those rows back from Parquet (pyarrow, with the same date filter pushed down)."""
    end = frame["observed_at"].max()
    start = end - dt.timedelta(days=3652)
    t = end + dt.timedelta(days=1)
    as_of_s, panel = timed(lambda: wh.as_of(t, start=start, end=end), repeat=2)
    wide_s, _ = timed(lambda: wh.as_of(t, start=start, end=end, wide=True, every="1mo"), repeat=2)
    parquet_s, table = timed(
        lambda: pq.read_table(parquet, filters=[("observed_at", ">=", start)]), repeat=2
    )
    assert len(panel) == table.num_rows, (len(panel), table.num_rows)
    return {
        "as_of_s": as_of_s,
        "wide_s": wide_s,
        "parquet_read_s": parquet_s,
        "rows": len(panel),
        "fields": panel["field_path"].n_unique(),
    }
