"""Quarterly earnings per share: actual, consensus estimate and surprise, per firm.

Writes ``firm_<T>.earnings.{eps_actual, eps_estimate, eps_surprise, eps_surprise_pct}``
(``<T>`` normalised by :func:`warehouse.schema.firm_entity`: ``BRK-B`` -> ``BRK_B``).
``eps_surprise = actual - estimate``; ``eps_surprise_pct = 100 * (actual - estimate) /
|estimate|``, left out when the estimate is 0. A report without an actual (an upcoming
one) writes nothing.

Time conventions (naive UTC):

* ``observed_at`` is the start of the quarter the report is about. When the fiscal period
  end is known (Finnhub), it is the start of the three months ending there:
  ``(period_end + 1 day) - 3 months``. When only the report date is known (yfinance, the
  large-caps and FMP files), it is the start of the calendar quarter *before* the
  report date's quarter, i.e. the most recent completed calendar quarter (a report on
  2021-10-28 is about 2021-07-01). For firms with non-calendar fiscal quarters
  (NVDA, WMT, COST, ORCL) this is the nearest calendar quarter, up to two months off.
* ``known_at`` is the report time: the timestamp yfinance gives (converted to UTC; a
  time of exactly midnight means "time unknown" and is treated as a bare date), else
  the report date at 21:00 UTC (after the US close, so never before the release).
  Finnhub gives no report date: ``known_at`` = period end + 30 days at 21:00 UTC.

Recorded files (``root/earnings/``) and their precedence, highest first:

1. ``earnings_history_30_large_caps.csv`` (report dates, yfinance-like estimates),
2. ``earnings_surprises_fmp_2018_2021.csv`` (report dates, FMP),
3. ``earnings_surprises_finnhub_2025.csv`` (fiscal period ends, no report date).

Per firm, a lower-precedence file contributes only quarters outside the span of
quarters a higher-precedence file already covers for that firm (their quarter labels
need not agree exactly for non-calendar fiscal years). Then each firm keeps one report
per calendar quarter of ``observed_at``: the highest-precedence, earliest-known one (two
reports mapping to one quarter, as COST's October and December reports do, would
otherwise look like a restatement). So no (field, observed_at) gets conflicting values.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from ingest.base import (
    FetchResult,
    RateLimitedError,
    RetryPolicy,
    SourceError,
    call_with_retries,
)
from ingest.protocol import EARNINGS_NEWS_REFRESH, Source, from_synthetic_world, synthetic_fields
from ingest.sources import SourceSettings
from ingest.tables import Table, observation_bounds, parse_columns, read_table
from warehouse import clock
from warehouse.catalog import LARGE_CAP_TICKERS
from warehouse.schema import firm_entity
from warehouse.spec import DatasetSpec
from warehouse.validation import LONG_SCHEMA

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("guwm.ingest.earnings")

SOURCE = "earnings"
SPEC_NAME = "Earnings"
FIELDS = ("eps_actual", "eps_estimate", "eps_surprise", "eps_surprise_pct")
REPORT_TIME_UTC = dt.timedelta(hours=21)
FINNHUB_REPORT_LAG = dt.timedelta(days=30)
EARNINGS_DATES_LIMIT = 100  # yfinance caps get_earnings_dates at 100 rows
DEFAULT_POLICY = RetryPolicy()

LARGE_CAPS_FILE = "earnings_history_30_large_caps.csv"
FMP_FILE = "earnings_surprises_fmp_2018_2021.csv"
FINNHUB_FILE = "earnings_surprises_finnhub_2025.csv"

REPORTS_SCHEMA = {
    "ticker": pl.Utf8,
    "observed_at": pl.Datetime("us"),
    "known_at": pl.Datetime("us"),
    "eps_actual": pl.Float64,
    "eps_estimate": pl.Float64,
    "precedence": pl.Int32,
}
"""One row per earnings report: the intermediate form every reader produces."""

Fetcher = Callable[[str, int], "pd.DataFrame | None"]


# -- quarter rules ---------------------------------------------------------------------


def quarter_before(report_date: pl.Expr) -> pl.Expr:
    """Start of the calendar quarter before the one holding `report_date` (a Date)."""
    return report_date.dt.truncate("1q").dt.offset_by("-1q").cast(pl.Datetime("us"))


def fiscal_quarter_start(period_end: pl.Expr) -> pl.Expr:
    """Start of the three-month fiscal quarter ending on `period_end` (a Date)."""
    return period_end.dt.offset_by("1d").dt.offset_by("-3mo").cast(pl.Datetime("us"))


def _at_report_time(report_date: pl.Expr) -> pl.Expr:
    return report_date.cast(pl.Datetime("us")) + REPORT_TIME_UTC


# -- reports -> long format ------------------------------------------------------------


def _entities(tickers: Iterable[str]) -> tuple[dict[str, str], dict[str, str]]:
    """Ticker -> firm entity for the valid ones, and why the others were rejected."""
    good: dict[str, str] = {}
    bad: dict[str, str] = {}
    for ticker in tickers:
        try:
            good[ticker] = firm_entity(ticker)
        except ValueError as err:
            bad[ticker] = str(err)
    return good, bad


def dedupe_reports(reports: pl.DataFrame) -> pl.DataFrame:
    """Keep one report per firm and quarter, by precedence (see the module docstring)."""
    quarter = pl.col("observed_at").dt.truncate("1q")
    ranked = reports.with_columns(quarter.alias("_quarter"))
    spans = ranked.group_by("ticker", "precedence").agg(
        pl.col("observed_at").min().alias("_lo"), pl.col("observed_at").max().alias("_hi")
    )
    shadowed = (
        ranked.select("ticker", "precedence", "observed_at")
        .join(spans, on="ticker", suffix="_other")
        .filter(
            (pl.col("precedence_other") < pl.col("precedence"))
            & pl.col("observed_at").is_between(pl.col("_lo"), pl.col("_hi"))
        )
        .select("ticker", "precedence", "observed_at")
        .unique()
    )
    return (
        ranked.join(shadowed, on=["ticker", "precedence", "observed_at"], how="anti")
        .sort("ticker", "_quarter", "precedence", "known_at")
        .unique(["ticker", "_quarter"], keep="first", maintain_order=True)
        .drop("_quarter")
    )


def reports_to_long(
    reports: pl.DataFrame, *, now: dt.datetime | None = None
) -> tuple[pl.DataFrame, dict[str, str]]:
    """Report rows (:data:`REPORTS_SCHEMA`) -> long-format EPS fields, and bad tickers.

    Reports without an actual, or known after `now`, are dropped; the rest are
    deduplicated per firm and quarter (:func:`dedupe_reports`).
    """
    now = now or clock.utc_now()
    clean = reports.cast(REPORTS_SCHEMA).filter(  # type: ignore[arg-type]
        pl.col("eps_actual").is_finite()
        & pl.col("observed_at").is_not_null()
        & pl.col("known_at").is_not_null()
        & (pl.col("known_at") <= now)
        & (pl.col("known_at") > pl.col("observed_at"))
    )
    entities, rejected = _entities(clean["ticker"].unique().sort().to_list())
    clean = dedupe_reports(
        clean.filter(pl.col("ticker").is_in(list(entities))).with_columns(
            pl.col("eps_estimate").fill_nan(None)
        )
    ).with_columns(pl.col("ticker").replace_strict(entities, return_dtype=pl.Utf8).alias("firm"))
    actual, estimate = pl.col("eps_actual"), pl.col("eps_estimate")
    values = {
        "eps_actual": actual,
        "eps_estimate": estimate,
        "eps_surprise": actual - estimate,
        "eps_surprise_pct": pl.when(estimate != 0).then(100 * (actual - estimate) / estimate.abs()),
    }
    parts = [
        clean.select(
            (pl.col("firm") + f".earnings.{name}").alias("field_path"),
            "observed_at",
            expr.alias("value"),
            "known_at",
        )
        for name, expr in values.items()
    ]
    long = (
        pl.concat(parts)
        .filter(pl.col("value").is_finite())
        .sort("field_path", "observed_at")
        .cast(LONG_SCHEMA)  # type: ignore[arg-type]
    )
    return long, rejected


# -- recorded --------------------------------------------------------------------------


def _read_checked(path: Path, ticker: str, date: str, actual: str, estimate: str) -> pl.DataFrame:
    """A recorded earnings file with its date (first 10 characters, ISO) and EPS columns
    checked: a bad cell raises TabularError naming file, row and column. A report date in
    the future is fine without an actual (an upcoming report), an error with one."""
    table = read_table(path, label=path.name)
    table.require([ticker, date])
    frame = table.frame.with_columns(
        pl.col(ticker).str.strip_chars(), pl.col(date).str.slice(0, 10)
    )
    return parse_columns(
        Table(frame, table.source, table.separator),
        numbers=[actual, estimate],
        date_column=date,
        date_format="%Y-%m-%d",
        key=[ticker],
        dated=[actual],
        **observation_bounds(),
    ).with_columns(pl.col(date).cast(pl.Date))


def read_large_caps(path: Path, precedence: int = 1) -> pl.DataFrame:
    """The large-caps earnings history: ticker, report date, estimate, actual."""
    raw = _read_checked(path, "ticker", "earnings_date", "eps_actual", "eps_estimate")
    report = pl.col("earnings_date")
    return raw.select(
        pl.col("ticker"),
        quarter_before(report).alias("observed_at"),
        _at_report_time(report).alias("known_at"),
        pl.col("eps_actual"),
        pl.col("eps_estimate"),
        pl.lit(precedence, pl.Int32).alias("precedence"),
    )


def read_fmp(path: Path, precedence: int = 2) -> pl.DataFrame:
    """The FMP surprises file (unnamed index column, date, symbol, actual, estimate)."""
    raw = _read_checked(path, "symbol", "date", "actualEarningResult", "estimatedEarning")
    report = pl.col("date")
    return raw.select(
        pl.col("symbol").alias("ticker"),
        quarter_before(report).alias("observed_at"),
        _at_report_time(report).alias("known_at"),
        pl.col("actualEarningResult").alias("eps_actual"),
        pl.col("estimatedEarning").alias("eps_estimate"),
        pl.lit(precedence, pl.Int32).alias("precedence"),
    )


def read_finnhub(path: Path, precedence: int = 3) -> pl.DataFrame:
    """The Finnhub surprises file: fiscal period end, no report date (+30 days assumed)."""
    raw = _read_checked(path, "symbol", "period", "actual", "estimate")
    period = pl.col("period")
    return raw.select(
        pl.col("symbol").alias("ticker"),
        fiscal_quarter_start(period).alias("observed_at"),
        (_at_report_time(period) + FINNHUB_REPORT_LAG).alias("known_at"),
        pl.col("actual").alias("eps_actual"),
        pl.col("estimate").alias("eps_estimate"),
        pl.lit(precedence, pl.Int32).alias("precedence"),
    )


RECORDED_READERS: tuple[tuple[str, Callable[[Path], pl.DataFrame]], ...] = (
    (LARGE_CAPS_FILE, read_large_caps),
    (FMP_FILE, read_fmp),
    (FINNHUB_FILE, read_finnhub),
)
"""The recorded files in order of precedence (first wins)."""


def load_earnings_recorded(
    root: Path,
    tickers: Iterable[str] | None = None,
    *,
    start_date: dt.date | str | None = None,
    now: dt.datetime | None = None,
) -> FetchResult:
    """The recorded earnings files under ``root/earnings/`` -> long-format EPS fields.

    `tickers` restricts to those firms (each without any row is a failure); None loads
    every firm in the files (over 2,000 in the FMP file). `start_date` drops quarters
    observed before it. Precedence between files: see the module docstring.
    """
    root = Path(root)
    base = root / "earnings" if (root / "earnings").is_dir() else root
    frames: list[pl.DataFrame] = []
    failures: dict[str, str] = {}
    for name, reader in RECORDED_READERS:
        path = base / name
        if not path.is_file():
            failures[name] = f"file not found under {base}"
            continue
        try:
            frames.append(reader(path))
        except (ValueError, pl.exceptions.PolarsError) as err:
            failures[name] = f"{type(err).__name__}: {err}"
    reports = pl.concat(frames) if frames else pl.DataFrame(schema=REPORTS_SCHEMA)
    wanted: list[str] | None = None
    if tickers is not None:
        wanted = list(dict.fromkeys(tickers))
        reports = reports.filter(pl.col("ticker").is_in(wanted))
    if start_date is not None:
        reports = reports.filter(pl.col("observed_at") >= _as_datetime(start_date))
    data, rejected = reports_to_long(reports, now=now)
    if wanted is not None:
        failures.update({t: f"invalid ticker: {why}" for t, why in rejected.items()})
        failures.update(_missing(wanted, data, "no rows in the recorded earnings files"))
    elif rejected:
        log.info("earnings recorded: %d invalid ticker(s) skipped", len(rejected))
    return FetchResult(SOURCE, data, failures)


def _missing(tickers: Iterable[str], data: pl.DataFrame, reason: str) -> dict[str, str]:
    present = set(data["field_path"].str.split(".").list.first().unique().to_list())
    out = {}
    for ticker in tickers:
        try:
            entity = firm_entity(ticker)
        except ValueError as err:
            out[ticker] = f"invalid ticker: {err}"
            continue
        if entity not in present:
            out[ticker] = reason
    return out


# -- live ------------------------------------------------------------------------------


def parse_earnings_dates(ticker: str, frame: pd.DataFrame | None) -> pl.DataFrame:
    """``Ticker.get_earnings_dates()`` output -> report rows (:data:`REPORTS_SCHEMA`).

    Expects the yfinance 1.7 shape: index 'Earnings Date' (tz-aware, exchange zone) or a
    column of that name, and columns 'EPS Estimate', 'Reported EPS' (NaN for upcoming
    reports), 'Surprise(%)' (not used: the surprise is recomputed).
    """
    if frame is None or len(frame) == 0:
        return pl.DataFrame(schema=REPORTS_SCHEMA)
    import numpy as np
    import pandas as pd

    when = frame["Earnings Date"] if "Earnings Date" in frame.columns else frame.index.to_series()
    stamps = pd.DatetimeIndex(pd.to_datetime(when, errors="coerce"))
    naive = stamps.tz is None  # exchange wall time of unknown zone: keep only the date
    local = stamps if naive else stamps.tz_localize(None)
    utc = stamps if naive else stamps.tz_convert("UTC").tz_localize(None)

    def numbers(name: str) -> Any:
        if name not in frame.columns:
            return np.full(len(frame), np.nan)
        return pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype="float64")

    rows = pl.DataFrame(
        {
            "local": pl.Series(local.to_numpy()).cast(pl.Datetime("us")),
            "utc": pl.Series(utc.to_numpy()).cast(pl.Datetime("us")),
            "eps_actual": numbers("Reported EPS"),
            "eps_estimate": numbers("EPS Estimate"),
        }
    )
    report_date = pl.col("local").dt.date()
    time_unknown = pl.lit(naive) | (pl.col("local") == pl.col("local").dt.truncate("1d"))
    return rows.filter(pl.col("local").is_not_null()).select(
        pl.lit(ticker, pl.Utf8).alias("ticker"),
        quarter_before(report_date).alias("observed_at"),
        pl.when(time_unknown)
        .then(_at_report_time(report_date))
        .otherwise(pl.col("utc"))
        .alias("known_at"),
        pl.col("eps_actual").fill_nan(None),
        pl.col("eps_estimate").fill_nan(None),
        pl.lit(1, pl.Int32).alias("precedence"),
    )


def _default_fetcher(ticker: str, limit: int) -> pd.DataFrame | None:
    import yfinance as yf

    return yf.Ticker(ticker).get_earnings_dates(limit=limit)


def _rate_limit_types() -> tuple[type[BaseException], ...]:
    try:
        from yfinance.exceptions import YFRateLimitError
    except ImportError:  # pragma: no cover - yfinance is a dependency
        return ()
    return (YFRateLimitError,)


def fetch_earnings_live(
    tickers: Iterable[str],
    *,
    policy: RetryPolicy = DEFAULT_POLICY,
    fetcher: Fetcher | None = None,
    limit: int = EARNINGS_DATES_LIMIT,
    now: dt.datetime | None = None,
) -> FetchResult:
    """Earnings of each ticker from yfinance ``Ticker(t).get_earnings_dates(limit)``.

    A rate limit (``YFRateLimitError``) or network error is retried with backoff per
    `policy`; a ticker that still fails, or has no reported quarter, is recorded in
    ``failures`` and the others are kept. `fetcher(ticker, limit)` replaces yfinance in
    tests.
    """
    fetcher = fetcher or _default_fetcher
    rate_limit_types = _rate_limit_types()
    frames: list[pl.DataFrame] = []
    failures: dict[str, str] = {}
    wanted = list(dict.fromkeys(tickers))
    for ticker in wanted:

        def attempt(ticker: str = ticker) -> pd.DataFrame | None:
            try:
                return fetcher(ticker, limit)
            except rate_limit_types as err:
                raise RateLimitedError(f"{type(err).__name__}: {err}") from err

        try:
            raw = call_with_retries(
                attempt,
                policy=policy,
                what=f"source '{SOURCE}': earnings dates of {ticker}",
                retry_on=(RateLimitedError, OSError),
            )
            frames.append(parse_earnings_dates(ticker, raw))
        except SourceError as err:
            failures[ticker] = str(err)
        except Exception as err:  # one broken ticker never loses the others
            failures[ticker] = f"{type(err).__name__}: {err}"
    reports = pl.concat(frames) if frames else pl.DataFrame(schema=REPORTS_SCHEMA)
    data, rejected = reports_to_long(reports, now=now)
    failures.update({t: f"invalid ticker: {why}" for t, why in rejected.items()})
    for ticker, reason in _missing(wanted, data, "no reported earnings returned").items():
        failures.setdefault(ticker, reason)
    return FetchResult(SOURCE, data, failures)


# -- adapter ---------------------------------------------------------------------------


def spec_for(paths: Iterable[str]) -> DatasetSpec:
    """The "Earnings" DatasetSpec over firm paths; keys like ``AAPL_eps_actual``."""
    unique = sorted(set(paths))
    keys = [p.removeprefix("firm_").replace(".earnings.", "_") for p in unique]
    return DatasetSpec.from_fields(SPEC_NAME, dict(zip(keys, unique, strict=True)))


def earnings_adapter(
    tickers: Iterable[str] | None = None,
    *,
    recorded_dir: Path | str | None = None,
    start_date: dt.date | str | None = None,
    policy: RetryPolicy = DEFAULT_POLICY,
    fetcher: Fetcher | None = None,
) -> tuple[DatasetSpec, pl.DataFrame]:
    """Quarterly EPS as (DatasetSpec, long-format frame) for `tickers`.

    `tickers` defaults to the schema's large caps (`warehouse.catalog.LARGE_CAP_TICKERS`).
    Live through yfinance by default; from the recorded files when `recorded_dir` is given. Raises
    SourceError when every ticker failed.
    """
    wanted = list(tickers) if tickers is not None else list(LARGE_CAP_TICKERS)
    if recorded_dir is not None:
        result = load_earnings_recorded(Path(recorded_dir), wanted, start_date=start_date)
    else:
        result = fetch_earnings_live(wanted, policy=policy, fetcher=fetcher)
        if start_date is not None:
            result.data = result.data.filter(pl.col("observed_at") >= _as_datetime(start_date))
    data = result.raise_if_nothing().data
    return spec_for(data["field_path"].unique().to_list()), data


def _as_datetime(value: dt.date | str) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    return _as_datetime(dt.date.fromisoformat(str(value)[:10]))


# -- the source --------------------------------------------------------------------------


def _recorded(settings: SourceSettings, since: Mapping[str, dt.date]) -> FetchResult:
    return load_earnings_recorded(Path(settings.recorded_dir), tickers=list(settings.tickers))


def _live(settings: SourceSettings, since: Mapping[str, dt.date]) -> FetchResult:
    return fetch_earnings_live(list(settings.tickers), policy=settings.policy)


def _expected_fields(settings: SourceSettings) -> list[str]:
    if settings.mode == "synthetic":
        return synthetic_fields(SOURCE, settings)
    return sorted(f"{firm_entity(t)}.earnings.{f}" for t in settings.tickers for f in FIELDS)


EARNINGS_SOURCE = Source(
    name=SOURCE,
    description="Quarterly EPS actual, estimate and surprise per firm "
    "(firm_<TICKER>.earnings.*), known at the report date.",
    modes={"synthetic": from_synthetic_world(SOURCE), "recorded": _recorded, "live": _live},
    expected_fields=_expected_fields,
    max_age=dt.timedelta(days=100),
    refresh=EARNINGS_NEWS_REFRESH,
)


__all__ = [
    "EARNINGS_SOURCE",
    "FIELDS",
    "REPORTS_SCHEMA",
    "dedupe_reports",
    "earnings_adapter",
    "fetch_earnings_live",
    "fiscal_quarter_start",
    "load_earnings_recorded",
    "parse_earnings_dates",
    "quarter_before",
    "reports_to_long",
    "spec_for",
]
