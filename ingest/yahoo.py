"""Yahoo Finance: daily closes, daily returns and realised volatility through yfinance.

A declarative instrument table (:data:`INSTRUMENTS`) maps each Yahoo symbol to its asset
class and to the schema fields it feeds: the level (the close, or a transform of it), the
daily percent change of the close (``*_return_1d``) and the annualised 21-trading-day
realised volatility (``*_realized_vol_21d``), each only where the schema declares it.

Time conventions (long format, naive UTC):

* ``observed_at`` is the trading day: the exchange-local date of the bar, at 00:00.
* ``known_at`` is that day's close in UTC, approximated per asset class (see
  :data:`CLOSE_UTC`): US equities, large caps and Treasury yield indices 21:00, VIX 21:15,
  FX and futures 22:00, crypto 23:59:59 (it trades around the clock); the two non-US
  indices carry their own close. Times are the winter (standard-time) closes, so in summer
  ``known_at`` is an hour late, never early: no look-ahead.
* Non-trading days have no rows (nothing is forward-filled); crypto has seven days a week.
  Returns and volatility are computed on each instrument's own calendar, vectorised over
  the sorted series with ``.over("symbol")``.
* Bars whose close lies in the future when fetched (today's bar during the session, which
  Yahoo reports with the current price) are dropped.

Returns use the adjusted close (yfinance ``auto_adjust=True``: split- and
dividend-adjusted, so a large cap's return on an ex-dividend day is its total return;
the recorded stock CSVs are split-adjusted only). Realised volatility is the
sample standard deviation (ddof=1) of 21 daily log returns, times sqrt(252) (sqrt(365)
for crypto) and 100. Log returns are undefined across a non-positive price (WTI closed
at -37.63 on 2020-04-20); those windows give no volatility rather than NaN. Returns and
volatilities are rounded to 1e-6 percent so a re-fetch of back-adjusted prices (floating
point noise) does not look like a restatement to the warehouse.

Live fetches (:func:`fetch_yahoo_live`) are incremental and batched; ``yf.download``
never raises, so failures are read per symbol from the frame it returns (empty or all-NaN
columns) and from the errors it logs (a rate limit is retried with backoff). Recorded
yfinance CSVs (:func:`load_yahoo_recorded`) go through the same code after parsing.

Not mapped: ``^IRX`` (13-week bill on a discount basis, not the 3-month constant-maturity
yield of ``financial.yield_curves.three_month``), and IVV (no schema field).
"""

from __future__ import annotations

import datetime as dt
import difflib
import logging
import math
import re
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
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
from ingest.protocol import MARKET_REFRESH, Source, from_synthetic_world, synthetic_fields
from ingest.sources import SourceSettings
from ingest.tables import LINE, ROW, Table, observation_bounds, parse_columns, read_table
from warehouse import clock
from warehouse.catalog import LARGE_CAP_TICKERS
from warehouse.spec import DatasetSpec
from warehouse.validation import LONG_SCHEMA

if TYPE_CHECKING:
    import pandas as pd

    from warehouse.store import Warehouse

log = logging.getLogger("guwm.ingest.yahoo")

SOURCE = "yahoo"
SPEC_NAME = "Yahoo Finance"
BATCH_SIZE = 20
VOL_WINDOW = 21
# Calendar days fetched before the first wanted date so that returns and the 21-day
# volatility at that date see their full history (about 34 trading days).
LOOKBACK = dt.timedelta(days=50)
DERIVED_DECIMALS = 6
DEFAULT_POLICY = RetryPolicy()


class AssetClass(StrEnum):
    """What kind of instrument a symbol is; sets its close time and annualisation."""

    EQUITY_INDEX = "equity_index"
    LARGE_CAP = "large_cap"
    VOLATILITY = "volatility"
    RATES = "rates"
    FX = "fx"
    COMMODITY = "commodity"
    CRYPTO = "crypto"


def _hm(hours: int, minutes: int = 0, seconds: int = 0) -> dt.timedelta:
    return dt.timedelta(hours=hours, minutes=minutes, seconds=seconds)


CLOSE_UTC: dict[AssetClass, dt.timedelta] = {
    AssetClass.EQUITY_INDEX: _hm(21),  # NYSE 16:00 ET
    AssetClass.LARGE_CAP: _hm(21),
    AssetClass.VOLATILITY: _hm(21, 15),  # VIX settles 16:15 ET
    AssetClass.RATES: _hm(21),
    AssetClass.FX: _hm(22),  # New York 17:00 ET
    AssetClass.COMMODITY: _hm(22),  # CME Globex day ends 17:00 ET
    AssetClass.CRYPTO: _hm(23, 59, 59),  # 24/7: end of the UTC day
}
"""Time after local midnight of the trading day at which its close is known (UTC)."""

TRADING_DAYS_PER_YEAR: dict[AssetClass, int] = {c: 252 for c in AssetClass} | {
    AssetClass.CRYPTO: 365
}


@dataclass(frozen=True)
class Instrument:
    """One Yahoo symbol and the schema fields it feeds (None where the schema has none)."""

    symbol: str
    asset_class: AssetClass
    level: str | None
    return_1d: str | None = None
    realized_vol_21d: str | None = None
    close_utc: dt.timedelta | None = None  # overrides CLOSE_UTC[asset_class]
    level_scale: float = 1.0  # level = close * level_scale + level_offset
    level_offset: float = 0.0

    @property
    def paths(self) -> list[str]:
        """The field paths this instrument writes."""
        return [p for p in (self.level, self.return_1d, self.realized_vol_21d) if p]

    @property
    def known_after_midnight(self) -> dt.timedelta:
        """Time after local midnight of the trading day when the close is known (UTC)."""
        return self.close_utc if self.close_utc is not None else CLOSE_UTC[self.asset_class]


def _eq(
    symbol: str,
    name: str,
    *,
    vol: bool = False,
    returns: bool = True,
    close: dt.timedelta | None = None,
) -> Instrument:
    base = f"financial.equities.{name}"
    return Instrument(
        symbol,
        AssetClass.EQUITY_INDEX,
        base,
        f"{base}_return_1d" if returns else None,
        f"{base}_realized_vol_21d" if vol else None,
        close_utc=close,
    )


def _one(symbol: str, asset_class: AssetClass, path: str, **kwargs: Any) -> Instrument:
    return Instrument(symbol, asset_class, path, **kwargs)


# fmt: off
INSTRUMENTS: tuple[Instrument, ...] = (
    # US and world equity indices
    _eq("^GSPC", "sp500", vol=True),
    _eq("^NDX", "nasdaq100"),
    _eq("^DJI", "dow_jones"),
    _eq("^RUT", "russell2000"),
    _eq("^STOXX50E", "euro_stoxx50", returns=False, close=_hm(17)),  # 17:30 CET + auction
    _eq("^N225", "nikkei225", returns=False, close=_hm(7)),  # 15:30 JST
    # implied volatility
    _one("^VIX", AssetClass.VOLATILITY, "financial.equities.vix"),
    _one("^VIX3M", AssetClass.VOLATILITY, "financial.equities.vix_3m"),
    # large caps: the schema has only their daily return
    *(Instrument(t, AssetClass.LARGE_CAP, None, f"financial.large_caps.{t.lower()}_return_1d")
      for t in LARGE_CAP_TICKERS),
    # Treasury yield indices (CBOE, quoted in percent) and fed funds futures
    _one("^FVX", AssetClass.RATES, "financial.yield_curves.five_year"),
    _one("^TNX", AssetClass.RATES, "financial.yield_curves.ten_year"),
    _one("^TYX", AssetClass.RATES, "financial.yield_curves.thirty_year"),
    _one("ZQ=F", AssetClass.RATES, "financial.money_markets.fed_funds_futures_rate",
         close_utc=_hm(22), level_scale=-1.0, level_offset=100.0),  # rate = 100 - price
    # FX (Yahoo: JPY=X is yen per dollar, EURUSD=X dollars per euro)
    _one("EURUSD=X", AssetClass.FX, "financial.fx.eurusd"),
    _one("JPY=X", AssetClass.FX, "financial.fx.usdjpy"),
    _one("GBPUSD=X", AssetClass.FX, "financial.fx.gbpusd"),
    _one("CNH=X", AssetClass.FX, "financial.fx.usdcnh"),
    _one("AUDUSD=X", AssetClass.FX, "financial.fx.audusd"),
    _one("CAD=X", AssetClass.FX, "financial.fx.usdcad"),
    _one("CHF=X", AssetClass.FX, "financial.fx.usdchf"),
    _one("DX-Y.NYB", AssetClass.FX, "financial.fx.dollar_index"),
    # commodity front-month futures
    _one("CL=F", AssetClass.COMMODITY, "financial.commodities.wti_crude"),
    _one("BZ=F", AssetClass.COMMODITY, "financial.commodities.brent_crude"),
    _one("GC=F", AssetClass.COMMODITY, "financial.commodities.gold"),
    _one("SI=F", AssetClass.COMMODITY, "financial.commodities.silver"),
    _one("HG=F", AssetClass.COMMODITY, "financial.commodities.copper"),
    _one("NG=F", AssetClass.COMMODITY, "financial.commodities.natural_gas"),
    # crypto
    _one("BTC-USD", AssetClass.CRYPTO, "financial.crypto.btc",
         return_1d="financial.crypto.btc_return_1d"),
    _one("ETH-USD", AssetClass.CRYPTO, "financial.crypto.eth",
         return_1d="financial.crypto.eth_return_1d"),
)
# fmt: on

BY_SYMBOL: dict[str, Instrument] = {i.symbol: i for i in INSTRUMENTS}
SYMBOLS: tuple[str, ...] = tuple(BY_SYMBOL)
_BY_PATH: dict[str, str] = {p: i.symbol for i in INSTRUMENTS for p in i.paths}

PRICES_SCHEMA = {"symbol": pl.Utf8, "date": pl.Date, "close": pl.Float64}

Downloader = Callable[..., "pd.DataFrame | None"]


def select_instruments(
    include_equity: bool = True,
    include_fx: bool = True,
    include_commodities: bool = True,
    include_crypto: bool = True,
    *,
    include_rates: bool = True,
    symbols: Iterable[str] | None = None,
) -> list[Instrument]:
    """Instruments by asset-class flags, or exactly `symbols` (which overrides the flags).

    Equity covers indices, implied volatility and large caps; rates covers Treasury yield
    indices and fed funds futures. Unknown symbols raise ValueError with suggestions.
    """
    if symbols is not None:
        wanted = list(dict.fromkeys(symbols))
        unknown = [s for s in wanted if s not in BY_SYMBOL]
        if unknown:
            hints = {s: difflib.get_close_matches(s, SYMBOLS, n=3) for s in unknown}
            raise ValueError(
                f"unknown Yahoo symbol(s) {unknown}: not in the instrument table "
                f"(nearest: {hints}); known: {', '.join(SYMBOLS)}"
            )
        return [BY_SYMBOL[s] for s in wanted]
    on = {
        AssetClass.EQUITY_INDEX: include_equity,
        AssetClass.VOLATILITY: include_equity,
        AssetClass.LARGE_CAP: include_equity,
        AssetClass.RATES: include_rates,
        AssetClass.FX: include_fx,
        AssetClass.COMMODITY: include_commodities,
        AssetClass.CRYPTO: include_crypto,
    }
    return [i for i in INSTRUMENTS if on[i.asset_class]]


# -- prices -> long format (shared by the live and recorded paths) ---------------------


def empty_prices() -> pl.DataFrame:
    """A prices frame (symbol, date, close) with no rows."""
    return pl.DataFrame(schema=PRICES_SCHEMA)


def _instrument_frame(instruments: Iterable[Instrument]) -> pl.DataFrame:
    rows = list(instruments)
    return pl.DataFrame(
        {
            "symbol": [i.symbol for i in rows],
            "level_path": [i.level for i in rows],
            "return_path": [i.return_1d for i in rows],
            "vol_path": [i.realized_vol_21d for i in rows],
            "close_us": [i.known_after_midnight // dt.timedelta(microseconds=1) for i in rows],
            "vol_scale": [100 * math.sqrt(TRADING_DAYS_PER_YEAR[i.asset_class]) for i in rows],
            "level_scale": [i.level_scale for i in rows],
            "level_offset": [i.level_offset for i in rows],
        },
        schema={
            "symbol": pl.Utf8,
            "level_path": pl.Utf8,
            "return_path": pl.Utf8,
            "vol_path": pl.Utf8,
            "close_us": pl.Int64,
            "vol_scale": pl.Float64,
            "level_scale": pl.Float64,
            "level_offset": pl.Float64,
        },
    )


def since_by_symbol(since: Mapping[str, dt.date] | None) -> dict[str, dt.date]:
    """Normalise `since` to symbol -> last stored date.

    Keys may be Yahoo symbols or field paths (as the warehouse reports them); a symbol
    whose fields end on different dates gets the earliest, so nothing is skipped.
    """
    out: dict[str, dt.date] = {}
    for key, value in (since or {}).items():
        symbol = key if key in BY_SYMBOL else _BY_PATH.get(key)
        if symbol is None or value is None:
            continue
        day = value.date() if isinstance(value, dt.datetime) else value
        out[symbol] = min(day, out.get(symbol, day))
    return out


def prices_to_long(
    prices: pl.DataFrame,
    *,
    instruments: Iterable[Instrument] = INSTRUMENTS,
    since: Mapping[str, dt.date] | None = None,
    start: dt.date | str | None = None,
    now: dt.datetime | None = None,
) -> pl.DataFrame:
    """Daily closes (symbol, date, close) -> long-format levels, returns and volatilities.

    Rows without a finite close are dropped first, so each symbol keeps its own trading
    calendar. Only dates after ``since[symbol]`` and on or after `start` are returned;
    earlier prices only seed returns and volatility. Bars not closed by `now` are dropped.
    """
    table = _instrument_frame(instruments)
    now = now or clock.utc_now()
    close = pl.col("close")
    prev = close.shift(1).over("symbol")
    frame = (
        prices.select(
            pl.col("symbol").cast(pl.Utf8), pl.col("date").cast(pl.Date), close.cast(pl.Float64)
        )
        .filter(close.is_finite() & pl.col("date").is_not_null())
        .unique(["symbol", "date"], keep="last", maintain_order=True)
        .join(table, on="symbol", how="inner")
        .sort("symbol", "date")
        .with_columns(
            pl.when(prev != 0).then((close / prev - 1) * 100).alias("ret"),
            pl.when((close > 0) & (prev > 0)).then((close / prev).log()).alias("logret"),
        )
        .with_columns(
            (
                pl.col("logret").rolling_std(VOL_WINDOW, min_samples=VOL_WINDOW).over("symbol")
                * pl.col("vol_scale")
            ).alias("vol"),
            (close * pl.col("level_scale") + pl.col("level_offset")).alias("level"),
            pl.col("date").cast(pl.Datetime("us")).alias("observed_at"),
        )
        .with_columns(
            (pl.col("observed_at") + pl.duration(microseconds=pl.col("close_us"))).alias("known_at")
        )
        .filter(pl.col("known_at") <= now)
    )
    bounds = since_by_symbol(since)
    if bounds:
        cut = pl.DataFrame(
            {"symbol": list(bounds), "since": list(bounds.values())},
            schema={"symbol": pl.Utf8, "since": pl.Date},
        )
        frame = frame.join(cut, on="symbol", how="left").filter(
            pl.col("since").is_null() | (pl.col("date") > pl.col("since"))
        )
    if start is not None:
        frame = frame.filter(pl.col("date") >= _as_date(start))
    parts = [
        frame.select(
            pl.col(path).alias("field_path"),
            "observed_at",
            (pl.col(value) if value == "level" else pl.col(value).round(DERIVED_DECIMALS)).alias(
                "value"
            ),
            "known_at",
        )
        for path, value in (("level_path", "level"), ("return_path", "ret"), ("vol_path", "vol"))
    ]
    return (
        pl.concat(parts)
        .filter(pl.col("field_path").is_not_null() & pl.col("value").is_finite())
        .sort("field_path", "observed_at")
        .cast(LONG_SCHEMA)  # type: ignore[arg-type]
    )


# -- yf.download output -> prices ------------------------------------------------------

_PRICE_COLUMNS = frozenset({"Open", "High", "Low", "Close", "Adj Close", "Volume"})


def prices_from_download(raw: pd.DataFrame | None, symbols: Sequence[str]) -> pl.DataFrame:
    """Parse what ``yf.download`` returns into (symbol, date, close).

    Handles ``group_by="ticker"`` (columns (Ticker, Price)), ``group_by="column"``
    (columns (Price, Ticker)) and a flat frame for a single symbol. Tickers are matched
    case-insensitively (yfinance upper-cases them). The close is the adjusted close when
    an ``Adj Close`` column has values, else ``Close``. The index is the bar's
    exchange-local date (naive, or tz-aware and taken in its own zone). Rows whose close
    is NaN (yfinance pads every ticker to the union of all calendars) are dropped.
    """
    if raw is None or len(raw.columns) == 0 or len(raw.index) == 0:
        return empty_prices()
    import pandas as pd

    by_upper = {s.upper(): s for s in symbols}
    dates = _local_dates(raw.index)
    frames = []
    columns = raw.columns
    if isinstance(columns, pd.MultiIndex):
        level0 = {str(v) for v in columns.get_level_values(0)}
        ticker_level = 1 if level0 <= _PRICE_COLUMNS else 0
        for ticker in dict.fromkeys(columns.get_level_values(ticker_level)):
            symbol = by_upper.get(str(ticker).upper())
            if symbol is None:
                continue
            sub = raw.xs(ticker, axis=1, level=ticker_level)
            frames.append(_symbol_prices(symbol, dates, sub))
    else:
        if len(symbols) != 1:
            raise ValueError(
                f"a frame without a ticker level cannot be attributed to {len(symbols)} symbols"
            )
        frames.append(_symbol_prices(symbols[0], dates, raw))
    if not frames:
        return empty_prices()
    return pl.concat(frames).filter(pl.col("close").is_finite())


def _local_dates(index: Any) -> pl.Series:
    import pandas as pd

    idx = pd.DatetimeIndex(index)
    if idx.tz is not None:
        idx = idx.tz_localize(None)  # wall time in the index's own zone
    return pl.Series("date", idx.to_numpy()).cast(pl.Date)


def _symbol_prices(symbol: str, dates: pl.Series, sub: pd.DataFrame) -> pl.DataFrame:
    import numpy as np

    n = len(dates)
    close = _column(sub, "Close", n)
    adjusted = _column(sub, "Adj Close", n)
    if np.isfinite(adjusted).any():
        close = np.where(np.isfinite(adjusted), adjusted, close)
    return pl.DataFrame(
        {"symbol": pl.Series([symbol] * n, dtype=pl.Utf8), "date": dates, "close": close},
        schema=PRICES_SCHEMA,
    )


def _column(sub: pd.DataFrame, name: str, n: int) -> Any:
    import numpy as np
    import pandas as pd

    if name not in sub.columns:
        return np.full(n, np.nan)
    col = sub[name]
    if isinstance(col, pd.DataFrame):  # duplicated column label: take the first
        col = col.iloc[:, 0]
    return pd.to_numeric(col, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


# -- live ------------------------------------------------------------------------------

_ERROR_LINE = re.compile(r"^\s*\[(?P<symbols>[^\]]*)\]:\s*(?P<error>.*)$", re.DOTALL)
# yfinance 1.7 hides a failed time-zone lookup behind "possibly delisted; no timezone
# found" and logs the cause separately; both are read so a network error is retried.
_CAUSE_LINE = re.compile(
    r"Failed to get ticker '(?P<symbol>[^']+)' reason: (?P<error>.*)", re.DOTALL
)
_RATE_LIMIT_MARKERS = ("YFRateLimitError", "Too Many Requests", "Rate limited")
_TRANSIENT_MARKERS = (
    "DNSError",
    "Could not resolve host",
    "ConnectionError",
    "Timeout",
    "timed out",
    "curl: (",
)


class _ErrorCapture(logging.Handler):
    """Collects the per-ticker errors yf.download logs (it never raises them)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.summary: dict[str, str] = {}
        self.causes: dict[str, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record must never break the download
            return
        if match := _ERROR_LINE.match(message):
            for symbol in re.findall(r"'([^']*)'", match["symbols"]):
                self.summary[symbol.upper()] = match["error"].strip()
        elif match := _CAUSE_LINE.search(message):
            self.causes[match["symbol"].upper()] = match["error"].strip()

    def errors(self) -> dict[str, str]:
        """Symbol (upper case) -> what went wrong, with the logged cause when there is one."""
        out = dict(self.summary)
        for symbol, cause in self.causes.items():
            out[symbol] = f"{out[symbol]} ({cause})" if symbol in out else cause
        return out


@contextmanager
def _yfinance_errors() -> Iterator[_ErrorCapture]:
    """Capture yfinance's error log lines for the duration of one download.

    If the user silenced the "yfinance" logger, its errors are still captured here but
    kept from the user's handlers (level and propagation are restored afterwards).
    """
    logger = logging.getLogger("yfinance")
    handler = _ErrorCapture()
    silenced = not logger.isEnabledFor(logging.ERROR)
    level, propagate = logger.level, logger.propagate
    if silenced:
        logger.setLevel(logging.ERROR)
        logger.propagate = False
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        if silenced:
            logger.setLevel(level)
            logger.propagate = propagate


def _default_downloader() -> Downloader:
    import yfinance as yf

    return yf.download


def _rate_limit_types() -> tuple[type[BaseException], ...]:
    try:
        from yfinance.exceptions import YFRateLimitError
    except ImportError:  # pragma: no cover - yfinance is a dependency
        return ()
    return (YFRateLimitError,)


def _is_rate_limit(reason: str) -> bool:
    return any(m in reason for m in _RATE_LIMIT_MARKERS)


def _is_transient(reason: str) -> bool:
    return any(m in reason for m in _TRANSIENT_MARKERS)


def _download_batch(
    symbols: list[str],
    fetch_start: dt.date | None,
    *,
    policy: RetryPolicy,
    downloader: Downloader,
) -> tuple[list[pl.DataFrame], dict[str, str]]:
    """One batch of tickers: what came back, and why the rest failed.

    Symbols that failed with a rate limit or a network error are retried (only those);
    symbols that came back empty for any other reason fail at once.
    """
    pending = list(symbols)
    got: list[pl.DataFrame] = []
    failures: dict[str, str] = {}
    rate_limit_types = _rate_limit_types()
    kwargs: dict[str, Any] = {
        "interval": "1d",
        "group_by": "ticker",
        "auto_adjust": True,
        "actions": False,
        "threads": False,
        "progress": False,
        "timeout": policy.timeout,
    }
    if fetch_start is None:
        kwargs["period"] = "max"
    else:
        kwargs["start"] = fetch_start.isoformat()

    last_error: dict[str, str] = {}

    def attempt() -> None:
        nonlocal pending
        with _yfinance_errors() as capture, warnings.catch_warnings():
            # yfinance's own pandas deprecations: noise to a user, nothing to act on
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                raw = downloader(list(pending), **kwargs)
            except rate_limit_types as err:
                last_error.update(dict.fromkeys(pending, f"{type(err).__name__}: {err}"))
                raise RateLimitedError(f"{type(err).__name__}: {err}") from err
            except OSError as err:
                last_error.update(dict.fromkeys(pending, f"{type(err).__name__}: {err}"))
                raise
        errors = capture.errors()
        prices = prices_from_download(raw, pending)
        got.append(prices)
        returned = set(prices["symbol"].unique().to_list())
        retry: list[str] = []
        for symbol in pending:
            if symbol in returned:
                continue
            reason = errors.get(symbol.upper(), "no data returned (empty or all-NaN column)")
            if _is_rate_limit(reason) or _is_transient(reason):
                retry.append(symbol)
                last_error[symbol] = reason
            else:
                failures[symbol] = reason
        pending = retry
        if retry:
            message = f"{len(retry)} symbol(s) failed, e.g. {retry[0]}: {last_error[retry[0]]}"
            if any(_is_rate_limit(last_error[s]) for s in retry):
                raise RateLimitedError(message)
            raise ConnectionError(message)

    what = f"source '{SOURCE}': download of {len(symbols)} symbol(s) from {symbols[0]}"
    try:
        call_with_retries(attempt, policy=policy, what=what, retry_on=(RateLimitedError, OSError))
    except SourceError as err:
        for symbol in pending:
            reason = last_error.get(symbol)
            failures[symbol] = (
                f"gave up after {policy.attempts} attempts: {reason}" if reason else str(err)
            )
    except Exception as err:  # an unexpected downloader error loses this batch only
        failures.update(dict.fromkeys(pending, f"{type(err).__name__}: {err}"))
    return got, failures


def fetch_yahoo_live(
    symbols: Iterable[str],
    *,
    start: dt.date | str | None = None,
    since: Mapping[str, dt.date] | None = None,
    policy: RetryPolicy = DEFAULT_POLICY,
    downloader: Downloader | None = None,
    batch_size: int = BATCH_SIZE,
    now: dt.datetime | None = None,
) -> FetchResult:
    """Fetch daily bars from Yahoo through ``yf.download`` and return long-format rows.

    Incremental: for a symbol in `since` (keys: symbols or field paths; values: the last
    date already stored) only later dates are returned, but the download starts
    :data:`LOOKBACK` earlier so returns and volatility at the boundary are right.
    Without `since`, rows start at `start` (default: the full history). Symbols are
    batched (`batch_size` per call); a rate limit or network error is retried with
    backoff per `policy`; a symbol that comes back empty is recorded in ``failures``
    without losing the others. `downloader` defaults to ``yf.download`` (tests inject one).
    """
    instruments = select_instruments(symbols=symbols)
    downloader = downloader or _default_downloader()
    bounds = since_by_symbol(since)
    lower = _as_date(start) if start is not None else None
    groups: dict[dt.date | None, list[str]] = {}
    for inst in instruments:
        first: dt.date | None = lower
        if inst.symbol in bounds:
            after = bounds[inst.symbol] + dt.timedelta(days=1)
            first = after if first is None else max(first, after)
        groups.setdefault(None if first is None else first - LOOKBACK, []).append(inst.symbol)
    frames: list[pl.DataFrame] = []
    failures: dict[str, str] = {}
    for fetch_start, group in groups.items():
        for i in range(0, len(group), max(1, batch_size)):
            got, failed = _download_batch(
                group[i : i + batch_size], fetch_start, policy=policy, downloader=downloader
            )
            frames.extend(got)
            failures.update(failed)
    prices = pl.concat(frames) if frames else empty_prices()
    data = prices_to_long(prices, instruments=instruments, since=bounds, start=lower, now=now)
    return FetchResult(SOURCE, data, failures)


# -- recorded --------------------------------------------------------------------------


def symbol_from_filename(stem: str) -> str:
    """Yahoo symbol of a recorded file name: IDX_GSPC -> ^GSPC, EURUSD_X -> EURUSD=X,
    GC_F -> GC=F, BTC-USD -> BTC-USD."""
    if stem.startswith("IDX_"):
        return "^" + stem[4:]
    for suffix in ("_X", "_F"):
        if stem.endswith(suffix):
            return f"{stem[: -len(suffix)]}={suffix[1]}"
    return stem


def read_yahoo_csv(path: Path) -> pl.DataFrame:
    """One yfinance CSV -> (symbol, date, close), whatever the column order.

    Accepts Date,Open,High,Low,Close[,Adj Close][,Volume] in any order, and the
    three-row header newer yfinance writes (Price / Ticker / Date). Prefers Adj Close.
    Empty cells are missing; a bad cell (not a number, NaN, inf, a bad or future date,
    a date twice with different closes) raises TabularError naming file, row and column.
    """
    table = read_table(path, label=path.name)
    raw = table.frame
    if table.columns and table.columns[0] == "Price":  # yfinance >= 0.2.51 multi-row header
        raw = raw.slice(2).rename({"Price": "Date"})
    if "Date" not in raw.columns or "Close" not in raw.columns:
        columns = [c for c in raw.columns if c not in (ROW, LINE)]
        raise ValueError(f"{path.name}: expected Date and Close columns, got {columns}")
    numbers = ["Close"] + (["Adj Close"] if "Adj Close" in raw.columns else [])
    parsed = parse_columns(
        Table(raw.with_columns(pl.col("Date").str.slice(0, 10)), table.source, table.separator),
        numbers=numbers,
        date_column="Date",
        date_format="%Y-%m-%d",
        **observation_bounds(),
    )
    return parsed.select(
        pl.lit(symbol_from_filename(path.stem), pl.Utf8).alias("symbol"),
        pl.col("Date").cast(pl.Date).alias("date"),
        pl.coalesce(*reversed(numbers)).alias("close"),
    )


def read_recorded_prices(root: Path) -> tuple[pl.DataFrame, dict[str, str]]:
    """Every yfinance CSV under ``root/market`` (or `root` itself): prices and file errors."""
    root = Path(root)
    base = root / "market" if (root / "market").is_dir() else root
    frames: list[pl.DataFrame] = []
    errors: dict[str, str] = {}
    for path in sorted(base.rglob("*.csv")):
        try:
            frames.append(read_yahoo_csv(path))
        except (ValueError, pl.exceptions.PolarsError) as err:
            errors[str(path.relative_to(base))] = f"{type(err).__name__}: {err}"
    return (pl.concat(frames) if frames else empty_prices()), errors


def load_yahoo_recorded(
    root: Path,
    *,
    symbols: Iterable[str] | None = None,
    since: Mapping[str, dt.date] | None = None,
    start: dt.date | str | None = None,
    now: dt.datetime | None = None,
) -> FetchResult:
    """Recorded yfinance CSVs under ``root/market/**.csv`` -> long-format rows.

    File names give the symbol (see :func:`symbol_from_filename`); symbols outside the
    instrument table (IVV) are skipped. With `symbols`, only those are kept and any
    without a file is a failure. Same transforms as the live path.
    """
    prices, failures = read_recorded_prices(root)
    found = set(prices["symbol"].unique().to_list())
    unmapped = sorted(found - set(SYMBOLS))
    if unmapped:
        log.info("yahoo recorded: no schema field for %s; skipped", ", ".join(unmapped))
    if symbols is None:
        instruments = [i for i in INSTRUMENTS if i.symbol in found]
    else:
        instruments = select_instruments(symbols=symbols)
        for inst in instruments:
            if inst.symbol not in found:
                failures[inst.symbol] = f"no recorded file for {inst.symbol} under {root}"
    data = prices_to_long(prices, instruments=instruments, since=since, start=start, now=now)
    return FetchResult(SOURCE, data, failures)


# -- adapter ---------------------------------------------------------------------------


def spec_for(paths: Iterable[str]) -> DatasetSpec:
    """The "Yahoo Finance" DatasetSpec over `paths`; keys are the paths' last segments."""
    unique = sorted(set(paths))
    last = [p.rsplit(".", 1)[-1] for p in unique]
    keys = [
        k if last.count(k) == 1 else p.replace(".", "_") for k, p in zip(last, unique, strict=True)
    ]
    return DatasetSpec.from_fields(SPEC_NAME, dict(zip(keys, unique, strict=True)))


def yahoo_finance_adapter(
    include_equity: bool = True,
    include_fx: bool = True,
    include_commodities: bool = True,
    include_crypto: bool = True,
    *,
    include_rates: bool = True,
    start_date: dt.date | str | None = None,
    symbols: Iterable[str] | None = None,
    recorded_dir: Path | str | None = None,
    since: Mapping[str, dt.date] | None = None,
    policy: RetryPolicy = DEFAULT_POLICY,
    downloader: Downloader | None = None,
) -> tuple[DatasetSpec, pl.DataFrame]:
    """Yahoo Finance as (DatasetSpec, long-format frame) for the selected instruments.

    Live through yfinance by default; from recorded CSVs when `recorded_dir` is given
    (a folder like shared/data). `symbols` overrides the include flags. Raises
    SourceError when every symbol failed; partial failures are logged.
    """
    explicit = symbols is not None
    instruments = select_instruments(
        include_equity,
        include_fx,
        include_commodities,
        include_crypto,
        include_rates=include_rates,
        symbols=symbols,
    )
    wanted = [i.symbol for i in instruments]
    if recorded_dir is not None:
        if explicit:
            result = load_yahoo_recorded(
                Path(recorded_dir), symbols=wanted, since=since, start=start_date
            )
        else:
            result = load_yahoo_recorded(Path(recorded_dir), since=since, start=start_date)
            keep = {p for i in instruments for p in i.paths}
            result.data = result.data.filter(pl.col("field_path").is_in(sorted(keep)))
    else:
        result = fetch_yahoo_live(
            wanted, start=start_date, since=since, policy=policy, downloader=downloader
        )
    data = result.raise_if_nothing().data
    return spec_for(data["field_path"].unique().to_list()), data


def yahoo_since(warehouse: Warehouse, *, source: str = SOURCE) -> dict[str, dt.date]:
    """Last stored trading day per symbol of `source` in `warehouse` (for `since`)."""
    last = warehouse.sql(
        "SELECT field_path, max(observed_at)::DATE AS last FROM observations "
        "WHERE source = $s GROUP BY field_path",
        {"s": source},
    )
    return since_by_symbol(dict(last.iter_rows()))


def _as_date(value: dt.date | dt.datetime | str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


# -- the source --------------------------------------------------------------------------


def _recorded(settings: SourceSettings, since: Mapping[str, dt.date]) -> FetchResult:
    return load_yahoo_recorded(Path(settings.recorded_dir))


def _live(settings: SourceSettings, since: Mapping[str, dt.date]) -> FetchResult:
    return fetch_yahoo_live(
        list(SYMBOLS), start=settings.start_date, since=dict(since), policy=settings.policy
    )


def _expected_fields(settings: SourceSettings) -> list[str]:
    if settings.mode == "synthetic":
        return synthetic_fields(SOURCE, settings)
    if settings.mode == "live":
        return sorted({p for i in INSTRUMENTS for p in i.paths})
    files = (Path(settings.recorded_dir) / "market").rglob("*.csv")
    symbols = {symbol_from_filename(p.stem) for p in files}
    return sorted({p for i in INSTRUMENTS if i.symbol in symbols for p in i.paths})


YAHOO_SOURCE = Source(
    name=SOURCE,
    description="Daily closes, returns and realised volatility of equity indices, "
    "large caps, Treasury yields, FX, commodities and crypto from Yahoo Finance.",
    modes={"synthetic": from_synthetic_world(SOURCE), "recorded": _recorded, "live": _live},
    expected_fields=_expected_fields,
    max_age=dt.timedelta(days=4),
    refresh=MARKET_REFRESH,
)


__all__ = [
    "BY_SYMBOL",
    "INSTRUMENTS",
    "SYMBOLS",
    "YAHOO_SOURCE",
    "AssetClass",
    "Instrument",
    "fetch_yahoo_live",
    "load_yahoo_recorded",
    "prices_from_download",
    "prices_to_long",
    "read_recorded_prices",
    "read_yahoo_csv",
    "select_instruments",
    "spec_for",
    "symbol_from_filename",
    "yahoo_finance_adapter",
    "yahoo_since",
]
