"""From raw FRED observations to the warehouse's long format: release times and transforms.

Raw ``(date, value, realtime_start)`` rows, live or recorded, go through :func:`to_long`,
the one code path to ``field_path, observed_at, value, known_at``:

* ``observed_at`` is FRED's observation date (start of the period; weekly series carry
  FRED's week-ending date).
* ``known_at`` is when the value became public. With ALFRED vintages it is the vintage's
  ``realtime_start`` at the series' release time of day (UTC). Otherwise it is the end of the
  observation period + the series' release lag, rolled forward to a weekday, at the release
  time (e.g. CPI: month end + 13 days, 12:30 UTC). Never later than now: data we hold is known.
* Transforms that need an earlier observation (``yoy_pct``, ``qoq_saar``, ``mom_diff``) join
  on the calendar date one period back (not a row shift, so gaps leave gaps), as known at
  the same time: an as-of join on ``known_at``, re-evaluated whenever either value is
  revised. NaN/inf results (e.g. a division by zero) are dropped.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from ingest.fred_series import FredSeries, Frequency, Transform

__all__ = ["RAW_SCHEMA", "empty_raw", "to_long"]

RAW_SCHEMA = {"date": pl.Date, "value": pl.Float64, "realtime_start": pl.Date}


def _period_end(frequency: Frequency) -> pl.Expr:
    date = pl.col("date")
    if frequency == "M":
        return date.dt.month_end()
    if frequency == "Q":
        return date.dt.offset_by("2mo").dt.month_end()
    return date  # daily, and weekly series dated at the end of their week


def _known_at(series: FredSeries, now: dt.datetime) -> pl.Expr:
    release = series.release
    at = pl.lit(release.time_of_day)
    scheduled = (
        _period_end(series.frequency)
        .dt.offset_by(f"{release.days}d")
        .dt.add_business_days(0, roll="forward")
        .cast(pl.Datetime("us"))
    )
    vintage = pl.col("realtime_start").cast(pl.Datetime("us"))
    known = pl.coalesce(vintage, scheduled) + at
    # Held now, so known by now; never before the observation starts.
    return pl.max_horizontal(
        pl.min_horizontal(known, pl.lit(now, pl.Datetime("us"))),
        pl.col("date").cast(pl.Datetime("us")),
    )


def _apply_transform(frame: pl.DataFrame, transform: Transform) -> pl.DataFrame:
    """`frame` (date, known_at, value) transformed, point in time.

    A lagged transform is evaluated at every time either input changed (the union of both
    inputs' known_at), each input as known then: an as-of join on known_at.
    """
    if transform.lag is None:
        return frame.with_columns(value=transform.expr(pl.col("value"), pl.col("value")))
    current = frame.sort("known_at")
    lagged = (
        frame.select(
            pl.col("date").dt.offset_by(transform.lag), "known_at", pl.col("value").alias("lagged")
        )
        .unique(["date", "known_at"], keep="last")
        .sort("known_at")
    )
    events = (
        pl.concat([current.select("date", "known_at"), lagged.select("date", "known_at")])
        .unique()
        .sort("known_at")
    )
    return (
        events.join_asof(
            current, on="known_at", by="date", strategy="backward", check_sortedness=False
        )
        .join_asof(lagged, on="known_at", by="date", strategy="backward", check_sortedness=False)
        .drop_nulls(["value", "lagged"])
        .select(
            "date", "known_at", transform.expr(pl.col("value"), pl.col("lagged")).alias("value")
        )
        .sort("date", "known_at")
        # keep an event only when it changed the value
        .filter(pl.col("value").ne_missing(pl.col("value").shift(1).over("date")))
    )


def to_long(
    raw: pl.DataFrame,
    series: FredSeries,
    *,
    now: dt.datetime,
    start: dt.date | None,
    end: dt.date | None,
) -> pl.DataFrame:
    """Raw (date, value, realtime_start) rows of one series -> long-format rows."""
    frame = (
        raw.select(
            pl.col("date").cast(pl.Date),
            pl.col("value").cast(pl.Float64),
            pl.col("realtime_start").cast(pl.Date),
        )
        .filter(pl.col("date").is_not_null() & pl.col("value").is_finite())
        .select("date", _known_at(series, now).alias("known_at"), "value")
        .filter(pl.col("known_at") <= now)  # drops observations dated after now
        .unique(["date", "known_at"], keep="last")
    )
    out = _apply_transform(frame, series.transform).filter(pl.col("value").is_finite())
    if start is not None:
        out = out.filter(pl.col("date") >= start)
    if end is not None:
        out = out.filter(pl.col("date") <= end)
    return out.select(
        pl.lit(series.field_path, pl.Utf8).alias("field_path"),
        pl.col("date").cast(pl.Datetime("us")).alias("observed_at"),
        "value",
        pl.col("known_at").cast(pl.Datetime("us")),
    )


def empty_raw() -> pl.DataFrame:
    return pl.DataFrame(schema=RAW_SCHEMA)
