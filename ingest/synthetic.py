"""The synthetic world: the offline default data source, with a known hidden truth.

FRED and Yahoo are not always reachable, so the product's offline default is a generated
world whose hidden structure is known. It is also the honest test of a world model: a
shared regime latent that learns something must recover the hidden regimes below from
sources that share no field.

How the world is made (all vectorised, deterministic for ``config.seed``):

1. **Regimes.** A hidden Markov chain switches once a month between named regimes
   (expansion, slowdown, recession, inflationary boom; stagflation and recovery when
   ``n_regimes`` > 4). The chain stays put with probability ``1 - 1/mean_regime_months``
   and otherwise jumps along plausible paths (expansion -> slowdown -> recession ->
   expansion ...). It is computed without a loop over months by a prefix scan of the
   monthly transition maps.
2. **Latent factors.** Each regime sets a mean for six factors: growth, inflation,
   financial_stress, monetary_policy, liquidity and risk_appetite (roughly z-scores). Every
   calendar day each factor follows an AR(1) around its current regime mean, so regime
   changes show up as smooth transitions of weeks to months.
3. **Observed fields.** Every field is a linear (or log-linear) function of the factors,
   with its own persistence, its own AR(1) noise and measurement noise, sampled at its
   frequency (daily closes, weekly, monthly or quarterly period means) and rounded as
   published. Specials: the fed funds rate follows a policy rule on inflation and growth in
   25 bp steps with a floor at 0.125; yields sit on the policy rate plus a term premium;
   the S&P 500 and bitcoin are geometric random walks whose drift and volatility depend
   on the factors (equity volatility is the VIX, with the leverage effect).
4. **Releases.** Each value gets ``known_at``, the time it became public: CPI 12 days after
   month end, the jobs report on the first Friday of the next month, GDP ~30 days after
   quarter end, weekly claims on the Thursday after the week, market closes the same day at
   21:00 UTC, ISM surveys on business days of the next month at 14:00 UTC, earnings 20-45
   days after quarter end. GDP growth and payroll changes come in two vintages: a noisier
   advance estimate and a revision about a month later. Release dates that fall on a
   weekend or a fixed-date holiday (Jan 1, Jul 4, Dec 25) roll to the next business day.
5. **Gaps.** Observations are dropped at random with probability ``missing_rate`` (all
   vintages of an observation together) and the Yahoo feed has one ~2-week outage, see
   :func:`synthetic_outage`. Only complete periods inside ``[start, end]`` are emitted and
   nothing is known after ``end`` + 92 days (or after the wall clock, for a world that ends
   near today).
6. **News.** A Poisson number of headlines per business day, on topics tied to the
   factors, built from word banks (a few hundred distinct sentences) whose tone follows a
   sentiment drawn from the factors of that day.

``generate_world`` returns the hidden truth (``regimes``), the four warehouse-format
sources (``fred``, ``yahoo``, ``pmi``, ``earnings``) and the raw ``headlines``.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import zlib
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import polars as pl

from warehouse import clock
from warehouse.catalog import LARGE_CAP_TICKERS
from warehouse.schema import firm_entity
from warehouse.validation import LONG_SCHEMA

__all__ = [
    "FACTORS",
    "HEADLINE_SCHEMA",
    "LONG_SCHEMA",
    "REGIME_NAMES",
    "REVISED_FIELDS",
    "SOURCES",
    "Outage",
    "SyntheticWorld",
    "SyntheticWorldConfig",
    "generate_world",
    "synthetic_outage",
    "synthetic_world",
]

FACTORS: tuple[str, ...] = (
    "growth",
    "inflation",
    "financial_stress",
    "monetary_policy",
    "liquidity",
    "risk_appetite",
)
SOURCES: tuple[str, ...] = ("fred", "yahoo", "pmi", "earnings")
HEADLINE_SCHEMA: dict[str, pl.DataType] = {
    "published_at": pl.Datetime("us"),
    "headline": pl.Utf8(),
    "sentiment_truth": pl.Float64(),
}
REVISED_FIELDS: tuple[str, ...] = (
    "country_us.macro.output.gdp_nowcast",
    "country_us.macro.labor.nonfarm_payrolls_change",
)

# Named regimes and their factor means, in FACTORS order. The first n_regimes are used.
_REGIME_PROFILES: tuple[tuple[str, tuple[float, ...]], ...] = (
    ("expansion", (0.8, 0.0, -0.6, 0.2, 0.3, 0.7)),
    ("slowdown", (-0.3, 0.3, 0.3, 0.4, -0.3, -0.3)),
    ("recession", (-1.8, -0.6, 2.0, -1.2, 0.8, -1.3)),
    ("inflationary_boom", (0.6, 1.4, 0.0, 1.0, 0.2, 0.3)),
    ("stagflation", (-0.9, 1.3, 0.9, 0.7, -0.5, -0.7)),
    ("recovery", (0.9, -0.3, 0.4, -0.9, 1.0, 0.4)),
)
REGIME_NAMES: tuple[str, ...] = tuple(name for name, _ in _REGIME_PROFILES)
# Relative odds of where the chain goes when it leaves a regime (row: from, column: to).
_JUMP_ODDS = np.array(
    [
        [0.00, 0.55, 0.10, 0.25, 0.05, 0.05],
        [0.35, 0.00, 0.40, 0.10, 0.10, 0.05],
        [0.25, 0.10, 0.00, 0.05, 0.05, 0.55],
        [0.20, 0.45, 0.15, 0.00, 0.15, 0.05],
        [0.05, 0.25, 0.40, 0.15, 0.00, 0.15],
        [0.70, 0.15, 0.05, 0.05, 0.05, 0.00],
    ]
)
# Mean stay of each named regime relative to config.mean_regime_months: expansions last
# longer than average, recessions and recoveries are short.
_STAY_SCALE = np.array([1.4, 0.9, 0.55, 0.9, 0.8, 0.6])
# Daily AR(1) coefficient and stationary standard deviation of each factor around its mean.
_FACTOR_AR = np.array([0.98, 0.992, 0.95, 0.99, 0.985, 0.95])
_FACTOR_SD = np.array([0.30, 0.30, 0.35, 0.25, 0.30, 0.35])

_HOLIDAYS_MD = ((1, 1), (7, 4), (12, 25))  # fixed-date market holidays (month, day)
_BTC_LISTED = np.datetime64("2014-09-17", "D")  # first Yahoo BTC-USD close
_BTC_FIRST_CLOSE = 457.0
_KNOWN_AFTER_END_DAYS = 92
_OUTAGE_DAYS = 14


@dataclass(frozen=True)
class SyntheticWorldConfig:
    """Knobs of the synthetic world; the defaults are the product's offline default."""

    start: str = "2000-01-01"
    end: str = "2024-12-31"
    seed: int = 0
    n_regimes: int = 4  # expansion, slowdown, recession, inflationary_boom (+ stagflation, ...)
    mean_regime_months: float = 18.0  # persistence of the hidden monthly Markov chain
    firms: tuple[str, ...] = LARGE_CAP_TICKERS
    headlines_per_day: float = 6.0  # Poisson mean on business days
    missing_rate: float = 0.01  # random gaps (dropped observations) per source


@dataclass(frozen=True)
class SyntheticWorld:
    """A generated world: the hidden truth, the observed sources and raw news."""

    config: SyntheticWorldConfig
    regimes: pl.DataFrame
    sources: dict[str, pl.DataFrame]
    headlines: pl.DataFrame


class Outage(NamedTuple):
    """A deliberate feed outage: no observations of `source` dated first_day..last_day."""

    source: str
    first_day: dt.date
    last_day: dt.date


@dataclass(frozen=True)
class _Spec:
    """An observed field as a (log-)linear function of the factors plus its own noise."""

    path: str
    intercept: float
    loadings: tuple[float, ...]  # one per factor, FACTORS order
    smooth: float = 0.0  # own persistence: daily AR coefficient applied to the factor response
    noise_sd: float = 0.0  # stationary sd of the idiosyncratic daily AR(1) noise
    noise_ar: float = 0.9
    meas_sd: float = 0.0  # per-observation measurement noise (log scale for log fields)
    log: bool = False  # value = exp(linear predictor)
    trend: float = 0.0  # per year since 2000, added to the linear predictor
    lo: float = -math.inf
    hi: float = math.inf
    decimals: int = 2


# ---------------------------------------------------------------------------------------------
# Field specifications (the "physics" of each observed series)
# ---------------------------------------------------------------------------------------------

_M = "country_us.macro."
_FRED_MONTHLY = (
    _Spec(f"{_M}output.industrial_production", 1.5, (4.5, 0, -0.5, 0, 0, 0), smooth=0.985,
          noise_sd=0.8, noise_ar=0.95, meas_sd=0.3, lo=-20, hi=15, decimals=1),
    _Spec(f"{_M}inflation.headline_cpi", 2.4, (0.2, 1.8, 0, 0, 0, 0), noise_sd=0.35,
          noise_ar=0.97, meas_sd=0.1, lo=-2.5, hi=14, decimals=1),
    _Spec(f"{_M}inflation.core_cpi", 2.1, (0.1, 1.1, 0, 0, 0, 0), smooth=0.99, noise_sd=0.2,
          noise_ar=0.99, meas_sd=0.05, lo=0.0, hi=10, decimals=1),
    _Spec(f"{_M}labor.unemployment_rate", 5.3, (-1.3, 0, 0.5, 0, 0, 0), smooth=0.996,
          noise_sd=0.3, noise_ar=0.995, meas_sd=0.08, lo=3.3, hi=14, decimals=1),
    _Spec(f"{_M}money.m2_growth", 5.5, (0, 0, 0, -1.0, 2.5, 0), noise_sd=0.8, noise_ar=0.98,
          meas_sd=0.2, lo=-5, hi=30, decimals=1),
    _Spec(f"{_M}housing.housing_starts", 1350, (250, 0, -80, -180, 0, 0), smooth=0.99,
          noise_sd=150, noise_ar=0.998, meas_sd=50, lo=400, hi=2400, decimals=0),
    _Spec(f"{_M}sentiment.consumer_sentiment", 88, (7, -4, -5, 0, 0, 3), noise_sd=3,
          noise_ar=0.95, meas_sd=1.5, lo=50, hi=112, decimals=1),
)  # fmt: skip
_PAYROLLS = _Spec(f"{_M}labor.nonfarm_payrolls_change", 90, (150, 0, -60, 0, 0, 0),
                  noise_sd=60, noise_ar=0.5, meas_sd=50, lo=-1500, hi=1500, decimals=0)  # fmt: skip
_GDP = _Spec(f"{_M}output.gdp_nowcast", 2.2, (2.8, 0, 0, 0, 0, 0.3), noise_sd=0.6,
             noise_ar=0.9, meas_sd=0.9, lo=-12, hi=12, decimals=1)  # fmt: skip
_CLAIMS = _Spec(f"{_M}labor.initial_claims", math.log(330), (-0.12, 0, 0.22, 0, 0, 0),
                noise_sd=0.06, noise_ar=0.9, log=True, lo=150, hi=1500, decimals=1)  # fmt: skip
_STRESS_INDEX = _Spec(f"{_M}credit.financial_stress_index", 0.1, (0, 0, 1.1, 0, 0, 0),
                      noise_sd=0.15, noise_ar=0.9, lo=-3, hi=10, decimals=3)  # fmt: skip
_FED_FUNDS = f"{_M}rates.fed_funds"

_S = "country_us.surveys."
_PMI = (
    _Spec(f"{_S}ism_manufacturing.pmi", 51, (4.5, 1.0, -1.5, 0, 0, 0), noise_sd=1.2,
          meas_sd=1.0, lo=28, hi=72, decimals=1),
    _Spec(f"{_S}ism_manufacturing.new_orders", 52, (6.5, 0, -2.0, 0, 0, 1.0), noise_sd=2.0,
          noise_ar=0.8, meas_sd=2.0, lo=25, hi=80, decimals=1),
    _Spec(f"{_S}ism_manufacturing.prices", 56, (2.5, 9.0, 0, 0, 0, 0), noise_sd=3.0,
          meas_sd=2.0, lo=15, hi=95, decimals=1),
    _Spec(f"{_S}ism_services.pmi", 54, (3.5, 0, -1.2, 0, 0, 0.8), noise_sd=1.0, meas_sd=0.8,
          lo=35, hi=70, decimals=1),
)  # fmt: skip
_PMI_RELEASE_BUSDAY = (0, 0, 0, 2)  # ISM manufacturing: 1st business day; services: 3rd

_F = "financial."
_YAHOO_LINEAR = (
    _Spec(f"{_F}credit.high_yield_oas", math.log(4.0), (-0.08, 0, 0.38, 0, 0, -0.12),
          noise_sd=0.05, noise_ar=0.99, log=True, lo=2.0, hi=25, decimals=2),
    _Spec(f"{_F}fx.eurusd", math.log(1.12), (0.02, 0, -0.02, -0.04, 0, 0), noise_sd=0.08,
          noise_ar=0.998, log=True, lo=0.8, hi=1.7, decimals=4),
    _Spec(f"{_F}commodities.wti_crude", math.log(55), (0.15, 0.18, -0.10, 0, 0, 0),
          noise_sd=0.35, noise_ar=0.998, log=True, lo=10, hi=200, decimals=2),
    _Spec(f"{_F}commodities.gold", math.log(300), (0, 0.06, 0.05, -0.04, 0, 0), noise_sd=0.12,
          noise_ar=0.998, log=True, trend=0.075, lo=150, hi=5000, decimals=2),
)  # fmt: skip
_SP500, _VIX, _BTC = f"{_F}equities.sp500", f"{_F}equities.vix", f"{_F}crypto.btc"
_TWO_YEAR, _TEN_YEAR = f"{_F}yield_curves.two_year", f"{_F}yield_curves.ten_year"

_EARNINGS_FIELDS = ("eps_actual", "eps_estimate", "eps_surprise", "eps_surprise_pct")
# Known firms: (EPS per quarter in mid-2024, trend growth per year, factor betas on log EPS,
# reports before the open?, first year it reports as a listed company; None: always).
_FIRM_PROFILES: dict[str, tuple[float, float, tuple[float, ...], bool, int | None]] = {
    "AAPL": (1.6, 0.12, (0.10, 0, -0.05, 0, 0, 0.05), False, 1981),
    "MSFT": (3.0, 0.10, (0.08, 0, -0.04, 0, 0, 0.04), False, 1986),
    "NVDA": (0.7, 0.15, (0.20, 0, -0.10, -0.05, 0.05, 0.15), False, 1999),
    "AMZN": (1.2, 0.15, (0.15, -0.05, -0.06, 0, 0, 0.08), False, 1997),
    "GOOGL": (2.0, 0.12, (0.12, 0, -0.05, 0, 0, 0.06), False, 2004),
    "META": (5.0, 0.14, (0.15, 0, -0.06, 0, 0, 0.08), False, 2012),
    "TSLA": (0.5, 0.18, (0.25, -0.05, -0.12, -0.05, 0.05, 0.20), False, 2010),
    "JPM": (4.5, 0.08, (0.10, 0, -0.25, 0.08, 0, 0.03), True, None),
    "XOM": (2.0, 0.04, (0.08, 0.25, -0.05, 0, 0, 0), True, None),
}

# News: per topic, subjects and five tone levels (very negative .. very positive) of
# predicates. Factor topics come first (FACTORS order), the firm topic last.
_TONE_CUTS = np.array([-0.55, -0.2, 0.2, 0.55])
_NEWS_POLARITY = np.array([1.0, -1.0, -1.0, -1.0, 1.0, 1.0])  # good news = factor * polarity
_NEWS_TOPIC_ODDS = np.array([0.20, 0.14, 0.14, 0.14, 0.08, 0.15, 0.15])
_NEWS_BANKS: tuple[tuple[tuple[str, ...], tuple[tuple[str, ...], ...]], ...] = (
    (  # growth
        ("US economy", "Factory output", "Consumer spending", "Business investment"),
        (
            ("contracts sharply as recession fears mount", "suffers its steepest drop in years",
             "collapses amid widespread layoffs"),
            ("slows more than expected", "loses momentum", "disappoints forecasters"),
            ("holds steady", "grows in line with expectations", "shows little change"),
            ("picks up pace", "beats expectations", "shows solid gains"),
            ("booms as hiring surges", "posts its strongest gain in years",
             "accelerates well beyond forecasts"),
        ),
    ),
    (  # inflation
        ("Inflation", "Core inflation", "Consumer price growth", "Producer price inflation"),
        (
            ("surges to a multi-decade high", "soars well above the Fed's target",
             "spirals higher as costs jump"),
            ("runs hotter than expected", "edges higher again", "proves stickier than forecast"),
            ("comes in as expected", "holds near target", "is little changed"),
            ("cools more than expected", "eases for a third month", "moderates toward target"),
            ("falls sharply as price pressures fade", "drops to its lowest in years",
             "retreats rapidly, easing pressure on households"),
        ),
    ),
    (  # financial_stress
        ("Credit market stress", "Bank funding strain", "Market volatility",
         "Corporate default risk"),
        (
            ("spikes as panic grips markets", "jumps to crisis levels",
             "explodes amid fire sales"),
            ("rises as investors turn cautious", "climbs on growing jitters",
             "ticks up as spreads widen"),
            ("remains contained", "is little changed", "holds at moderate levels"),
            ("eases as markets calm", "declines as spreads narrow",
             "fades on improved sentiment"),
            ("falls to record lows", "all but vanishes as calm returns",
             "hits its lowest level in years"),
        ),
    ),
    (  # monetary_policy
        ("Federal Reserve", "The Fed", "FOMC", "US central bank"),
        (
            ("delivers a surprise jumbo rate hike", "vows to keep tightening aggressively",
             "shocks markets with a hawkish pivot"),
            ("signals more rate hikes ahead", "leans hawkish on inflation",
             "pushes back on rate-cut hopes"),
            ("holds rates steady", "keeps its policy options open", "stays on hold as expected"),
            ("signals patience on further hikes", "opens the door to rate cuts",
             "strikes a dovish tone"),
            ("slashes rates to support the economy", "unveils sweeping stimulus",
             "launches emergency easing"),
        ),
    ),
    (  # liquidity
        ("Money supply growth", "Bank lending", "Dollar funding liquidity", "Market liquidity"),
        (
            ("dries up as lenders retreat", "freezes across funding markets",
             "plunges to its weakest in years"),
            ("tightens as banks pull back", "shrinks for a second month", "thins out"),
            ("is stable", "shows little change", "holds at normal levels"),
            ("improves as conditions loosen", "expands at a healthy clip", "picks up"),
            ("floods the system", "surges to a record pace",
             "expands rapidly on central bank support"),
        ),
    ),
    (  # risk_appetite
        ("Wall Street", "Stock market", "Risk appetite", "Investor sentiment"),
        (
            ("plunges in a broad sell-off", "suffers its worst week in years",
             "crumbles as investors flee to safety"),
            ("slips as caution returns", "retreats on growth worries", "turns defensive"),
            ("ends little changed", "drifts sideways", "treads water ahead of key data"),
            ("rallies on upbeat data", "climbs to a one-month high", "gains as optimism builds"),
            ("soars to a record high", "roars higher in a broad rally", "hits euphoric levels"),
        ),
    ),
)  # fmt: skip
_FIRM_NEWS: tuple[tuple[str, ...], ...] = (
    ("shares plunge after a big earnings miss", "slashes its outlook as demand collapses",
     "warns of a sharp profit decline"),
    ("misses quarterly estimates", "shares slip on a cautious outlook", "reports softer demand"),
    ("reports results in line with forecasts", "maintains full-year guidance",
     "shares flat after earnings"),
    ("beats quarterly estimates", "raises its full-year outlook", "shares rise on strong demand"),
    ("shares soar after a blowout quarter", "posts record profits",
     "smashes estimates and lifts guidance"),
)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def generate_world(config: SyntheticWorldConfig = SyntheticWorldConfig()) -> SyntheticWorld:
    """Generate the synthetic world for `config`; identical output for identical configs."""
    start, end = _validate(config)
    cal = _Calendar(start, end)
    regime, factors = _hidden_state(config, cal)
    outage = synthetic_outage(config)
    cutoff = _known_cutoff(end)

    policy = _policy_path(factors)
    sources = {
        "fred": _fred(config, cal, factors, policy),
        "yahoo": _yahoo(config, cal, factors, policy, outage),
        "pmi": _pmi(config, cal, factors),
        "earnings": _earnings(config, cal, factors),
    }
    sources = {
        name: frame.filter(pl.col("known_at") <= cutoff).sort(
            ["field_path", "observed_at", "known_at"]
        )
        for name, frame in sources.items()
    }
    names = _regime_names(config.n_regimes)
    regimes = pl.DataFrame(
        {
            "date": pl.Series("date", cal.days, dtype=pl.Date),
            "regime": pl.Series("regime", regime, dtype=pl.Int32),
            "regime_name": pl.Series(names, dtype=pl.Utf8).gather(regime),
            **{
                name: pl.Series(name, factors[i], dtype=pl.Float64)
                for i, name in enumerate(FACTORS)
            },
        }
    )
    return SyntheticWorld(
        config=config,
        regimes=regimes,
        sources=sources,
        headlines=_headlines(config, cal, factors),
    )


@functools.lru_cache(maxsize=2)
def synthetic_world(config: SyntheticWorldConfig) -> SyntheticWorld:
    """The synthetic world for a config, generated once per process."""
    return generate_world(config)


def synthetic_outage(config: SyntheticWorldConfig) -> Outage | None:
    """The deliberate ~2-week outage of the Yahoo feed in the world `config` generates.

    None when the world is too short (under 120 days) to hold one.
    """
    start, end = _validate(config)
    n_days = (end - start).days + 1
    if n_days < 120:
        return None
    first = int(_rng(config.seed, "outage").integers(30, n_days - 30 - _OUTAGE_DAYS))
    first_day = start + dt.timedelta(days=first)
    return Outage("yahoo", first_day, first_day + dt.timedelta(days=_OUTAGE_DAYS - 1))


# ---------------------------------------------------------------------------------------------
# Config, randomness, calendar
# ---------------------------------------------------------------------------------------------


def _validate(config: SyntheticWorldConfig) -> tuple[dt.date, dt.date]:
    try:
        start, end = dt.date.fromisoformat(config.start), dt.date.fromisoformat(config.end)
    except (TypeError, ValueError) as err:
        raise ValueError(f"start/end must be ISO dates (YYYY-MM-DD): {err}") from None
    if end < start:
        raise ValueError(f"end {config.end} is before start {config.start}")
    if start.year < 1900:
        raise ValueError(f"start {config.start} is before 1900")
    if not isinstance(config.n_regimes, int) or config.n_regimes < 1:
        raise ValueError(f"n_regimes must be an int >= 1, got {config.n_regimes!r}")
    if not math.isfinite(config.mean_regime_months) or config.mean_regime_months < 1:
        raise ValueError(f"mean_regime_months must be >= 1, got {config.mean_regime_months!r}")
    if not math.isfinite(config.headlines_per_day) or config.headlines_per_day < 0:
        raise ValueError(f"headlines_per_day must be >= 0, got {config.headlines_per_day!r}")
    if not 0 <= config.missing_rate < 1:
        raise ValueError(f"missing_rate must be in [0, 1), got {config.missing_rate!r}")
    entities = [firm_entity(t) for t in config.firms]
    if len(set(entities)) != len(entities):
        raise ValueError(f"firms map to duplicate entities: {entities}")
    return start, end


def _rng(seed: int, *names: str) -> np.random.Generator:
    """An independent stream per (seed, purpose), stable across Python processes."""
    keys = [zlib.crc32(n.encode()) for n in names]
    return np.random.default_rng([*keys, int(seed) & 0xFFFF_FFFF_FFFF_FFFF])


def _known_cutoff(end: dt.date) -> dt.datetime:
    """Nothing is known after end + 92 days, nor after now (the warehouse rejects the future)."""
    after_end = dt.datetime.combine(end, dt.time()) + dt.timedelta(days=_KNOWN_AFTER_END_DAYS)
    return min(after_end, clock.utc_now())


class _Calendar:
    """Calendar days of the world, weekdays and the business-day calendar."""

    def __init__(self, start: dt.date, end: dt.date) -> None:
        self.days = np.arange(np.datetime64(start, "D"), np.datetime64(end, "D") + 1)
        self.n = len(self.days)
        self.weekday = _weekday(self.days)
        years = np.arange(start.year, end.year + 2)
        holidays = np.concatenate(
            [
                ((years - 1970) * 12 + (m - 1)).astype("datetime64[M]").astype("datetime64[D]")
                + (d - 1)
                for m, d in _HOLIDAYS_MD
            ]
        )
        self.busdaycal = np.busdaycalendar(holidays=holidays)
        self.busday = np.is_busday(self.days, busdaycal=self.busdaycal)
        self.years = (self.days - np.datetime64("2000-01-01", "D")).astype(np.float64) / 365.25

    def roll(self, days: np.ndarray, offset: int = 0) -> np.ndarray:
        """The `offset`-th business day on or after each of `days`."""
        return np.busday_offset(days, offset, roll="forward", busdaycal=self.busdaycal)


def _weekday(days: np.ndarray) -> np.ndarray:
    """Monday = 0 .. Sunday = 6 (1970-01-01 was a Thursday)."""
    return (days.astype(np.int64) + 3) % 7


def _stamp(days: np.ndarray, hour: int, minute: int = 0) -> np.ndarray:
    """datetime64[us] at hh:mm UTC on each of `days`."""
    return days.astype("datetime64[us]") + np.timedelta64(hour * 60 + minute, "m")


class _Periods(NamedTuple):
    """Complete periods of the calendar: first/last day, slice bounds into the days."""

    first: np.ndarray  # datetime64[D]
    last: np.ndarray  # datetime64[D]
    lo: np.ndarray  # index of the first day in the calendar
    hi: np.ndarray  # one past the last day


def _periods(cal: _Calendar, kind: str) -> _Periods:
    """Month ("M"), quarter ("Q") or week ending Saturday/Friday ("W-SAT"/"W-FRI")."""
    days = cal.days
    if kind in ("M", "Q"):
        months = days.astype("datetime64[M]").astype(np.int64)
        if kind == "Q":
            months = months - months % 3
        step = 1 if kind == "M" else 3
        first = months.astype("datetime64[M]").astype("datetime64[D]")
        last = (months + step).astype("datetime64[M]").astype("datetime64[D]") - 1
    else:
        week_end = {"W-SAT": 5, "W-FRI": 4}[kind]
        last = days + (week_end - cal.weekday) % 7
        first = last - 6
    cut = np.flatnonzero(np.r_[True, last[1:] != last[:-1]])
    lo, hi = cut, np.r_[cut[1:], cal.n]
    complete = (days[lo] == first[lo]) & (days[hi - 1] == last[lo])
    return _Periods(first[lo][complete], last[lo][complete], lo[complete], hi[complete])


def _period_mean(x: np.ndarray, p: _Periods) -> np.ndarray:
    """Mean of x (..., n_days) over each period, by differences of the cumulative sum."""
    csum = np.concatenate([np.zeros((*x.shape[:-1], 1)), np.cumsum(x, axis=-1)], axis=-1)
    return (csum[..., p.hi] - csum[..., p.lo]) / (p.hi - p.lo)


# ---------------------------------------------------------------------------------------------
# Linear filters (vectorised: FFT convolution instead of a loop over days)
# ---------------------------------------------------------------------------------------------


def _ar1_filter(u: np.ndarray, a: np.ndarray | float) -> np.ndarray:
    """y[t] = a * y[t-1] + u[t] along the last axis with y[-1] = 0; one `a` per row.

    Computed exactly as the convolution of u with the kernel a**k, via the FFT.
    """
    u = np.asarray(u, dtype=np.float64)
    squeeze = u.ndim == 1
    u = np.atleast_2d(u)
    n = u.shape[-1]
    if n == 0:
        return u[0] if squeeze else u
    a = np.broadcast_to(np.asarray(a, dtype=np.float64), (u.shape[0],))
    size = 1 << (2 * n - 1).bit_length()
    kernel = a[:, None] ** np.arange(n)
    y = np.fft.irfft(np.fft.rfft(u, size) * np.fft.rfft(kernel, size), size)[:, :n]
    return y[0] if squeeze else y


def _smooth(x: np.ndarray, a: np.ndarray | float) -> np.ndarray:
    """Unit-gain exponential smoothing y[t] = a*y[t-1] + (1-a)*x[t], starting at x[0]."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    a = np.broadcast_to(np.asarray(a, dtype=np.float64), (x.shape[0],))[:, None]
    u = (1 - a) * x
    u[:, :1] += a * x[:, :1]
    return _ar1_filter(u, a[:, 0])


def _ar_noise(rng: np.random.Generator, sd: np.ndarray, ar: np.ndarray, n: int) -> np.ndarray:
    """Stationary AR(1) noise, one row per (sd, ar) pair, n steps."""
    sd, ar = np.atleast_1d(sd).astype(np.float64), np.atleast_1d(ar).astype(np.float64)
    z = rng.standard_normal((len(sd), n))
    e = z * (sd * np.sqrt(1 - ar**2))[:, None]
    e[:, 0] = z[:, 0] * sd
    return _ar1_filter(e, ar)


# ---------------------------------------------------------------------------------------------
# Hidden state: regimes and latent factors
# ---------------------------------------------------------------------------------------------


def _regime_names(n_regimes: int) -> list[str]:
    return [*REGIME_NAMES[:n_regimes], *(f"regime_{k}" for k in range(6, n_regimes))]


def _regime_means(config: SyntheticWorldConfig) -> np.ndarray:
    """(n_regimes, n_factors) factor means; regimes beyond the six named ones are random."""
    named = np.array([p for _, p in _REGIME_PROFILES[: config.n_regimes]])
    extra = max(0, config.n_regimes - len(_REGIME_PROFILES))
    generic = _rng(config.seed, "extra-regimes").normal(0.0, 0.8, (extra, len(FACTORS)))
    return np.concatenate([named.reshape(-1, len(FACTORS)), generic])


def _transition_matrix(n_regimes: int, mean_months: float) -> np.ndarray:
    """Monthly transition matrix: leave regime k with 1/(mean stay of k), along _JUMP_ODDS."""
    if n_regimes == 1:
        return np.ones((1, 1))
    k = min(n_regimes, len(_JUMP_ODDS))
    odds = np.ones((n_regimes, n_regimes))
    odds[:k, :k] = _JUMP_ODDS[:k, :k]
    odds += 0.02
    np.fill_diagonal(odds, 0.0)
    scale = np.ones(n_regimes)
    scale[:k] = _STAY_SCALE[:k]
    leave = np.minimum(1.0 / (mean_months * scale), 1.0)[:, None]
    matrix = leave * odds / odds.sum(axis=1, keepdims=True)
    np.fill_diagonal(matrix, 1.0 - leave[:, 0])
    return matrix


def _markov_chain(matrix: np.ndarray, first: int, uniforms: np.ndarray) -> np.ndarray:
    """States s[0] = first, s[t+1] ~ matrix[s[t]] driven by uniforms[t]; no loop over time.

    Each step is a map next[t] of all states (inverse-CDF of every row with the same
    uniform); the state path is the prefix composition of those maps, computed by a
    Hillis-Steele scan in log2(n) vectorised steps.
    """
    n_states = len(matrix)
    cdf = np.cumsum(matrix, axis=1)
    nxt = (uniforms[:, None, None] >= cdf[None, :, :]).sum(axis=2)
    prefix = np.minimum(nxt, n_states - 1)
    shift = 1
    while shift < len(prefix):  # O(log n) iterations
        prefix[shift:] = np.take_along_axis(prefix[shift:], prefix[:-shift], axis=1)
        shift *= 2
    return np.concatenate([[first], prefix[:, first]]).astype(np.int32)


def _hidden_state(config: SyntheticWorldConfig, cal: _Calendar) -> tuple[np.ndarray, np.ndarray]:
    """Daily regime ids (n_days,) and factors (n_factors, n_days)."""
    months = cal.days.astype("datetime64[M]")
    month_idx = (months - months[0]).astype(np.int64)
    matrix = _transition_matrix(config.n_regimes, config.mean_regime_months)
    stationary = np.linalg.matrix_power(matrix, 4096).mean(axis=0)
    rng = _rng(config.seed, "regimes")
    first = int(rng.choice(config.n_regimes, p=stationary / stationary.sum()))
    monthly = _markov_chain(matrix, first, rng.random(int(month_idx[-1])))
    regime = monthly[month_idx]

    mean = _regime_means(config)[regime].T  # (n_factors, n_days)
    a = _FACTOR_AR[:, None]
    z = _rng(config.seed, "factors").standard_normal(mean.shape)
    u = (1 - a) * mean + z * (_FACTOR_SD * np.sqrt(1 - _FACTOR_AR**2))[:, None]
    u[:, 0] = mean[:, 0] + _FACTOR_SD * z[:, 0]
    return regime, _ar1_filter(u, _FACTOR_AR)


class _Policy(NamedTuple):
    rule: np.ndarray  # the Taylor-type rule's prescription, unfloored
    smooth: np.ndarray  # with policy inertia
    rate: np.ndarray  # the announced rate: 25 bp steps, floor 0.125


def _quantize_rate(x: np.ndarray) -> np.ndarray:
    """Effective fed funds in 25 bp steps: 0.125, 0.375, ... (mid of the target range)."""
    return 0.125 + 0.25 * np.maximum(0.0, np.round((x - 0.125) / 0.25))


def _policy_path(factors: np.ndarray) -> _Policy:
    growth, inflation, stress, stance = factors[0], factors[1], factors[2], factors[3]
    rule = 3.0 + 2.0 * inflation + 0.8 * growth + 1.0 * stance - 0.3 * stress
    smooth = _smooth(rule, 0.985)[0]
    return _Policy(rule, smooth, _quantize_rate(smooth))


# ---------------------------------------------------------------------------------------------
# Observation machinery
# ---------------------------------------------------------------------------------------------


def _latent(
    specs: tuple[_Spec, ...], factors: np.ndarray, cal: _Calendar, rng: np.random.Generator
) -> np.ndarray:
    """Daily underlying value of each spec: (n_specs, n_days)."""
    loadings = np.array([s.loadings for s in specs], dtype=np.float64)
    response = _smooth(loadings @ factors, np.array([s.smooth for s in specs]))
    noise = _ar_noise(
        rng, np.array([s.noise_sd for s in specs]), np.array([s.noise_ar for s in specs]), cal.n
    )
    intercept = np.array([s.intercept for s in specs])[:, None]
    trend = np.array([s.trend for s in specs])[:, None]
    x = intercept + trend * cal.years + response + noise
    is_log = np.array([s.log for s in specs])
    x[is_log] = np.exp(x[is_log])
    return x


def _observe(spec: _Spec, values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Add measurement noise, clip to the plausible range and round as published."""
    noise = rng.standard_normal(values.shape) * spec.meas_sd
    noisy = values * np.exp(noise) if spec.log else values + noise
    return np.round(np.clip(noisy, spec.lo, spec.hi), spec.decimals)


class _Emitter:
    """Collects one source's observations in the long format, dropping random gaps.

    A gap drops a whole observation: every vintage of that (field, observed_at) together.
    """

    def __init__(self, config: SyntheticWorldConfig, source: str) -> None:
        self._rng = _rng(config.seed, "missing", source)
        self._rate = config.missing_rate
        self._frames: list[pl.DataFrame] = []

    def add(
        self,
        path: str,
        observed: np.ndarray,
        values: np.ndarray | list[np.ndarray],
        known: np.ndarray | list[np.ndarray],
    ) -> None:
        """One field; `values`/`known` are an array, or a list of arrays (one per vintage)."""
        values = values if isinstance(values, list) else [values]
        known = known if isinstance(known, list) else [known]
        keep = self._rng.random(len(observed)) >= self._rate
        observed_us = observed.astype("datetime64[us]")[keep]
        for value, known_at in zip(values, known, strict=True):
            self._frames.append(
                pl.DataFrame(
                    {
                        "field_path": pl.repeat(path, int(keep.sum()), dtype=pl.Utf8, eager=True),
                        "observed_at": observed_us,
                        "value": np.asarray(value, dtype=np.float64)[keep],
                        "known_at": known_at.astype("datetime64[us]")[keep],
                    },
                    schema=LONG_SCHEMA,
                )
            )

    def frame(self) -> pl.DataFrame:
        """All observations added so far."""
        if not self._frames:
            return pl.DataFrame(schema=LONG_SCHEMA)
        return pl.concat(self._frames, how="vertical")


# ---------------------------------------------------------------------------------------------
# Sources
# ---------------------------------------------------------------------------------------------


def _fred(
    config: SyntheticWorldConfig, cal: _Calendar, factors: np.ndarray, policy: _Policy
) -> pl.DataFrame:
    """Monthly macro, quarterly GDP (two vintages), weekly claims and stress, fed funds."""
    rng = _rng(config.seed, "fred")
    out = _Emitter(config, "fred")
    month, quarter = _periods(cal, "M"), _periods(cal, "Q")

    # Monthly fields: period means of the daily underlying value.
    monthly_specs = (*_FRED_MONTHLY, _PAYROLLS)
    monthly = _period_mean(_latent(monthly_specs, factors, cal, rng), month)
    after = month.last + 1  # first day of the next month
    first_friday = after + (4 - _weekday(after)) % 7
    jobs = _stamp(cal.roll(first_friday), 12, 30)
    last_friday = month.last - (_weekday(month.last) - 4) % 7
    release = {
        "output.industrial_production": _stamp(cal.roll(month.last + 16), 13, 15),
        "inflation.headline_cpi": _stamp(cal.roll(month.last + 12), 12, 30),
        "inflation.core_cpi": _stamp(cal.roll(month.last + 12), 12, 30),
        "labor.unemployment_rate": jobs,
        "money.m2_growth": _stamp(cal.roll(month.last + 24), 17, 0),
        "housing.housing_starts": _stamp(cal.roll(month.last + 17), 12, 30),
        "sentiment.consumer_sentiment": _stamp(cal.roll(last_friday), 14, 0),
    }
    for spec, values in zip(_FRED_MONTHLY, monthly[:-1], strict=True):
        out.add(spec.path, month.first, _observe(spec, values, rng), release[spec.path[len(_M) :]])

    # Payrolls: advance estimate on the jobs Friday, revision on the next month's jobs Friday.
    revised = _observe(_PAYROLLS, monthly[-1], rng)
    advance = np.round(revised + rng.normal(0.0, 60.0, revised.shape), 0)
    after_next = (month.last.astype("datetime64[M]") + 2).astype("datetime64[D]")
    second_friday = _stamp(cal.roll(after_next + (4 - _weekday(after_next)) % 7), 12, 30)
    out.add(_PAYROLLS.path, month.first, [advance, revised], [jobs, second_friday])

    # GDP: quarterly annualised growth, advance ~30 days and revision ~58 days after quarter end.
    gdp = _period_mean(_latent((_GDP,), factors, cal, rng), quarter)[0]
    revised = _observe(_GDP, gdp, rng)
    advance = np.round(np.clip(revised + rng.normal(0.0, 0.7, revised.shape), -15, 15), 1)
    out.add(
        _GDP.path,
        quarter.first,
        [advance, revised],
        [_stamp(cal.roll(quarter.last + 30), 12, 30), _stamp(cal.roll(quarter.last + 58), 12, 30)],
    )

    # Fed funds: monthly, the announced policy rate (25 bp steps), out the next business day.
    fed_funds = _quantize_rate(_period_mean(policy.smooth, month))
    out.add(_FED_FUNDS, month.first, fed_funds, _stamp(cal.roll(month.last + 1), 16, 0))

    # Weekly: claims (week ending Saturday, out Thursday) and stress (ending Friday, out Thursday).
    for spec, kind, lag, hour in ((_CLAIMS, "W-SAT", 5, 12), (_STRESS_INDEX, "W-FRI", 6, 15)):
        week = _periods(cal, kind)
        values = _observe(spec, _period_mean(_latent((spec,), factors, cal, rng), week)[0], rng)
        out.add(spec.path, week.last, values, _stamp(cal.roll(week.last + lag), hour, 30))
    return out.frame()


def _yahoo(
    config: SyntheticWorldConfig,
    cal: _Calendar,
    factors: np.ndarray,
    policy: _Policy,
    outage: Outage | None,
) -> pl.DataFrame:
    """Daily closes on business days (bitcoin every day), known at 21:00 UTC the same day."""
    rng = _rng(config.seed, "yahoo")
    out = _Emitter(config, "yahoo")
    growth, inflation, stress, stance, liquidity, risk = factors
    live = np.ones(cal.n, dtype=bool)
    if outage is not None:
        live &= ~(
            (cal.days >= np.datetime64(outage.first_day, "D"))
            & (cal.days <= np.datetime64(outage.last_day, "D"))
        )
    bdays = np.flatnonzero(cal.busday)
    shown = np.flatnonzero(cal.busday & live)

    def add(path: str, values: np.ndarray, idx: np.ndarray, decimals: int) -> None:
        out.add(path, cal.days[idx], np.round(values[idx], decimals), _stamp(cal.days[idx], 21))

    # Equities: VIX is log-linear in stress with shocks that mirror equity shocks (leverage
    # effect); the S&P 500 is a geometric random walk with factor-driven drift and VIX vol.
    shock = rng.standard_t(5, cal.n) * math.sqrt(3 / 5)
    own = rng.standard_normal(cal.n)
    vix_ar, vix_sd = 0.97, 0.12
    e = vix_sd * math.sqrt(1 - vix_ar**2) * (-0.6 * shock + 0.8 * own)
    e[0] = vix_sd * own[0]
    vix = np.clip(
        np.exp(math.log(17) + 0.32 * stress - 0.12 * risk + _ar1_filter(e, vix_ar)), 9, 85
    )
    sp500 = np.full(cal.n, np.nan)
    if len(bdays):
        sigma = 0.85 * vix[bdays] / 100 / math.sqrt(252)
        drift = (0.09 + 0.06 * growth + 0.05 * risk - 0.04 * stress)[bdays] / 252
        r = drift - 0.5 * sigma**2 + sigma * shock[bdays]
        log_level = np.cumsum(r) - r[0] - 0.10 * (stress[bdays] - stress[bdays[0]])
        sp500[bdays] = 1450 * np.exp(log_level)
    add(_SP500, sp500, shown, 2)
    add(_VIX, vix, shown, 2)

    # Yields: the 2-year averages today's policy rate and where the rule points; the 10-year
    # adds a term premium (inflation risk up, flight to quality and liquidity down).
    noise = _ar_noise(rng, np.array([0.2, 0.35]), np.array([0.98, 0.995]), cal.n)
    two = np.clip(0.1 + 0.5 * policy.rate + 0.5 * np.maximum(policy.rule, 0) + noise[0], 0.05, 15)
    ten = 2.2 + 0.45 * two + 0.35 * inflation - 0.25 * stress - 0.15 * liquidity + noise[1]
    add(_TWO_YEAR, two, shown, 3)
    add(_TEN_YEAR, np.clip(ten, 0.4, 16), shown, 3)

    # Credit, FX and commodities: log-linear in the factors plus persistent own noise.
    latent = _latent(_YAHOO_LINEAR, factors, cal, rng)
    for spec, values in zip(_YAHOO_LINEAR, latent, strict=True):
        add(spec.path, np.clip(values, spec.lo, spec.hi), shown, spec.decimals)

    # Bitcoin: trades every day from its listing; high, risk-dependent vol and drift.
    crypto = np.flatnonzero(cal.days >= _BTC_LISTED)
    if len(crypto):
        kick = rng.standard_t(4, len(crypto)) * math.sqrt(2 / 4)
        vol = np.clip(0.5 - 0.1 * risk + 0.1 * stress, 0.25, 1.2)[crypto] / math.sqrt(365)
        drift = (0.65 + 0.25 * risk + 0.15 * liquidity - 0.15 * stance)[crypto] / 365
        r = drift - 0.5 * vol**2 + vol * kick
        years_listed = (cal.days[crypto[0]] - _BTC_LISTED).astype(np.float64) / 365.25
        btc = np.full(cal.n, np.nan)
        btc[crypto] = _BTC_FIRST_CLOSE * np.exp(0.40 * years_listed + np.cumsum(r) - r[0])
        add(_BTC, btc, crypto[live[crypto]], 2)
    return out.frame()


def _pmi(config: SyntheticWorldConfig, cal: _Calendar, factors: np.ndarray) -> pl.DataFrame:
    """ISM diffusion indices, monthly, out on business days of the next month at 14:00 UTC."""
    rng = _rng(config.seed, "pmi")
    out = _Emitter(config, "pmi")
    month = _periods(cal, "M")
    means = _period_mean(_latent(_PMI, factors, cal, rng), month)
    for spec, values, nth in zip(_PMI, means, _PMI_RELEASE_BUSDAY, strict=True):
        known = _stamp(cal.roll(month.last + 1, nth), 14)
        out.add(spec.path, month.first, _observe(spec, values, rng), known)
    return out.frame()


def _firm_profile(
    config: SyntheticWorldConfig, ticker: str
) -> tuple[float, float, np.ndarray, bool, int, int | None]:
    """(EPS mid-2024, trend growth, factor betas, reports pre-market, typical report lag,
    first year listed or None)."""
    entity = firm_entity(ticker)
    rng = _rng(config.seed, "firm", entity)
    lag = int(rng.integers(24, 37))
    known = _FIRM_PROFILES.get(entity.removeprefix("firm_"))
    if known is not None:
        eps, growth, betas, pre_market, listed = known
        return eps, growth, np.array(betas), pre_market, lag, listed
    betas = np.array([0.10, 0.0, -0.08, 0.0, 0.0, 0.05]) * rng.uniform(0.5, 1.5, len(FACTORS))
    eps = float(np.exp(rng.normal(math.log(1.5), 0.5)))
    return eps, float(rng.uniform(0.02, 0.15)), betas, bool(rng.random() < 0.5), lag, None


def _earnings(config: SyntheticWorldConfig, cal: _Calendar, factors: np.ndarray) -> pl.DataFrame:
    """Quarterly EPS actual/estimate/surprise per firm, reported 20-45 days after quarter end,
    from the year the firm is listed.

    Analysts estimate from the factors at the start of the quarter; the actual reflects the
    whole quarter, so surprises are positive when the economy improves during the quarter.
    """
    out = _Emitter(config, "earnings")
    quarter = _periods(cal, "Q")
    n_q = len(quarter.first)
    mean_factors = _period_mean(factors, quarter)  # (n_factors, n_q)
    start_factors = factors[:, quarter.lo]
    years = cal.years[quarter.lo] + 0.125
    q4 = quarter.first.astype("datetime64[M]").astype(np.int64) % 12 == 9
    for ticker in config.firms:
        entity = firm_entity(ticker)
        eps, growth, betas, pre_market, lag, listed = _firm_profile(config, ticker)
        rng = _rng(config.seed, "earnings", entity)
        idio = _ar_noise(rng, np.array([0.06]), np.array([0.6]), n_q)[0]
        trend = math.log(eps) + growth * (years - 24.5)
        actual = trend + betas @ mean_factors + idio + rng.normal(0.0, 0.02, n_q)
        previous = np.r_[0.0, idio[:-1]]
        estimate = trend + betas @ start_factors + 0.6 * previous - 0.04
        estimate = estimate + rng.normal(0.0, 0.03, n_q)
        actual = np.maximum(np.round(np.exp(actual), 2), 0.01)
        estimate = np.maximum(np.round(np.exp(estimate), 2), 0.01)
        surprise = actual - estimate
        days = np.clip(lag + rng.integers(-4, 5, n_q) + 4 * q4, 20, 42)
        report = cal.roll(quarter.last + days)  # rolls at most 3 days: <= 45 days after
        known = _stamp(report, 12) if pre_market else _stamp(report, 21)
        values = {
            "eps_actual": actual,
            "eps_estimate": estimate,
            "eps_surprise": surprise,
            "eps_surprise_pct": 100.0 * surprise / np.abs(estimate),
        }
        public = quarter.first >= np.datetime64(f"{listed or 1}-01-01", "D")
        for name in _EARNINGS_FIELDS:
            out.add(
                f"{entity}.earnings.{name}",
                quarter.first[public],
                values[name][public],
                known[public],
            )
    return out.frame()


# ---------------------------------------------------------------------------------------------
# News
# ---------------------------------------------------------------------------------------------


def _sentence_bank(firms: tuple[str, ...]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """All headline sentences, plus offset and count per (topic, tone) into that list."""
    groups: list[list[str]] = []
    for subjects, tones in _NEWS_BANKS:
        groups += [[f"{s} {p}" for s in subjects for p in preds] for preds in tones]
    if firms:
        names = [str(t).strip().upper() for t in firms]
        groups += [[f"{n} {p}" for n in names for p in preds] for preds in _FIRM_NEWS]
    counts = np.array([len(g) for g in groups]).reshape(-1, len(_TONE_CUTS) + 1)
    offsets = np.r_[0, np.cumsum(counts)[:-1]].reshape(counts.shape)
    return [s for g in groups for s in g], offsets, counts


def _headlines(config: SyntheticWorldConfig, cal: _Calendar, factors: np.ndarray) -> pl.DataFrame:
    """Raw news: a Poisson number of headlines per business day, tone set by the factors."""
    rng = _rng(config.seed, "news")
    bdays = np.flatnonzero(cal.busday)
    day = np.repeat(bdays, rng.poisson(config.headlines_per_day, len(bdays)))
    n = len(day)
    n_topics = len(FACTORS) + (1 if config.firms else 0)
    f = factors[:, day]  # (n_factors, n)

    # Topic: base odds, and an extreme factor makes more news (Gumbel-max sampling).
    salience = np.zeros((n_topics, n))
    salience[: len(FACTORS)] = 0.6 * np.abs(f)
    logits = np.log(_NEWS_TOPIC_ODDS[:n_topics])[:, None] + salience
    topic = np.argmax(logits + rng.gumbel(size=(n_topics, n)), axis=0)

    # Sentiment: good news is a factor times its polarity; firm news follows a composite.
    tone_driver = np.vstack([_NEWS_POLARITY[:, None] * f, 0.5 * f[0] + 0.4 * f[5] - 0.3 * f[2]])
    signal = tone_driver[topic, np.arange(n)]
    sentiment = np.tanh(0.9 * signal + 0.35 * rng.standard_normal(n))
    tone = np.digitize(sentiment, _TONE_CUTS)

    sentences, offsets, counts = _sentence_bank(config.firms)
    pick = offsets[topic, tone] + (rng.random(n) * counts[topic, tone]).astype(np.int64)
    seconds = rng.integers(10 * 3600 * 10**6, 23 * 3600 * 10**6, n)
    published = _stamp(cal.days[day], 0) + seconds.astype("timedelta64[us]")
    keep = rng.random(n) >= config.missing_rate
    order = np.argsort(published[keep], kind="stable")
    return pl.DataFrame(
        {
            "published_at": published[keep][order],
            "headline": pl.Series(sentences, dtype=pl.Utf8).gather(pick[keep][order]),
            "sentiment_truth": sentiment[keep][order],
        },
        schema=HEADLINE_SCHEMA,
    )
