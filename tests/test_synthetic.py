"""Tests of the synthetic world (ingest.synthetic): determinism, format, releases, truth."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from ingest import synthetic
from ingest.synthetic import (
    FACTORS,
    HEADLINE_SCHEMA,
    LONG_SCHEMA,
    REVISED_FIELDS,
    SOURCES,
    SyntheticWorld,
    SyntheticWorldConfig,
    generate_world,
    synthetic_outage,
)

DEFAULT = SyntheticWorldConfig()
CPI = "country_us.macro.inflation.headline_cpi"
UNEMPLOYMENT = "country_us.macro.labor.unemployment_rate"
PAYROLLS = "country_us.macro.labor.nonfarm_payrolls_change"
GDP = "country_us.macro.output.gdp_nowcast"
CLAIMS = "country_us.macro.labor.initial_claims"
FED_FUNDS = "country_us.macro.rates.fed_funds"
SP500 = "financial.equities.sp500"
VIX = "financial.equities.vix"
HY_OAS = "financial.credit.high_yield_oas"
BTC = "financial.crypto.btc"

EXPECTED_FIELDS = {
    "fred": {
        "country_us.macro.output.gdp_nowcast",
        "country_us.macro.output.industrial_production",
        "country_us.macro.inflation.headline_cpi",
        "country_us.macro.inflation.core_cpi",
        "country_us.macro.labor.unemployment_rate",
        "country_us.macro.labor.nonfarm_payrolls_change",
        "country_us.macro.labor.initial_claims",
        "country_us.macro.rates.fed_funds",
        "country_us.macro.money.m2_growth",
        "country_us.macro.housing.housing_starts",
        "country_us.macro.credit.financial_stress_index",
        "country_us.macro.sentiment.consumer_sentiment",
    },
    "yahoo": {
        "financial.equities.sp500",
        "financial.equities.vix",
        "financial.yield_curves.two_year",
        "financial.yield_curves.ten_year",
        "financial.credit.high_yield_oas",
        "financial.fx.eurusd",
        "financial.commodities.wti_crude",
        "financial.commodities.gold",
        "financial.crypto.btc",
    },
    "pmi": {
        "country_us.surveys.ism_manufacturing.pmi",
        "country_us.surveys.ism_manufacturing.new_orders",
        "country_us.surveys.ism_manufacturing.prices",
        "country_us.surveys.ism_services.pmi",
    },
    "earnings": {
        f"firm_{t}.earnings.{name}"
        for t in DEFAULT.firms
        for name in ("eps_actual", "eps_estimate", "eps_surprise", "eps_surprise_pct")
    },
}


@pytest.fixture(scope="module")
def world() -> SyntheticWorld:
    return generate_world()


def field(world: SyntheticWorld, source: str, path: str) -> pl.DataFrame:
    return world.sources[source].filter(pl.col("field_path") == path)


def days_between(later: pl.Expr, earlier: pl.Expr) -> pl.Expr:
    return (later.dt.date() - earlier.dt.date()).dt.total_days()


def monthly_truth(world: SyntheticWorld) -> pl.DataFrame:
    """Month start, the month's regime (constant within a month) and mean factors."""
    return (
        world.regimes.group_by(month=pl.col("date").dt.truncate("1mo"))
        .agg(pl.col("regime").first(), pl.col("regime").n_unique().alias("n"), *FACTORS)
        .with_columns(pl.col(f).list.mean() for f in FACTORS)
        .sort("month")
    )


def assert_long_format(frame: pl.DataFrame) -> None:
    assert frame.schema == pl.Schema(LONG_SCHEMA)
    assert frame.null_count().sum_horizontal().item() == 0
    assert frame["value"].is_finite().all()
    assert (frame["known_at"] >= frame["observed_at"]).all()
    assert frame.equals(frame.sort(["field_path", "observed_at", "known_at"]))


# --- determinism --------------------------------------------------------------------------


def test_same_seed_gives_identical_world(world: SyntheticWorld) -> None:
    again = generate_world(SyntheticWorldConfig())
    assert again.regimes.equals(world.regimes)
    assert again.headlines.equals(world.headlines)
    assert again.sources.keys() == world.sources.keys()
    for name in SOURCES:
        assert again.sources[name].equals(world.sources[name]), name


def test_other_seed_gives_a_different_world(world: SyntheticWorld) -> None:
    other = generate_world(SyntheticWorldConfig(seed=1))
    assert not other.regimes["regime"].equals(world.regimes["regime"])
    assert not other.headlines.equals(world.headlines)
    for name in SOURCES:
        assert not other.sources[name].equals(world.sources[name]), name


# --- format -------------------------------------------------------------------------------


def test_sources_are_in_the_warehouse_long_format(world: SyntheticWorld) -> None:
    assert set(world.sources) == set(SOURCES)
    for name, frame in world.sources.items():
        assert_long_format(frame)
        assert set(frame["field_path"].unique()) == EXPECTED_FIELDS[name], name


def test_known_at_is_never_far_after_the_end_nor_in_the_future(world: SyntheticWorld) -> None:
    end = dt.datetime(2024, 12, 31)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    for frame in world.sources.values():
        assert frame["known_at"].max() <= end + dt.timedelta(days=92)
        assert frame["known_at"].max() <= now
        assert frame["observed_at"].min() >= dt.datetime(2000, 1, 1)
        assert frame["observed_at"].max() <= end


def test_regime_truth_covers_every_day(world: SyntheticWorld) -> None:
    regimes = world.regimes
    assert regimes.columns == ["date", "regime", "regime_name", *FACTORS]
    assert regimes.schema["date"] == pl.Date
    assert regimes.schema["regime"] == pl.Int32
    assert regimes.schema["regime_name"] == pl.Utf8
    assert all(regimes.schema[f] == pl.Float64 for f in FACTORS)
    assert regimes.null_count().sum_horizontal().item() == 0
    expected = pl.date_range(dt.date(2000, 1, 1), dt.date(2024, 12, 31), eager=True)
    assert regimes["date"].equals(expected, check_names=False)
    # every regime occurs, ids and names map one to one, regimes switch only at month starts
    assert set(regimes["regime"].unique()) == set(range(DEFAULT.n_regimes))
    pairs = regimes.select("regime", "regime_name").unique()
    assert pairs.height == DEFAULT.n_regimes == pairs["regime_name"].n_unique()
    assert {"expansion", "recession"} <= set(pairs["regime_name"])
    assert (monthly_truth(world)["n"] == 1).all()


def test_factors_follow_their_regime_means(world: SyntheticWorld) -> None:
    means = world.regimes.group_by("regime_name").agg(pl.col(FACTORS).mean())
    by_name = {row["regime_name"]: row for row in means.iter_rows(named=True)}
    assert by_name["recession"]["growth"] < by_name["expansion"]["growth"] - 1.0
    assert by_name["recession"]["financial_stress"] > by_name["expansion"]["financial_stress"] + 1
    assert by_name["inflationary_boom"]["inflation"] > by_name["expansion"]["inflation"] + 0.5
    # smooth transitions: day-to-day changes are small next to the regime gaps
    steps = world.regimes.select(pl.col(FACTORS).diff().abs().max()).row(0)
    assert max(steps) < 0.5


# --- release calendar ---------------------------------------------------------------------


def test_cpi_is_known_10_to_20_days_after_month_end(world: SyntheticWorld) -> None:
    cpi = field(world, "fred", CPI)
    assert cpi.height > 280
    assert (cpi["observed_at"].dt.day() == 1).all()
    lag = cpi.select(days_between(pl.col("known_at"), pl.col("observed_at").dt.month_end()))
    assert lag.to_series().is_between(10, 20).all()


def test_pmi_is_released_on_a_business_day_of_the_following_month(world: SyntheticWorld) -> None:
    pmi = world.sources["pmi"]
    assert (pmi["observed_at"].dt.day() == 1).all()
    next_month = pmi["observed_at"].dt.offset_by("1mo")
    assert (pmi["known_at"].dt.truncate("1mo") == next_month).all()
    assert (pmi["known_at"].dt.weekday() <= 5).all()
    assert (pmi["known_at"].dt.hour() == 14).all()
    manufacturing = pmi.filter(pl.col("field_path").str.contains("ism_manufacturing"))
    assert (manufacturing["known_at"].dt.day() <= 4).all()  # the first business day


def test_daily_closes_are_known_the_same_day_at_21_utc(world: SyntheticWorld) -> None:
    yahoo = world.sources["yahoo"]
    assert (yahoo["observed_at"] == yahoo["observed_at"].dt.truncate("1d")).all()
    assert (yahoo["known_at"] == yahoo["observed_at"] + dt.timedelta(hours=21)).all()


def test_equities_trade_on_business_days_and_bitcoin_every_day(world: SyntheticWorld) -> None:
    yahoo = world.sources["yahoo"]
    weekend = pl.col("observed_at").dt.weekday() >= 6
    assert yahoo.filter(pl.col("field_path") != BTC).filter(weekend).is_empty()
    sp500 = field(world, "yahoo", SP500)
    assert 6000 < sp500.height < 6600  # ~251 business days a year for 25 years, minus gaps
    btc = field(world, "yahoo", BTC)
    assert btc.filter(weekend).height > 1000
    assert btc["observed_at"].min() >= dt.datetime(2014, 9, 17)
    assert btc.height > 3500


def test_weekly_claims_are_saturdays_known_the_next_thursday(world: SyntheticWorld) -> None:
    claims = field(world, "fred", CLAIMS)
    assert claims.height > 1250
    assert (claims["observed_at"].dt.weekday() == 6).all()
    lag = claims.select(days_between(pl.col("known_at"), pl.col("observed_at"))).to_series()
    assert lag.is_between(5, 6).all()
    assert (lag == 5).mean() > 0.95


def test_gdp_and_payrolls_are_released_with_realistic_lags(world: SyntheticWorld) -> None:
    gdp = field(world, "fred", GDP).group_by("observed_at").agg(pl.col("known_at").min())
    assert gdp["observed_at"].dt.month().is_in([1, 4, 7, 10]).all()
    assert (gdp["observed_at"].dt.day() == 1).all()
    quarter_end = pl.col("observed_at").dt.offset_by("3mo") - dt.timedelta(days=1)
    lag = gdp.select(days_between(pl.col("known_at"), quarter_end)).to_series()
    assert lag.is_between(28, 35).all()
    jobs = field(world, "fred", PAYROLLS).group_by("observed_at").agg(pl.col("known_at").min())
    lag = jobs.select(days_between(pl.col("known_at"), pl.col("observed_at").dt.month_end()))
    assert lag.to_series().is_between(1, 10).all()
    assert (jobs["known_at"].dt.weekday() == 5).mean() > 0.95  # Friday unless a holiday


def test_revised_fields_have_an_advance_and_a_later_revision(world: SyntheticWorld) -> None:
    fred = world.sources["fred"]
    for path in REVISED_FIELDS:
        vintages = (
            fred.filter(pl.col("field_path") == path)
            .group_by("observed_at")
            .agg(pl.col("known_at").sort(), pl.col("value").sort_by("known_at"))
        )
        assert vintages.height > 90
        assert (vintages["known_at"].list.len() == 2).all()
        advance = vintages["known_at"].list.first()
        revised = vintages["known_at"].list.last()
        gap = (revised - advance).dt.total_days()
        assert gap.is_between(20, 40).all()
        changed = vintages["value"].list.first() != vintages["value"].list.last()
        assert changed.mean() > 0.7
    single = fred.filter(~pl.col("field_path").is_in(REVISED_FIELDS))
    assert single.select(pl.len().over("field_path", "observed_at").max()).item() == 1
    for name in ("yahoo", "pmi", "earnings"):
        frame = world.sources[name]
        assert frame.select(pl.len().over("field_path", "observed_at").max()).item() == 1


def test_fed_funds_moves_in_25bp_steps_with_a_floor(world: SyntheticWorld) -> None:
    rate = field(world, "fred", FED_FUNDS)["value"].to_numpy()
    assert rate.min() == pytest.approx(0.125)
    steps = (rate - 0.125) / 0.25
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-9)
    assert rate.max() > 3.0


def test_magnitudes_are_realistic(world: SyntheticWorld) -> None:
    stats = (
        pl.concat(list(world.sources.values()))
        .group_by("field_path")
        .agg(pl.col("value").min().alias("lo"), pl.col("value").max().alias("hi"))
    )
    ranges = {
        CPI: (-3, 10),
        UNEMPLOYMENT: (3.0, 12),
        VIX: (9, 90),
        HY_OAS: (1.5, 25),
        "country_us.surveys.ism_manufacturing.pmi": (25, 75),
        "country_us.macro.sentiment.consumer_sentiment": (50, 112),
        "financial.yield_curves.ten_year": (0.3, 16),
    }
    for row in stats.filter(pl.col("field_path").is_in(list(ranges))).iter_rows(named=True):
        lo, hi = ranges[row["field_path"]]
        assert lo <= row["lo"] and row["hi"] <= hi, row


# --- regime dependence: the hidden truth is learnable --------------------------------------


def test_vix_is_higher_in_recession_than_in_expansion(world: SyntheticWorld) -> None:
    vix = field(world, "yahoo", VIX).with_columns(date=pl.col("observed_at").dt.date())
    by_regime = vix.join(world.regimes, on="date").group_by("regime_name")
    mean = dict(by_regime.agg(pl.col("value").mean()).iter_rows())
    assert mean["recession"] > mean["expansion"] + 10


def test_unemployment_and_credit_spreads_co_move_with_financial_stress(
    world: SyntheticWorld,
) -> None:
    hy = field(world, "yahoo", HY_OAS).with_columns(date=pl.col("observed_at").dt.date())
    hy = hy.join(world.regimes, on="date")
    assert np.corrcoef(hy["value"], hy["financial_stress"])[0, 1] > 0.7
    unemployment = field(world, "fred", UNEMPLOYMENT).with_columns(
        month=pl.col("observed_at").dt.date()
    )
    unemployment = unemployment.join(monthly_truth(world), on="month")
    assert np.corrcoef(unemployment["value"], unemployment["financial_stress"])[0, 1] > 0.3
    assert np.corrcoef(unemployment["value"], unemployment["growth"])[0, 1] < -0.3


def probe_balanced_accuracy(frame: pl.DataFrame, truth: pl.DataFrame, n_regimes: int) -> float:
    """Linear least-squares probe: monthly means of one source's fields -> regime one-hot."""
    wide = (
        frame.group_by("field_path", month=pl.col("observed_at").dt.truncate("1mo").dt.date())
        .agg(pl.col("value").mean())
        .pivot("field_path", index="month", values="value")
        .drop_nulls()
        .join(truth.select("month", "regime"), on="month")
        .sort("month")
    )
    x = wide.drop("month", "regime").to_numpy()
    x = np.c_[np.ones(len(x)), (x - x.mean(axis=0)) / x.std(axis=0)]
    target = wide["regime"].to_numpy()
    coef = np.linalg.lstsq(x, np.eye(n_regimes)[target], rcond=None)[0]
    predicted = (x @ coef).argmax(axis=1)
    return float(np.mean([np.mean(predicted[target == k] == k) for k in np.unique(target)]))


def test_sources_with_no_field_overlap_each_reveal_the_regime(world: SyntheticWorld) -> None:
    truth = monthly_truth(world)
    chance = 1 / DEFAULT.n_regimes
    pmi = world.sources["pmi"]
    markets = world.sources["yahoo"].filter(pl.col("field_path") != BTC)
    monthly_macro = [CPI, UNEMPLOYMENT, FED_FUNDS, "country_us.macro.money.m2_growth"]
    macro = world.sources["fred"].filter(pl.col("field_path").is_in(monthly_macro))
    for frame in (pmi, markets, macro):
        assert probe_balanced_accuracy(frame, truth, DEFAULT.n_regimes) > chance + 0.2


# --- earnings -----------------------------------------------------------------------------


def test_earnings_are_quarterly_per_firm_with_consistent_surprises(world: SyntheticWorld) -> None:
    earnings = world.sources["earnings"]
    assert (earnings["observed_at"].dt.month().is_in([1, 4, 7, 10])).all()
    assert (earnings["observed_at"].dt.day() == 1).all()
    quarter_end = pl.col("observed_at").dt.offset_by("3mo") - dt.timedelta(days=1)
    lag = earnings.select(days_between(pl.col("known_at"), quarter_end)).to_series()
    assert lag.is_between(20, 45).all()
    wide = earnings.with_columns(
        firm=pl.col("field_path").str.split(".").list.first(),
        name=pl.col("field_path").str.split(".").list.last(),
    ).pivot("name", index=["firm", "observed_at"], values="value")
    assert set(wide["firm"].unique()) == {f"firm_{t}" for t in DEFAULT.firms}
    # 100 quarters in 2000-2024, fewer for a firm listed later; a few dropped as missing
    for firm, n in wide.group_by("firm").len().iter_rows():
        listed = synthetic._FIRM_PROFILES[firm.removeprefix("firm_")][4] or 2000
        quarters = 4 * (2025 - max(2000, listed))
        assert 0.95 * quarters <= n <= quarters, firm
    full = wide.drop_nulls()
    assert full.height > 500
    np.testing.assert_allclose(full["eps_surprise"], full["eps_actual"] - full["eps_estimate"])
    np.testing.assert_allclose(
        full["eps_surprise_pct"], 100 * full["eps_surprise"] / full["eps_estimate"].abs()
    )
    assert (full["eps_actual"] > 0).all() and (full["eps_estimate"] > 0).all()
    beats, misses = (full["eps_surprise"] > 0).mean(), (full["eps_surprise"] < 0).mean()
    assert beats > misses + 0.15 and misses > 0.1  # analysts sandbag, but not always
    # one report per firm and quarter: all four fields share the report time
    times = earnings.group_by(pl.col("field_path").str.split(".").list.first(), "observed_at")
    assert times.agg(pl.col("known_at").n_unique())["known_at"].max() == 1


def test_firm_entities_are_normalised() -> None:
    config = SyntheticWorldConfig(start="2020-01-01", end="2021-12-31", firms=("brk.b", "BF-B"))
    earnings = generate_world(config).sources["earnings"]
    domains = set(earnings["field_path"].str.split(".").list.first().unique())
    assert domains == {"firm_BRK_B", "firm_BF_B"}
    with pytest.raises(ValueError, match="duplicate"):
        generate_world(SyntheticWorldConfig(firms=("BRK.B", "BRK-B")))


# --- news ---------------------------------------------------------------------------------


def test_headlines_are_templated_news_whose_sentiment_follows_the_regime(
    world: SyntheticWorld,
) -> None:
    news = world.headlines
    assert news.schema == pl.Schema(HEADLINE_SCHEMA)
    assert news.null_count().sum_horizontal().item() == 0
    assert news["published_at"].is_sorted()
    assert 0.9 * 6 * 6400 < news.height < 1.1 * 6 * 6400
    assert (news["published_at"].dt.weekday() <= 5).all()
    assert news["sentiment_truth"].is_between(-1, 1).all()
    assert 200 <= news["headline"].n_unique() <= 1000
    dated = news.with_columns(date=pl.col("published_at").dt.date()).join(world.regimes, on="date")
    mean = dict(dated.group_by("regime_name").agg(pl.col("sentiment_truth").mean()).iter_rows())
    assert mean["expansion"] > mean["recession"] + 0.3
    negative = dated.filter(pl.col("headline").str.contains("recession fears|crisis levels"))
    assert negative["sentiment_truth"].max() < 0


# --- gaps ---------------------------------------------------------------------------------


def test_the_yahoo_feed_has_a_two_week_outage(world: SyntheticWorld) -> None:
    outage = synthetic_outage(DEFAULT)
    assert outage is not None and outage.source == "yahoo"
    assert (outage.last_day - outage.first_day).days + 1 == 14
    inside = pl.col("observed_at").dt.date().is_between(outage.first_day, outage.last_day)
    assert world.sources["yahoo"].filter(inside).is_empty()
    margin = dt.timedelta(days=10)
    around = (
        pl.col("observed_at")
        .dt.date()
        .is_between(outage.first_day - margin, outage.last_day + margin)
    )
    assert world.sources["yahoo"].filter(around).height > 50
    assert not world.sources["fred"].filter(inside).is_empty()  # only Yahoo is down


def test_missing_rate_drops_whole_observations() -> None:
    base = dict(start="2005-01-01", end="2014-12-31", seed=3)
    full = generate_world(SyntheticWorldConfig(**base, missing_rate=0.0))
    holey = generate_world(SyntheticWorldConfig(**base, missing_rate=0.2))
    assert field(full, "fred", CPI).height == 120
    assert field(full, "fred", GDP).height == 2 * 40
    outage = synthetic_outage(SyntheticWorldConfig(**base))
    assert outage is not None
    business = np.busday_count(
        np.datetime64("2005-01-01"), np.datetime64("2015-01-01"),
        holidays=[f"{y}-{md}" for y in range(2005, 2015) for md in ("01-01", "07-04", "12-25")],
    )  # fmt: skip
    down = np.busday_count(
        np.datetime64(outage.first_day), np.datetime64(outage.last_day) + 1,
        holidays=[f"{y}-{md}" for y in range(2005, 2015) for md in ("01-01", "07-04", "12-25")],
    )  # fmt: skip
    assert field(full, "yahoo", SP500).height == business - down
    for name in SOURCES:
        ratio = holey.sources[name].height / full.sources[name].height
        assert 0.74 < ratio < 0.86, name
    gdp_vintages = field(holey, "fred", GDP).group_by("observed_at").len()
    assert (gdp_vintages["len"] == 2).all()  # a gap drops both vintages together
    assert holey.regimes.equals(full.regimes)  # the truth has no gaps


# --- configurations -----------------------------------------------------------------------


@pytest.mark.parametrize("n_regimes", [1, 2, 6, 8])
def test_other_regime_counts(n_regimes: int) -> None:
    config = SyntheticWorldConfig(start="2000-01-01", end="2009-12-31", n_regimes=n_regimes)
    world = generate_world(config)
    assert world.regimes["regime"].is_between(0, n_regimes - 1).all()
    assert world.regimes.select("regime", "regime_name").unique().height <= n_regimes
    for frame in world.sources.values():
        assert_long_format(frame)


def test_a_short_world_has_only_complete_periods_and_no_outage() -> None:
    config = SyntheticWorldConfig(start="2020-01-15", end="2020-03-10", firms=())
    world = generate_world(config)
    assert synthetic_outage(config) is None
    assert world.regimes.height == 56
    fred = world.sources["fred"]
    months = fred.filter(pl.col("field_path") == CPI)["observed_at"].dt.date().to_list()
    assert months in ([dt.date(2020, 2, 1)], [])
    assert fred.filter(pl.col("field_path") == GDP).is_empty()
    assert world.sources["earnings"].is_empty()
    assert world.sources["earnings"].schema == pl.Schema(LONG_SCHEMA)
    assert not world.headlines["headline"].str.contains("shares").any()
    for frame in world.sources.values():
        assert_long_format(frame)


@pytest.mark.parametrize(
    "bad",
    [
        {"start": "2020-02-01", "end": "2020-01-01"},
        {"start": "not a date"},
        {"n_regimes": 0},
        {"mean_regime_months": 0.5},
        {"headlines_per_day": -1.0},
        {"missing_rate": 1.0},
        {"firms": ("1BAD",)},
    ],
)
def test_invalid_configs_are_rejected(bad: dict) -> None:
    with pytest.raises(ValueError):
        generate_world(SyntheticWorldConfig(**bad))


# --- the vectorised building blocks match their textbook loops -----------------------------


def test_markov_chain_scan_matches_a_sequential_simulation() -> None:
    rng = np.random.default_rng(7)
    matrix = synthetic._transition_matrix(5, 6.0)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0)
    uniforms = rng.random(500)
    scanned = synthetic._markov_chain(matrix, 2, uniforms)
    cdf = np.cumsum(matrix, axis=1)
    state, expected = 2, [2]
    for u in uniforms:
        state = min(int(np.sum(u >= cdf[state])), 4)
        expected.append(state)
    np.testing.assert_array_equal(scanned, expected)


def test_ar1_filter_matches_the_recursion() -> None:
    rng = np.random.default_rng(8)
    u = rng.standard_normal((3, 700))
    a = np.array([0.0, 0.9, 0.999])
    y = synthetic._ar1_filter(u, a)
    expected = np.zeros_like(u)
    for t in range(u.shape[1]):
        expected[:, t] = u[:, t] + (a * expected[:, t - 1] if t else 0.0)
    np.testing.assert_allclose(y, expected, atol=1e-9)


def test_firms_report_earnings_only_once_listed():
    """No EPS before a firm's listing (Google 2004): a world that starts earlier does not
    extrapolate its trend back to a fraction of a cent."""
    world = generate_world(SyntheticWorldConfig(start="2000-01-01", end="2006-12-31"))
    first = (
        world.sources["earnings"]
        .group_by(pl.col("field_path").str.extract(r"firm_(\w+)\.").alias("firm"))
        .agg(pl.col("observed_at").min())
    )
    first = dict(first.iter_rows())
    assert first["GOOGL"] == dt.datetime(2004, 1, 1)
    assert first["JPM"] == dt.datetime(2000, 1, 1) and first["MSFT"] == dt.datetime(2000, 1, 1)
    assert "META" not in first  # listed in 2012
