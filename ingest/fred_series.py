"""The FRED series table: series id -> field path, frequency, transform and release lag.

Everything FRED-specific that a reader needs to check is in :data:`FRED_SERIES`, one row
per series, built from the transforms and the release calendar defined first.

Primary and fallback series: a field is written by one series of this source. When several
series map to one field the first listed is primary (``primary=True``), the others are
fallbacks tried in order only when the primary delivers nothing (failed or absent):
DFF over FEDFUNDS (fed funds), DCOILWTICO over OILPRICE (WTI), RSAFS over RSXFS (retail
sales) and NFCI over ANFCI (financial conditions; the recorded data only has ANFCI).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

import polars as pl

__all__ = [
    "FRED_SERIES",
    "LEVEL",
    "MOM_DIFF",
    "QOQ_SAAR",
    "YOY_PCT",
    "FredSeries",
    "Frequency",
    "Release",
    "Transform",
    "select_series",
    "series_by_id",
]

Frequency = Literal["D", "W", "M", "Q"]


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


def select_series(series_ids: Iterable[str] | None) -> list[FredSeries]:
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
