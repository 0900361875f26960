"""The declared field catalogue: every field the default schema knows, as readable tables.

Naming scheme (``domain.group[.subgroup].name``, lower-case segments):

* ``country_us.macro.<group>.<name>``: US macro series (FRED and similar); groups are output,
  inflation, labor, rates, money, housing, credit, sentiment, cycle, trade, fiscal, commodities.
* ``country_us.surveys.<survey>.<component>``: business surveys (ISM and regional Fed).
* ``financial.<asset_class>.<instrument>[_<transform>]``: market prices; a bare name is the level
  (close), ``_return_1d`` the daily percent change and ``_realized_vol_21d`` the annualised
  21-day realised volatility.
* ``firm_<TICKER>.earnings.<name>``: per-firm templates; the ticker is normalised by
  :func:`warehouse.schema.firm_entity` (``BRK-B`` -> ``firm_BRK_B``).
* ``narratives.news.<name>``: daily aggregates of news text.
* ``regime.<name>``: latent regime factors, never observed.

Growth series are stored transformed as their unit says (e.g. percent change from a year
earlier), so adapters transform raw levels before writing. Headline series carry a loss weight
of 2.0-2.5; everything else 1.0.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from warehouse.fields import Field, Period, Transform

_D, _W, _M, _Q, _A, _MY = (
    Period.DAILY,
    Period.WEEKLY,
    Period.MONTHLY,
    Period.QUARTERLY,
    Period.ANNUAL,
    Period.MULTI_YEAR,
)

_YOY = "percent change from a year earlier"
_SAAR = "percent, seasonally adjusted annual rate"
_PCT = "percent"
_PP = "percentage points"
_DIFFUSION = "diffusion index (50 = no change)"
_POINTS = "index points"
_RETURN = "percent (daily change of the close)"
_USD = "US dollars"

# One row per field: (name, period, unit, semantic type[, loss weight]).
_Row = tuple[str, Period, str, str] | tuple[str, Period, str, str, float]


def _group(prefix: str, rows: Iterable[_Row]) -> list[Field]:
    """Fields ``prefix.name`` for each row of a group table."""
    return [
        Field(f"{prefix}.{name}", semantic, unit, period, 1, *weight)
        for name, period, unit, semantic, *weight in rows
    ]


def _ism(survey: str, components: Iterable[tuple[str, str]]) -> list[_Row]:
    """Monthly diffusion-index rows of an ISM report from (component, what above 50 means)."""
    return [
        (
            name,
            _M,
            _DIFFUSION,
            f"ISM {survey} {name.replace('_', ' ')} index from purchasing managers; "
            f"above 50 means {meaning}.",
            2.0 if name == "pmi" else 1.0,
        )
        for name, meaning in components
    ]


def _price_and_return(name: str, title: str, unit: str) -> list[_Row]:
    """A daily closing-level row and its daily-return row."""
    return [
        (name, _D, unit, f"Daily closing level of the {title}."),
        (f"{name}_return_1d", _D, _RETURN, f"Daily percent change in the close of the {title}."),
    ]


_LARGE_CAPS = {  # the default firms of every source: market returns, earnings, news
    "aapl": "Apple",
    "msft": "Microsoft",
    "nvda": "NVIDIA",
    "amzn": "Amazon.com",
    "googl": "Alphabet (class A)",
    "meta": "Meta Platforms",
    "tsla": "Tesla",
    "jpm": "JPMorgan Chase",
    "xom": "Exxon Mobil",
}

LARGE_CAP_TICKERS: tuple[str, ...] = tuple(t.upper() for t in _LARGE_CAPS)

# Where ingest and the canvas start by default: the longest history the recorded sources
# hold (FRED-MD's monthly series from 1959). More windows is what the world model lacks most.
HISTORY_START = "1959-01-01"

# The tables below are laid out by hand, one field per row.
# fmt: off
_US_MACRO: dict[str, list[_Row]] = {
    "output": [
        ("gdp_nowcast", _Q, _SAAR,
         "US real GDP quarterly growth rate, seasonally adjusted and annualised, estimated in "
         "real time for the current quarter.", 2.0),
        ("real_gdp_growth", _Q, _YOY,
         "US real gross domestic product, percent change from the same quarter a year earlier."),
        ("nominal_gdp_growth", _Q, _SAAR,
         "US nominal gross domestic product quarterly growth rate, seasonally adjusted and "
         "annualised."),
        ("industrial_production", _M, _YOY,
         "US industrial production index for manufacturing, mining and utilities, percent "
         "change from the same month a year earlier."),
        ("capacity_utilization", _M, "percent of capacity",
         "Share of the sustainable maximum output of US industry that is in use."),
        ("retail_sales", _M, _YOY,
         "US retail sales in nominal dollars, percent change from the same month a year "
         "earlier."),
        ("durable_goods_orders", _M, _YOY,
         "New orders for US manufactured durable goods, percent change from the same month a "
         "year earlier."),
        ("cfnai", _M, "index (0 = trend growth, in standard deviations)",
         "Chicago Fed National Activity Index, a weighted average of 85 monthly indicators; "
         "zero means US activity is growing at its historical trend."),
        ("real_pce_growth", _M, _YOY,
         "US real personal consumption expenditures, percent change from a year earlier."),
        ("real_disposable_income_growth", _M, _YOY,
         "US real disposable personal income, percent change from a year earlier."),
    ],
    "inflation": [
        ("headline_cpi", _M, _YOY,
         "US CPI year-over-year percent change: the consumer price index for all urban "
         "consumers, all items.", 2.5),
        ("core_cpi", _M, _YOY,
         "US consumer price index excluding food and energy, percent change from a year "
         "earlier."),
        ("headline_pce", _M, _YOY,
         "US personal consumption expenditures price index, percent change from a year "
         "earlier."),
        ("core_pce", _M, _YOY,
         "US personal consumption expenditures price index excluding food and energy, percent "
         "change from a year earlier; the Federal Reserve's preferred inflation gauge."),
        ("ppi_final_demand", _M, _YOY,
         "US producer price index for final demand, percent change from a year earlier."),
        ("shelter_cpi", _M, _YOY,
         "Shelter component of the US CPI (rent and owners' equivalent rent), percent change "
         "from a year earlier."),
        ("breakeven_10y", _D, _PCT,
         "US 10-year breakeven inflation rate: the 10-year nominal Treasury yield minus the "
         "10-year TIPS real yield."),
        ("breakeven_5y", _D, _PCT,
         "US 5-year breakeven inflation rate: the 5-year nominal Treasury yield minus the "
         "5-year TIPS real yield."),
        ("forward_inflation_5y5y", _D, _PCT,
         "Market-implied average US inflation expected over the five years that start five "
         "years from now."),
        ("michigan_expectations_1y", _M, _PCT,
         "Median inflation that US consumers expect over the next twelve months, from the "
         "University of Michigan survey."),
    ],
    "labor": [
        ("unemployment_rate", _M, _PCT,
         "US civilian unemployment rate: unemployed people as a share of the labour force.",
         2.0),
        ("u6_rate", _M, _PCT,
         "US U-6 underemployment rate, counting the unemployed, the marginally attached and "
         "those working part time for economic reasons."),
        ("nonfarm_payrolls_change", _M, "thousands of jobs, change from the previous month",
         "Monthly change in total US nonfarm payroll employment.", 2.0),
        ("participation_rate", _M, _PCT,
         "US labour force participation rate: the share of the working-age population that "
         "works or looks for work."),
        ("employment_population_ratio", _M, _PCT,
         "Share of the US working-age population that is employed."),
        ("avg_hourly_earnings_growth", _M, _YOY,
         "Average hourly earnings of US private-sector employees, percent change from a year "
         "earlier."),
        ("employment_cost_index_growth", _Q, _YOY,
         "US employment cost index for total compensation of private workers, percent change "
         "from a year earlier."),
        ("initial_claims", _W, "claims per week, seasonally adjusted",
         "Initial claims for US unemployment insurance filed during the week."),
        ("continuing_claims", _W, "persons, seasonally adjusted",
         "Number of people continuing to claim US unemployment insurance benefits."),
        ("job_openings", _M, "thousands of openings, seasonally adjusted",
         "Job openings on the last business day of the month in the US (JOLTS)."),
        ("quits_rate", _M, "percent of employment",
         "US quits rate: voluntary job separations as a share of total employment (JOLTS)."),
    ],
    "rates": [
        ("fed_funds", _D, _PCT,
         "Effective federal funds rate: the overnight rate at which US banks lend reserve "
         "balances to each other.", 2.0),
        ("fed_funds_target_upper", _D, _PCT,
         "Upper limit of the Federal Open Market Committee's target range for the federal "
         "funds rate."),
        ("treasury_3m", _D, _PCT,
         "Secondary-market rate on 3-month US Treasury bills, as published by the Federal "
         "Reserve."),
        ("sofr", _D, _PCT,
         "Secured Overnight Financing Rate: the cost of borrowing cash overnight against US "
         "Treasury collateral."),
        ("mortgage_30y", _W, _PCT,
         "Average US 30-year fixed mortgage rate from Freddie Mac's weekly survey."),
        ("real_yield_10y", _D, _PCT,
         "Yield on the 10-year US Treasury inflation-protected security (TIPS), a real "
         "interest rate."),
        ("term_premium_10y", _D, _PP,
         "Model-estimated term premium in the 10-year US Treasury yield: the extra return "
         "investors demand for holding a long bond instead of rolling short bills."),
    ],
    "money": [
        ("m2_growth", _M, _YOY,
         "US M2 money stock, percent change from a year earlier."),
        ("m2_money_stock", _W, "billions of US dollars, not seasonally adjusted",
         "Level of the US M2 money stock: currency, deposits and retail money market funds."),
        ("fed_balance_sheet", _W, "millions of US dollars",
         "Total assets on the Federal Reserve's balance sheet (Wednesday level)."),
        ("reverse_repo", _D, "billions of US dollars",
         "Overnight reverse repurchase agreements: Treasury securities sold by the Federal "
         "Reserve in temporary open market operations."),
        ("bank_reserves", _W, "millions of US dollars",
         "Reserve balances that depository institutions hold at Federal Reserve Banks."),
        ("treasury_general_account", _W, "millions of US dollars",
         "Balance of the US Treasury's general account at the Federal Reserve."),
    ],
    "housing": [
        ("housing_starts", _M, "thousands of units, seasonally adjusted annual rate",
         "New privately owned housing units started in the US."),
        ("building_permits", _M, "thousands of units, seasonally adjusted annual rate",
         "New privately owned housing units authorised by building permits in the US."),
        ("new_home_sales", _M, "thousands of units, seasonally adjusted annual rate",
         "New one-family houses sold in the US."),
        ("existing_home_sales", _M, "millions of units, seasonally adjusted annual rate",
         "Existing homes sold in the US, from the National Association of Realtors."),
        ("case_shiller_hpi_growth", _M, _YOY,
         "S&P CoreLogic Case-Shiller US national home price index, percent change from a year "
         "earlier."),
        ("months_supply_new_homes", _M, "months of sales",
         "Months it would take to sell the US inventory of new houses at the current sales "
         "rate."),
        ("nahb_housing_market_index", _M, "diffusion index (50 = neutral)",
         "NAHB/Wells Fargo housing market index of US home builder sentiment."),
    ],
    "credit": [
        ("business_loans_growth", _M, _YOY,
         "Commercial and industrial loans at US commercial banks, percent change from a year "
         "earlier."),
        ("consumer_credit_growth", _M, _YOY,
         "Total US consumer credit outstanding, percent change from a year earlier."),
        ("financial_stress_index", _W, "index (0 = normal conditions)",
         "St. Louis Fed Financial Stress Index built from interest rates, yield spreads and "
         "volatility; above zero means more stress than normal."),
        ("nfci", _W, "index (0 = average conditions, in standard deviations)",
         "Chicago Fed National Financial Conditions Index; positive values mean financial "
         "conditions tighter than average."),
        ("senior_loan_officer_tightening", _Q, "net percent of banks",
         "Net share of US banks tightening lending standards on commercial and industrial "
         "loans to large and middle-market firms (Senior Loan Officer Opinion Survey)."),
        ("credit_card_delinquency_rate", _Q, _PCT,
         "Delinquency rate on credit card loans at US commercial banks."),
        ("household_debt_service_ratio", _Q, "percent of disposable personal income",
         "US household debt service payments as a share of disposable personal income."),
    ],
    "sentiment": [
        ("consumer_sentiment", _M, "index (1966 Q1 = 100)",
         "University of Michigan index of US consumer sentiment."),
        ("consumer_confidence", _M, "index (1985 = 100)",
         "Conference Board index of US consumer confidence."),
        ("small_business_optimism", _M, "index (1986 = 100)",
         "NFIB small business optimism index of US small firm owners."),
        ("economic_policy_uncertainty", _D, "index (1985-2009 mean = 100)",
         "Daily news-based index of US economic policy uncertainty (Baker, Bloom and Davis)."),
    ],
    "cycle": [
        ("recession_indicator", _M, "binary (1 = recession)",
         "NBER-dated US recession indicator: 1 in months the economy is in recession, 0 "
         "otherwise."),
        ("recession_probability", _M, _PCT,
         "Smoothed probability that the US economy is in recession, from a dynamic-factor "
         "Markov-switching model."),
        ("sahm_rule", _M, _PP,
         "Sahm rule recession indicator: the three-month average US unemployment rate minus "
         "its low over the previous twelve months."),
    ],
    "trade": [
        ("trade_balance", _M, "billions of US dollars, seasonally adjusted",
         "US balance of trade in goods and services: exports minus imports."),
        ("current_account_gdp", _Q, "percent of GDP",
         "US current account balance as a share of gross domestic product."),
    ],
    "fiscal": [
        ("federal_deficit_gdp", _A, "percent of GDP",
         "US federal budget surplus or deficit as a share of GDP; negative values are "
         "deficits."),
        ("federal_debt_gdp", _Q, "percent of GDP",
         "Total US federal public debt as a share of gross domestic product."),
    ],
    "commodities": [
        ("gasoline_retail_price", _W, "US dollars per gallon",
         "Average US retail price of regular gasoline."),
    ],
}


_SURVEYS: dict[str, list[_Row]] = {
    "ism_manufacturing": _ism("Manufacturing", [
        ("pmi", "US manufacturing activity is expanding"),
        ("new_orders", "manufacturers receive more new orders than a month earlier"),
        ("production", "manufacturing output is rising"),
        ("employment", "manufacturing employment is rising"),
        ("supplier_deliveries", "suppliers deliver more slowly"),
        ("inventories", "manufacturers' inventories are growing"),
        ("prices", "the prices manufacturers pay are rising"),
    ]) + [
        ("pmi_consensus", _M, _DIFFUSION,
         "Economists' consensus forecast of the ISM Manufacturing PMI made before its "
         "release."),
    ],
    "ism_services": _ism("Services", [
        ("pmi", "US services activity is expanding"),
        ("business_activity", "services business activity is rising"),
        ("new_orders", "service providers receive more new orders than a month earlier"),
        ("employment", "services employment is rising"),
        ("prices", "the prices service providers pay are rising"),
    ]),
    "regional_fed": [
        ("empire_state_general_business", _M, "diffusion index (0 = no change)",
         "New York Fed Empire State survey of general business conditions for New York "
         "manufacturers; above zero means improving."),
        ("philly_fed_general_activity", _M, "diffusion index (0 = no change)",
         "Philadelphia Fed survey of general activity at manufacturers in its district; above "
         "zero means expanding."),
    ],
}


_FINANCIAL: dict[str, list[_Row]] = {
    "equities": [
        *_price_and_return("sp500", "S&P 500 index of 500 large US companies", _POINTS),
        ("sp500_realized_vol_21d", _D, "percent, annualised",
         "Annualised realised volatility of S&P 500 daily returns over the last 21 trading "
         "days."),
        *_price_and_return("nasdaq100", "Nasdaq-100 index of large non-financial US stocks",
                           _POINTS),
        *_price_and_return("dow_jones", "Dow Jones Industrial Average of 30 US blue chips",
                           _POINTS),
        *_price_and_return("russell2000", "Russell 2000 index of US small-cap stocks",
                           _POINTS),
        ("vix", _D, _POINTS,
         "CBOE Volatility Index: the 30-day implied volatility of S&P 500 options, a gauge of "
         "equity market fear."),
        ("vix_3m", _D, _POINTS,
         "CBOE 3-Month Volatility Index: the 93-day implied volatility of S&P 500 options."),
        ("euro_stoxx50", _D, _POINTS,
         "Daily closing level of the Euro Stoxx 50 index of large euro-area companies."),
        ("nikkei225", _D, _POINTS,
         "Daily closing level of the Nikkei 225 index of large Japanese companies."),
    ],
    "large_caps": [
        (f"{ticker}_return_1d", _D, _RETURN,
         f"Daily percent change in the split-adjusted closing price of {company} "
         f"({ticker.upper()}) stock.")
        for ticker, company in _LARGE_CAPS.items()
    ],
    "yield_curves": [
        *((name, _D, _PCT, f"US {label} Treasury constant-maturity yield.")
          for name, label in [("three_month", "3-month"), ("one_year", "1-year"),
                              ("two_year", "2-year"), ("five_year", "5-year"),
                              ("ten_year", "10-year"), ("thirty_year", "30-year")]),
        ("spread_10y_2y", _D, _PP,
         "US 10-year minus 2-year Treasury yield spread; negative values mean an inverted "
         "yield curve."),
        ("spread_10y_3m", _D, _PP,
         "US 10-year Treasury yield minus the 3-month Treasury yield; negative values mean an "
         "inverted yield curve."),
    ],
    "credit": [
        ("high_yield_oas", _D, _PP,
         "ICE BofA US high yield corporate bond option-adjusted spread over Treasuries."),
        ("investment_grade_oas", _D, _PP,
         "ICE BofA US investment grade corporate bond option-adjusted spread over "
         "Treasuries."),
        ("bbb_oas", _D, _PP,
         "ICE BofA US BBB-rated corporate bond option-adjusted spread over Treasuries."),
    ],
    "fx": [
        ("eurusd", _D, "US dollars per euro", "Euro to US dollar exchange rate."),
        ("usdjpy", _D, "Japanese yen per US dollar", "US dollar to Japanese yen exchange rate."),
        ("gbpusd", _D, "US dollars per pound sterling",
         "British pound to US dollar exchange rate."),
        ("usdcnh", _D, "offshore Chinese yuan per US dollar",
         "US dollar to offshore Chinese yuan exchange rate."),
        ("audusd", _D, "US dollars per Australian dollar",
         "Australian dollar to US dollar exchange rate."),
        ("usdcad", _D, "Canadian dollars per US dollar",
         "US dollar to Canadian dollar exchange rate."),
        ("usdchf", _D, "Swiss francs per US dollar", "US dollar to Swiss franc exchange rate."),
        ("dollar_index", _D, "index (March 1973 = 100)",
         "ICE US Dollar Index (DXY): the dollar's value against six major currencies."),
        ("broad_dollar_index", _D, "index (January 2006 = 100)",
         "Federal Reserve nominal broad trade-weighted US dollar index."),
    ],
    "commodities": [
        ("wti_crude", _D, "US dollars per barrel", "Price of West Texas Intermediate crude oil."),
        ("brent_crude", _D, "US dollars per barrel", "Price of Brent crude oil."),
        ("gold", _D, "US dollars per troy ounce", "Price of gold (COMEX front-month future)."),
        ("silver", _D, "US dollars per troy ounce",
         "Price of silver (COMEX front-month future)."),
        ("copper", _D, "US dollars per pound", "Price of copper (COMEX front-month future)."),
        ("natural_gas", _D, "US dollars per million British thermal units",
         "Price of Henry Hub natural gas (NYMEX front-month future)."),
        ("commodity_index", _M, "index (2016 = 100)",
         "IMF index of global prices of all commodities."),
    ],
    "crypto": [
        *_price_and_return("btc", "Bitcoin price in US dollars", _USD),
        *_price_and_return("eth", "Ether price in US dollars", _USD),
    ],
    "money_markets": [
        ("fed_funds_futures_rate", _D, _PCT,
         "Federal funds rate implied by the front-month 30-day fed funds future (100 minus "
         "its price)."),
    ],
}

_NARRATIVES = [
    Field("narratives.news.embedding",
          "Daily mean sentence embedding of financial news headlines.",
          "embedding vector (all-MiniLM-L6-v2)", _D, dimension=384),
    Field("narratives.news.volume", "Number of financial news headlines published per day.",
          "headlines per day", _D),
    Field("narratives.news.sentiment",
          "Daily mean sentiment score of financial news headlines, from -1 (negative) to 1 "
          "(positive).", "score in [-1, 1]", _D),
]

_REGIMES = [
    Field(f"regime.{name}", semantic, "latent score (dimensionless)", period, latent=True)
    for name, period, semantic in [
        ("growth", _MY, "Latent regime of real economic growth, from contraction to expansion."),
        ("inflation", _MY, "Latent inflation regime, from disinflation to high, rising inflation."),
        ("monetary_policy", _A, "Latent stance of monetary policy, from easing to tightening."),
        ("liquidity", _Q, "Latent state of market and funding liquidity, from scarce to ample."),
        ("financial_stress", _M, "Latent level of financial system stress, from calm to crisis."),
        ("risk_appetite", _M, "Latent investor appetite for risk, from risk-off to risk-on."),
    ]
]

# How each field is modelled (warehouse.schema.Transform), after FRED-MD's codes: rates and
# ratios that wander are differenced, prices, indices and stocks log-differenced, skewed
# counts logged. Every field not named here is modelled as observed (level).
_M_ = "country_us.macro"
_TRANSFORMS: dict[str, Transform] = {
    **dict.fromkeys(
        [
            f"{_M_}.output.capacity_utilization",
            *(f"{_M_}.inflation.{n}" for n in
              ("breakeven_10y", "breakeven_5y", "forward_inflation_5y5y",
               "michigan_expectations_1y")),
            *(f"{_M_}.labor.{n}" for n in
              ("unemployment_rate", "u6_rate", "participation_rate",
               "employment_population_ratio", "quits_rate")),
            *(f"{_M_}.rates.{n}" for n in
              ("fed_funds", "fed_funds_target_upper", "treasury_3m", "sofr", "mortgage_30y",
               "real_yield_10y")),
            f"{_M_}.money.reverse_repo",  # near zero for years: no logarithm
            f"{_M_}.housing.months_supply_new_homes",
            *(f"{_M_}.credit.{n}" for n in
              ("credit_card_delinquency_rate", "household_debt_service_ratio")),
            *(f"{_M_}.sentiment.{n}" for n in
              ("consumer_sentiment", "consumer_confidence", "small_business_optimism")),
            f"{_M_}.trade.trade_balance",
            f"{_M_}.fiscal.federal_debt_gdp",
            *(f"financial.yield_curves.{n}" for n in
              ("three_month", "one_year", "two_year", "five_year", "ten_year", "thirty_year")),
            "financial.money_markets.fed_funds_futures_rate",
            "firm_<TICKER>.earnings.eps_actual",  # EPS can be negative: no logarithm
            "firm_<TICKER>.earnings.eps_estimate",
        ],
        Transform.DIFF,
    ),
    **dict.fromkeys(
        [
            *(f"{_M_}.labor.{n}" for n in ("initial_claims", "continuing_claims", "job_openings")),
            *(f"{_M_}.money.{n}" for n in
              ("m2_money_stock", "fed_balance_sheet", "bank_reserves",
               "treasury_general_account")),
            f"{_M_}.commodities.gasoline_retail_price",
            *(f"financial.equities.{n}" for n in
              ("sp500", "nasdaq100", "dow_jones", "russell2000", "euro_stoxx50", "nikkei225")),
            *(f"financial.fx.{n}" for n in
              ("eurusd", "usdjpy", "gbpusd", "usdcnh", "audusd", "usdcad", "usdchf",
               "dollar_index", "broad_dollar_index")),
            *(f"financial.commodities.{n}" for n in
              ("wti_crude", "brent_crude", "gold", "silver", "copper", "natural_gas",
               "commodity_index")),
            "financial.crypto.btc",
            "financial.crypto.eth",
        ],
        Transform.LOGDIFF,
    ),
    **dict.fromkeys(
        [
            *(f"{_M_}.housing.{n}" for n in
              ("housing_starts", "building_permits", "new_home_sales", "existing_home_sales")),
            f"{_M_}.sentiment.economic_policy_uncertainty",
        ],
        Transform.LOG,
    ),
}


# The plausible range of each unit: wide enough for every value history has seen (oil
# below zero in April 2020, a 300% daily move in its future), narrow enough to refuse a
# unit mistake or a corrupt cell (a VIX of 2e9). A field's own entry in _BOUNDS wins.
_BOUNDS_BY_UNIT: dict[str, tuple[float, float]] = {
    _PCT: (-100, 100),
    _YOY: (-1_000, 10_000),
    _RETURN: (-1_000, 1_000),
    _DIFFUSION: (0, 100),
    "diffusion index (50 = neutral)": (0, 100),
    "diffusion index (0 = no change)": (-100, 100),
    _POINTS: (0, 1e7),
    _PP: (-100, 100),
    "percent of GDP": (-100, 1_000),
    "thousands of units, seasonally adjusted annual rate": (0, 1e6),
    "millions of units, seasonally adjusted annual rate": (0, 1e3),
    "millions of US dollars": (-1e9, 1e9),
    "billions of US dollars": (-1e6, 1e6),
    "billions of US dollars, seasonally adjusted": (-1e6, 1e6),
    "billions of US dollars, not seasonally adjusted": (-1e6, 1e6),
    _SAAR: (-1_000, 1_000),
    "percent, annualised": (0, 1_000),
    "US dollars per barrel": (-1_000, 10_000),
    "US dollars per troy ounce": (0, 1e6),
    "US dollars per gallon": (-100, 1_000),
    "US dollars per pound": (0, 1e4),
    "US dollars per million British thermal units": (-100, 1_000),
    _USD: (0, 1e9),
    "US dollars per euro": (0, 1e3),
    "US dollars per pound sterling": (0, 1e3),
    "US dollars per Australian dollar": (0, 1e3),
    "Canadian dollars per US dollar": (0, 1e3),
    "Swiss francs per US dollar": (0, 1e3),
    "offshore Chinese yuan per US dollar": (0, 1e4),
    "Japanese yen per US dollar": (0, 1e5),
    "index (0 = normal conditions)": (-50, 50),
    "index (0 = average conditions, in standard deviations)": (-50, 50),
    "index (0 = trend growth, in standard deviations)": (-50, 50),
    "percent of disposable personal income": (-100, 100),
    "net percent of banks": (-100, 100),
    "binary (1 = recession)": (0, 1),
    "months of sales": (0, 1_000),
    "persons, seasonally adjusted": (0, 1e10),
    "claims per week, seasonally adjusted": (0, 1e8),
    "thousands of openings, seasonally adjusted": (0, 1e6),
    "thousands of jobs, change from the previous month": (-1e5, 1e5),
    "percent of employment": (0, 100),
    "percent of capacity": (0, 100),
    "score in [-1, 1]": (-1, 1),
    "headlines per day": (0, 1e7),
    "US dollars per share": (-1e4, 1e4),
    "percent of the absolute estimate": (-1e6, 1e6),
}
_BOUNDS: dict[str, tuple[float, float]] = {
    "financial.equities.vix": (0, 200),  # never above 90 (2008, 2020)
    "financial.equities.vix_3m": (0, 200),
}


def _bounds(field: Field) -> tuple[float, float] | None:
    """A field's plausible range; latent and vector fields have none, an index (base =
    100) a positive one."""
    if field.latent or field.dimension > 1:
        return None
    if field.path in _BOUNDS:
        return _BOUNDS[field.path]
    if field.unit in _BOUNDS_BY_UNIT:
        return _BOUNDS_BY_UNIT[field.unit]
    if field.unit.startswith("index (") and field.unit.endswith("= 100)"):
        return (0, 1e5)
    raise ValueError(f"field {field.path!r}: no plausible range for unit {field.unit!r}")


def _modelled(fields: Iterable[Field]) -> tuple[Field, ...]:
    """`fields` with the transforms of _TRANSFORMS and their plausible ranges."""
    return tuple(
        replace(f, transform=_TRANSFORMS.get(f.path, Transform.LEVEL), bounds=_bounds(f))
        for f in fields
    )


FIELDS: tuple[Field, ...] = _modelled(
    (
        *(f for g, rows in _US_MACRO.items() for f in _group(f"country_us.macro.{g}", rows)),
        *(f for g, rows in _SURVEYS.items() for f in _group(f"country_us.surveys.{g}", rows)),
        *(f for g, rows in _FINANCIAL.items() for f in _group(f"financial.{g}", rows)),
        *_NARRATIVES,
        *_REGIMES,
    )
)

TEMPLATES: tuple[Field, ...] = _modelled(
    _group("firm_<TICKER>.earnings", [
        ("eps_actual", _Q, "US dollars per share",
         "Reported earnings per share of <TICKER> for the fiscal quarter, as announced in its "
         "earnings release."),
        ("eps_estimate", _Q, "US dollars per share",
         "Analysts' consensus estimate of the quarterly earnings per share of <TICKER> before "
         "the announcement."),
        ("eps_surprise", _Q, "US dollars per share",
         "Earnings surprise of <TICKER>: reported quarterly earnings per share minus the "
         "consensus estimate."),
        ("eps_surprise_pct", _Q, "percent of the absolute estimate",
         "Earnings surprise of <TICKER> as a percentage of the absolute consensus estimate of "
         "quarterly earnings per share."),
    ])
)
# fmt: on
