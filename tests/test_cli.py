"""The `guwm` command, run as a user runs it: a subprocess."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from warehouse.store import Warehouse

GUWM = Path(sys.executable).with_name("guwm")
CPI_2021 = [1.4, 1.7, 2.6, 4.2, 5.0, 5.4, 5.4, 5.3, 5.4, 6.2, 6.8, 7.0]


def guwm(*args: str, warehouse: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if warehouse is not None:
        env["GUWM_WAREHOUSE"] = str(warehouse)
    return subprocess.run([str(GUWM), *args], capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "wh.duckdb"
    months = pl.datetime_range(dt.datetime(2021, 1, 1), dt.datetime(2021, 12, 1), "1mo", eager=True)
    frame = pl.DataFrame(
        {
            "field_path": "country_us.macro.inflation.headline_cpi",
            "observed_at": months,
            "value": CPI_2021,
            "known_at": months.dt.offset_by("1mo").dt.offset_by("12d"),
        }
    )
    Warehouse(path).ingest(frame, source="fred")
    return path


def test_sql_prints_a_count(warehouse):
    result = guwm("sql", "SELECT count(*) AS n FROM observations", warehouse=warehouse)
    assert result.returncode == 0, result.stderr
    assert "12" in result.stdout.split()


def test_sql_formats(warehouse, tmp_path):
    query = "SELECT observed_at, value FROM observations ORDER BY observed_at"
    csv = guwm("sql", query, "--format", "csv", warehouse=warehouse)
    assert csv.stdout.splitlines()[0] == "observed_at,value"
    assert len(csv.stdout.splitlines()) == 13
    rows = json.loads(guwm("sql", query, "--format", "json", warehouse=warehouse).stdout)
    assert rows[-1]["value"] == 7.0
    out = tmp_path / "cpi.parquet"
    assert (
        guwm("sql", query, "--format", "parquet", "-o", str(out), warehouse=warehouse).returncode
        == 0
    )
    assert pl.read_parquet(out)["value"].to_list() == pytest.approx(CPI_2021)


def test_sql_is_read_only(warehouse):
    result = guwm("sql", "DELETE FROM observations", warehouse=warehouse)
    assert result.returncode == 1
    assert "read-only" in result.stderr.lower()
    assert Warehouse(warehouse, read_only=True).count() == 12


def test_sql_neither_writes_nor_reads_files_unless_allowed(warehouse, tmp_path):
    target = tmp_path / "dump.csv"
    copy = f"COPY (SELECT * FROM observations) TO '{target}'"
    refused = guwm("sql", copy, warehouse=warehouse)
    assert refused.returncode == 1 and not target.exists()
    assert "--allow-files" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    secret = tmp_path / "secret.csv"
    secret.write_text("token\nabc123\n")
    read = guwm("sql", f"SELECT * FROM read_csv('{secret}')", warehouse=warehouse)
    assert read.returncode == 1 and "abc123" not in read.stdout + read.stderr
    # turning the guard off from SQL is refused too
    off = guwm("sql", "SET enable_external_access = true", warehouse=warehouse)
    assert off.returncode == 1
    allowed = guwm("sql", copy, "--allow-files", warehouse=warehouse)
    assert allowed.returncode == 0, allowed.stderr
    assert len(target.read_text().splitlines()) == 13  # header and the 12 rows


def test_errors_are_one_line_without_traceback(warehouse):
    result = guwm("sql", "SELECT * FROM no_such_table", warehouse=warehouse)
    assert result.returncode == 1
    assert result.stderr.startswith("guwm: error:")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
    debug = guwm("--debug", "sql", "SELECT * FROM no_such_table", warehouse=warehouse)
    assert "Traceback" in debug.stderr


def test_missing_warehouse_is_a_clear_error(tmp_path):
    result = guwm("info", warehouse=tmp_path / "nothing.duckdb")
    assert result.returncode == 1
    assert "no warehouse at" in result.stderr


def test_fields_lists_fifty_plus_us_macro_fields():
    result = guwm("fields", "country_us.macro", "--format", "csv")
    assert result.returncode == 0, result.stderr
    paths = pl.read_csv(result.stdout.encode())["path"].to_list()
    assert len(paths) >= 50
    assert all(p.startswith("country_us.macro.") for p in paths)
    assert "country_us.macro.inflation.headline_cpi" in paths


def test_fields_unknown_prefix_suggests(tmp_path):
    result = guwm("fields", "country_us.macro.inflaton")
    assert result.returncode == 1
    assert "did you mean" in result.stderr


def test_info_reports_sources(warehouse):
    result = guwm("info", "--format", "json", warehouse=warehouse)
    info = json.loads(result.stdout)
    assert info["observations"] == 12
    assert info["sources"][0]["source"] == "fred"
    assert info["sources"][0]["fields"] == 1


def test_export_writes_parquet(warehouse, tmp_path):
    result = guwm("export", str(tmp_path / "lake"), warehouse=warehouse)
    assert result.returncode == 0, result.stderr
    assert len(pl.read_parquet(tmp_path / "lake" / "observations", hive_partitioning=True)) == 12


def test_materialize_runs_a_selection_into_the_instance_beside_the_warehouse(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env["GUWM_WAREHOUSE"] = str(tmp_path / "wh.duckdb")
    env["GUWM_ARTIFACTS"] = str(tmp_path / "artifacts")

    def run(*args: str) -> subprocess.CompletedProcess:
        command = [str(GUWM), "materialize", *args]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)

    done = run("pmi_observations")
    assert done.returncode == 0, done.stderr
    assert "pmi_observations" in done.stdout and "asset checks passed" in done.stdout
    assert "Warning" not in done.stderr
    stored = Warehouse(tmp_path / "wh.duckdb", read_only=True).sql(
        "SELECT DISTINCT source FROM observations"
    )
    assert stored["source"].to_list() == ["synthetic_pmi"]
    assert (tmp_path / "dagster" / "storage").is_dir()  # the run is in the instance
    typo = run("pmi_observatons")
    assert typo.returncode == 1 and len(typo.stderr.strip().splitlines()) == 1
    assert "no asset matches 'pmi_observatons'; did you mean: pmi_observations" in typo.stderr
    # an asset's settings from the command line reach its config
    canvas = run("canvas_tensors", "--set", "canvas_tensors.T=4", "--set", "canvas_tensors.step=1w")
    assert canvas.returncode == 0, canvas.stderr
    manifest = json.loads((tmp_path / "artifacts" / "canvas" / "manifest.json").read_text())
    assert (manifest["T"], manifest["step"]) == (4, "1w")
    unknown = run("canvas_tensors", "--set", "canvas_tensors.width=4")
    assert unknown.returncode == 1 and "width" in unknown.stderr
    malformed = run("canvas_tensors", "--set", "T=4")
    assert malformed.returncode == 1 and "expected ASSET.SETTING=VALUE" in malformed.stderr


def test_materialize_sets_a_resources_settings_for_the_run(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env["GUWM_WAREHOUSE"] = str(tmp_path / "wh.duckdb")
    env["GUWM_ARTIFACTS"] = str(tmp_path / "artifacts")

    def run(*settings: str) -> subprocess.CompletedProcess:
        command = [str(GUWM), "materialize", "pmi_observations"]
        command += [arg for s in settings for arg in ("--set", s)]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)

    done = run("sources.start_date=2020-01-01")
    assert done.returncode == 0, done.stderr
    first = Warehouse(tmp_path / "wh.duckdb", read_only=True).sql(
        "SELECT min(observed_at) AS t FROM observations"
    )["t"][0]
    assert first >= dt.datetime(2020, 1, 1)  # the default window starts in 1959
    unknown = run("sources.nope=1")
    assert unknown.returncode == 1
    assert "unknown ['nope']; expected one of end_date, fred_api_key, mode" in unknown.stderr
    wrong = run("sources.seed=many")
    assert wrong.returncode == 1 and "--set sources.seed: Input should be a valid integer" in (
        wrong.stderr
    )


def test_sql_imports_neither_torch_nor_dagster(warehouse):
    code = (
        "import sys; from dagster_defs.cli import main; "
        f"rc = main(['--warehouse', {str(warehouse)!r}, 'sql', 'select 1']); "
        "print(rc, 'torch' in sys.modules, 'dagster' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "0 False False"


def _subcommand(parser: argparse.ArgumentParser, *names: str) -> argparse.ArgumentParser:
    for name in names:
        (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        parser = sub.choices[name]
    return parser


def test_the_library_dagster_and_the_cli_take_the_same_settings():
    from dagster_defs.cli import build_parser
    from dagster_defs.curriculum_assets import CurriculumResource
    from dagster_defs.training_assets import WorldModelConfig
    from training.cli import settings_from_args
    from training.settings import CurriculumSettings, WorldModelSettings

    names = set(CurriculumSettings.names())
    assert set(CurriculumResource.model_fields) - names == {
        "threads",
        "nproc_per_node",
        "steps_per_tier",
    }
    assert names <= set(CurriculumResource.model_fields)
    assert set(WorldModelConfig.model_fields) == set(WorldModelSettings.names())
    assert CurriculumResource().settings() == CurriculumSettings()
    assert WorldModelConfig().settings() == WorldModelSettings()
    parser = build_parser()
    for action in ("run", "estimate"):
        dests = {a.dest for a in _subcommand(parser, "curriculum", action)._actions}
        assert names <= dests, names - dests
    args = parser.parse_args(["curriculum", "run", "--d-model", "32", "--attention", "full"])
    assert settings_from_args(args, CurriculumSettings()) == CurriculumSettings(
        d_model=32, attention="full"
    )
    resource = CurriculumResource(adapter_rank=4, train_end="2015-01-01")
    assert resource.settings() == CurriculumSettings(adapter_rank=4, train_end="2015-01-01")


def test_the_canvas_config_takes_every_canvas_setting():
    from canvas.settings import CanvasSettings
    from dagster_defs.canvas_assets import CanvasConfig

    names = {f.name for f in dataclasses.fields(CanvasSettings)}
    assert set(CanvasConfig.model_fields) - names == {"lake_url"}  # where to read, not what
    assert names <= set(CanvasConfig.model_fields)
    assert CanvasConfig().settings() == CanvasSettings()
    config = CanvasConfig(T=4, fields=["financial"], train_end="2015-01-01", lake_url="x")
    assert config.settings() == CanvasSettings(T=4, fields=("financial",), train_end="2015-01-01")
