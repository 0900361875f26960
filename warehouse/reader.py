"""The warehouse's read API over any DuckDB connection that sees `observations`.

`WarehouseReader` is shared by the DuckDB `warehouse.store.Warehouse` and the Parquet
`warehouse.lake.LakeReader`; so are the views both create (`VIEWS_DDL`), the lock around
DuckDB connects and the content hash.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager

import duckdb
import numpy as np
import polars as pl

from warehouse import clock
from warehouse.schema import Schema
from warehouse.validation import in_key_order

# duckdb.connect/close share a per-process instance cache that is not safe to enter from
# several threads at once (a connection can come up without its Python scan functions).
CONNECT_LOCK = threading.Lock()

# Views over the tables: created in the warehouse file, and over a Parquet export (LakeReader).
VIEWS_DDL = """
CREATE OR REPLACE VIEW latest AS
    SELECT field_path, observed_at, value, vector, source, known_at, ingested_at, run_id
    FROM observations WHERE superseded_at IS NULL;
CREATE OR REPLACE VIEW fields AS
    SELECT c.*,
           coalesce(s.n_observations, 0) AS n_observations,
           s.first_observed, s.last_observed, s.last_known, s.sources
    FROM field_catalog c
    LEFT JOIN (
        SELECT field_path,
               count(*)                              AS n_observations,
               min(observed_at)                      AS first_observed,
               max(observed_at)                      AS last_observed,
               max(known_at)                         AS last_known,
               list(DISTINCT source ORDER BY source) AS sources
        FROM observations GROUP BY field_path
    ) s ON s.field_path = c.path;
"""


def observations_hash(con: duckdb.DuckDBPyConnection) -> str:
    """Order-independent hash of the `observations` a connection sees."""
    ((n, h),) = con.execute(
        "SELECT count(*), coalesce(bit_xor(hash(field_path, observed_at, value, vector, "
        "source, known_at)), 0) FROM observations"
    ).fetchall()
    return hashlib.sha256(f"{n}:{h}".encode()).hexdigest()[:16]


class WarehouseReader:
    """The read API shared by the DuckDB `Warehouse` and `warehouse.lake.LakeReader`.

    A subclass provides `connect()` (a DuckDB connection with an `observations` table or
    view) and `schema`; everything here is SQL over that connection.
    """

    schema: Schema

    def connect(self) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        """A DuckDB connection that sees `observations`."""
        raise NotImplementedError

    def sql(
        self, query: str, params: dict[str, object] | Sequence[object] | None = None
    ) -> pl.DataFrame:
        """Run a SQL query (with $name or ? parameters) and return a Polars frame."""
        with self.connect() as con:
            rel = con.sql(query, params=params)
            if rel is None:
                return pl.DataFrame()
            return pl.from_arrow(rel.to_arrow_table())

    def as_of(
        self,
        t: dt.datetime | dt.date | str | None = None,
        fields: Sequence[str] | str | None = None,
        *,
        start: dt.datetime | dt.date | str | None = None,
        end: dt.datetime | dt.date | str | None = None,
        sources: Sequence[str] | None = None,
        wide: bool = False,
        every: str = "1d",
    ) -> pl.DataFrame:
        """Observations as they were known at time `t` (default: now).

        For every (field, observed_at, source) the latest vintage with known_at <= t.
        `fields` takes exact paths, segment prefixes ("country_us.macro") or globs
        ("financial.*.vix"). Long format by default; `wide=True` returns one column per
        scalar field on a regular calendar (`every`: a Polars interval such as "1d",
        "1w", "1mo", "1q") where each cell holds the last observation in that period
        (if several sources report a field, the most recently known value wins).
        """
        params: dict[str, object] = {
            "t": clock.as_timestamp(t) if t is not None else clock.utc_now()
        }
        where = [
            "known_at <= $t AND (superseded_at IS NULL OR superseded_at > $t)",
            *self._filters(params, fields, start, end, sources),
        ]
        query = f"""
            SELECT field_path, observed_at, source, value, vector, known_at
            FROM observations WHERE {" AND ".join(where)}
        """
        # sorted here: Polars sorts the fetched rows faster than an ORDER BY in the query
        long = in_key_order(self.sql(query, params), ["field_path", "observed_at", "source"])
        if not wide:
            return long
        return _to_wide(long, every=every, start=start, end=end)

    def vintages(
        self,
        fields: Sequence[str] | str | None = None,
        *,
        start: dt.datetime | dt.date | str | None = None,
        end: dt.datetime | dt.date | str | None = None,
        sources: Sequence[str] | None = None,
    ) -> pl.DataFrame:
        """Every stored vintage (the input of a point-in-time canvas), long format.

        Columns field_path, observed_at, source, value, vector, known_at; filters as in
        `as_of`. Unlike `as_of`, revised values keep all their vintages.
        """
        params: dict[str, object] = {}
        where = self._filters(params, fields, start, end, sources) or ["true"]
        return self.sql(
            "SELECT field_path, observed_at, source, value, vector, known_at FROM observations "
            f"WHERE {' AND '.join(where)} ORDER BY field_path, observed_at, known_at, source",
            params,
        )

    def _filters(
        self,
        params: dict[str, object],
        fields: Sequence[str] | str | None,
        start: dt.datetime | dt.date | str | None,
        end: dt.datetime | dt.date | str | None,
        sources: Sequence[str] | None,
    ) -> list[str]:
        """SQL predicates (parameters added to `params`) for the common filters."""
        where = []
        if fields is not None:
            patterns = [fields] if isinstance(fields, str) else list(fields)
            where.append(self._field_filter(patterns, params))
        if start is not None:
            where.append("observed_at >= $start")
            params["start"] = clock.as_timestamp(start)
        if end is not None:
            where.append("observed_at <= $end")
            params["end"] = clock.as_timestamp(end)
        if sources is not None:
            where.append("list_contains($sources, source)")
            params["sources"] = list(sources)
        return where

    def _field_filter(self, patterns: list[str], params: dict[str, object]) -> str:
        """SQL predicate for exact paths, segment prefixes and globs; validates each."""
        if not patterns:
            return "false"
        clauses = []
        for i, pattern in enumerate(patterns):
            self.schema.project(pattern)  # UnknownFieldError with suggestions
            params[f"p{i}"] = pattern
            if any(ch in pattern for ch in "*?["):
                clauses.append(f"field_path GLOB $p{i}")
            else:
                clauses.append(f"(field_path = $p{i} OR starts_with(field_path, $p{i} || '.'))")
        return "(" + " OR ".join(clauses) + ")"

    def count(self) -> int:
        """Number of stored observation vintages."""
        with self.connect() as con:
            return con.execute("SELECT count(*) FROM observations").fetchone()[0]

    def content_hash(self) -> str:
        """Order-independent hash of every stored observation (for change detection)."""
        with self.connect() as con:
            return observations_hash(con)


def sql_literal(text: str) -> str:
    """A SQL string literal, quotes doubled: for the few places SQL takes no parameters
    (DDL, a type's members)."""
    return "'" + text.replace("'", "''") + "'"


def _to_wide(
    long: pl.DataFrame,
    *,
    every: str,
    start: dt.datetime | dt.date | str | None,
    end: dt.datetime | dt.date | str | None,
) -> pl.DataFrame:
    scalar = long.filter(pl.col("vector").is_null()).drop("vector")
    if scalar.is_empty():
        return pl.DataFrame({"date": []}, schema={"date": pl.Datetime("us")})
    bucketed = (
        scalar.with_columns(pl.col("observed_at").dt.truncate(every).alias("date"))
        .group_by("date", "field_path")
        .agg(pl.col("value").sort_by("observed_at", "known_at", "source").last())
    )
    lo = clock.as_timestamp(start) if start is not None else bucketed["date"].min()
    hi = clock.as_timestamp(end) if end is not None else bucketed["date"].max()
    calendar = pl.DataFrame(
        {"date": pl.datetime_range(lo, hi, every, eager=True, time_unit="us").dt.truncate(every)}
    ).unique(maintain_order=True)
    columns = sorted(bucketed["field_path"].unique())
    # scattered into a (dates x fields) grid: a pivot on this many columns is far slower
    cells = bucketed.join(calendar.with_row_index("at"), on="date").select(
        "at", pl.col("field_path").cast(pl.Enum(columns)).to_physical(), "value"
    )
    grid = np.full((len(calendar), len(columns)), np.nan)
    grid[cells["at"].to_numpy(), cells["field_path"].to_numpy()] = cells["value"].to_numpy()
    wide = pl.from_numpy(grid, schema=columns).fill_nan(None)
    return calendar.hstack(wide)  # the calendar is in date order
