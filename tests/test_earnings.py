"""Earnings adapter: the three recorded files, and the live path through yfinance's own
``get_earnings_dates`` parser fed a recorded-style HTML table (no network)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import SimpleNamespace

import polars as pl
import pytest
import yfinance as yf
from yfinance.exceptions import YFRateLimitError

from ingest.base import RetryPolicy, SourceError
from ingest.earnings import (
    FIELDS,
    REPORTS_SCHEMA,
    earnings_adapter,
    fetch_earnings_live,
    load_earnings_recorded,
    parse_earnings_dates,
    reports_to_long,
)
from warehouse.schema import default_schema, firm_entity
from warehouse.store import Warehouse

FAST = RetryPolicy(attempts=4, base_delay=0.001, max_delay=0.005, rate_limit_delay=0.001)
TICKERS = ["AAPL", "MSFT", "NVDA", "XOM", "AMZN", "WMT", "COST", "BRK-B", "GS", "JPM"]
NOW = dt.datetime(2026, 3, 1)


@pytest.fixture(scope="module")
def recorded(shared_data: Path):
    return load_earnings_recorded(shared_data, TICKERS)


def _row(data: pl.DataFrame, ticker: str, quarter: str) -> dict[str, float]:
    """The four fields of one firm-quarter, plus known_at."""
    rows = data.filter(
        pl.col("field_path").str.starts_with(firm_entity(ticker) + ".")
        & (pl.col("observed_at") == dt.datetime.fromisoformat(quarter))
    )
    out: dict = {p.rsplit(".", 1)[1]: v for p, v in rows.select("field_path", "value").rows()}
    assert rows["known_at"].n_unique() == 1, rows
    out["known_at"] = rows["known_at"][0]
    return out


def _wide(data: pl.DataFrame) -> pl.DataFrame:
    return data.with_columns(
        pl.col("field_path").str.split(".").list.first().alias("firm"),
        pl.col("field_path").str.split(".").list.last().alias("name"),
    ).pivot(on="name", index=["firm", "observed_at", "known_at"], values="value")


# -- recorded --------------------------------------------------------------------------


def test_aapl_comes_from_the_fmp_file(recorded):
    # FMP: 2021-07-27,AAPL,1.3,1.01 -> the quarter before the report's quarter
    q = _row(recorded.data, "AAPL", "2021-04-01")
    assert q["eps_actual"] == 1.3 and q["eps_estimate"] == 1.01
    assert q["eps_surprise"] == pytest.approx(0.29)
    assert q["eps_surprise_pct"] == pytest.approx(100 * 0.29 / 1.01)
    assert q["known_at"] == dt.datetime(2021, 7, 27, 21)


def test_xom_comes_from_the_large_caps_file(recorded):
    # large caps: XOM,Energy,2015-04-30,0.83,1.17 (estimate, actual)
    q = _row(recorded.data, "XOM", "2015-01-01")
    assert q["eps_estimate"] == 0.83 and q["eps_actual"] == 1.17
    assert q["eps_surprise"] == pytest.approx(0.34)
    assert q["known_at"] == dt.datetime(2015, 4, 30, 21)


def test_finnhub_rows_use_the_fiscal_period(recorded):
    # finnhub: 14.01,12.0225,2025-12-31,...,GS -> quarter start, known 30 days after
    q = _row(recorded.data, "GS", "2025-10-01")
    assert q["eps_actual"] == 14.01 and q["eps_estimate"] == 12.0225
    assert q["known_at"] == dt.datetime(2026, 1, 30, 21)


def test_precedence_between_files(recorded):
    data = recorded.data
    # AMZN is in all three files; FMP carries pre-split EPS (6.04 for the 2019-01-31
    # report), the large-caps file split-adjusted EPS (0.30): the large-caps file wins.
    assert _row(data, "AMZN", "2018-10-01")["eps_actual"] == 0.3
    amzn = data.filter(pl.col("field_path") == "firm_AMZN.earnings.eps_actual")
    assert amzn["value"].max() < 5
    # WMT's Finnhub quarters lie inside the span the large-caps file covers: dropped
    wmt = _wide(data.filter(pl.col("field_path").str.starts_with("firm_WMT.")))
    assert wmt["observed_at"].is_unique().all()
    assert (wmt["known_at"].dt.time() == dt.time(21)).all()
    assert dt.datetime(2026, 4, 30, 21) not in set(wmt["known_at"])  # Finnhub's 2026-03-31
    # COST reported twice in 2017Q4 (Oct 5 and Dec 14): one row for that quarter
    assert _row(data, "COST", "2017-07-01")["known_at"] == dt.datetime(2017, 10, 5, 21)


def test_paths_valid_and_values_consistent(recorded):
    data = recorded.data
    schema = default_schema()
    for path in data["field_path"].unique():
        field = schema.field(path)
        assert field.path == path and field.unit
    firms = set(data["field_path"].str.split(".").list.first())
    assert "firm_BRK_B" in firms and "firm_MSFT" in firms and "firm_NVDA" in firms
    assert {p.rsplit(".", 1)[1] for p in data["field_path"]} == set(FIELDS)
    wide = _wide(data)
    both = wide.filter(pl.col("eps_estimate").is_not_null())
    assert (both["eps_surprise"] - (both["eps_actual"] - both["eps_estimate"])).abs().max() < 1e-9
    pct = both.filter(pl.col("eps_estimate") != 0)
    expected = 100 * (pct["eps_actual"] - pct["eps_estimate"]) / pct["eps_estimate"].abs()
    assert (pct["eps_surprise_pct"] - expected).abs().max() < 1e-9
    assert (data["known_at"] > data["observed_at"]).all()
    assert (data["observed_at"].dt.day() == 1).all()
    assert data["value"].is_finite().all()
    # one report per firm and quarter: no key carries two values
    assert data.select("field_path", "observed_at").is_unique().all()


def test_zero_estimate_has_no_surprise_pct():
    reports = pl.DataFrame(
        {
            "ticker": ["ZED", "ZED"],
            "observed_at": [dt.datetime(2020, 1, 1), dt.datetime(2020, 4, 1)],
            "known_at": [dt.datetime(2020, 4, 20, 21), dt.datetime(2020, 7, 20, 21)],
            "eps_actual": [0.1, 0.2],
            "eps_estimate": [0.0, None],
            "precedence": [1, 1],
        },
        schema=REPORTS_SCHEMA,
    )
    long, rejected = reports_to_long(reports, now=NOW)
    assert rejected == {}
    assert sorted(long.filter(pl.col("observed_at") == dt.datetime(2020, 1, 1))["field_path"]) == [
        "firm_ZED.earnings.eps_actual",
        "firm_ZED.earnings.eps_estimate",
        "firm_ZED.earnings.eps_surprise",
    ]
    assert long.filter(pl.col("observed_at") == dt.datetime(2020, 4, 1))[
        "field_path"
    ].to_list() == ["firm_ZED.earnings.eps_actual"]


def test_lower_precedence_fills_only_outside_the_span_of_higher():
    def report(quarter: str, precedence: int, actual: float) -> dict:
        observed = dt.datetime.fromisoformat(quarter)
        known = observed + dt.timedelta(days=120, hours=21)
        return {
            "ticker": "ZED",
            "observed_at": observed,
            "known_at": known,
            "eps_actual": actual,
            "eps_estimate": actual,
            "precedence": precedence,
        }

    reports = pl.DataFrame(
        [
            report("2024-01-01", 1, 1.0),
            report("2024-07-01", 1, 3.0),  # 2024-04 missing in the preferred file
            report("2024-04-01", 3, 20.0),  # inside its span: another scale, dropped
            report("2024-07-01", 3, 30.0),  # same quarter: the preferred file wins
            report("2024-10-01", 3, 40.0),  # after its span: kept
            report("2023-10-01", 2, 0.5),  # before its span: kept
        ],
        schema=REPORTS_SCHEMA,
    )
    long, _ = reports_to_long(reports, now=NOW)
    actual = long.filter(pl.col("field_path") == "firm_ZED.earnings.eps_actual")
    assert dict(zip(actual["observed_at"].dt.date(), actual["value"], strict=True)) == {
        dt.date(2023, 10, 1): 0.5,
        dt.date(2024, 1, 1): 1.0,
        dt.date(2024, 7, 1): 3.0,
        dt.date(2024, 10, 1): 40.0,
    }


def test_warehouse_ingest_then_reingest_is_a_no_op(tmp_path, recorded):
    assert recorded.failures == {}
    wh = Warehouse(tmp_path / "w.duckdb")
    first = wh.ingest(recorded.data, source="earnings")
    assert first.rows_inserted == len(recorded.data) > 500
    digest = wh.content_hash()
    again = wh.ingest(recorded.data, source="earnings")
    assert again.rows_inserted == 0 and again.rows_revised == 0
    assert wh.content_hash() == digest


def test_recorded_failures_and_adapter(shared_data):
    result = load_earnings_recorded(shared_data, ["AAPL", "NOSUCH", "1X"])
    assert set(result.failures) == {"NOSUCH", "1X"}
    spec, data = earnings_adapter(
        ["AAPL", "XOM"], recorded_dir=shared_data, start_date="2019-01-01"
    )
    assert spec.name == "Earnings"
    assert sorted(spec.field_paths) == sorted(set(data["field_path"]))
    assert spec.key_to_path["AAPL_eps_surprise"] == "firm_AAPL.earnings.eps_surprise"
    assert data["observed_at"].min() >= dt.datetime(2019, 1, 1)


# -- live ------------------------------------------------------------------------------

ROWS = [  # Earnings Date, EPS Estimate, Reported EPS, Surprise (%) as Yahoo prints them
    ("April 30, 2026 at 4 PM EDT", "1.62", "-", "-"),
    ("January 29, 2026 at 4 PM EST", "2.67", "2.84", "6.37"),
    ("October 30, 2025 at 4 PM EDT", "1.77", "1.85", "4.52"),
    ("July 31, 2025 at 12 AM EDT", "1.43", "1.57", "9.79"),
    ("May 1, 2025 at 7 AM EDT", "0", "0.05", "-"),
]
HEADER = ["Symbol", "Company", "Earnings Date", "EPS Estimate", "Reported EPS", "Surprise (%)"]


def _page(ticker: str) -> str:
    """The earnings calendar table of finance.yahoo.com/calendar/earnings?symbol=…"""
    head = "".join(f"<th>{h}</th>" for h in HEADER)
    body = "".join(
        "<tr>" + "".join(f"<td>{c}</td>" for c in (ticker, "Co", *row)) + "</tr>" for row in ROWS
    )
    return f"<html><body><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


@pytest.fixture
def yahoo_pages(monkeypatch):
    """yfinance's real earnings-dates scraper, served HTML instead of the network."""
    pages = {"AAPL": _page("AAPL"), "MSFT": _page("MSFT"), "DEAD": "<html/>"}

    def cache_get(url, *args, **kwargs):
        symbol = url.split("symbol=")[1].split("&")[0]
        return SimpleNamespace(text=pages[symbol])

    data = yf.Ticker("AAPL")._data  # a process-wide singleton
    monkeypatch.setattr(data, "cache_get", cache_get)

    def fetcher(ticker: str, limit: int):
        return yf.Ticker(ticker).get_earnings_dates(limit=limit)

    return fetcher


def test_get_earnings_dates_output_parses(yahoo_pages):
    frame = yahoo_pages("AAPL", 25)
    assert list(frame.columns) == ["EPS Estimate", "Reported EPS", "Surprise(%)"]
    assert frame.index.name == "Earnings Date" and str(frame.index.tz) == "America/New_York"
    reports = parse_earnings_dates("AAPL", frame)
    assert reports.schema == pl.Schema(REPORTS_SCHEMA)
    result = fetch_earnings_live(["AAPL"], policy=FAST, fetcher=yahoo_pages, now=NOW)
    assert result.failures == {}
    data = result.data
    q4 = _row(data, "AAPL", "2025-10-01")  # reported 2026-01-29 16:00 EST
    assert q4["known_at"] == dt.datetime(2026, 1, 29, 21)
    assert q4["eps_actual"] == 2.84 and q4["eps_surprise"] == pytest.approx(0.17)
    assert _row(data, "AAPL", "2025-07-01")["known_at"] == dt.datetime(2025, 10, 30, 20)  # EDT
    # "12 AM" means no time given: the report date after the close, not its midnight
    assert _row(data, "AAPL", "2025-04-01")["known_at"] == dt.datetime(2025, 7, 31, 21)
    q1 = _row(data, "AAPL", "2025-01-01")  # estimate 0: no surprise percentage
    assert q1["known_at"] == dt.datetime(2025, 5, 1, 11) and "eps_surprise_pct" not in q1
    assert data["observed_at"].max() == dt.datetime(2025, 10, 1)  # upcoming report dropped
    assert (data["known_at"] <= NOW).all()
    # fetched an hour before the January report: that quarter is not known yet
    early = dt.datetime(2026, 1, 29, 20)
    before = fetch_earnings_live(["AAPL"], policy=FAST, fetcher=yahoo_pages, now=early).data
    assert before["observed_at"].max() == dt.datetime(2025, 7, 1)


def test_failing_tickers_are_collected(yahoo_pages):
    calls: dict[str, int] = {}

    def fetcher(ticker: str, limit: int):
        calls[ticker] = calls.get(ticker, 0) + 1
        if ticker == "MSFT" and calls[ticker] <= 2:
            raise YFRateLimitError()
        if ticker == "BOOM":
            raise ValueError("unexpected page layout")
        if ticker == "SLOW":
            raise YFRateLimitError()
        return yahoo_pages(ticker, limit)

    result = fetch_earnings_live(
        ["AAPL", "MSFT", "DEAD", "BOOM", "SLOW"], policy=FAST, fetcher=fetcher, now=NOW
    )
    assert calls["MSFT"] == 3 and calls["BOOM"] == 1 and calls["SLOW"] == FAST.attempts
    assert set(result.failures) == {"DEAD", "BOOM", "SLOW"}
    assert "no reported earnings" in result.failures["DEAD"]
    assert "unexpected page layout" in result.failures["BOOM"]
    assert "gave up" in result.failures["SLOW"]
    firms = set(result.data["field_path"].str.split(".").list.first())
    assert firms == {"firm_AAPL", "firm_MSFT"}


def test_adapter_raises_when_every_ticker_fails():
    def offline(ticker: str, limit: int):
        raise ConnectionError("Could not resolve host: finance.yahoo.com")

    with pytest.raises(SourceError, match="every request failed"):
        earnings_adapter(["AAPL", "MSFT"], policy=FAST, fetcher=offline)
