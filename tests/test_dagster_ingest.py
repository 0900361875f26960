"""The ingest assets and their checks, run in-process by Dagster on the synthetic world."""

from __future__ import annotations

import dataclasses
import datetime as dt
import subprocess
import sys
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest

from dagster_defs import defs
from dagster_defs.ingest_assets import ingest_assets, ingest_checks
from dagster_defs.resources import SourcesResource, WarehouseResource
from ingest.base import RetryPolicy
from ingest.registry import SOURCES
from ingest.sources import SourceSettings
from warehouse.store import Warehouse

SCALAR_SOURCES = ("fred", "yahoo", "pmi", "earnings")


def _selection(sources):
    names = {f"{s}_observations" for s in sources}
    assets = [a for a in ingest_assets if a.key.path[0] in names]
    checks = [c for c in ingest_checks if next(iter(c.check_keys)).asset_key.path[0] in names]
    return [*assets, *checks]


def _resources(path: Path, **sources):
    return {
        "warehouse": WarehouseResource(path=str(path)),
        "sources": SourcesResource(start_date="2015-01-01", end_date="2019-12-31", **sources),
    }


def test_definitions_load():
    dg.Definitions.validate_loadable(defs)
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {f"{s}_observations" for s in (*SCALAR_SOURCES, "news")} <= keys
    assert "warehouse_parquet" in keys


def test_synthetic_ingest_fills_the_warehouse_and_checks_pass(tmp_path):
    path = tmp_path / "wh.duckdb"
    result = dg.materialize(_selection(SCALAR_SOURCES), resources=_resources(path))
    assert result.success
    stored = Warehouse(path).sql(
        "SELECT source, count(*) AS n FROM observations GROUP BY source ORDER BY source"
    )
    assert stored["source"].to_list() == [f"synthetic_{s}" for s in sorted(SCALAR_SOURCES)]
    assert all(n > 100 for n in stored["n"])
    checks = result.get_asset_check_evaluations()
    assert len(checks) == 4 * len(SCALAR_SOURCES)
    assert all(c.passed for c in checks), [c.check_name for c in checks if not c.passed]
    # materializing again changes nothing in the warehouse
    digest = Warehouse(path).content_hash()
    again = dg.materialize(_selection(["fred"]), resources=_resources(path))
    metadata = again.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["rows_inserted"].value == 0
    assert metadata["rows_unchanged"].value == metadata["rows_in"].value
    assert Warehouse(path).content_hash() == digest


def test_checks_catch_what_the_asset_did_not_store(tmp_path):
    path = tmp_path / "wh.duckdb"
    dg.materialize(_selection(["pmi"]), resources=_resources(path))
    wh = Warehouse(path)
    with wh.connect() as con:
        con.execute("DELETE FROM observations WHERE field_path LIKE '%ism_services%'")
        con.execute("UPDATE observations SET value = 'inf' WHERE field_path LIKE '%prices'")
    checks = [
        c for c in ingest_checks if next(iter(c.check_keys)).asset_key.path[0] == "pmi_observations"
    ]
    result = dg.materialize(
        [*(a for a in ingest_assets if a.key.path[0] == "pmi_observations"), *checks],
        resources=_resources(path),
        selection=dg.AssetSelection.checks(*checks),
    )
    by_name = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert by_name == {
        "expected_fields_present": False,
        "values_are_finite": False,
        "values_plausible": by_name["values_plausible"],
        "fresh": True,
    }


def test_plausibility_does_not_flag_a_flat_series_for_its_rounding_noise(tmp_path):
    """A small firm's EPS surprise (actual - estimate, both to the cent) is 0 up to float
    noise (0.1 + 0.2 - 0.3 = 5.6e-17) in most quarters: a MAD of that size is no scale
    that makes each of its few real surprises an outlier."""
    path = tmp_path / "wh.duckdb"
    quarters = pl.datetime_range(
        dt.datetime(1990, 1, 1), dt.datetime(2014, 10, 1), "3mo", eager=True
    )
    surprise = np.where(np.arange(len(quarters)) % 2 == 1, 0.1 + 0.2 - 0.3, 0.0)
    surprise[[10, 40, 70]] = [0.01, -0.02, 0.01]
    frame = pl.DataFrame(
        {
            "field_path": "firm_AAPL.earnings.eps_surprise",
            "observed_at": quarters,
            "value": surprise,
            "known_at": quarters.dt.offset_by("4mo"),
        }
    )
    source = SourcesResource().settings().warehouse_source("earnings")
    Warehouse(path).ingest(frame, source=source)
    key = dg.AssetCheckKey(dg.AssetKey("earnings_observations"), "values_plausible")
    checks = [c for c in ingest_checks if key in c.check_keys]
    result = dg.materialize(
        [*(a for a in ingest_assets if a.key == key.asset_key), *checks],
        resources=_resources(path),
        selection=dg.AssetSelection.checks(*checks),
    )
    (plausible,) = result.get_asset_check_evaluations()
    assert plausible.metadata["outliers"].value == 0, plausible.metadata


def test_recorded_mode_without_a_directory_is_a_clear_error(tmp_path):
    with pytest.raises(Exception, match="recorded mode needs recorded_dir"):
        dg.materialize(
            _selection(["fred"]), resources=_resources(tmp_path / "w.duckdb", mode="recorded")
        )


def test_the_resource_takes_every_source_setting_with_its_default(tmp_path):
    names = {f.name for f in dataclasses.fields(SourceSettings)}
    assert set(SourcesResource.model_fields) == names
    assert SourcesResource().settings() == SourceSettings()
    resource = SourcesResource(
        mode="recorded",
        recorded_dir=str(tmp_path),
        end_date="2019-12-31",
        tickers=["AAPL"],
        news_path="",
        policy={"attempts": 2, "timeout": 5.0},
    )
    assert resource.settings() == SourceSettings(
        mode="recorded",
        recorded_dir=tmp_path,
        end_date="2019-12-31",
        tickers=("AAPL",),
        policy=RetryPolicy(attempts=2, timeout=5.0),
    )


def test_every_registered_source_has_an_asset_checks_and_a_schedule():
    assets = {a.key.to_user_string() for a in ingest_assets}
    assert assets == {f"{name}_observations" for name in SOURCES}
    checked = {next(iter(c.check_keys)).asset_key.to_user_string() for c in ingest_checks}
    assert checked == assets
    scheduled = {
        key.to_user_string()
        for schedule in defs.schedules
        for key in defs.resolve_job_def(schedule.job_name).asset_layer.selected_asset_keys
    }
    assert assets <= scheduled


def test_dagster_cli_validates_the_code_location():
    dagster = Path(sys.executable).with_name("dagster")
    result = subprocess.run(
        [str(dagster), "definitions", "validate", "-m", "dagster_defs"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_recorded_mode_loads_the_real_files(tmp_path, shared_data):
    path = tmp_path / "wh.duckdb"
    resources = {
        "warehouse": WarehouseResource(path=str(path)),
        "sources": SourcesResource(
            mode="recorded", recorded_dir=str(shared_data), start_date="2015-01-01"
        ),
    }
    sources = SCALAR_SOURCES  # recorded news (3k texts to embed) is covered in test_news
    result = dg.materialize(_selection(sources), resources=resources)
    assert result.success
    stored = Warehouse(path).sql(
        "SELECT source, count(*) AS n, count(DISTINCT field_path) AS fields, "
        "min(epoch(known_at) - epoch(observed_at)) AS min_lag FROM observations "
        "GROUP BY source ORDER BY 1"
    )
    assert stored["source"].to_list() == sorted(sources)  # real data: plain source names
    by_source = {r["source"]: r for r in stored.iter_rows(named=True)}
    assert by_source["fred"]["fields"] >= 45
    assert by_source["yahoo"]["fields"] >= 15
    assert by_source["earnings"]["fields"] >= 20
    assert all(r["min_lag"] > 0 for r in by_source.values())
    failed = [
        f"{c.asset_key.to_user_string()}:{c.check_name}"
        for c in result.get_asset_check_evaluations()
        if not c.passed
    ]
    assert not [f for f in failed if "values_are_finite" in f or "expected_fields" in f], failed


def test_tabular_asset_ingests_the_default_table_and_a_spec_file(tmp_path):
    path = tmp_path / "wh.duckdb"
    result = dg.materialize(_selection(["tabular"]), resources=_resources(path))
    assert result.success
    stored = (
        Warehouse(path)
        .sql("SELECT DISTINCT source, field_path FROM observations ORDER BY 1, 2")
        .rows()
    )
    assert stored == [("synthetic_tabular", "country_us.macro.sentiment.consumer_sentiment")]
    # a user's YAML spec of tables replaces the default
    csv = tmp_path / "rates.csv"
    csv.write_text("day,bill\n2020-01-02,1.5\n2020-01-03,1.52\n")
    spec = tmp_path / "tables.yaml"
    spec.write_text(
        "tables:\n  - path: rates.csv\n    date_column: day\n    release_lag: 1d\n"
        "    mapping: {bill: country_us.macro.rates.treasury_3m}\n"
    )
    resources = _resources(path, tabular_spec=str(spec))
    assert dg.materialize(_selection(["tabular"]), resources=resources).success
    rows = Warehouse(path).as_of("2020-02-01", "country_us.macro.rates.treasury_3m")
    assert rows["value"].to_list() == [1.5, 1.52]


def test_recorded_tabular_default_reads_fred_md(tmp_path, shared_data):
    path = tmp_path / "wh.duckdb"
    resources = {
        "warehouse": WarehouseResource(path=str(path)),
        "sources": SourcesResource(mode="recorded", recorded_dir=str(shared_data)),
    }
    assert dg.materialize(_selection(["tabular"]), resources=resources).success
    march_2020 = Warehouse(path).as_of(
        "2020-06-01", "country_us.macro.rates.treasury_3m", start="2020-03-01", end="2020-03-01"
    )
    assert march_2020["source"].to_list() == ["tabular"]
    assert 0 < march_2020["value"][0] < 1.5  # the 3-month bill rate in March 2020


def test_bad_tables_fail_at_once_naming_every_one_while_network_errors_retry(tmp_path):
    (tmp_path / "rates.csv").write_text("day,bill\n2020-01-02,1.5\n")
    (tmp_path / "prices.csv").write_text("day,cpi\n2020-01-02,oops\n")
    spec = tmp_path / "tables.yaml"
    spec.write_text(
        "tables:\n"
        "  - path: rates.csv\n    date_column: day\n"
        "    mapping: {bill: country_us.macro.rates.treasury_3mm}\n"  # a typo'd field
        "  - path: prices.csv\n    date_column: day\n"
        "    mapping: {cpi: country_us.macro.inflation.headline_cpi}\n"  # a bad cell
    )
    resources = _resources(tmp_path / "wh.duckdb", tabular_spec=str(spec))
    result = dg.materialize(_selection(["tabular"]), resources=resources, raise_on_error=False)
    assert not result.success
    # one attempt: the retry policy (30 s, then 60 s) is for transient errors only
    kinds = [e.event_type_value for e in result.all_events]
    assert "STEP_UP_FOR_RETRY" not in kinds and kinds.count("STEP_FAILURE") == 1
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = failure.step_failure_data.user_failure_data.description
    assert message.startswith("tabular: 2 of 2 tables could not be read")
    assert "rates.csv" in message and "treasury_3m" in message  # the did-you-mean
    assert "prices.csv" in message and "oops" in message


def test_a_transient_source_error_goes_to_the_retry_policy():
    from dagster_defs.ingest_assets import _fail_fast_unless_transient
    from ingest.base import SourceError

    # left to the asset's RetryPolicy, with each item's reason in the failure's metadata
    with pytest.raises(dg.Failure) as transient, _fail_fast_unless_transient("fred"):
        raise SourceError("source 'fred': every request failed", {"CPIAUCSL": "timed out"})
    assert transient.value.allow_retries is not False
    assert "| CPIAUCSL | timed out |" in transient.value.metadata["failures"].value
    with pytest.raises(dg.Failure) as info, _fail_fast_unless_transient("fred"):
        raise ValueError("bad mapping")
    assert info.value.allow_retries is False and info.value.description == "fred: bad mapping"
