"""Yahoo Finance adapter: recorded yfinance CSVs, and the live path through the real
``yf.download`` (yfinance 1.7) with its per-ticker ``Ticker`` replaced by a fake that
serves the recorded bars, so no request leaves the machine."""

from __future__ import annotations

import datetime as dt
import math
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import polars as pl
import pytest
import yfinance as yf
import yfinance.multi
from yfinance.exceptions import YFRateLimitError

from ingest.base import RetryPolicy
from ingest.yahoo import (
    INSTRUMENTS,
    LOOKBACK,
    SYMBOLS,
    fetch_yahoo_live,
    load_yahoo_recorded,
    prices_from_download,
    prices_to_long,
    read_recorded_prices,
    select_instruments,
    since_by_symbol,
    symbol_from_filename,
    yahoo_finance_adapter,
    yahoo_since,
)
from warehouse.schema import default_schema
from warehouse.store import Warehouse

FAST = RetryPolicy(attempts=4, base_delay=0.001, max_delay=0.005, rate_limit_delay=0.001)
SP500 = "financial.equities.sp500"
EXCHANGE_TZ = {"EURUSD=X": "Europe/London", "BTC-USD": "UTC"}  # else America/New_York


# -- fixtures --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def recorded(shared_data: Path):
    """load_yahoo_recorded over the whole recorded market folder (parsed once)."""
    return load_yahoo_recorded(shared_data)


@pytest.fixture(scope="module")
def histories(shared_data: Path) -> dict[str, pd.DataFrame]:
    """What ``Ticker(symbol).history(auto_adjust=True)`` returns, from the recorded CSVs:
    tz-aware exchange-local midnight index named Date, Open/High/Low/Close/Volume."""
    out = {}
    for path in sorted((shared_data / "market").rglob("*.csv")):
        symbol = symbol_from_filename(path.stem)
        df = pd.read_csv(path, index_col="Date", parse_dates=True)
        if "Volume" not in df.columns:
            df["Volume"] = 0
        df = df[["Open", "High", "Low", "Close", "Volume"]].astype({"Volume": "int64"})
        df.index = df.index.tz_localize(EXCHANGE_TZ.get(symbol, "America/New_York"))
        df.index.name = "Date"
        out[symbol] = df
    return out


class FakeMarket:
    """Stands in for yfinance's per-ticker ``Ticker`` inside the real ``yf.download``.

    `rate_limited[symbol]` = how many more calls raise YFRateLimitError; `dead` symbols
    come back empty with yfinance's soft error, as a delisted ticker does.
    """

    def __init__(self, histories: dict[str, pd.DataFrame]) -> None:
        self.histories = histories
        self.rate_limited: dict[str, int] = {}
        self.dead: set[str] = set()
        self.offline: dict[str, int] = {}
        self.calls: list[tuple[str, dict]] = []
        market = self

        class Ticker:
            def __init__(self, ticker: str) -> None:
                self.ticker = ticker.upper()
                self._price_history = None

            def history(self, **kwargs):
                market.calls.append((self.ticker, kwargs))
                if market.rate_limited.get(self.ticker, 0) > 0:
                    market.rate_limited[self.ticker] -= 1
                    raise YFRateLimitError()
                if market.offline.get(self.ticker, 0) > 0:
                    # what yfinance 1.7 does when its time-zone lookup hits a network error
                    market.offline[self.ticker] -= 1
                    yf.utils.get_yf_logger().error(
                        f"Failed to get ticker '{self.ticker}' reason: Failed to perform, "
                        "curl: (6) Could not resolve host: query2.finance.yahoo.com"
                    )
                    self._price_history = SimpleNamespace(
                        _last_error="possibly delisted; no timezone found"
                    )
                    return yf.utils.empty_df()
                if self.ticker in market.dead or self.ticker not in market.histories:
                    self._price_history = SimpleNamespace(
                        _last_error="possibly delisted; no price data found"
                    )
                    return yf.utils.empty_df()
                df = market.histories[self.ticker]
                if kwargs.get("start"):
                    df = df[df.index >= pd.Timestamp(kwargs["start"]).tz_localize(df.index.tz)]
                return df.copy()

        self.Ticker = Ticker

    def calls_for(self, symbol: str) -> int:
        return sum(1 for s, _ in self.calls if s == symbol)


@pytest.fixture
def market(histories, monkeypatch) -> FakeMarket:
    fake = FakeMarket(histories)
    monkeypatch.setattr(yfinance.multi, "Ticker", fake.Ticker)
    return fake


def _series(data: pl.DataFrame, path: str) -> pl.DataFrame:
    return data.filter(pl.col("field_path") == path).sort("observed_at")


def _value(data: pl.DataFrame, path: str, day: str) -> float:
    row = data.filter(
        (pl.col("field_path") == path) & (pl.col("observed_at") == dt.datetime.fromisoformat(day))
    )
    assert len(row) == 1, (path, day, row)
    return row["value"][0]


def _csv_close(shared_data: Path, relative: str, day: str) -> float:
    """The Close cell of `day` in a recorded CSV, read as text (whatever the column order)."""
    header, *lines = (shared_data / "market" / relative).read_text().splitlines()
    for line in lines:
        if line.startswith(day + ","):
            return float(line.split(",")[header.split(",").index("Close")])
    raise AssertionError(f"{day} not in {relative}")


# -- the instrument table --------------------------------------------------------------


def test_instrument_table_feeds_real_schema_fields():
    schema = default_schema()
    paths = [p for i in INSTRUMENTS for p in i.paths]
    assert len(INSTRUMENTS) == len(SYMBOLS) == 37
    assert len(paths) == len(set(paths))
    for path in paths:
        assert not schema.field(path).latent
    assert {"^GSPC", "^VIX", "^TNX", "EURUSD=X", "CL=F", "GC=F", "HG=F", "NG=F"} <= set(SYMBOLS)
    assert {"BTC-USD", "ETH-USD", "AAPL", "XOM", "JPM"} <= set(SYMBOLS)
    gspc = next(i for i in INSTRUMENTS if i.symbol == "^GSPC")
    assert gspc.realized_vol_21d == "financial.equities.sp500_realized_vol_21d"
    assert next(i for i in INSTRUMENTS if i.symbol == "AAPL").paths == [
        "financial.large_caps.aapl_return_1d"
    ]
    with pytest.raises(ValueError, match="unknown Yahoo symbol"):
        select_instruments(symbols=["^GSPX"])
    no_fx = {i.symbol for i in select_instruments(include_fx=False)}
    assert "EURUSD=X" not in no_fx and "^GSPC" in no_fx


def test_since_accepts_symbols_and_field_paths():
    since = since_by_symbol(
        {
            "financial.equities.sp500": dt.date(2020, 1, 3),
            "financial.equities.sp500_realized_vol_21d": dt.date(2020, 1, 2),
            "BTC-USD": dt.date(2021, 5, 1),
            "country_us.macro.labor.unemployment_rate": dt.date(2020, 1, 1),
        }
    )
    assert since == {"^GSPC": dt.date(2020, 1, 2), "BTC-USD": dt.date(2021, 5, 1)}


# -- recorded files --------------------------------------------------------------------


def test_every_recorded_file_is_parsed(shared_data, recorded):
    files = sorted((shared_data / "market").rglob("*.csv"))
    prices, errors = read_recorded_prices(shared_data)
    assert errors == {}
    assert set(prices["symbol"]) == {symbol_from_filename(f.stem) for f in files}
    counts = dict(prices.group_by("symbol").len().iter_rows())
    for f in files:  # one price per data row of every file, whatever its column order
        assert counts[symbol_from_filename(f.stem)] == len(f.read_text().splitlines()) - 1
    assert {"^GSPC", "EURUSD=X", "GC=F", "BTC-USD", "CL=F", "ZQ=F", "IVV"} <= counts.keys()
    assert recorded.failures == {}
    fields = set(recorded.data["field_path"])
    for symbol in counts.keys() & set(SYMBOLS):  # every mapped symbol yields its fields
        inst = next(i for i in INSTRUMENTS if i.symbol == symbol)
        assert set(inst.paths) <= fields, symbol


def test_symbol_from_filename():
    assert symbol_from_filename("IDX_GSPC") == "^GSPC"
    assert symbol_from_filename("EURUSD_X") == "EURUSD=X"
    assert symbol_from_filename("GC_F") == "GC=F"
    assert symbol_from_filename("BTC-USD") == "BTC-USD"
    assert symbol_from_filename("AAPL") == "AAPL"


def test_levels_equal_the_csv_closes(shared_data, recorded):
    data = recorded.data
    assert _value(data, SP500, "2020-03-16") == _csv_close(
        shared_data, "yahoo_multi_asset/IDX_GSPC.csv", "2020-03-16"
    )
    assert _value(data, SP500, "2020-03-16") == pytest.approx(2386.1299, abs=1e-3)
    # CL_F.csv has the other column order (Date,Open,High,Low,Close) and no Volume
    wti = _csv_close(shared_data, "yahoo_multi_asset/CL_F.csv", "2020-04-21")
    assert _value(data, "financial.commodities.wti_crude", "2020-04-21") == wti
    zq = _csv_close(shared_data, "yahoo_multi_asset/ZQ_F.csv", "2019-01-02")
    assert _value(data, "financial.money_markets.fed_funds_futures_rate", "2019-01-02") == (
        pytest.approx(100 - zq)
    )


def test_trading_calendars(recorded):
    data = recorded.data.with_columns(pl.col("observed_at").dt.weekday().alias("weekday"))
    for prefix in ("financial.equities", "financial.fx", "financial.large_caps"):
        rows = data.filter(pl.col("field_path").str.starts_with(prefix))
        assert len(rows) > 1000
        assert rows.filter(pl.col("weekday") >= 6).is_empty(), prefix
    btc = data.filter(pl.col("field_path") == "financial.crypto.btc")
    assert set(btc["weekday"]) == set(range(1, 8))
    assert len(btc) == 4065
    # no forward fill: 2020-12-25 (a Friday) is a holiday for the S&P 500, not for bitcoin
    christmas = dt.datetime(2020, 12, 25)
    assert data.filter((pl.col("field_path") == SP500) & (pl.col("observed_at") == christmas))[
        "value"
    ].is_empty()
    assert len(btc.filter(pl.col("observed_at") == christmas)) == 1


def test_daily_returns_by_hand(shared_data, recorded):
    data = recorded.data
    days = ["2020-03-12", "2020-03-13", "2020-03-16"]
    closes = [_csv_close(shared_data, "yahoo_multi_asset/IDX_GSPC.csv", d) for d in days]
    for i in (1, 2):
        expected = (closes[i] / closes[i - 1] - 1) * 100
        assert _value(data, "financial.equities.sp500_return_1d", days[i]) == pytest.approx(
            expected, abs=1e-6
        )
    assert _value(data, "financial.equities.sp500_return_1d", "2020-03-16") < -11
    # a large cap over a weekend: Monday's return is against Friday's close
    fri = _csv_close(shared_data, "yahoo_stocks/AAPL.csv", "2020-08-28")
    mon = _csv_close(shared_data, "yahoo_stocks/AAPL.csv", "2020-08-31")
    assert _value(data, "financial.large_caps.aapl_return_1d", "2020-08-31") == pytest.approx(
        (mon / fri - 1) * 100, abs=1e-6
    )
    # crypto: Sunday's return is against Saturday's close
    sat = _csv_close(shared_data, "yahoo_multi_asset/BTC-USD.csv", "2021-05-01")
    sun = _csv_close(shared_data, "yahoo_multi_asset/BTC-USD.csv", "2021-05-02")
    assert _value(data, "financial.crypto.btc_return_1d", "2021-05-02") == pytest.approx(
        (sun / sat - 1) * 100, abs=1e-6
    )
    # the first bar of a series has no return
    first = _series(data, SP500)["observed_at"][0]
    assert _series(data, "financial.equities.sp500_return_1d")["observed_at"][0] > first


def test_realised_volatility(shared_data, recorded):
    vol = _series(recorded.data, "financial.equities.sp500_realized_vol_21d")
    assert len(vol) == 2799 - 21
    assert vol["value"].is_finite().all() and (vol["value"] > 0).all()
    prices = pd.read_csv(
        shared_data / "market/yahoo_multi_asset/IDX_GSPC.csv", index_col="Date"
    ).Close
    window = np.log(prices.loc[:"2020-03-31"].to_numpy()[-22:])
    expected = np.diff(window).std(ddof=1) * math.sqrt(252) * 100
    assert _value(recorded.data, vol["field_path"][0], "2020-03-31") == pytest.approx(
        expected, abs=1e-5
    )
    assert 60 < expected < 120  # March 2020


def test_negative_wti_kept_and_everything_finite(recorded):
    data = recorded.data
    assert _value(data, "financial.commodities.wti_crude", "2020-04-20") == pytest.approx(-37.63)
    assert data.null_count().sum_horizontal().item() == 0
    assert data["value"].is_finite().all()
    assert data.schema == pl.Schema(
        {
            "field_path": pl.Utf8,
            "observed_at": pl.Datetime("us"),
            "value": pl.Float64,
            "known_at": pl.Datetime("us"),
        }
    )


def test_duplicate_and_missing_bars():
    # Yahoo can repeat the last bar (a "live" row) and pads calendars with NaN closes
    prices = pl.DataFrame(
        {
            "symbol": ["^GSPC"] * 5,
            "date": [dt.date(2024, 1, d) for d in (2, 3, 4, 4, 5)],
            "close": [100.0, float("nan"), 110.0, 121.0, 0.0],
        }
    )
    long = prices_to_long(prices, now=dt.datetime(2025, 1, 1))
    level = _series(long, SP500)
    assert level["value"].to_list() == [100.0, 121.0, 0.0]
    ret = _series(long, "financial.equities.sp500_return_1d")
    assert ret["observed_at"].to_list() == [dt.datetime(2024, 1, 4), dt.datetime(2024, 1, 5)]
    assert ret["value"].to_list() == pytest.approx([21.0, -100.0])
    after_zero = pl.DataFrame(
        {"symbol": ["^GSPC"] * 2, "date": [dt.date(2024, 1, 8), dt.date(2024, 1, 9)]}
    ).with_columns(close=pl.Series([0.0, 5.0]))
    assert prices_to_long(after_zero)["value"].is_finite().all()  # no inf after a zero close


def test_known_at_is_the_close_after_the_observed_day(recorded):
    data = recorded.data
    assert (data["known_at"] > data["observed_at"]).all()
    assert (data["observed_at"].dt.time() == dt.time(0)).all()
    lag = data.group_by("field_path").agg(
        (pl.col("known_at") - pl.col("observed_at")).unique().alias("lag")
    )
    lags = {p: set(v) for p, v in lag.iter_rows()}
    assert lags[SP500] == {dt.timedelta(hours=21)}
    assert lags["financial.fx.eurusd"] == {dt.timedelta(hours=22)}
    assert lags["financial.crypto.btc"] == {dt.timedelta(hours=23, minutes=59, seconds=59)}


def test_warehouse_ingest_then_reingest_is_a_no_op(tmp_path, recorded):
    wh = Warehouse(tmp_path / "w.duckdb")
    first = wh.ingest(recorded.data, source="yahoo")
    assert first.rows_inserted == len(recorded.data) and first.duplicates_dropped == 0
    digest = wh.content_hash()
    again = wh.ingest(recorded.data, source="yahoo")
    assert again.rows_inserted == 0 and again.rows_revised == 0
    assert again.rows_unchanged == len(recorded.data)
    assert wh.content_hash() == digest
    since = yahoo_since(wh)
    assert since["^GSPC"] == dt.date(2025, 10, 31)
    assert since["AAPL"] == dt.date(2023, 12, 29)


def test_adapter_on_recorded_data(shared_data):
    spec, data = yahoo_finance_adapter(
        include_equity=True, include_fx=True, recorded_dir=shared_data, start_date="2020-01-01"
    )
    assert spec.name == "Yahoo Finance"
    assert sorted(spec.field_paths) == sorted(set(data["field_path"]))
    assert {"vix", "sp500", "eurusd", "aapl_return_1d"} <= set(spec.key_to_path)
    assert spec.key_to_path["vix"] == "financial.equities.vix"
    assert data["observed_at"].min() >= dt.datetime(2020, 1, 1)
    # a return on the start date still sees the close before it
    assert _value(data, "financial.equities.sp500_return_1d", "2020-01-02") != 0
    spec, _ = yahoo_finance_adapter(
        include_equity=False, include_fx=True, include_crypto=False, recorded_dir=shared_data
    )
    assert set(spec.field_paths) == {
        "financial.fx.eurusd",
        "financial.commodities.wti_crude",
        "financial.commodities.gold",
        "financial.money_markets.fed_funds_futures_rate",
    }


# -- live path: the real yf.download over a fake Ticker --------------------------------

LIVE = ["^GSPC", "EURUSD=X", "BTC-USD", "AAPL"]


def test_yfinance_output_shape_is_parsed(market, recorded):
    raw = yf.download(LIVE, period="max", group_by="ticker", threads=False, progress=False)
    assert isinstance(raw.columns, pd.MultiIndex)
    assert list(raw.columns.names) == ["Ticker", "Price"]
    # the union calendar pads equities with NaN on weekends; those rows must go
    assert raw[("^GSPC", "Close")].isna().any()
    prices = prices_from_download(raw, LIVE)
    assert prices["close"].is_finite().all()
    by_column = yf.download(LIVE, period="max", group_by="column", threads=False, progress=False)
    assert (
        prices_from_download(by_column, LIVE)
        .sort("symbol", "date")
        .equals(prices.sort("symbol", "date"))
    )
    live = yahoo_finance_adapter(symbols=LIVE, policy=FAST)[1]
    expected = recorded.data.filter(pl.col("field_path").is_in(sorted(set(live["field_path"]))))
    assert live.sort("field_path", "observed_at").equals(expected.sort("field_path", "observed_at"))


def test_rate_limit_twice_then_success(market):
    market.rate_limited = {"^GSPC": 2, "EURUSD=X": 2}
    result = fetch_yahoo_live(LIVE, policy=FAST, downloader=yf.download)
    assert result.failures == {}
    assert market.calls_for("^GSPC") == 3
    assert market.calls_for("AAPL") == 1  # only the rate-limited symbols are retried
    assert {SP500, "financial.fx.eurusd", "financial.crypto.btc"} <= set(result.data["field_path"])


def test_rate_limit_raised_by_the_downloader_is_retried(market):
    attempts = []

    def flaky(tickers, **kwargs):
        attempts.append(list(tickers))
        if len(attempts) <= 2:
            raise YFRateLimitError()
        return yf.download(tickers, **kwargs)

    result = fetch_yahoo_live(["^GSPC", "BTC-USD"], policy=FAST, downloader=flaky)
    assert len(attempts) == 3 and result.failures == {}
    assert not result.data.is_empty()


def test_rate_limit_that_never_ends_is_a_failure_and_keeps_the_rest(market):
    market.rate_limited = {"EURUSD=X": 100}
    result = fetch_yahoo_live(LIVE, policy=RetryPolicy(attempts=2, rate_limit_delay=0.001))
    assert list(result.failures) == ["EURUSD=X"]
    assert "gave up after 2 attempts" in result.failures["EURUSD=X"]
    assert "Too Many Requests" in result.failures["EURUSD=X"]
    assert "financial.fx.eurusd" not in set(result.data["field_path"])
    assert SP500 in set(result.data["field_path"])


def test_one_dead_symbol_never_loses_the_others(market):
    market.dead = {"AAPL"}
    result = fetch_yahoo_live(LIVE, policy=FAST, batch_size=2)
    assert list(result.failures) == ["AAPL"]
    assert "delisted" in result.failures["AAPL"]
    assert market.calls_for("AAPL") == 1  # a permanent failure is not retried
    assert {SP500, "financial.fx.eurusd", "financial.crypto.btc"} <= set(result.data["field_path"])
    kwargs = market.calls[0][1]
    assert kwargs["auto_adjust"] is True and kwargs["period"] == "max"


def test_network_error_behind_no_timezone_found_is_retried(market):
    market.offline = {"^GSPC": 1, "BTC-USD": 100}
    result = fetch_yahoo_live(["^GSPC", "BTC-USD", "AAPL"], policy=FAST)
    assert market.calls_for("^GSPC") == 2 and market.calls_for("AAPL") == 1
    assert market.calls_for("BTC-USD") == FAST.attempts
    assert list(result.failures) == ["BTC-USD"]
    assert "Could not resolve host" in result.failures["BTC-USD"]
    assert {SP500, "financial.large_caps.aapl_return_1d"} <= set(result.data["field_path"])


def test_rate_limit_is_seen_when_the_user_silenced_yfinance(market):
    import logging

    logger = logging.getLogger("yfinance")
    old = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        market.rate_limited = {"^GSPC": 1}
        result = fetch_yahoo_live(["^GSPC"], policy=FAST)
        assert logger.level == logging.CRITICAL and logger.propagate
    finally:
        logger.setLevel(old)
    assert result.failures == {} and market.calls_for("^GSPC") == 2


def test_batches_and_download_arguments(market):
    seen = []

    def spy(tickers, **kwargs):
        seen.append((list(tickers), kwargs))
        return yf.download(tickers, **kwargs)

    fetch_yahoo_live(LIVE + ["GC=F"], policy=FAST, downloader=spy, batch_size=2)
    assert [len(t) for t, _ in seen] == [2, 2, 1]
    for _, kwargs in seen:
        assert kwargs["group_by"] == "ticker" and kwargs["threads"] is False
        assert kwargs["progress"] is False and kwargs["auto_adjust"] is True


def test_incremental_fetch_since(market, recorded):
    since = {"^GSPC": dt.date(2020, 3, 13), "financial.crypto.btc": dt.date(2021, 5, 1)}
    seen = []

    def spy(tickers, **kwargs):
        seen.append((sorted(tickers), kwargs.get("start")))
        return yf.download(tickers, **kwargs)

    result = fetch_yahoo_live(["^GSPC", "BTC-USD"], since=since, policy=FAST, downloader=spy)
    assert result.failures == {}
    assert sorted(seen) == [
        (["BTC-USD"], (dt.date(2021, 5, 2) - LOOKBACK).isoformat()),
        (["^GSPC"], (dt.date(2020, 3, 14) - LOOKBACK).isoformat()),
    ]
    data = result.data
    sp = data.filter(pl.col("field_path").str.starts_with(SP500))
    assert sp["observed_at"].min() == dt.datetime(2020, 3, 16)
    btc = data.filter(pl.col("field_path").str.starts_with("financial.crypto.btc"))
    assert btc["observed_at"].min() == dt.datetime(2021, 5, 2)
    # values at the boundary equal those computed from the full history
    for path, day in [
        ("financial.equities.sp500_return_1d", "2020-03-16"),
        ("financial.equities.sp500_realized_vol_21d", "2020-03-16"),
        ("financial.crypto.btc_return_1d", "2021-05-02"),
        (SP500, "2020-03-16"),
    ]:
        assert _value(data, path, day) == _value(recorded.data, path, day), path
    full = recorded.data.filter(
        pl.col("field_path").str.starts_with(SP500)
        & (pl.col("observed_at") > dt.datetime(2020, 3, 13))
    )
    assert sp.sort("field_path", "observed_at").equals(full.sort("field_path", "observed_at"))


def test_bar_not_closed_yet_is_dropped(market):
    now = dt.datetime(2020, 3, 16, 20, 30)  # before the US close at 21:00 UTC
    result = fetch_yahoo_live(["^GSPC", "EURUSD=X"], policy=FAST, now=now)
    last = dict(result.data.group_by("field_path").agg(pl.col("observed_at").max()).iter_rows())
    assert last[SP500] == dt.datetime(2020, 3, 13)
    assert (result.data["known_at"] <= now).all()


def test_network_errors_everywhere_raise_from_the_adapter(market):
    from ingest.base import SourceError

    def offline(tickers, **kwargs):
        raise ConnectionError("Could not resolve host: query2.finance.yahoo.com")

    with pytest.raises(SourceError, match="every request failed"):
        yahoo_finance_adapter(symbols=["^GSPC"], policy=FAST, downloader=offline)


def test_yfinances_own_deprecation_warnings_do_not_reach_the_user(recwarn):
    from ingest.base import RetryPolicy
    from ingest.yahoo import _download_batch

    def noisy(symbols, **kwargs):
        warnings.warn("'H' is deprecated, use 'h'", FutureWarning, stacklevel=2)
        warnings.warn("DataFrame.swapaxes is deprecated", DeprecationWarning, stacklevel=2)
        return pd.DataFrame()

    got, failures = _download_batch(
        ["^GSPC"], None, policy=RetryPolicy(attempts=1), downloader=noisy
    )
    assert failures == {"^GSPC": "no data returned (empty or all-NaN column)"}
    assert not [w for w in recwarn if issubclass(w.category, (FutureWarning, DeprecationWarning))]
