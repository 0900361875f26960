"""FRED adapter: 80+ FRED series mapped onto schema field paths, live (fredapi) or recorded.

Everything FRED-specific lives in one readable table, :data:`FRED_SERIES`: series id ->
field path, frequency, transform and release lag. Two ways in, one code path after parsing:

* live: :func:`fetch_fred_live` goes through ``fredapi`` (latest values, or every ALFRED
  vintage with ``vintages=True``). The one network call fredapi makes is replaced in a
  subclass so it has a timeout, knows HTTP 429/5xx (retried) from 400 (not retried), pages
  long answers and never lets the API key (fredapi puts it in the URL) reach an error,
  a log line or the result.
* recorded: :func:`load_fred_recorded` reads ``<root>/macro/fred/<ID>.csv`` (``date,value``),
  each monthly series extended back in time with FRED-MD (McCracken & Ng's monthly
  database, ``<root>/macro/fred_md_current.csv``, from 1959) where that file holds the same
  series before the recorded file starts.

Both produce raw ``(date, value, realtime_start)`` rows that :func:`_to_long` turns into the
warehouse's long format ``field_path, observed_at, value, known_at``:

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

Primary and fallback series: a field is written by one series of this source. When several
series map to one field the first listed is primary (``primary=True``), the others are
fallbacks tried in order only when the primary delivers nothing (failed or absent):
DFF over FEDFUNDS (fed funds), DCOILWTICO over OILPRICE (WTI), RSAFS over RSXFS (retail
sales) and NFCI over ANFCI (financial conditions; the recorded data only has ANFCI).
"""

from __future__ import annotations

import datetime as dt
import functools
import http.client
import logging
import os
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import quote_plus, urlencode

import numpy as np
import pandas as pd
import polars as pl
from fredapi import Fred

from canvas.spec import DatasetSpec
from ingest.base import (
    LONG_SCHEMA,
    NOT_ATTEMPTED,
    FetchResult,
    RateLimitedError,
    RetryPolicy,
    SourceError,
    call_with_retries,
    redact,
)
from ingest.tabular import TabularError, observation_bounds, parse_columns, read_table

__all__ = [
    "FRED_SERIES",
    "FredSeries",
    "Release",
    "Transform",
    "fetch_fred_live",
    "fred_adapter",
    "fred_series_info",
    "load_fred_recorded",
    "series_by_id",
]

log = logging.getLogger("guwm.ingest.fred")

SOURCE = "fred"
API_KEY_HELP = (
    "get a free key at https://fred.stlouisfed.org/docs/api/api_key.html and pass "
    "api_key=... or set the environment variable FRED_API_KEY"
)
Frequency = Literal["D", "W", "M", "Q"]
UNREACHABLE_AFTER = 2  # consecutive series lost to connection errors, none delivered -> stop


# -- transforms ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Transform:
    """How a raw FRED value becomes the schema's unit.

    ``expr(x, x_lag)`` is a vectorized Polars expression of the value and, when ``lag`` is
    set, of the observation ``lag`` earlier (a Polars duration such as ``"1y"``).
    """

    name: str
    expr: Callable[[pl.Expr, pl.Expr], pl.Expr]
    lag: str | None = None
    lookback_days: int = 0  # how much history before start_date a live fetch asks for


LEVEL = Transform("level", lambda x, _: x)
YOY_PCT = Transform("yoy_pct", lambda x, x0: (x / x0 - 1.0) * 100.0, "1y", 400)
QOQ_SAAR = Transform("qoq_saar", lambda x, x0: ((x / x0) ** 4 - 1.0) * 100.0, "3mo", 100)
MOM_DIFF = Transform("mom_diff", lambda x, x0: x - x0, "1mo", 40)


def scale(factor: float) -> Transform:
    """A unit conversion: the level times ``factor``."""
    return Transform(f"scale({factor:.6g})", lambda x, _: x * factor)


MILLIONS_TO_BILLIONS = scale(1e-3)
PER_TONNE_TO_PER_POUND = scale(1 / 2204.62262185)  # USD per metric ton -> USD per pound


# -- release calendar ---------------------------------------------------------------------


@dataclass(frozen=True)
class Release:
    """When a value becomes public: ``days`` after its period ends, at ``at`` (HH:MM UTC).

    A release date on a weekend moves to the Monday. These are approximations of the
    publishers' calendars (US holidays are ignored); ALFRED vintages replace them.
    """

    days: int
    at: str = "12:30"
    note: str = ""

    @property
    def time_of_day(self) -> dt.timedelta:
        """The release time as an offset from midnight UTC."""
        hours, minutes = self.at.split(":")
        return dt.timedelta(hours=int(hours), minutes=int(minutes))


MARKET_CLOSE = Release(0, "21:00", "US market close, same day")
TOKYO_CLOSE = Release(0, "07:00", "Tokyo close, same day")
H15_NEXT_DAY = Release(1, "21:00", "Fed H.15 / Treasury yields, posted the next business day")
NY_FED_RATES = Release(1, "13:00", "NY Fed reference rates, 8-9 am ET the next business day")
NY_FED_RRP = Release(0, "18:30", "ON RRP operation results, 1:15 pm ET the same day")
FOMC_TARGET = Release(0, "19:00", "FOMC target range, announced before it takes effect")
ICE_BOFA = Release(1, "13:00", "ICE BofA index spreads, posted the next morning")
H10_WEEKLY = Release(7, "21:00", "Fed H.10 exchange rates, released weekly on Mondays")
EIA_SPOT = Release(7, "17:00", "EIA spot prices, updated weekly")
EPU_DAILY = Release(1, "14:00", "economic policy uncertainty, the next day")
GASOLINE = Release(0, "22:00", "EIA gasoline survey, Monday 5 pm ET")
MORTGAGE_SURVEY = Release(0, "16:00", "Freddie Mac PMMS, Thursday noon ET")
JOBLESS_CLAIMS = Release(5, "12:30", "Thursday after the week ending Saturday")
CONTINUED_CLAIMS = Release(12, "12:30", "Thursday of the following week")
STL_FSI = Release(6, "14:00", "Thursday after the week ending Friday")
CHICAGO_NFCI = Release(5, "12:30", "Wednesday after the week ending Friday")
H41_BALANCE_SHEET = Release(1, "21:30", "Fed H.4.1, Thursday 4:30 pm ET for Wednesday")
H8_BANK_CREDIT = Release(14, "21:15", "Fed H.8, weekly on Friday 4:15 pm ET")
H6_MONEY = Release(25, "17:00", "Fed H.6, fourth Tuesday of the next month")
EMPLOYMENT = Release(7, "12:30", "Employment Situation, first Friday of the next month")
CPI = Release(13, "12:30", "BLS CPI, mid next month")
PPI = Release(14, "12:30", "BLS PPI, mid next month")
JOLTS = Release(37, "14:00", "BLS JOLTS, about five weeks after the month")
PERSONAL_INCOME = Release(30, "12:30", "BEA personal income and outlays (PCE), end of next month")
GDP_ADVANCE = Release(30, "12:30", "BEA GDP advance estimate, ~30 days after the quarter")
MICHIGAN_FINAL = Release(0, "14:00", "U. Michigan final reading, end of the survey month")
INDUSTRIAL_PRODUCTION = Release(16, "13:15", "Fed G.17, mid next month")
CFNAI_RELEASE = Release(25, "12:30", "Chicago Fed CFNAI, late next month")
RETAIL_SALES = Release(15, "12:30", "Census advance retail sales, mid next month")
DURABLE_GOODS = Release(26, "12:30", "Census advance durable goods, late next month")
HOUSING_STARTS = Release(17, "12:30", "Census new residential construction")
NEW_HOME_SALES = Release(24, "14:00", "Census new residential sales")
CASE_SHILLER = Release(58, "13:00", "S&P Case-Shiller, last Tuesday two months later")
CONSUMER_CREDIT = Release(37, "20:00", "Fed G.19, fifth business day of the second month")
TRADE = Release(35, "12:30", "Census/BEA international trade, ~5 weeks after the month")
IMF_COMMODITIES = Release(10, "14:00", "IMF primary commodity prices, early next month")
MONTHLY_AVERAGE_NEXT_DAY = Release(1, "21:00", "monthly average, after the month's last day")
SAHM_REALTIME = Release(7, "14:00", "computed from the Employment Situation")
RECESSION_PROBABILITY = Release(60, "14:00", "Chauvet-Piger model, about two months later")
NBER_DATING = Release(365, "16:00", "NBER dates turning points 6-21 months after the fact")
DELINQUENCY = Release(55, "20:00", "Fed charge-off and delinquency rates, ~8 weeks later")
DEBT_SERVICE = Release(95, "17:00", "Fed household debt service ratio, ~one quarter later")
FEDERAL_DEBT_GDP = Release(35, "14:00", "computed after the GDP advance estimate")


# -- the series table ---------------------------------------------------------------------


@dataclass(frozen=True)
class FredSeries:
    """One FRED series: where it lands in the schema and how it gets there."""

    series_id: str
    field_path: str
    frequency: Frequency
    transform: Transform
    release: Release
    primary: bool = True  # False: a fallback used only when the primary delivers nothing

    @property
    def key(self) -> str:
        """The DatasetSpec key: the series id in lower case."""
        return self.series_id.lower()


_US = "country_us.macro"
_S = FredSeries

FRED_SERIES: tuple[FredSeries, ...] = (
    # output and activity
    _S("GDPC1", f"{_US}.output.gdp_nowcast", "Q", QOQ_SAAR, GDP_ADVANCE),
    _S("A191RO1Q156NBEA", f"{_US}.output.real_gdp_growth", "Q", LEVEL, GDP_ADVANCE),
    _S("GDP", f"{_US}.output.nominal_gdp_growth", "Q", QOQ_SAAR, GDP_ADVANCE),
    _S("INDPRO", f"{_US}.output.industrial_production", "M", YOY_PCT, INDUSTRIAL_PRODUCTION),
    _S("TCU", f"{_US}.output.capacity_utilization", "M", LEVEL, INDUSTRIAL_PRODUCTION),
    _S("CFNAI", f"{_US}.output.cfnai", "M", LEVEL, CFNAI_RELEASE),
    _S("RSAFS", f"{_US}.output.retail_sales", "M", YOY_PCT, RETAIL_SALES),
    _S("RSXFS", f"{_US}.output.retail_sales", "M", YOY_PCT, RETAIL_SALES, primary=False),
    _S("DGORDER", f"{_US}.output.durable_goods_orders", "M", YOY_PCT, DURABLE_GOODS),
    _S("DSPIC96", f"{_US}.output.real_disposable_income_growth", "M", YOY_PCT, PERSONAL_INCOME),
    _S("PCEC96", f"{_US}.output.real_pce_growth", "M", YOY_PCT, PERSONAL_INCOME),
    # inflation
    _S("CPIAUCSL", f"{_US}.inflation.headline_cpi", "M", YOY_PCT, CPI),
    _S("CPILFESL", f"{_US}.inflation.core_cpi", "M", YOY_PCT, CPI),
    _S("CUSR0000SAH1", f"{_US}.inflation.shelter_cpi", "M", YOY_PCT, CPI),
    _S("PCEPI", f"{_US}.inflation.headline_pce", "M", YOY_PCT, PERSONAL_INCOME),
    _S("PCEPILFE", f"{_US}.inflation.core_pce", "M", YOY_PCT, PERSONAL_INCOME),
    _S("PPIFIS", f"{_US}.inflation.ppi_final_demand", "M", YOY_PCT, PPI),
    _S("MICH", f"{_US}.inflation.michigan_expectations_1y", "M", LEVEL, MICHIGAN_FINAL),
    _S("T10YIE", f"{_US}.inflation.breakeven_10y", "D", LEVEL, H15_NEXT_DAY),
    _S("T5YIE", f"{_US}.inflation.breakeven_5y", "D", LEVEL, H15_NEXT_DAY),
    _S("T5YIFR", f"{_US}.inflation.forward_inflation_5y5y", "D", LEVEL, H15_NEXT_DAY),
    # labour
    _S("UNRATE", f"{_US}.labor.unemployment_rate", "M", LEVEL, EMPLOYMENT),
    _S("U6RATE", f"{_US}.labor.u6_rate", "M", LEVEL, EMPLOYMENT),
    _S("PAYEMS", f"{_US}.labor.nonfarm_payrolls_change", "M", MOM_DIFF, EMPLOYMENT),
    _S("CIVPART", f"{_US}.labor.participation_rate", "M", LEVEL, EMPLOYMENT),
    _S("EMRATIO", f"{_US}.labor.employment_population_ratio", "M", LEVEL, EMPLOYMENT),
    _S("AHETPI", f"{_US}.labor.avg_hourly_earnings_growth", "M", YOY_PCT, EMPLOYMENT),
    _S("ICSA", f"{_US}.labor.initial_claims", "W", LEVEL, JOBLESS_CLAIMS),
    _S("CCSA", f"{_US}.labor.continuing_claims", "W", LEVEL, CONTINUED_CLAIMS),
    _S("JTSJOL", f"{_US}.labor.job_openings", "M", LEVEL, JOLTS),
    _S("JTSQUR", f"{_US}.labor.quits_rate", "M", LEVEL, JOLTS),
    # policy and money-market rates
    _S("DFF", f"{_US}.rates.fed_funds", "D", LEVEL, NY_FED_RATES),
    _S("FEDFUNDS", f"{_US}.rates.fed_funds", "M", LEVEL, MONTHLY_AVERAGE_NEXT_DAY, primary=False),
    _S("DFEDTARU", f"{_US}.rates.fed_funds_target_upper", "D", LEVEL, FOMC_TARGET),
    _S("SOFR", f"{_US}.rates.sofr", "D", LEVEL, NY_FED_RATES),
    _S("DTB3", f"{_US}.rates.treasury_3m", "D", LEVEL, H15_NEXT_DAY),
    _S("MORTGAGE30US", f"{_US}.rates.mortgage_30y", "W", LEVEL, MORTGAGE_SURVEY),
    _S("DFII10", f"{_US}.rates.real_yield_10y", "D", LEVEL, H15_NEXT_DAY),
    # money and the Fed's balance sheet
    _S("M2SL", f"{_US}.money.m2_growth", "M", YOY_PCT, H6_MONEY),
    _S("WM2NS", f"{_US}.money.m2_money_stock", "W", LEVEL, H6_MONEY),
    _S("WALCL", f"{_US}.money.fed_balance_sheet", "W", LEVEL, H41_BALANCE_SHEET),
    _S("WRESBAL", f"{_US}.money.bank_reserves", "W", LEVEL, H41_BALANCE_SHEET),
    _S("WTREGEN", f"{_US}.money.treasury_general_account", "W", LEVEL, H41_BALANCE_SHEET),
    _S("RRPONTSYD", f"{_US}.money.reverse_repo", "D", LEVEL, NY_FED_RRP),
    # housing
    _S("HOUST", f"{_US}.housing.housing_starts", "M", LEVEL, HOUSING_STARTS),
    _S("PERMIT", f"{_US}.housing.building_permits", "M", LEVEL, HOUSING_STARTS),
    _S("HSN1F", f"{_US}.housing.new_home_sales", "M", LEVEL, NEW_HOME_SALES),
    _S("MSACSR", f"{_US}.housing.months_supply_new_homes", "M", LEVEL, NEW_HOME_SALES),
    _S("CSUSHPINSA", f"{_US}.housing.case_shiller_hpi_growth", "M", YOY_PCT, CASE_SHILLER),
    # credit and financial conditions
    _S("BUSLOANS", f"{_US}.credit.business_loans_growth", "M", YOY_PCT, H8_BANK_CREDIT),
    _S("TOTALSL", f"{_US}.credit.consumer_credit_growth", "M", YOY_PCT, CONSUMER_CREDIT),
    _S("STLFSI4", f"{_US}.credit.financial_stress_index", "W", LEVEL, STL_FSI),
    _S("NFCI", f"{_US}.credit.nfci", "W", LEVEL, CHICAGO_NFCI),
    _S("ANFCI", f"{_US}.credit.nfci", "W", LEVEL, CHICAGO_NFCI, primary=False),
    _S("DRCCLACBS", f"{_US}.credit.credit_card_delinquency_rate", "Q", LEVEL, DELINQUENCY),
    _S("TDSP", f"{_US}.credit.household_debt_service_ratio", "Q", LEVEL, DEBT_SERVICE),
    # sentiment, cycle, trade, fiscal
    _S("UMCSENT", f"{_US}.sentiment.consumer_sentiment", "M", LEVEL, MICHIGAN_FINAL),
    _S("USEPUINDXD", f"{_US}.sentiment.economic_policy_uncertainty", "D", LEVEL, EPU_DAILY),
    _S("USREC", f"{_US}.cycle.recession_indicator", "M", LEVEL, NBER_DATING),
    _S("RECPROUSM156N", f"{_US}.cycle.recession_probability", "M", LEVEL, RECESSION_PROBABILITY),
    _S("SAHMREALTIME", f"{_US}.cycle.sahm_rule", "M", LEVEL, SAHM_REALTIME),
    _S("BOPGSTB", f"{_US}.trade.trade_balance", "M", MILLIONS_TO_BILLIONS, TRADE),
    _S("GFDEGDQ188S", f"{_US}.fiscal.federal_debt_gdp", "Q", LEVEL, FEDERAL_DEBT_GDP),
    _S("GASREGW", f"{_US}.commodities.gasoline_retail_price", "W", LEVEL, GASOLINE),
    # Treasury curve (constant maturity)
    _S("DGS3MO", "financial.yield_curves.three_month", "D", LEVEL, H15_NEXT_DAY),
    _S("DGS1", "financial.yield_curves.one_year", "D", LEVEL, H15_NEXT_DAY),
    _S("DGS2", "financial.yield_curves.two_year", "D", LEVEL, H15_NEXT_DAY),
    _S("DGS5", "financial.yield_curves.five_year", "D", LEVEL, H15_NEXT_DAY),
    _S("DGS10", "financial.yield_curves.ten_year", "D", LEVEL, H15_NEXT_DAY),
    _S("DGS30", "financial.yield_curves.thirty_year", "D", LEVEL, H15_NEXT_DAY),
    _S("T10Y2Y", "financial.yield_curves.spread_10y_2y", "D", LEVEL, H15_NEXT_DAY),
    _S("T10Y3M", "financial.yield_curves.spread_10y_3m", "D", LEVEL, H15_NEXT_DAY),
    # credit spreads
    _S("BAMLH0A0HYM2", "financial.credit.high_yield_oas", "D", LEVEL, ICE_BOFA),
    _S("BAMLC0A0CM", "financial.credit.investment_grade_oas", "D", LEVEL, ICE_BOFA),
    _S("BAMLC0A4CBBB", "financial.credit.bbb_oas", "D", LEVEL, ICE_BOFA),
    # equities and volatility
    _S("SP500", "financial.equities.sp500", "D", LEVEL, MARKET_CLOSE),
    _S("NASDAQ100", "financial.equities.nasdaq100", "D", LEVEL, MARKET_CLOSE),
    _S("DJIA", "financial.equities.dow_jones", "D", LEVEL, MARKET_CLOSE),
    _S("NIKKEI225", "financial.equities.nikkei225", "D", LEVEL, TOKYO_CLOSE),
    _S("VIXCLS", "financial.equities.vix", "D", LEVEL, MARKET_CLOSE),
    _S("VXVCLS", "financial.equities.vix_3m", "D", LEVEL, MARKET_CLOSE),
    # currencies
    _S("DTWEXBGS", "financial.fx.broad_dollar_index", "D", LEVEL, H10_WEEKLY),
    _S("DEXUSEU", "financial.fx.eurusd", "D", LEVEL, H10_WEEKLY),
    _S("DEXJPUS", "financial.fx.usdjpy", "D", LEVEL, H10_WEEKLY),
    _S("DEXUSUK", "financial.fx.gbpusd", "D", LEVEL, H10_WEEKLY),
    _S("DEXUSAL", "financial.fx.audusd", "D", LEVEL, H10_WEEKLY),
    _S("DEXCAUS", "financial.fx.usdcad", "D", LEVEL, H10_WEEKLY),
    _S("DEXSZUS", "financial.fx.usdchf", "D", LEVEL, H10_WEEKLY),
    # commodities
    _S("DCOILWTICO", "financial.commodities.wti_crude", "D", LEVEL, EIA_SPOT),
    _S("OILPRICE", "financial.commodities.wti_crude", "M", LEVEL, EIA_SPOT, primary=False),
    _S("DCOILBRENTEU", "financial.commodities.brent_crude", "D", LEVEL, EIA_SPOT),
    _S("PCOPPUSDM", "financial.commodities.copper", "M", PER_TONNE_TO_PER_POUND, IMF_COMMODITIES),
    _S("PALLFNFINDEXM", "financial.commodities.commodity_index", "M", LEVEL, IMF_COMMODITIES),
)

_BY_ID: dict[str, FredSeries] = {s.series_id: s for s in FRED_SERIES}
if len(_BY_ID) != len(FRED_SERIES):
    raise RuntimeError("FRED_SERIES lists a series id twice")


def series_by_id(series_id: str) -> FredSeries:
    """The table row of a FRED series id (case-insensitive); KeyError when it is not listed."""
    return _BY_ID[series_id.upper()]


def _select(series_ids: Iterable[str] | None) -> list[FredSeries]:
    """Table rows for `series_ids` (all rows when None), in table order."""
    if series_ids is None:
        return list(FRED_SERIES)
    if isinstance(series_ids, str):
        series_ids = [series_ids]
    wanted = {s.upper() for s in series_ids}
    unknown = sorted(wanted - _BY_ID.keys())
    if unknown:
        raise ValueError(
            f"FRED series not in FRED_SERIES: {', '.join(unknown)} "
            "(add a row with its field path, frequency, transform and release)"
        )
    return [s for s in FRED_SERIES if s.series_id in wanted]


# -- from raw observations to the long format (the one code path) ------------------------

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


def _to_long(
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


def _empty_raw() -> pl.DataFrame:
    return pl.DataFrame(schema=RAW_SCHEMA)


# -- fetching many series: fallbacks, partial failure -------------------------------------


class _Unreachable(SourceError):
    """The source cannot be reached at all: stop asking for the remaining series."""


# What can go wrong with one series without saying anything about the others.
_PER_SERIES_ERRORS = (
    SourceError,
    ET.ParseError,
    ValueError,
    TypeError,
    KeyError,
    OSError,
    pl.exceptions.PolarsError,
)


@dataclass
class _Collected:
    result: FetchResult
    delivered: list[FredSeries]


def _collect(
    series: list[FredSeries],
    fetch_raw: Callable[[FredSeries], pl.DataFrame],
    *,
    now: dt.datetime,
    start: dt.date | None,
    end: dt.date | None,
    secrets: tuple[str, ...] = (),
) -> _Collected:
    """Fetch every requested field from its first series (in table order) that delivers."""
    frames: list[pl.DataFrame] = []
    failures: dict[str, str] = {}
    delivered: dict[str, FredSeries] = {}
    stop: str | None = None
    for s in series:
        if s.field_path in delivered:
            primary = delivered[s.field_path].series_id
            log.debug("FRED %s skipped: %s comes from %s", s.series_id, s.field_path, primary)
            continue
        if stop is not None:
            failures[s.series_id] = f"{NOT_ATTEMPTED}: FRED unreachable"
            continue
        try:
            long = _to_long(fetch_raw(s), s, now=now, start=start, end=end)
        except _KeyRejected:
            raise
        except _Unreachable as err:
            stop = redact(str(err), secrets)
            failures[s.series_id] = stop
            continue
        except _PER_SERIES_ERRORS as err:
            failures[s.series_id] = redact(str(err) or type(err).__name__, secrets)
            continue
        if long.is_empty():
            failures[s.series_id] = "no observations in the requested date range"
            continue
        delivered[s.field_path] = s
        frames.append(long)
    data = (
        pl.concat(frames).cast(LONG_SCHEMA).sort("field_path", "observed_at", "known_at")
        if frames
        else pl.DataFrame(schema=LONG_SCHEMA)
    )
    log.info(
        "FRED: %d series delivered, %d rows, %d failed", len(delivered), len(data), len(failures)
    )
    return _Collected(FetchResult(SOURCE, data, failures), list(delivered.values()))


def _as_date(value: str | dt.date | None, name: str) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.date()
    if value is None or isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        raise ValueError(f"{name} must be an ISO date like 2010-01-01, got {value!r}") from None


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)


# -- recorded files -----------------------------------------------------------------------


def _recorded_dir(root: Path) -> Path:
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


def _read_recorded(
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


def _load_recorded(
    root: Path,
    series_ids: Iterable[str] | None,
    start_date: str | dt.date | None,
    end_date: str | dt.date | None,
    now: dt.datetime | None,
) -> _Collected:
    directory = _recorded_dir(Path(root))
    if not directory.is_dir():
        raise FileNotFoundError(f"no recorded FRED folder at {directory}")
    series = _select(series_ids)
    if series_ids is None:  # everything that was recorded
        series = [s for s in series if (directory / f"{s.series_id}.csv").is_file()]
    return _collect(
        series,
        functools.partial(_read_recorded, directory, history=read_fred_md(Path(root))),
        now=now or _utc_now(),
        start=_as_date(start_date, "start_date"),
        end=_as_date(end_date, "end_date"),
    )


def load_fred_recorded(
    root: Path,
    series_ids: Iterable[str] | None = None,
    start_date: str | dt.date | None = None,
    *,
    end_date: str | dt.date | None = None,
    now: dt.datetime | None = None,
) -> FetchResult:
    """Long-format rows from recorded FRED CSVs (``root/macro/fred/<ID>.csv``, ``date,value``).

    Without `series_ids`, every table series that has a file is loaded. Empty cells are
    missing values and are dropped. Values go through the same transforms and release lags
    as live data; `now` (naive UTC, default the clock) caps known_at.
    """
    return _load_recorded(root, series_ids, start_date, end_date, now).result


# -- live: fredapi with a timeout, status-aware retries, paging and no key in errors ------


class _TransportError(SourceError):
    """Timeout or connection failure: retried."""


class _ServerError(SourceError):
    """HTTP 5xx: retried."""


class _KeyRejected(SourceError):
    """FRED refused the API key: nothing will work."""


def _error_message(body: bytes) -> str:
    """The ``message`` of a FRED XML error body (``<error code=".." message=".."/>``)."""
    try:
        return " ".join((ET.fromstring(body).get("message") or "").split())
    except ET.ParseError:
        return ""


class _FredClient(Fred):
    """fredapi's ``Fred`` with its one network call (``__fetch_data``) replaced.

    fredapi builds the URLs and parses the XML; this class does the HTTP: with a timeout,
    typed errors by status, paging when FRED holds more rows than one answer carries, and
    the key redacted from every message.
    """

    def __init__(self, api_key: str, *, timeout: float, root_url: str | None = None) -> None:
        super().__init__(api_key=api_key)
        if root_url:
            if not root_url.startswith(("http://", "https://")):
                raise ValueError(f"root_url must be an http(s) URL, got {root_url!r}")
            self.root_url = root_url.rstrip("/")
        self.timeout = timeout
        self.secrets = (api_key, quote_plus(api_key))

    # fredapi calls self.__fetch_data, name-mangled to _Fred__fetch_data: this overrides it.
    def _Fred__fetch_data(self, url: str) -> ET.Element:
        root = self._get(url)
        total = int(root.get("count") or 0)
        while len(root) < total:
            page = self._get(f"{url}&offset={len(root)}")
            if not len(page):
                break
            root.extend(list(page))
        return root

    def _get(self, url: str) -> ET.Element:
        request = urllib.request.Request(
            f"{url}&{urlencode({'api_key': self.api_key})}", headers={"User-Agent": "guwm"}
        )
        error: SourceError | None = None
        body = b""
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = response.read()
        except urllib.error.HTTPError as err:
            error = self._http_error(err)
        except (OSError, http.client.HTTPException) as err:
            error = _TransportError(self._transport_message(err))
        if error is not None:  # raised here, outside `except`: no context holding the URL
            raise error
        try:
            return ET.fromstring(body)
        except ET.ParseError as err:
            raise SourceError(f"FRED answered with something that is not XML ({err})") from None

    def _http_error(self, err: urllib.error.HTTPError) -> SourceError:
        try:
            body = err.read(65536)
        except (OSError, http.client.HTTPException):
            body = b""
        finally:
            err.close()
        # redact before cutting, so no piece of the key survives the cut
        snippet = redact(" ".join(body.decode("utf-8", "replace").split()), self.secrets)[:200]
        message = _error_message(body) or ": ".join(filter(None, [str(err.reason), snippet]))
        text = redact(f"HTTP {err.code}: {message}", self.secrets)
        if err.code == 429:
            return RateLimitedError(text)
        if err.code >= 500:
            return _ServerError(text)
        if "api_key" in message.lower() or err.code in (401, 403):
            return _KeyRejected(text)
        return SourceError(text)  # 400/404: a bad request or series id, not worth retrying

    def _transport_message(self, err: BaseException) -> str:
        reason = getattr(err, "reason", err)
        if isinstance(reason, TimeoutError) or isinstance(err, TimeoutError):
            return f"timed out after {self.timeout:g}s"
        return redact(f"connection failed: {type(reason).__name__}: {reason}", self.secrets)


def _raw_latest(
    s: FredSeries, start: dt.date | None, end: dt.date | None, client: _FredClient
) -> pl.DataFrame:
    """Latest values of one series as raw rows."""
    begin = start - dt.timedelta(days=s.transform.lookback_days) if start else None
    values = client.get_series(s.series_id, observation_start=begin, observation_end=end)
    if values.empty:
        return _empty_raw()
    return pl.DataFrame(
        {
            "date": pl.Series(values.index.to_numpy()).cast(pl.Date),
            "value": values.to_numpy(dtype=float),
            "realtime_start": pl.Series([None] * len(values), dtype=pl.Date),
        }
    )


def _as_float(column: pd.Series) -> np.ndarray:
    """Floats from fredapi's object column; its missing values may come back as NaN or NaT."""
    as_objects = column.astype(object).where(column.notna(), None)
    return pd.to_numeric(as_objects, errors="coerce").astype(float).to_numpy()


def _raw_vintages(s: FredSeries, client: _FredClient) -> pl.DataFrame:
    """Every ALFRED vintage of one series as raw rows (realtime_start = vintage date)."""
    releases = client.get_series_all_releases(s.series_id)
    if releases.empty:
        return _empty_raw()
    return pl.DataFrame(
        {
            "date": pl.Series(pd.to_datetime(releases["date"]).to_numpy()).cast(pl.Date),
            "value": _as_float(releases["value"]),
            "realtime_start": pl.Series(pd.to_datetime(releases["realtime_start"]).to_numpy()).cast(
                pl.Date
            ),
        }
    )


def _resolve_key(api_key: str | None) -> str:
    key = api_key or os.environ.get("FRED_API_KEY")
    if not key:
        raise ValueError(f"FRED needs an API key: {API_KEY_HELP}")
    return key


def _fetch_live(
    series_ids: Iterable[str] | None,
    *,
    api_key: str | None,
    start_date: str | dt.date | None,
    end_date: str | dt.date | None,
    vintages: bool,
    policy: RetryPolicy,
    root_url: str | None,
    now: dt.datetime | None = None,
) -> _Collected:
    key = _resolve_key(api_key)
    series = _select(series_ids)
    start, end = _as_date(start_date, "start_date"), _as_date(end_date, "end_date")
    client = _FredClient(key, timeout=policy.timeout, root_url=root_url)
    secrets = client.secrets
    state = {"delivered": 0, "lost": 0}

    def fetch_raw(s: FredSeries) -> pl.DataFrame:
        last: list[BaseException] = []

        def attempt() -> pl.DataFrame:
            try:
                return _raw_vintages(s, client) if vintages else _raw_latest(s, start, end, client)
            except Exception as err:
                last[:] = [err]
                raise

        try:
            raw = call_with_retries(
                attempt,
                policy=policy,
                what=f"FRED series {s.series_id}",
                retry_on=(RateLimitedError, _ServerError, _TransportError),
                secrets=secrets,
            )
        except _KeyRejected as err:
            raise _KeyRejected(f"FRED rejected the API key ({err}); {API_KEY_HELP}") from None
        except SourceError as err:
            state["lost"] = state["lost"] + 1 if isinstance(last[-1], _TransportError) else 0
            if state["lost"] >= UNREACHABLE_AFTER and not state["delivered"]:
                raise _Unreachable(
                    f"FRED unreachable ({state['lost']} series in a row failed to connect; "
                    f"last: {err})"
                ) from None
            raise
        state["delivered"] += 1
        state["lost"] = 0
        return raw

    return _collect(series, fetch_raw, now=now or _utc_now(), start=start, end=end, secrets=secrets)


def fetch_fred_live(
    series_ids: Iterable[str] | None = None,
    *,
    api_key: str | None = None,
    start_date: str | dt.date | None = None,
    end_date: str | dt.date | None = None,
    vintages: bool = False,
    policy: RetryPolicy = RetryPolicy(),  # noqa: B008 -- frozen dataclass, safe default
    root_url: str | None = None,
) -> FetchResult:
    """Fetch FRED series (default: the whole table) through fredapi into the long format.

    The key comes from `api_key` or the environment variable FRED_API_KEY (ValueError when
    neither is set). Timeouts, connection errors, HTTP 5xx and 429 are retried with backoff
    (`policy`); a 400 (bad series id) is not. A failed series lands in `failures` with its
    reason and does not stop the others; fallback series stand in for a failed primary.
    A rejected key raises SourceError. With `vintages=True` every ALFRED vintage is a row
    with known_at = its realtime_start (at the series' release time). `root_url` replaces
    https://api.stlouisfed.org/fred (tests use a loopback server).
    """
    return _fetch_live(
        series_ids,
        api_key=api_key,
        start_date=start_date,
        end_date=end_date,
        vintages=vintages,
        policy=policy,
        root_url=root_url,
    ).result


def fred_series_info(
    series_ids: Iterable[str] | None = None,
    *,
    api_key: str | None = None,
    policy: RetryPolicy = RetryPolicy(),  # noqa: B008 -- frozen dataclass, safe default
    root_url: str | None = None,
) -> tuple[pl.DataFrame, dict[str, str]]:
    """FRED's own metadata (/series) for table rows, beside the table's frequency.

    A maintenance check of :data:`FRED_SERIES` when FRED is reachable: rows whose
    ``frequency_matches`` is false, or whose ``units`` disagree with the schema, need a look.
    Returns the frame and the series that failed, with reasons.
    """
    client = _FredClient(_resolve_key(api_key), timeout=policy.timeout, root_url=root_url)
    rows: list[dict[str, str]] = []
    failures: dict[str, str] = {}
    for s in _select(series_ids):
        try:
            info = call_with_retries(
                functools.partial(client.get_series_info, s.series_id),
                policy=policy,
                what=f"FRED series {s.series_id}",
                retry_on=(RateLimitedError, _ServerError, _TransportError),
                secrets=client.secrets,
            )
        except _KeyRejected as err:
            raise _KeyRejected(f"FRED rejected the API key ({err}); {API_KEY_HELP}") from None
        except (SourceError, ValueError, ET.ParseError) as err:
            failures[s.series_id] = redact(str(err), client.secrets)
            continue
        rows.append(
            {
                "series_id": s.series_id,
                "field_path": s.field_path,
                "table_frequency": s.frequency,
                "fred_frequency": str(info.get("frequency_short", "")),
                "units": str(info.get("units", "")),
                "title": str(info.get("title", "")),
                "last_updated": str(info.get("last_updated", "")),
            }
        )
    columns = ["series_id", "field_path", "table_frequency", "fred_frequency", "units", "title"]
    frame = pl.DataFrame(rows, schema=dict.fromkeys([*columns, "last_updated"], pl.Utf8))
    return frame.with_columns(
        frequency_matches=pl.col("table_frequency") == pl.col("fred_frequency")
    ), failures


# -- the seed's adapter -------------------------------------------------------------------


def fred_adapter(
    api_key: str | None = None,
    start_date: str | dt.date | None = None,
    *,
    series: Iterable[str] | None = None,
    vintages: bool = False,
    recorded_dir: str | os.PathLike[str] | None = None,
    end_date: str | dt.date | None = None,
    policy: RetryPolicy = RetryPolicy(),  # noqa: B008 -- frozen dataclass, safe default
    root_url: str | None = None,
) -> tuple[DatasetSpec, pl.DataFrame]:
    """FRED as ``(DatasetSpec "FRED", long-format data)``: recorded files or the live API.

    `recorded_dir` (a folder like shared/data, or one holding the CSVs) selects the recorded
    files; otherwise the live API is used (see :func:`fetch_fred_live`). The spec maps each
    delivered series id, lower case, to its field path. Failed series are logged; SourceError
    only when every series failed.
    """
    started = time.perf_counter()
    if recorded_dir is not None:
        if vintages:
            raise ValueError("recorded FRED files hold one vintage; vintages=True needs the API")
        collected = _load_recorded(Path(recorded_dir), series, start_date, end_date, None)
    else:
        collected = _fetch_live(
            series,
            api_key=api_key,
            start_date=start_date,
            end_date=end_date,
            vintages=vintages,
            policy=policy,
            root_url=root_url,
        )
    result = collected.result.raise_if_nothing()
    spec = DatasetSpec.from_fields("FRED", {s.key: s.field_path for s in collected.delivered})
    seconds = time.perf_counter() - started
    log.info(
        "FRED adapter: %d fields, %d rows in %.1fs",
        len(spec.field_paths),
        len(result.data),
        seconds,
    )
    return spec, result.data
