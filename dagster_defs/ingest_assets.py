"""Ingest assets: one per registered source, each writing its observations into the warehouse.

The assets and their checks are generated from `ingest.registry.REGISTRY`. Each asset
fetches in the configured mode (synthetic, recorded, live), upserts in one transaction and
reports what changed. Checks beside them look at what is stored.
"""

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import polars as pl
from polars.exceptions import PolarsError

from dagster_defs.metadata import markdown_table
from dagster_defs.resources import SourcesResource, WarehouseResource
from ingest.base import SourceError
from ingest.protocol import Source
from ingest.registry import REGISTRY
from warehouse import clock
from warehouse.lake import LakeReader
from warehouse.store import WarehouseLockedError

OWNERS = ["team:data-platform"]


def asset_name(source: str) -> str:
    """The key of a source's ingest asset."""
    return f"{source}_observations"


def _since(wh, source_name: str) -> dict[str, dt.date]:
    """Last stored observation date per field of a source, for incremental live fetches."""
    last = wh.sql(
        "SELECT field_path, max(observed_at)::DATE AS last FROM observations "
        "WHERE source = $s GROUP BY field_path",
        {"s": source_name},
    )
    return dict(last.iter_rows())


# bad data or configuration: the same input fails the same way on every attempt
DETERMINISTIC = (ValueError, LookupError, FileNotFoundError, PermissionError, PolarsError)
# worth another attempt later: another process's lock, other I/O (and SourceError, the
# network or a rate limit after the adapters' own retries, handled with its items)
TRANSIENT = (WarehouseLockedError, OSError)


@contextmanager
def _fail_fast_unless_transient(source: str) -> Iterator[None]:
    """Let transient errors reach the retry policy; fail everything else at once.

    Bad data and configuration fail with their own message and no chained traceback;
    an unexpected error (a bug) fails at once too, with its traceback.
    """
    try:
        yield
    except DETERMINISTIC as err:
        raise dg.Failure(description=f"{source}: {err}", allow_retries=False) from None
    except SourceError as err:  # transient: the retry policy applies; each item's reason shown
        metadata = {"failures": dg.MetadataValue.md(_failure_table(err.failures))}
        raise dg.Failure(description=str(err), metadata=metadata if err.failures else {}) from None
    except TRANSIENT:
        raise
    except Exception as err:
        raise dg.Failure(description=f"{source}: {err!r}", allow_retries=False) from err


def _failure_table(failures: dict[str, str]) -> str:
    """Each failed item and its reason, as a markdown table."""
    frame = pl.DataFrame({"item": list(failures), "reason": list(failures.values())})
    return markdown_table(frame, max_rows=200)


def build_ingest_asset(source: Source) -> dg.AssetsDefinition:
    """The asset that fetches one source and upserts it into the warehouse."""

    @dg.asset(
        name=asset_name(source.name),
        group_name="ingest",
        kinds={"duckdb", "polars"},
        owners=OWNERS,
        description=source.description,
        retry_policy=dg.RetryPolicy(max_retries=2, delay=30, backoff=dg.Backoff.EXPONENTIAL),
        tags={"source": source.name},
    )
    def _ingest(
        context: dg.AssetExecutionContext,
        warehouse: WarehouseResource,
        sources: SourcesResource,
    ) -> dg.MaterializeResult:
        try:
            settings = sources.settings()
        except (ValueError, FileNotFoundError) as err:  # configuration: retrying cannot help
            raise dg.Failure(description=str(err), allow_retries=False) from err
        wh = warehouse.open()
        source_name = settings.warehouse_source(source.name)
        since = _since(wh, source_name) if settings.mode == "live" else {}
        context.log.info(f"fetching {source.name} in {settings.mode} mode")
        with _fail_fast_unless_transient(source.name):
            result = source.fetch(settings, since).raise_if_nothing()
            for item, reason in sorted(result.failures.items()):
                context.log.warning(f"{source.name}: {item} failed: {reason}")
            report = wh.ingest(
                result.data, source=source_name, allow_outliers=warehouse.allow_outliers
            )
        context.log.info(
            f"{source_name}: {report.rows_inserted} new, {report.rows_revised} restated, "
            f"{report.rows_unchanged} unchanged"
        )
        data = result.data
        summary = (
            data.group_by("field_path")
            .agg(
                pl.len().alias("rows"),
                pl.col("observed_at").min().dt.date().alias("first"),
                pl.col("observed_at").max().dt.date().alias("last"),
                pl.col("known_at").max().alias("last_known"),
            )
            .sort("field_path")
        )
        metadata = {
            **report.as_metadata(),
            "mode": settings.mode,
            "warehouse": dg.MetadataValue.path(str(wh.path)),
            "first_observed": str(data["observed_at"].min()) if len(data) else "",
            "last_observed": str(data["observed_at"].max()) if len(data) else "",
            "fields_preview": dg.MetadataValue.md(markdown_table(summary, max_rows=60)),
            "dagster/row_count": report.rows_in,
        }
        if result.failures:
            metadata["failures"] = dg.MetadataValue.md(_failure_table(result.failures))
        return dg.MaterializeResult(metadata=metadata)

    return _ingest


def build_ingest_checks(source: Source) -> list[dg.AssetChecksDefinition]:
    """Checks on what the warehouse stores for one source."""

    @dg.asset_check(
        asset=asset_name(source.name),
        name="values_are_finite",
        description="No NaN or infinite value is stored for this source.",
    )
    def values_are_finite(
        warehouse: WarehouseResource, sources: SourcesResource
    ) -> dg.AssetCheckResult:
        name = sources.settings().warehouse_source(source.name)
        bad = warehouse.open().sql(
            "SELECT count(*) AS n FROM observations WHERE source = $s AND "
            "(NOT isfinite(value) OR "
            "list_bool_or(list_transform(vector, lambda x: NOT isfinite(x))))",
            {"s": name},
        )["n"][0]
        return dg.AssetCheckResult(passed=bad == 0, metadata={"non_finite_rows": int(bad)})

    @dg.asset_check(
        asset=asset_name(source.name),
        name="expected_fields_present",
        description="Every field this source is expected to fill has data.",
    )
    def expected_fields_present(
        warehouse: WarehouseResource, sources: SourcesResource
    ) -> dg.AssetCheckResult:
        settings = sources.settings()
        stored = set(
            warehouse.open().sql(
                "SELECT DISTINCT field_path FROM observations WHERE source = $s",
                {"s": settings.warehouse_source(source.name)},
            )["field_path"]
        )
        expected = set(source.expected_fields(settings))
        missing = sorted(expected - stored)
        return dg.AssetCheckResult(
            passed=not missing,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "expected": len(expected),
                "stored": len(stored),
                "missing": ", ".join(missing[:50]) or "none",
            },
        )

    @dg.asset_check(
        asset=asset_name(source.name),
        name="values_plausible",
        description="Few period-to-period changes (log changes for positive series) are "
        "larger than 50 median absolute deviations of their field's changes (at most 1%; "
        "a field whose typical change is zero up to rounding is not judged): spikes from "
        "unit or parsing errors show up here.",
    )
    def values_plausible(
        warehouse: WarehouseResource, sources: SourcesResource
    ) -> dg.AssetCheckResult:
        outliers = warehouse.open().sql(
            """
            WITH series AS (
                SELECT field_path, observed_at, value,
                       min(value) OVER (PARTITION BY field_path) > 0 AS positive
                FROM latest WHERE source = $s AND vector IS NULL
            ),
            changes AS (  -- log changes for positive series (prices), plain changes otherwise
                SELECT field_path,
                       CASE WHEN positive THEN ln(value) ELSE value END
                       - lag(CASE WHEN positive THEN ln(value) ELSE value END)
                         OVER (PARTITION BY field_path ORDER BY observed_at) AS change
                FROM series
            ),
            stats AS (  -- a MAD at rounding-noise level: a flat series, nothing to flag
                SELECT field_path, median(change) AS med, mad(change) AS mad,
                       1e-9 * max(abs(change)) AS noise
                FROM changes GROUP BY field_path
            )
            SELECT field_path, count(change) AS rows,
                   count(*) FILTER (abs(change - med) > 50 * mad AND mad > noise) AS outliers
            FROM changes JOIN stats USING (field_path)
            GROUP BY field_path ORDER BY outliers DESC, field_path
            """,
            {"s": sources.settings().warehouse_source(source.name)},
        )
        total = int(outliers["rows"].sum() or 0)
        flagged = int(outliers["outliers"].sum() or 0)
        share = flagged / total if total else 0.0
        return dg.AssetCheckResult(
            passed=share <= 0.01,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "outliers": flagged,
                "share": round(share, 6),
                "worst_fields": dg.MetadataValue.md(
                    markdown_table(outliers.filter(pl.col("outliers") > 0), max_rows=10)
                ),
            },
        )

    @dg.asset_check(
        asset=asset_name(source.name),
        name="fresh",
        description=f"The source was ingested within {source.max_age.days} days.",
    )
    def fresh(warehouse: WarehouseResource, sources: SourcesResource) -> dg.AssetCheckResult:
        last = warehouse.open().sql(
            "SELECT max(ingested_at) AS t FROM observations WHERE source = $s",
            {"s": sources.settings().warehouse_source(source.name)},
        )["t"][0]
        age = (clock.utc_now() - last) if last is not None else None
        return dg.AssetCheckResult(
            passed=age is not None and age <= source.max_age,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "last_ingested": str(last),
                "age_hours": round(age.total_seconds() / 3600, 1) if age else -1,
            },
        )

    return [values_are_finite, expected_fields_present, values_plausible, fresh]


ingest_assets = [build_ingest_asset(source) for source in REGISTRY]
ingest_checks = [check for source in REGISTRY for check in build_ingest_checks(source)]


class ParquetExportConfig(dg.Config):
    """Where the Parquet export goes."""

    target: str | None = None  # a path or fsspec URL (s3://…); default: beside the database
    keep: int = 2  # snapshots kept on object stores


@dg.asset(
    group_name="warehouse",
    kinds={"parquet", "duckdb"},
    owners=OWNERS,
    deps=[a.key for a in ingest_assets],
    description="Parquet export of every warehouse table (observations hive-partitioned by "
    "source and year, a fixed schema) to a directory or any fsspec URL, for DuckDB, Polars, "
    "PyArrow or Spark readers and for canvases built from the lake (`lake_url`).",
)
def warehouse_parquet(
    config: ParquetExportConfig, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    location = warehouse.open().export_parquet(config.target, keep=config.keep)
    lake = LakeReader(location)
    files = [f for table in lake.manifest.files.values() for f in table]
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(location)),
            "snapshot": lake.manifest.snapshot,
            "files": len(files),
            "bytes": sum(int(f["bytes"]) for f in files),
            "observations": lake.manifest.observations,
            "content_hash": lake.manifest.content_hash,
            "dagster/row_count": lake.manifest.observations,
            "dagster/column_schema": dg.TableSchema(
                columns=[
                    dg.TableColumn(
                        c["name"],
                        str(c["type"]),
                        description="partition key" if c["partition"] else None,
                        constraints=dg.TableColumnConstraints(nullable=bool(c["nullable"])),
                    )
                    for c in lake.manifest.columns["observations"]
                ]
            ),
        }
    )
