"""Tests of the field schema (warehouse.schema) and the declared catalogue (warehouse.catalog)."""

from __future__ import annotations

import pickle
import time
from dataclasses import replace

import polars as pl
import pytest

from warehouse.fields import Field, Period
from warehouse.schema import (
    Schema,
    UnknownFieldError,
    default_schema,
    firm_entity,
)

REQUIRED_PATHS = [
    "country_us.macro.output.gdp_nowcast",
    "country_us.macro.output.real_gdp_growth",
    "country_us.macro.output.nominal_gdp_growth",
    "country_us.macro.output.industrial_production",
    "country_us.macro.output.retail_sales",
    "country_us.macro.output.durable_goods_orders",
    "country_us.macro.output.cfnai",
    "country_us.macro.inflation.headline_cpi",
    "country_us.macro.inflation.core_cpi",
    "country_us.macro.inflation.core_pce",
    "country_us.macro.inflation.ppi_final_demand",
    "country_us.macro.inflation.breakeven_10y",
    "country_us.macro.inflation.breakeven_5y",
    "country_us.macro.inflation.michigan_expectations_1y",
    "country_us.macro.labor.unemployment_rate",
    "country_us.macro.labor.u6_rate",
    "country_us.macro.labor.nonfarm_payrolls_change",
    "country_us.macro.labor.participation_rate",
    "country_us.macro.labor.avg_hourly_earnings_growth",
    "country_us.macro.labor.initial_claims",
    "country_us.macro.labor.job_openings",
    "country_us.macro.rates.fed_funds",
    "country_us.macro.rates.treasury_3m",
    "country_us.macro.rates.mortgage_30y",
    "country_us.macro.money.m2_growth",
    "country_us.macro.money.fed_balance_sheet",
    "country_us.macro.money.reverse_repo",
    "country_us.macro.housing.housing_starts",
    "country_us.macro.housing.new_home_sales",
    "country_us.macro.housing.case_shiller_hpi_growth",
    "country_us.macro.credit.business_loans_growth",
    "country_us.macro.credit.financial_stress_index",
    "country_us.macro.credit.nfci",
    "country_us.macro.sentiment.consumer_sentiment",
    "country_us.macro.cycle.recession_indicator",
    "country_us.macro.commodities.gasoline_retail_price",
    *(
        f"financial.equities.{n}"
        for n in ["sp500", "nasdaq100", "dow_jones", "russell2000", "vix"]
        + ["sp500_return_1d", "sp500_realized_vol_21d"]
    ),
    *(
        f"financial.large_caps.{t}_return_1d"
        for t in ["aapl", "msft", "nvda", "amzn", "googl", "meta", "tsla", "jpm", "xom"]
    ),
    *(
        f"financial.yield_curves.{n}"
        for n in ["three_month", "two_year", "five_year", "ten_year", "thirty_year"]
        + ["spread_10y_2y"]
    ),
    "financial.credit.high_yield_oas",
    "financial.credit.investment_grade_oas",
    *(
        f"financial.fx.{n}"
        for n in ["eurusd", "usdjpy", "gbpusd", "usdcnh", "audusd", "usdcad", "dollar_index"]
    ),
    *(
        f"financial.commodities.{n}"
        for n in ["wti_crude", "brent_crude", "gold", "copper", "natural_gas"]
    ),
    "financial.crypto.btc",
    "financial.crypto.eth",
    *(
        f"country_us.surveys.ism_manufacturing.{n}"
        for n in ["pmi", "new_orders", "production", "employment", "supplier_deliveries"]
        + ["inventories", "prices"]
    ),
    *(
        f"country_us.surveys.ism_services.{n}"
        for n in ["pmi", "business_activity", "new_orders", "employment", "prices"]
    ),
    "narratives.news.embedding",
    "narratives.news.volume",
    "narratives.news.sentiment",
]
REGIME_PATHS = [
    f"regime.{n}"
    for n in [
        "growth",
        "inflation",
        "financial_stress",
        "monetary_policy",
        "liquidity",
        "risk_appetite",
    ]
]
TEMPLATE_PATHS = [
    f"firm_<TICKER>.earnings.{n}"
    for n in ["eps_actual", "eps_estimate", "eps_surprise", "eps_surprise_pct"]
]


def _field(path: str, **overrides: object) -> Field:
    base = {"semantic_type": "A test quantity.", "unit": "percent", "period": Period.DAILY}
    return Field(path, **{**base, **overrides})


@pytest.fixture(scope="module")
def schema() -> Schema:
    return default_schema()


# ---------------------------------------------------------------- the catalogue


@pytest.mark.parametrize("path", REQUIRED_PATHS + REGIME_PATHS)
def test_required_paths_are_declared(schema: Schema, path: str) -> None:
    assert path in schema
    assert path in schema.paths
    assert schema.field(path).path == path


def test_catalogue_size_and_domains(schema: Schema) -> None:
    assert len(schema) >= 130
    assert len(schema.project("country_us.macro")) >= 55
    domains = {f.domain for f in schema}
    assert domains == {"country_us", "financial", "narratives", "regime"}
    assert sorted(t.path for t in schema.templates) == sorted(TEMPLATE_PATHS)


def test_catalogue_entries_are_descriptive(schema: Schema) -> None:
    for f in schema:
        assert len(f.semantic_type.split()) >= 4, f.path
        assert f.semantic_type[0].isupper() and f.semantic_type.endswith("."), f.path
        assert f.path.islower(), f.path
    for t in schema.templates:
        assert "<TICKER>" in t.semantic_type
        assert t.period is Period.QUARTERLY


def test_headline_loss_weights(schema: Schema) -> None:
    assert schema.field("country_us.macro.inflation.headline_cpi").loss_weight == 2.5
    assert schema.field("country_us.macro.output.gdp_nowcast").loss_weight == 2.0
    assert schema.field("country_us.macro.inflation.core_cpi").loss_weight == 1.0
    weights = {f.loss_weight for f in schema}
    assert min(weights) >= 1.0 and max(weights) <= 2.5


def test_seed_fields_match_the_seed_page(schema: Schema) -> None:
    gdp = schema.field("country_us.macro.output.gdp_nowcast")
    cpi = schema.field("country_us.macro.inflation.headline_cpi")
    assert gdp.semantic_type.startswith("US real GDP quarterly growth rate")
    assert gdp.period is Period.QUARTERLY
    assert cpi.semantic_type.startswith("US CPI year-over-year percent change")
    assert cpi.period is Period.MONTHLY


def test_regime_fields_are_the_only_latent_fields(schema: Schema) -> None:
    latent = sorted(f.path for f in schema if f.latent)
    assert latent == sorted(REGIME_PATHS)
    assert all(schema.field(p).dimension == 1 for p in REGIME_PATHS)


def test_news_embedding_is_a_384_vector(schema: Schema) -> None:
    emb = schema.field("narratives.news.embedding")
    assert emb.dimension == 384 and emb.is_vector
    assert emb.semantic_type.startswith("Daily mean sentence embedding of financial news")
    assert not schema.field("narratives.news.volume").is_vector
    assert [f.path for f in schema if f.is_vector] == ["narratives.news.embedding"]


def test_default_schema_is_cached_and_fast() -> None:
    assert default_schema() is default_schema()
    start = time.perf_counter()
    default_schema.__wrapped__()
    assert time.perf_counter() - start < 0.1


# ---------------------------------------------------------------- Period and Field


def test_period_days() -> None:
    assert [p.days for p in Period] == [0.25, 1.0, 7.0, 30.44, 91.31, 365.25, 1461.0]
    assert Period("monthly") is Period.MONTHLY
    assert Period.WEEKLY == "weekly"


def test_field_properties_and_coercion() -> None:
    f = _field("country_us.macro.x", period="weekly", loss_weight=2)
    assert f.domain == "country_us"
    assert f.period is Period.WEEKLY
    assert f.loss_weight == 2.0 and isinstance(f.loss_weight, float)
    assert not f.is_vector
    assert _field("firm_BRK_B.earnings.eps").domain == "firm_BRK_B"


@pytest.mark.parametrize(
    "path",
    ["", "country_us..x", ".country_us", "country_us.", "1abc.x", "a.b c", "a.b-c", "a._b"],
)
def test_field_rejects_bad_paths(path: str) -> None:
    with pytest.raises(ValueError, match="invalid field path"):
        _field(path)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"unit": ""}, "unit must be a non-empty string"),
        ({"unit": "  "}, "unit must be a non-empty string"),
        ({"semantic_type": ""}, "semantic_type must be a non-empty string"),
        ({"dimension": 0}, "dimension must be >= 1"),
        ({"dimension": 2.0}, "dimension must be an int"),
        ({"loss_weight": 0.0}, "loss_weight must be a finite number > 0"),
        ({"loss_weight": -1.0}, "loss_weight must be a finite number > 0"),
        ({"loss_weight": float("nan")}, "loss_weight must be a finite number > 0"),
        ({"loss_weight": float("inf")}, "loss_weight must be a finite number > 0"),
        ({"period": "fortnightly"}, "unknown period 'fortnightly'"),
        ({"latent": True, "dimension": 8}, "latent field must be scalar"),
    ],
)
def test_field_validation_errors_name_the_path(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message) as err:
        _field("regime.test", **overrides)
    assert "'regime.test'" in str(err.value)


# ---------------------------------------------------------------- Schema basics


def test_schema_orders_by_path_and_rejects_duplicates() -> None:
    s = Schema([_field("b.x"), _field("a.y"), _field("a.x")])
    assert s.paths == ["a.x", "a.y", "b.x"]
    assert [f.path for f in s] == s.paths
    assert len(s) == 3
    with pytest.raises(ValueError, match="duplicate field path 'a.x'"):
        Schema([_field("a.x"), _field("a.x", unit="other")])
    with pytest.raises(ValueError, match="duplicate template path"):
        Schema([], [_field("firm_<TICKER>.x"), _field("firm_<TICKER>.x")])


def test_schema_separates_fields_from_templates() -> None:
    with pytest.raises(ValueError, match="pass it as a template"):
        Schema([_field("firm_<TICKER>.x")])
    with pytest.raises(ValueError, match="exactly once"):
        Schema([], [_field("firm_x.y")])
    with pytest.raises(TypeError):
        Schema(["a.b"])  # type: ignore[list-item]


def test_contains_is_false_for_non_fields(schema: Schema) -> None:
    assert "country_us.macro" not in schema
    assert "country_us.macro.inflation.headlin_cpi" not in schema
    assert 42 not in schema
    assert "firm_<TICKER>.earnings.eps_actual" not in schema
    assert "firm_aapl.earnings.eps_actual" not in schema  # tickers are upper case


# ---------------------------------------------------------------- unknown paths


def test_unknown_path_suggests_the_nearest(schema: Schema) -> None:
    with pytest.raises(UnknownFieldError) as err:
        schema.field("country_us.macro.inflation.headlin_cpi")
    e = err.value
    assert isinstance(e, KeyError)
    assert e.path == "country_us.macro.inflation.headlin_cpi"
    assert e.suggestions[0] == "country_us.macro.inflation.headline_cpi"
    assert 1 <= len(e.suggestions) <= 5
    msg = str(e)
    assert msg.startswith("unknown field path 'country_us.macro.inflation.headlin_cpi'; ")
    assert "did you mean: country_us.macro.inflation.headline_cpi" in msg
    assert msg.endswith("?") and "\n" not in msg


def test_unknown_path_without_close_match_has_plain_message(schema: Schema) -> None:
    with pytest.raises(UnknownFieldError) as err:
        schema.field("zzz")
    assert err.value.suggestions == []
    assert str(err.value) == "unknown field path 'zzz'"


def test_unknown_field_error_pickles() -> None:
    err = UnknownFieldError("a.b", ["a.c"], is_pattern=True)
    back = pickle.loads(pickle.dumps(err))
    assert (back.path, back.suggestions, str(back)) == (err.path, err.suggestions, str(err))


# ---------------------------------------------------------------- projection


def test_project_prefix_on_segment_boundary(schema: Schema) -> None:
    macro = schema.project("country_us.macro")
    assert len(macro) >= 50
    assert all(p.startswith("country_us.macro.") for p in macro.paths)
    assert macro.templates == []
    inflation = schema.project("country_us.macro.inflation")
    assert "country_us.macro.inflation.headline_cpi" in inflation
    assert "country_us.macro.labor.unemployment_rate" not in inflation
    with pytest.raises(UnknownFieldError) as err:
        schema.project("country_us.mac")
    assert "no field matches pattern 'country_us.mac'" in str(err.value)
    assert "country_us.macro" in err.value.suggestions


def test_project_exact_path(schema: Schema) -> None:
    one = schema.project("financial.equities.vix")
    assert one.paths == ["financial.equities.vix"]
    assert one.field("financial.equities.vix") == schema.field("financial.equities.vix")


def test_project_glob(schema: Schema) -> None:
    assert schema.project("financial.*.vix").paths == ["financial.equities.vix"]
    inflation = schema.project("*.inflation.*")
    assert inflation.paths == schema.project("country_us.macro.inflation").paths
    assert all(".inflation." in p for p in inflation.paths)
    assert inflation.templates == []
    ism = schema.project("country_us.surveys.ism_*.pmi")
    assert ism.paths == [
        "country_us.surveys.ism_manufacturing.pmi",
        "country_us.surveys.ism_services.pmi",
    ]


def test_project_union_of_patterns(schema: Schema) -> None:
    union = schema.project("country_us.macro.inflation", "financial.*.vix", "regime")
    expected = (
        set(schema.project("country_us.macro.inflation").paths)
        | {"financial.equities.vix"}
        | set(REGIME_PATHS)
    )
    assert set(union.paths) == expected
    # Overlapping patterns do not duplicate fields.
    assert len(schema.project("regime", "regime.growth", "regime.*")) == len(REGIME_PATHS)


def test_project_pattern_matching_nothing_errors(schema: Schema) -> None:
    with pytest.raises(UnknownFieldError) as err:
        schema.project("financial.*.vixx")
    assert err.value.is_pattern
    assert "financial.equities.vix" in err.value.suggestions
    with pytest.raises(UnknownFieldError, match="nothing_here"):
        schema.project("regime", "nothing_here")
    with pytest.raises(ValueError, match="at least one pattern"):
        schema.project()


def test_project_templates(schema: Schema) -> None:
    firms = schema.project("firm_*")
    assert len(firms) == 0
    assert [t.path for t in firms.templates] == sorted(TEMPLATE_PATHS)
    assert "firm_MSFT.earnings.eps_actual" in firms
    only_surprise = schema.project("*.eps_surprise")
    assert [t.path for t in only_surprise.templates] == ["firm_<TICKER>.earnings.eps_surprise"]

    aapl = schema.project("firm_AAPL.earnings")
    assert aapl.paths == [p.replace("<TICKER>", "AAPL") for p in sorted(TEMPLATE_PATHS)]
    assert aapl.templates == []
    assert schema.project("firm_AAPL").paths == aapl.paths
    assert schema.project("firm_AAPL.*").paths == aapl.paths
    assert schema.project("firm_BRK_B.earnings.eps_surprise").paths == [
        "firm_BRK_B.earnings.eps_surprise"
    ]
    with pytest.raises(UnknownFieldError):
        schema.project("firm_AAPL.earnings.eps_bogus")


# ---------------------------------------------------------------- templates and entities


def test_template_resolution(schema: Schema) -> None:
    f = schema.field("firm_AAPL.earnings.eps_surprise")
    assert f.path == "firm_AAPL.earnings.eps_surprise"
    assert f.domain == "firm_AAPL"
    assert "AAPL" in f.semantic_type and "<TICKER>" not in f.semantic_type
    assert f.period is Period.QUARTERLY
    assert "firm_AAPL.earnings.eps_surprise" in schema
    assert "firm_BRK_B.earnings.eps_actual" in schema
    assert "firm_ZZZZ.earnings.eps_estimate" in schema
    assert schema.field("firm_BRK_B.earnings.eps_surprise_pct").unit.startswith("percent")
    assert len(schema) == len(schema.paths)  # templates are not concrete fields


def test_unknown_template_path_suggests(schema: Schema) -> None:
    with pytest.raises(UnknownFieldError) as err:
        schema.field("firm_AAPL.earnings.eps_suprise")
    assert "firm_<TICKER>.earnings.eps_surprise" in err.value.suggestions


@pytest.mark.parametrize(
    ("ticker", "entity"),
    [
        ("AAPL", "firm_AAPL"),
        ("aapl", "firm_AAPL"),
        ("BRK-B", "firm_BRK_B"),
        ("BRK.B", "firm_BRK_B"),
        ("brk_b", "firm_BRK_B"),
        (" MSFT ", "firm_MSFT"),
        ("X1", "firm_X1"),
    ],
)
def test_firm_entity_normalises(ticker: str, entity: str) -> None:
    assert firm_entity(ticker) == entity


@pytest.mark.parametrize("ticker", ["", "   ", "BRK B", "1ABC", "-A", "AAPL$", "ÄBC"])
def test_firm_entity_rejects_invalid(ticker: str) -> None:
    with pytest.raises(ValueError, match="invalid ticker"):
        firm_entity(ticker)


def test_with_entities(schema: Schema) -> None:
    wide = schema.with_entities(["AAPL", "brk-b", "AAPL"])
    assert len(wide) == len(schema) + 2 * len(TEMPLATE_PATHS)
    assert "firm_AAPL.earnings.eps_actual" in wide.paths
    assert "firm_BRK_B.earnings.eps_surprise_pct" in wide.paths
    assert wide.field("firm_BRK_B.earnings.eps_actual") == schema.field(
        "firm_BRK_B.earnings.eps_actual"
    )
    assert wide.templates == schema.templates  # other tickers still resolve
    assert "firm_TSLA.earnings.eps_actual" in wide
    assert set(schema.paths) < set(wide.paths)
    assert wide.with_entities(["AAPL"]).paths == wide.paths
    with pytest.raises(ValueError, match="invalid ticker"):
        schema.with_entities(["BRK B"])


# ---------------------------------------------------------------- export and hashing


def test_to_polars(schema: Schema) -> None:
    df = schema.to_polars()
    assert df.schema == pl.Schema(
        {
            "path": pl.String,
            "domain": pl.String,
            "semantic_type": pl.String,
            "unit": pl.String,
            "period": pl.String,
            "period_days": pl.Float64,
            "dimension": pl.Int32,
            "loss_weight": pl.Float64,
            "latent": pl.Boolean,
        }
    )
    assert df.height == len(schema)
    assert df["path"].to_list() == schema.paths
    row = df.filter(pl.col("path") == "narratives.news.embedding").row(0, named=True)
    assert row["domain"] == "narratives"
    assert row["dimension"] == 384
    assert row["period"] == "daily" and row["period_days"] == 1.0
    assert df.filter(pl.col("latent"))["path"].to_list() == sorted(REGIME_PATHS)


def test_to_polars_of_empty_schema_keeps_dtypes() -> None:
    df = Schema([]).to_polars()
    assert df.height == 0
    assert df.schema["dimension"] == pl.Int32


def test_layout_hash_is_stable_and_order_independent() -> None:
    fields = [_field("a.x"), _field("b.y", dimension=3), _field("c.z", period="monthly")]
    h = Schema(fields).layout_hash()
    assert len(h) == 64 and set(h) <= set("0123456789abcdef")
    assert Schema(list(reversed(fields))).layout_hash() == h
    assert Schema(fields).layout_hash() == h
    # Templates are not part of the layout; only concrete fields are.
    assert Schema(fields, [_field("firm_<TICKER>.x")]).layout_hash() == h


@pytest.mark.parametrize(
    "change",
    [
        {"unit": "basis points"},
        {"semantic_type": "Another quantity."},
        {"period": Period.WEEKLY},
        {"dimension": 2},
        {"loss_weight": 2.0},
        {"latent": True},
        {"path": "a.w"},
    ],
)
def test_layout_hash_changes_when_a_field_changes(change: dict) -> None:
    fields = [_field("a.x"), _field("b.y")]
    changed = [replace(fields[0], **change), fields[1]]
    assert Schema(changed).layout_hash() != Schema(fields).layout_hash()


def test_layout_hash_of_projections(schema: Schema) -> None:
    assert schema.project("*").layout_hash() == schema.layout_hash()
    assert schema.project("regime").layout_hash() != schema.layout_hash()
