"""The field warehouse: a DuckDB file keyed by schema field path, exported to Parquet.

One row per observation vintage:

    field_path, observed_at, value | vector, source, known_at, ingested_at, run_id,
    superseded_at

`observed_at` is the start of the period a value is about, `known_at` when it became
public, `superseded_at` when the next vintage of the same (field, observed_at, source)
became public (NULL for the latest). Writes are idempotent upserts in one transaction; a
revised value is a new vintage, never an overwrite. Reads are point in time: `as_of(t)`
sees only what was known by t, the vintages with known_at <= t < superseded_at, which is
a filter, not a search.

Rows are only written by `Warehouse.ingest`, which keeps `superseded_at` and the
uniqueness of (field_path, observed_at, source, known_at) as it writes; there is no
index to maintain. A re-ingest compares each field's rows with the stored ones through
an order-independent digest first and only compares row by row the fields whose digest
differs.
"""

from __future__ import annotations

import datetime as dt
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb
import polars as pl

from warehouse import clock
from warehouse.paths import default_warehouse_path
from warehouse.reader import CONNECT_LOCK, VIEWS_DDL, WarehouseReader, sql_literal
from warehouse.schema import Schema, default_schema
from warehouse.validation import validate_batch

SCHEMA_VERSION = "2"  # 2: superseded_at, no primary-key index on observations

_TABLES_DDL = """
CREATE TABLE IF NOT EXISTS observations (
    field_path  VARCHAR   NOT NULL,
    observed_at TIMESTAMP NOT NULL,
    value       DOUBLE,
    vector      FLOAT[],
    source      VARCHAR   NOT NULL,
    known_at    TIMESTAMP NOT NULL,
    ingested_at TIMESTAMP NOT NULL,
    run_id      VARCHAR   NOT NULL,
    superseded_at TIMESTAMP
);
CREATE TABLE IF NOT EXISTS field_catalog (
    path          VARCHAR PRIMARY KEY,
    domain        VARCHAR NOT NULL,
    semantic_type VARCHAR NOT NULL,
    unit          VARCHAR NOT NULL,
    period        VARCHAR NOT NULL,
    period_days   DOUBLE  NOT NULL,
    dimension     INTEGER NOT NULL,
    loss_weight   DOUBLE  NOT NULL,
    latent        BOOLEAN NOT NULL
);
CREATE TABLE IF NOT EXISTS ingest_runs (
    run_id         VARCHAR PRIMARY KEY,
    source         VARCHAR   NOT NULL,
    started_at     TIMESTAMP NOT NULL,
    finished_at    TIMESTAMP NOT NULL,
    rows_in        BIGINT    NOT NULL,
    rows_inserted  BIGINT    NOT NULL,
    rows_revised   BIGINT    NOT NULL,
    rows_unchanged BIGINT    NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL);
"""
# Version 1 files keyed observations by a primary key and had no superseded_at.
_MIGRATE_FROM_1 = """
CREATE TABLE observations_v2 AS
    SELECT field_path, observed_at, value, vector, source, known_at, ingested_at, run_id,
           lead(known_at) OVER (PARTITION BY field_path, observed_at, source ORDER BY known_at)
               AS superseded_at
    FROM observations;
DROP TABLE observations;
ALTER TABLE observations_v2 RENAME TO observations;
"""

# DuckDB cannot pivot on values found in the data inside a view, so the wide view
# names its columns and is rebuilt whenever an ingest adds a field.
_WIDE_VIEW = """
CREATE OR REPLACE VIEW wide_daily AS
WITH cells AS (
    SELECT CAST(observed_at AS DATE) AS day, field_path, arg_max(value, known_at) AS value
    FROM latest WHERE vector IS NULL GROUP BY ALL
),
pivoted AS (PIVOT cells ON field_path IN ({columns}) USING first(value) GROUP BY day),
calendar AS (
    SELECT CAST(range AS DATE) AS day
    FROM range((SELECT min(day) FROM cells), (SELECT max(day) FROM cells) + INTERVAL 1 DAY,
               INTERVAL 1 DAY)
)
SELECT * FROM calendar LEFT JOIN pivoted USING (day) ORDER BY day
"""

# Classify each batch row against what is stored (see Warehouse.ingest):
#   same key, same value                      -> unchanged
#   same key, new value, latest has the value -> unchanged (already restated)
#   same key, new value                       -> restatement: stored with known_at = now
#                                                (or just after the latest vintage)
#   new key                                   -> a new observation or vintage
# A new vintage is stored even when it repeats the latest stored value: vintages may
# arrive in any order, and one dropped as "no news" would be lost once an older vintage
# with another value arrived after it (as_of would then answer that older value).
#
# Most batches repeat what is stored (a refresh returns the whole history again), so each
# field is first compared whole: when the batch's rows known by the field's last stored
# vintage hash (count and XOR of row hashes) to exactly the stored rows, or there are
# none (an incremental fetch), those rows are unchanged and the later ones are new keys;
# a field never stored by the source is all new. Only the remaining ("pending") fields
# are classified row by row.
_FIELD_STATE = """
CREATE TEMP TABLE field_state AS
WITH stored AS (
    SELECT field_path, count(*) AS n, max(known_at) AS max_known,
           bit_xor(hash(observed_at, known_at, value, vector)) AS digest
    FROM observations SEMI JOIN batch_fields USING (field_path)
    WHERE source = $source
    GROUP BY ALL
),
known AS (
    SELECT b.field_path, count(*) AS batch_rows,
           count(*) FILTER (b.known_at <= s.max_known) AS n,
           bit_xor(hash(b.observed_at, b.known_at, b.value, b.vector))
               FILTER (b.known_at <= s.max_known) AS digest
    FROM batch b JOIN stored s USING (field_path)
    GROUP BY ALL
)
SELECT s.field_path, s.max_known, k.batch_rows, k.batch_rows - k.n AS later,
       k.n = 0 OR (k.n = s.n AND k.digest IS NOT DISTINCT FROM s.digest) AS settled
FROM stored s JOIN known k USING (field_path)
"""
_FIELD_STATE_SUMMARY = """
SELECT coalesce(sum(batch_rows), 0)                                  AS stored_fields_rows,
       coalesce(sum(batch_rows) FILTER (NOT settled), 0)             AS pending_rows,
       coalesce(sum(later) FILTER (settled), 0)                      AS later_rows
FROM field_state
"""

# Rows of fields the source never stored: every one is new, and each vintage is
# superseded by the next one in the (sorted) batch. Inserted straight from a scan, so
# they are stored in the batch's (field_path, observed_at, known_at) order, which reads
# that scan the table in that order then find already sorted.
_INSERT_FRESH = """
INSERT INTO observations
SELECT field_path, observed_at, value, vector, $source, known_at, $now, $run_id, next_known
FROM fresh
"""

# The rows to store from fields the source has stored before: `key_stored` marks rows
# whose (field, observed_at) may already have vintages, whose chain is then recomputed.
_INCOMING = """
CREATE TEMP TABLE incoming AS
WITH pending AS (
    SELECT b.* FROM batch b
    SEMI JOIN (SELECT field_path FROM field_state WHERE NOT settled) USING (field_path)
),
latest_stored AS (
    SELECT o.field_path, o.observed_at,
           arg_max(o.value, o.known_at)  AS value,
           arg_max(o.vector, o.known_at) AS vector,
           max(o.known_at)               AS known_at
    FROM observations o
    SEMI JOIN (SELECT DISTINCT field_path, observed_at FROM pending) p
        USING (field_path, observed_at)
    WHERE o.source = $source
    GROUP BY ALL
),
compared AS (
    SELECT p.*, l.known_at AS latest_known, l.field_path IS NOT NULL AS key_stored,
        CASE
            WHEN e.field_path IS NOT NULL
                 AND e.value IS NOT DISTINCT FROM p.value
                 AND e.vector IS NOT DISTINCT FROM p.vector THEN 'unchanged'
            WHEN e.field_path IS NOT NULL
                 AND l.value IS NOT DISTINCT FROM p.value
                 AND l.vector IS NOT DISTINCT FROM p.vector THEN 'unchanged'
            WHEN e.field_path IS NOT NULL THEN 'restated'
            ELSE 'new'
        END AS outcome
    FROM pending p
    LEFT JOIN observations e
        ON e.field_path = p.field_path AND e.observed_at = p.observed_at
       AND e.known_at = p.known_at AND e.source = $source
    LEFT JOIN latest_stored l
        ON l.field_path = p.field_path AND l.observed_at = p.observed_at
)
SELECT field_path, observed_at, value, vector, known_at, next_known, 'new' AS outcome,
       true AS key_stored
FROM batch b JOIN field_state f USING (field_path)
WHERE f.settled AND b.known_at > f.max_known
UNION ALL
SELECT field_path, observed_at, value, vector, known_at, next_known, outcome, key_stored
FROM compared WHERE outcome = 'new'
UNION ALL
-- a restatement is known from now (or just after the latest vintage); several restated
-- vintages of one period in one batch: one microsecond apart, in order
SELECT field_path, observed_at, value, vector,
       greatest($now, latest_known + INTERVAL 1 MICROSECOND) + to_microseconds(
           row_number() OVER (PARTITION BY field_path, observed_at ORDER BY known_at) - 1),
       NULL, outcome, true
FROM compared WHERE outcome = 'restated'
"""

# Each touched (field, observed_at) that had vintages: its chain of known_at recomputed
# over the stored and the incoming vintages; the stored ones' superseded_at corrected.
_CHAIN = """
CREATE TEMP TABLE chain AS
WITH keys AS (SELECT DISTINCT field_path, observed_at FROM incoming WHERE key_stored),
vintages AS (
    SELECT o.field_path, o.observed_at, o.known_at
    FROM observations o SEMI JOIN keys USING (field_path, observed_at)
    WHERE o.source = $source
    UNION ALL
    SELECT field_path, observed_at, known_at FROM incoming WHERE key_stored
)
SELECT *, lead(known_at) OVER (PARTITION BY field_path, observed_at ORDER BY known_at)
    AS superseded_at
FROM vintages
"""
_CORRECT_CHAINS = """
UPDATE observations SET superseded_at = c.superseded_at
FROM chain c
WHERE observations.source = $source AND observations.field_path = c.field_path
  AND observations.observed_at = c.observed_at AND observations.known_at = c.known_at
  AND observations.superseded_at IS DISTINCT FROM c.superseded_at
"""
_INSERT_INCOMING = """
INSERT INTO observations
SELECT i.field_path, i.observed_at, i.value, i.vector, $source, i.known_at, $now, $run_id,
       CASE WHEN i.key_stored THEN c.superseded_at ELSE i.next_known END
FROM incoming i
LEFT JOIN chain c
    ON i.key_stored AND c.field_path = i.field_path AND c.observed_at = i.observed_at
   AND c.known_at = i.known_at
"""


class WarehouseLockedError(RuntimeError):
    """Another process holds the warehouse's write lock for longer than the timeout."""


class WarehouseVersionError(RuntimeError):
    """A read-only warehouse was written by an older layout version."""


class WarehouseNotFoundError(FileNotFoundError):
    """A read-only warehouse was opened at a path where none exists."""


@dataclass(frozen=True)
class IngestReport:
    """What one ingest did."""

    run_id: str
    source: str
    rows_in: int
    rows_inserted: int
    rows_revised: int
    rows_unchanged: int
    duplicates_dropped: int
    rows_compared: int  # compared row by row (the rest were settled by their field's digest)
    fields: int
    seconds: float

    def as_metadata(self) -> dict[str, int | float | str]:
        """Plain values, fit for logs and Dagster metadata."""
        return asdict(self)


class Warehouse(WarehouseReader):
    """The DuckDB field warehouse.

    Connections are short-lived: every call opens the file, does its work in one
    transaction and closes it, so several processes (Dagster runs, the CLI) take
    turns. A process that finds the file locked waits up to `lock_timeout` seconds.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        schema: Schema | None = None,
        read_only: bool = False,
        lock_timeout: float = 60.0,
        file_access: bool = True,
    ) -> None:
        self.path = Path(path) if path is not None else default_warehouse_path()
        self.schema = schema if schema is not None else default_schema()
        self.read_only = read_only
        self.lock_timeout = lock_timeout
        # False: queries see the warehouse only (COPY TO, read_csv, ATTACH are refused)
        self.file_access = file_access
        if read_only:
            if not self.path.exists():
                raise WarehouseNotFoundError(
                    f"no warehouse at {self.path}; create one with `guwm demo` or an ingest"
                )
            self._check_version()
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._initialise()

    def __repr__(self) -> str:
        return f"Warehouse({str(self.path)!r}, read_only={self.read_only})"

    # -- connections -----------------------------------------------------------------

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection to the warehouse file, waiting while another process holds it."""
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.05
        while True:
            try:
                with CONNECT_LOCK:
                    con = duckdb.connect(str(self.path), read_only=self.read_only)
                break
            except duckdb.IOException as err:
                if "lock" not in str(err).lower():
                    raise
                if time.monotonic() >= deadline:
                    raise WarehouseLockedError(
                        f"warehouse {self.path} is locked by another process "
                        f"(waited {self.lock_timeout:.0f}s): {err}"
                    ) from err
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
        try:
            if not self.file_access:  # cannot be turned back on by a query
                con.execute("SET enable_external_access = false")
            yield con
        finally:
            with CONNECT_LOCK:
                con.close()

    @contextmanager
    def _transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    def _initialise(self) -> None:
        with self._transaction() as con:
            con.execute(_TABLES_DDL)
            meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
            if meta.get("version") == "1":
                con.execute(_MIGRATE_FROM_1)
            con.execute(VIEWS_DDL)
            schema_hash = self.schema.layout_hash()
            if meta.get("schema_hash") != schema_hash:
                self._write_catalog(con, self.schema.to_polars())
            if (meta.get("schema_hash"), meta.get("version")) != (schema_hash, SCHEMA_VERSION):
                con.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('schema_hash', $h), ('version', $v)",
                    {"h": schema_hash, "v": SCHEMA_VERSION},
                )

    def _check_version(self) -> None:
        with self.connect() as con:
            found = con.execute("SELECT value FROM meta WHERE key = 'version'").fetchall()
        if found and found[0][0] != SCHEMA_VERSION:
            raise WarehouseVersionError(
                f"warehouse {self.path} has layout version {found[0][0]}, this guwm reads "
                f"version {SCHEMA_VERSION}: open it once for writing (Warehouse(path), or any "
                "ingest) to upgrade it in place"
            )

    @staticmethod
    def _write_catalog(con: duckdb.DuckDBPyConnection, catalog: pl.DataFrame) -> None:
        con.register("incoming_catalog", catalog.to_arrow())
        try:
            con.execute("INSERT OR REPLACE INTO field_catalog SELECT * FROM incoming_catalog")
        finally:
            con.unregister("incoming_catalog")

    # -- writes ----------------------------------------------------------------------

    def ingest(
        self,
        frame: pl.DataFrame,
        *,
        source: str,
        now: dt.datetime | None = None,
        allow_outliers: bool = False,
    ) -> IngestReport:
        """Upsert a long-format batch from `source` in one transaction.

        The batch is validated first (IngestError names source, field and row of every
        problem, and nothing is written). Re-ingesting the same batch changes nothing.
        A value that differs from what is stored under the same key is a restatement:
        it is kept as a new vintage known from the time of this ingest. A value outside
        its field's plausible range (`Field.bounds`) is refused unless `allow_outliers`.
        """
        self._require_writable()
        if not source or not source.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"source name must be alphanumeric (with - or _), got {source!r}")
        started = time.perf_counter()
        now = now or clock.utc_now()
        batch = validate_batch(
            frame, source=source, schema=self.schema, now=now, allow_outliers=allow_outliers
        )
        run_id = uuid.uuid4().hex
        rows = batch.frame
        same_period_next = (pl.col("field_path") == pl.col("field_path").shift(-1)) & (
            pl.col("observed_at") == pl.col("observed_at").shift(-1)
        )
        rows = rows.with_columns(
            next_known=pl.when(same_period_next).then(pl.col("known_at").shift(-1))
        )
        fields = rows.select(pl.col("field_path").unique())
        new_fields = self._catalog_rows(fields["field_path"])
        params = {"source": source, "now": now, "run_id": run_id}
        with self._transaction() as con:
            # registered on this short-lived connection only (closed after the write)
            # the newest Arrow layout (string views) is handed over without a copy
            newest = pl.CompatLevel.newest()
            con.register("batch", rows.to_arrow(compat_level=newest))
            con.register("batch_fields", fields.to_arrow(compat_level=newest))
            con.execute(_FIELD_STATE, {"source": source})
            ((stored_fields_rows, compared, later),) = con.execute(_FIELD_STATE_SUMMARY).fetchall()
            fresh = len(rows) - stored_fields_rows
            if fresh:
                stored = con.sql("SELECT field_path FROM field_state").pl()["field_path"]
                fresh_rows = (
                    rows
                    if stored.is_empty()
                    else rows.filter(~pl.col("field_path").is_in(stored.implode()))
                )
                con.register("fresh", fresh_rows.to_arrow(compat_level=newest))
                con.execute(_INSERT_FRESH, params)
            counts = {}
            if compared or later:
                con.execute(_INCOMING, {"source": source, "now": now})
                con.execute(_CHAIN, {"source": source})
                con.execute(_CORRECT_CHAINS, {"source": source})
                con.execute(_INSERT_INCOMING, params)
                counts = dict(
                    con.execute(
                        "SELECT outcome, count(*) FROM incoming GROUP BY outcome"
                    ).fetchall()
                )
                con.execute("DROP TABLE incoming; DROP TABLE chain")
            con.execute("DROP TABLE field_state")
            inserted = fresh + counts.get("new", 0)
            revised = counts.get("restated", 0)
            if not new_fields.is_empty():
                self._write_catalog(con, new_fields)
            if inserted or revised:
                _refresh_wide_view(con)
            report = IngestReport(
                run_id=run_id,
                source=source,
                rows_in=batch.rows_in,
                rows_inserted=inserted,
                rows_revised=revised,
                rows_unchanged=len(rows) - inserted - revised,
                duplicates_dropped=batch.duplicates_dropped,
                rows_compared=compared,
                fields=len(fields),
                seconds=round(time.perf_counter() - started, 4),
            )
            con.execute(
                "INSERT INTO ingest_runs VALUES ($run_id, $source, $now, $finished, "
                "$rows_in, $ins, $rev, $unch)",
                {
                    **params,
                    "finished": clock.utc_now(),
                    "rows_in": report.rows_in,
                    "ins": report.rows_inserted,
                    "rev": report.rows_revised,
                    "unch": report.rows_unchanged,
                },
            )
        return report

    def _catalog_rows(self, paths: pl.Series) -> pl.DataFrame:
        """Catalog rows for entity fields (firm_<TICKER>.…) the catalog does not list yet."""
        entity_paths = [p for p in paths.unique().to_list() if p not in self.schema.paths]
        if not entity_paths:
            return pl.DataFrame()
        return Schema([self.schema.field(p) for p in entity_paths]).to_polars()

    def _require_writable(self) -> None:
        if self.read_only:
            raise PermissionError(f"{self} is read-only")

    # -- reads (beyond WarehouseReader's) --------------------------------------------

    def info(self) -> dict[str, object]:
        """Size, row counts, sources and date ranges."""
        by_source = self.sql(
            """
            SELECT source, count(*) AS observations, count(DISTINCT field_path) AS fields,
                   min(observed_at) AS first_observed, max(observed_at) AS last_observed,
                   max(known_at) AS last_known
            FROM observations GROUP BY source ORDER BY source
            """
        )
        totals = self.sql(
            "SELECT (SELECT count(*) FROM observations) AS observations, "
            "(SELECT count(DISTINCT field_path) FROM observations) AS observed_fields, "
            "(SELECT count(*) FROM field_catalog) AS catalog_fields, "
            "(SELECT count(*) FROM ingest_runs) AS ingest_runs"
        ).row(0, named=True)
        return {
            "path": str(self.path),
            "size_bytes": self.path.stat().st_size,
            **totals,
            "sources": by_source,
        }

    # -- export ----------------------------------------------------------------------

    def export_parquet(
        self, dest: str | os.PathLike[str] | None = None, *, keep: int = 2
    ) -> Path | str:
        """Export every table to a Parquet lake at `dest` (default: beside the database).

        `dest` is a local path or any fsspec URL (file://, s3://, gs://, memory://, …).
        Observations are hive-partitioned by source and year with a fixed schema; see
        `warehouse.lake` for the layout and how readers never see half an export (`keep`:
        snapshots kept on object stores). Returns the lake's location: the local
        directory, or the URL to give `LakeReader` and other engines.
        """
        from warehouse.lake import export_lake

        if dest is None:
            dest = self.path.with_name(self.path.stem + "_parquet")
        with self.connect() as con:
            return export_lake(con, dest, keep=keep)


def _refresh_wide_view(con: duckdb.DuckDBPyConnection) -> None:
    paths = [
        row[0]
        for row in con.execute(
            "SELECT DISTINCT field_path FROM observations WHERE vector IS NULL ORDER BY 1"
        ).fetchall()
    ]
    if paths:
        # Field paths follow the schema grammar ([A-Za-z0-9_.]); quoting is belt and braces.
        columns = ", ".join(sql_literal(p) for p in paths)
        con.execute(_WIDE_VIEW.format(columns=columns))
