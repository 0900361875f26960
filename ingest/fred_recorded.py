"""Recorded FRED files as raw rows: ``<root>/macro/fred/<ID>.csv`` (``date,value``).

Each monthly series is extended back in time with FRED-MD (McCracken & Ng's monthly
database, ``<root>/macro/fred_md_current.csv``, from 1959) where that file holds the same
series before the recorded file starts.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from ingest.base import SourceError
from ingest.fred_series import FredSeries
from ingest.tables import TabularError, observation_bounds, parse_columns, read_table

__all__ = ["FRED_MD_FILE", "fred_folder", "read_fred_md", "read_recorded"]


def fred_folder(root: Path) -> Path:
    """`root/macro/fred` when it exists (a folder like shared/data), else `root` itself."""
    nested = Path(root) / "macro" / "fred"
    return nested if nested.is_dir() else Path(root)


FRED_MD_FILE = "fred_md_current.csv"


def read_fred_md(root: Path) -> pl.DataFrame | None:
    """FRED-MD beside the recorded files (``root/macro/`` or ``root/``): ``date`` and one
    Float64 column per series mnemonic; None when there is no such file."""
    for path in (Path(root) / "macro" / FRED_MD_FILE, Path(root) / FRED_MD_FILE):
        if not path.is_file():
            continue
        # row 2 holds the transformation codes ("Transform:,5,5,..."), not observations
        table = read_table(path, label=path.name, skip_rows_after_header=1)
        series = [c for c in table.columns if c != "sasdate"]
        try:
            parsed = parse_columns(
                table,
                numbers=series,
                date_column="sasdate",
                date_format="%m/%d/%Y",
                **observation_bounds(),
            )
        except TabularError as err:
            raise SourceError(f"unparseable row(s) in {err}") from None
        return parsed.select(pl.col("sasdate").cast(pl.Date).alias("date"), *series)
    return None


def read_recorded(
    directory: Path, series: FredSeries, history: pl.DataFrame | None = None
) -> pl.DataFrame:
    """A recorded series' raw rows; a monthly one preceded by `history` (FRED-MD) rows of
    the same series dated before the file's first observation."""
    recorded = _read_recorded_file(directory, series)
    if history is None or series.frequency != "M" or series.series_id not in history.columns:
        return recorded
    first = recorded["date"].min()
    earlier = history.select("date", pl.col(series.series_id).alias("value")).filter(
        pl.col("value").is_not_null() & ((pl.col("date") < first) if first else pl.lit(True))
    )
    return pl.concat(
        [earlier.with_columns(pl.lit(None, pl.Date).alias("realtime_start")), recorded]
    )


def _read_recorded_file(directory: Path, series: FredSeries) -> pl.DataFrame:
    path = directory / f"{series.series_id}.csv"
    if not path.is_file():
        raise SourceError(f"no recorded file {path.name} in {directory}")
    # encoding, truncated rows and empty files: TabularError naming file, row and line
    table = read_table(path, label=path.name)
    value_columns = {"value", series.key}
    if (
        len(table.columns) != 2
        or table.columns[0] != "date"
        or table.columns[1] not in value_columns
    ):
        raise SourceError(
            f"{path.name}: expected columns date,value (or date,{series.key}), "
            f"got {','.join(table.columns)}"
        )
    try:
        parsed = parse_columns(
            table,
            numbers=[table.columns[1]],
            date_column="date",
            date_format="%Y-%m-%d",
            missing_values=["."],
            **observation_bounds(),
        )
    except TabularError as err:
        raise SourceError(f"unparseable row(s) in {err}") from None
    return parsed.select(
        pl.col("date").cast(pl.Date),
        pl.col(table.columns[1]).alias("value"),
        pl.lit(None, pl.Date).alias("realtime_start"),
    )
