"""Any CSV or Parquet file into the warehouse: a user mapping of column -> field path.

`tabular_adapter(path, mapping={...})` reads a wide table (one date column, one column per
series), unpivots it to the warehouse's long format and returns it with a DatasetSpec.
How dates, known_at, missing values and errors are read: :mod:`ingest.tables`.

As the `tabular` source (:data:`TABULAR_SOURCE`) it reads every table of a YAML spec
(`SourceSettings.tabular_spec`), else a default per mode (:func:`tabular_tables`).
"""

from __future__ import annotations

import datetime as dt
import re
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePath
from typing import Any

import polars as pl
import yaml

from ingest.base import FetchResult, SourceError
from ingest.protocol import MACRO_REFRESH, Source
from ingest.sources import MODES, SourceSettings
from ingest.synthetic import synthetic_world
from ingest.tables import TabularError, read_table, to_long
from warehouse.schema import Schema, UnknownFieldError, default_schema
from warehouse.spec import DatasetSpec

__all__ = [
    "SYNTHETIC_SPREADSHEET",
    "TABULAR_SOURCE",
    "TabularBatchError",
    "UnknownMappedFieldError",
    "check_mapping",
    "read_tabular",
    "tabular_adapter",
    "tabular_tables",
]


class TabularBatchError(ValueError):
    """Some tables of one batch could not be read: every bad table's error, at once."""

    def __init__(self, errors: list[TabularError], n_tables: int) -> None:
        self.errors = errors
        bad = "\n".join(f"  - {err}" for err in errors)
        super().__init__(f"{len(errors)} of {n_tables} tables could not be read:\n{bad}")


class UnknownMappedFieldError(TabularError, UnknownFieldError):
    """A mapping names a field path the schema does not know (with the nearest paths)."""

    def __init__(self, source: str, column: str, err: UnknownFieldError) -> None:
        UnknownFieldError.__init__(self, err.path, err.suggestions, err.is_pattern)
        TabularError.__init__(self, source, f"mapping: {err}", column=column)

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]


def check_mapping(mapping: Mapping[str, str], source: str, schema: Schema | None = None) -> None:
    """Every mapped path is a known, observable, scalar field (errors name the column)."""
    schema = schema or default_schema()
    if not mapping:
        raise TabularError(source, "mapping is empty: give {column: field path, ...}")
    for column, path in mapping.items():
        try:
            field = schema.field(path)
        except UnknownFieldError as err:
            raise UnknownMappedFieldError(source, column, err) from None
        if field.latent:
            raise TabularError(
                source,
                f"mapping: {path} is a latent regime field; no file can observe it",
                column=column,
            )
        if field.is_vector:
            raise TabularError(
                source,
                f"mapping: {path} is a vector field (dimension {field.dimension}); a table "
                "column holds one number per row",
                column=column,
            )


def _spec_name(path: Path) -> str:
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", path.stem).strip("_") or "table"
    return f"tabular_{stem}"


# -- the adapter -----------------------------------------------------------------------


def read_tabular(
    path: str | Path,
    mapping: Mapping[str, str],
    *,
    date_column: str = "date",
    known_at_column: str | None = None,
    release_lag: str | None = None,
    date_format: str | None = None,
    encoding: str = "utf8",
    separator: str = ",",
    skip_rows_after_header: int = 0,
    missing_values: Iterable[str] = (),
) -> pl.DataFrame:
    """Long-format rows of a CSV or Parquet file (by suffix).

    `mapping` maps file columns to schema field paths. known_at comes from
    `known_at_column`, else observed_at + `release_lag`, else observed_at (see
    :mod:`ingest.tables`). Raises TabularError naming file, column and row for every bad
    input; an unknown field path raises UnknownMappedFieldError (a TabularError and an
    UnknownFieldError).
    """
    mapping = dict(mapping)
    check_mapping(mapping, str(path))
    table = read_table(
        Path(path),
        encoding=encoding,
        separator=separator,
        skip_rows_after_header=skip_rows_after_header,
    )
    return to_long(
        table,
        mapping,
        date_column=date_column,
        known_at_column=known_at_column,
        release_lag=release_lag,
        date_format=date_format,
        missing_values=missing_values,
    )


def tabular_adapter(
    path: str | Path,
    mapping: Mapping[str, str],
    *,
    date_column: str = "date",
    known_at_column: str | None = None,
    release_lag: str | None = None,
    name: str | None = None,
    date_format: str | None = None,
    encoding: str = "utf8",
    separator: str = ",",
    skip_rows_after_header: int = 0,
    missing_values: Iterable[str] = (),
) -> tuple[DatasetSpec, pl.DataFrame]:
    """A CSV or Parquet file (by suffix) as a DatasetSpec and long-format rows.

    The rows are :func:`read_tabular`'s. The spec maps `mapping`'s columns to their field
    paths and is named `name` (default ``tabular_<file stem>``), usable as warehouse source.
    """
    frame = read_tabular(
        path,
        mapping,
        date_column=date_column,
        known_at_column=known_at_column,
        release_lag=release_lag,
        date_format=date_format,
        encoding=encoding,
        separator=separator,
        skip_rows_after_header=skip_rows_after_header,
        missing_values=missing_values,
    )
    return DatasetSpec.from_fields(name or _spec_name(Path(path)), dict(mapping)), frame


# -- the source --------------------------------------------------------------------------

SENTIMENT_FIELD = "country_us.macro.sentiment.consumer_sentiment"

# The synthetic mode's table: a user-style CSV export written at fetch time.
SYNTHETIC_SPREADSHEET: dict[str, Any] = {
    "path": "sentiment_survey.csv",
    "name": "sentiment survey",
    "mapping": {"sentiment": SENTIMENT_FIELD},
    "date_column": "month",
    "release_lag": "1mo14d",
}


def tabular_tables(settings: SourceSettings) -> list[dict[str, Any]]:
    """The tables the tabular source reads: `tabular_spec` (YAML), else a default per mode.

    A spec file holds `tables:`, each with `path` and `mapping` (column -> field path)
    and optionally `date_column`, `known_at_column`, `release_lag`, `date_format`,
    `skip_rows_after_header`, `separator`, `encoding`, `name` (tabular_adapter's
    arguments; paths are relative to the spec file and stay in its folder).
    """
    if settings.tabular_spec is not None:
        spec_path = Path(settings.tabular_spec)
        tables = yaml.safe_load(spec_path.read_text()).get("tables") or []
        return [{**t, "path": str(_table_path(spec_path, t))} for t in tables]
    if settings.mode == "recorded":
        return [
            {
                "path": str(Path(settings.recorded_dir) / "macro" / "fred_md_current.csv"),
                "name": "FRED-MD",
                "mapping": {"TB3MS": "country_us.macro.rates.treasury_3m"},
                "date_column": "sasdate",
                "date_format": "%m/%d/%Y",
                "skip_rows_after_header": 1,
                "release_lag": "1mo5d",
            }
        ]
    if settings.mode == "synthetic":
        return [SYNTHETIC_SPREADSHEET]
    return []


def _table_path(spec: Path, table: Any) -> Path:
    """A spec table's file: relative to the spec file's folder, and confined to it.

    Absolute paths and '..' are refused, so a spec can name only files beside it (a
    symlink placed there by the owner of the folder is followed).
    """
    raw = table.get("path") if isinstance(table, Mapping) else None
    if not isinstance(raw, str) or not raw.strip():
        raise ValueError(f"tabular spec {spec}: every table needs a path (relative to the spec)")
    relative = PurePath(raw)
    if relative.is_absolute() or ".." in relative.parts:
        raise ValueError(
            f"tabular spec {spec}: table path {raw!r} must be relative to the spec's folder "
            f"{spec.parent} and stay inside it (no absolute path, no '..')"
        )
    return spec.parent / relative


def _write_synthetic_spreadsheet(settings: SourceSettings, directory: Path) -> Path:
    """Monthly consumer sentiment from the synthetic world, as a user would export it."""
    frame = synthetic_world(settings.synthetic_config).sources["fred"]
    table = (
        frame.filter(pl.col("field_path") == SENTIMENT_FIELD)
        .group_by("observed_at")
        .agg(pl.col("value").sort_by("known_at").last().alias("sentiment"))
        .sort("observed_at")
        .select(pl.col("observed_at").dt.strftime("%Y-%m-%d").alias("month"), "sentiment")
    )
    target = directory / SYNTHETIC_SPREADSHEET["path"]
    table.write_csv(target)
    return target


def _fetch_tables(settings: SourceSettings, since: Mapping[str, dt.date]) -> FetchResult:
    """Every table of :func:`tabular_tables`, each bad one reported (TabularBatchError)."""
    tables = tabular_tables(settings)
    if not tables:
        raise SourceError("source 'tabular': live mode needs tabular_spec (a YAML of tables)")
    with tempfile.TemporaryDirectory(prefix="guwm-tabular-") as tmp:
        frames, errors = [], []
        for table in tables:
            if table is SYNTHETIC_SPREADSHEET:
                table = {**table, "path": _write_synthetic_spreadsheet(settings, Path(tmp))}
            options = {key: value for key, value in table.items() if key != "name"}
            try:
                frames.append(read_tabular(**options))
            except TabularError as err:  # read every table: report every bad one at once
                errors.append(err)
    if errors:
        raise TabularBatchError(errors, len(tables))
    return FetchResult("tabular", pl.concat(frames, how="diagonal_relaxed"))


def _expected_fields(settings: SourceSettings) -> list[str]:
    return sorted({p for t in tabular_tables(settings) for p in t["mapping"].values()})


TABULAR_SOURCE = Source(
    name="tabular",
    description="Any CSV/Parquet tables mapped column by column to field paths (tabular_adapter): "
    "the tables of $GUWM_TABULAR_SPEC, else a default per mode.",
    modes=dict.fromkeys(MODES, _fetch_tables),
    expected_fields=_expected_fields,
    max_age=dt.timedelta(days=35),
    refresh=MACRO_REFRESH,
)
