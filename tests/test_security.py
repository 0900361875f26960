"""Security: secrets never leave their header, SQL is parametrized, config paths are confined.

* A whole run in live mode with sentinel keys (FRED_API_KEY, GUWM_LLM_API_KEY) wired as
  Dagster EnvVars, against a loopback FRED and a loopback OpenAI-compatible LLM, in a
  child process with its own DAGSTER_HOME: ingest, checks, Parquet export, canvas, world
  model, evaluation, curriculum plan and a curriculum node; then a run whose FRED echoes
  the request (key included) in its errors, an LLM that echoes the key in a 401, and a
  fetch failing outside Dagster. Every byte written (warehouse, lake, artifacts, Dagster's
  storage and compute logs, event records, stdout/stderr) is searched for the keys.
* Every f-string (or .format) SQL in the library interpolates only reviewed, trusted
  pieces; hostile field paths and source names are rejected or stored literally.
* Paths from configuration stay where they belong: tabular spec tables beside the spec,
  recorded files by fixed names, curriculum node names as plain identifiers, exports
  never replacing a directory that is not an export.
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from faults_support import (
    CPI,
    NOW,
    TBILL,
    UNRATE,
    Reply,
    Request,
    batch,
    fred_error_xml,
    loopback,
    monthly_rows,
    observations_xml,
)

from ingest.base import SourceError
from ingest.sources import SourceSettings
from ingest.tabular import tabular_tables
from warehouse.schema import UnknownFieldError
from warehouse.store import Warehouse
from warehouse.validation import IngestError

pytestmark = pytest.mark.faults

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
SERVED = ("UNRATE", "CPIAUCSL", "PAYEMS", "INDPRO", "FEDFUNDS")  # the rest answer HTTP 400


# -- the whole run with sentinel keys --------------------------------------------------------

DRIVER = r"""
import json, os, sys, traceback
import fredapi
import dagster as dg

fredapi.Fred.root_url = os.environ["TEST_FRED_ROOT"]  # the loopback FRED
# the ingest assets retry after 30 s and more; the same retries without the wait
_RetryPolicy = dg.RetryPolicy
dg.RetryPolicy = lambda max_retries=1, **_: _RetryPolicy(max_retries=max_retries)

from dagster_defs.definitions import defs
from dagster_defs.resources import LLMResource
from ingest.base import RetryPolicy
from ingest.registry import fetch
from ingest.sources import SourceSettings

instance = dg.DagsterInstance.get()
every = [*defs.assets, *defs.asset_checks]
names = [
    "fred_observations", "tabular_observations", "warehouse_parquet", "canvas_tensors",
    "world_model", "world_model_evaluation", "curriculum_plan", "curriculum_labour",
    "curriculum_summary",
]
run_config = {"ops": {"world_model": {"config": {"n_steps": 12, "batch_size": 8}}}}
selection = dg.AssetSelection.assets(*names) | dg.AssetSelection.checks_for_assets(
    "fred_observations", "tabular_observations"
)
good = dg.materialize(
    every, selection=selection, instance=instance, resources=defs.resources,
    run_config=run_config, raise_on_error=False,
)
print("run", json.dumps({"good": good.success}), flush=True)

# FRED echoes every request (the key in its query) in its errors
fredapi.Fred.root_url = os.environ["TEST_FRED_ECHO_ROOT"]
failed = dg.materialize(
    every, selection=dg.AssetSelection.assets("fred_observations"), instance=instance,
    resources=defs.resources, raise_on_error=False,
)
# the LLM answers 401 with the key it was given
resources = {
    **defs.resources,
    "llm": LLMResource(
        provider="openai", model="m", base_url=os.environ["TEST_LLM_ECHO_URL"],
        api_key=dg.EnvVar("GUWM_LLM_API_KEY"),
    ),
}
refused = dg.materialize(
    every, selection=dg.AssetSelection.assets("curriculum_plan"), instance=instance,
    resources=resources, raise_on_error=False,
)
print("run", json.dumps({"fred_echo": failed.success, "llm_echo": refused.success}), flush=True)

# a fetch failing outside Dagster: its exception and traceback go to stderr
fast = RetryPolicy(attempts=2, base_delay=0.001, max_delay=0.01, timeout=5)
fredapi.Fred.root_url = os.environ["TEST_FRED_502_ROOT"]
try:
    settings = SourceSettings(mode="live", fred_api_key=os.environ["FRED_API_KEY"], policy=fast)
    fetch("fred", settings).raise_if_nothing()
except Exception as err:
    traceback.print_exc()
    print("fetch error:", repr(err), flush=True)
print("done", flush=True)
"""


def fred_responder(mode: str):
    """good: data for SERVED, HTTP 400 for the rest; echo: 400 echoing the request;
    502: a 502 page holding the request (key included), cut across the key."""

    def respond(request: Request) -> Reply:
        series = request.query.get("series_id", "")
        echo = f"{request.path}?{'&'.join(f'{k}={v}' for k, v in request.query.items())}"
        if mode == "echo":
            return Reply(400, fred_error_xml(400, f"Bad Request. {echo} is not valid"))
        if mode == "502":
            return Reply(502, f"<html>bad gateway for {echo} {echo}</html>")
        if series in SERVED:
            start = int(request.query.get("observation_start", "2004")[:4])
            return Reply(200, observations_xml(monthly_rows(series, start=max(start, 2000))))
        return Reply(400, fred_error_xml(400, "Bad Request.  The series does not exist."))

    return respond


PLAN = {
    "rationale": "Labour first, then rates, then both.",
    "nodes": [
        {"name": "labour", "fields": [UNRATE], "parents": [], "n_steps": 5, "description": "jobs"},
        {"name": "rates", "fields": [TBILL], "parents": [], "n_steps": 5, "description": "bills"},
        {
            "name": "joint",
            "fields": [],
            "parents": ["labour", "rates"],
            "n_steps": 5,
            "description": "both",
        },
    ],
}


def llm_responder(mode: str, key: str):
    def respond(request: Request) -> Reply:
        if mode == "echo":  # what some vendors do: name the key they refused
            message = f"Incorrect API key provided: {request.headers.get('authorization')}"
            return Reply(401, json.dumps({"error": {"message": message}}), content_type="json")
        assert request.headers.get("authorization") == f"Bearer {key}"
        message = {"role": "assistant", "content": json.dumps(PLAN)}
        return Reply(200, json.dumps({"choices": [{"index": 0, "message": message}]}))

    return respond


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_a_live_run_never_writes_its_keys(tmp_path, monkeypatch):
    fred_key = f"sentinel-fred-{uuid.uuid4().hex}"
    llm_key = f"sentinel-llm-{uuid.uuid4().hex}"
    home, artifacts = tmp_path / "dagster_home", tmp_path / "artifacts"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    warehouse = tmp_path / "warehouse" / "wh.duckdb"
    tables = tmp_path / "tables"
    tables.mkdir()
    months = [f"{y}-{m:02d}-01" for y in range(2005, 2021) for m in range(1, 13)]
    (tables / "bills.csv").write_text(
        "month,bill\n" + "".join(f"{d},{1 + (i % 40) / 10:.2f}\n" for i, d in enumerate(months))
    )
    (tables / "spec.yaml").write_text(
        f"tables:\n  - path: bills.csv\n    date_column: month\n    release_lag: 1d\n"
        f"    mapping: {{bill: {TBILL}}}\n"
    )
    dag = tmp_path / "dag.yaml"
    dag.write_text(f"nodes:\n  - name: labour\n    fields: [{UNRATE}]\n    n_steps: 5\n")

    with (
        loopback(fred_responder("good")) as fred,
        loopback(fred_responder("echo")) as fred_echo,
        loopback(fred_responder("502")) as fred_502,
        loopback(llm_responder("good", llm_key)) as llm,
        loopback(llm_responder("echo", llm_key)) as llm_echo,
    ):
        env = {
            **{k: v for k, v in os.environ.items() if "proxy" not in k.lower()},
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
            "OMP_NUM_THREADS": "1",
            "DAGSTER_HOME": str(home),
            "FRED_API_KEY": fred_key,
            "GUWM_LLM_API_KEY": llm_key,
            "GUWM_LLM_PROVIDER": "openai",
            "GUWM_LLM_MODEL": "loopback-model",
            "GUWM_LLM_BASE_URL": f"{llm.url}/v1",
            "GUWM_SOURCE_MODE": "live",
            "GUWM_START_DATE": "2005-01-01",
            "GUWM_WAREHOUSE": str(warehouse),
            "GUWM_ARTIFACTS": str(artifacts),
            "GUWM_TABULAR_SPEC": str(tables / "spec.yaml"),
            "GUWM_CURRICULUM_DAG": str(dag),
            "TEST_FRED_ROOT": f"{fred.url}/fred",
            "TEST_FRED_ECHO_ROOT": f"{fred_echo.url}/fred",
            "TEST_FRED_502_ROOT": f"{fred_502.url}/fred",
            "TEST_LLM_ECHO_URL": f"{llm_echo.url}/v1",
        }
        done = subprocess.run(
            [sys.executable, "-c", DRIVER],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    output = done.stdout + done.stderr
    assert done.returncode == 0 and "done" in done.stdout, output[-4000:]
    runs = {
        k: v
        for line in done.stdout.splitlines()
        if line.startswith("run ")
        for k, v in json.loads(line[4:]).items()
    }
    assert runs == {"good": True, "fred_echo": False, "llm_echo": False}, output[-4000:]

    # the keys went where they belong, and the failures saw them echoed back
    assert all(r.query.get("api_key") == fred_key for r in fred.requests)
    assert any(fred_key in r.text() for r in fred_echo.requests + fred_502.requests)
    assert [r.headers["authorization"] for r in llm.requests] == [f"Bearer {llm_key}"]
    assert all(llm_key not in r.path and llm_key.encode() not in r.body for r in llm.requests)
    assert llm_echo.requests
    assert "FRED rejected the API key" in output and "***" in output  # redacted echoes

    # everything the run wrote, byte for byte
    written = files_under(tmp_path)
    assert len(written) > 30
    kinds = {p.suffix for p in written}
    assert {".duckdb", ".parquet", ".json", ".npy", ".safetensors", ".yaml", ".db"} <= kinds
    assert (artifacts / "curriculum" / "plan.yaml").is_file()
    assert any(p.name == "metrics.jsonl" for p in written)
    assert any(p.name == "result.json" for p in written)
    compute_logs = [p for p in written if p.is_relative_to(home / "storage")]
    assert compute_logs, "no Dagster compute logs were captured"
    for key in (fred_key, llm_key):
        for secret in (key, key[:24], key.encode().hex()):  # and no cut or hex-encoded piece
            assert secret not in output
            leaks = [p for p in written if secret.encode() in p.read_bytes()]
            assert not leaks, f"{secret[:14]}… found in {leaks}"

    # the instance's own records: runs (config, tags) and every event, as Dagster reads them
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        records = instance.get_run_records()
        assert len(records) == 3
        events = [
            str(record.event_log_entry)
            for run in records
            for record in instance.get_records_for_run(
                run.dagster_run.run_id, limit=100_000
            ).records
        ]
        runs_text = [repr(r.dagster_run) for r in records]
    assert any("every request failed" in e or "rejected the API key" in e for e in events)
    assert any("LLM" in e or "401" in e for e in events)
    for key in (fred_key, llm_key):
        assert not [e for e in events if key in e]
        assert not [r for r in runs_text if key in r]


# -- SQL: parametrized, or built from reviewed, trusted pieces ---------------------------------

LIBRARY = ("warehouse", "ingest", "canvas", "training", "dagster_defs")
SQL_METHODS = {"execute", "executemany", "sql", "query"}
# (file, function) -> the expressions its f-string/format SQL interpolates, and why trusted
TRUSTED_SQL = {
    # $-parameter predicates and a constant source filter or ''; constant column lists;
    # the run's field paths as ENUM members, each a sql_literal()
    ("canvas/materialize.py", "_read"): {"where"},
    ("canvas/materialize.py", "_fetch"): {"query"},  # `_read_runs.fetch`'s, of those pieces
    ("canvas/verify.py", "verify_windows"): {
        "' AND list_contains($sources, source)' if sources is not None else ''"
    },
    ("dagster_defs/cli.py", "cmd_sql"): {"args.query"},  # the user's own SQL, read-only file
    ("dagster_defs/demo.py", "run_demo"): {"query"},  # the two constant demo queries
    ("training/profile.py", "from_source"): {"relation=relation", "where=''"},  # sql_literal()
    ("training/profile.py", "from_warehouse"): {"relation='observations'", "where=where"},
    ("warehouse/lake.py", "_write_snapshot"): {"', '.join(OBSERVATIONS_SCHEMA.names)", "query"},
    ("warehouse/lake.py", "connect"): {"VIEWS_DDL", "_WAREHOUSE_COLUMNS", "source", "name", "path"},
    ("warehouse/reader.py", "as_of"): {"' AND '.join(where)"},  # $-parameter predicates
    ("warehouse/reader.py", "vintages"): {"' AND '.join(where)"},
    ("warehouse/reader.py", "sql"): {"query"},  # the public `sql(query, params)` itself
    ("warehouse/store.py", "_initialise"): {"VIEWS_DDL"},  # constant DDL of warehouse.reader
    ("warehouse/store.py", "_refresh_wide_view"): {"columns=columns"},  # quoted field paths
}


def _dynamic(node: ast.AST, env: dict[str, ast.AST], seen: tuple[str, ...] = ()) -> list[str]:
    """The interpolated pieces of a SQL argument: f-string fields, `+`/`%` operands,
    .format arguments, through local and module-level names bound to such strings."""
    if isinstance(node, ast.Constant):
        return []
    if isinstance(node, ast.JoinedStr):
        return [ast.unparse(v.value) for v in node.values if isinstance(v, ast.FormattedValue)]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Mod):
        return _dynamic(node.left, env, seen) + _dynamic(node.right, env, seen)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
    ):
        return (
            _dynamic(node.func.value, env, seen)
            + [ast.unparse(a) for a in node.args]
            + [f"{k.arg}={ast.unparse(k.value)}" for k in node.keywords]
        )
    if isinstance(node, ast.Name) and node.id in env and node.id not in seen:
        return _dynamic(env[node.id], env, (*seen, node.id))
    return [ast.unparse(node)]


def dynamic_sql() -> dict[tuple[str, str], set[str]]:
    found: dict[tuple[str, str], set[str]] = {}
    for package in LIBRARY:
        for path in sorted((REPO / package).rglob("*.py")):
            tree = ast.parse(path.read_text())
            module = {
                t.id: n.value
                for n in tree.body
                if isinstance(n, ast.Assign)
                for t in n.targets
                if isinstance(t, ast.Name)
            }
            for fn in ast.walk(tree):
                if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                env = dict(module)
                for n in ast.walk(fn):
                    if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Name):
                        env[n.targets[0].id] = n.value
                for call in ast.walk(fn):
                    if (
                        isinstance(call, ast.Call)
                        and isinstance(call.func, ast.Attribute)
                        and call.func.attr in SQL_METHODS
                        and call.args
                    ):
                        pieces = _dynamic(call.args[0], env)
                        if pieces:
                            key = (path.relative_to(REPO).as_posix(), fn.name)
                            found.setdefault(key, set()).update(pieces)
    return found


def test_every_dynamic_sql_interpolates_only_reviewed_pieces():
    found = dynamic_sql()
    assert len(found) >= 10  # the scan sees the library's SQL
    unreviewed = {k: v - TRUSTED_SQL.get(k, set()) for k, v in found.items()}
    assert not {k: v for k, v in unreviewed.items() if v}, (
        "SQL built from unreviewed pieces: parametrize it ($name) or review and list it"
    )
    assert set(found) == set(TRUSTED_SQL), "a reviewed SQL site is gone: update TRUSTED_SQL"


def test_the_scan_catches_an_interpolated_value():
    source = "def f(con, name):\n    con.execute(f\"SELECT * FROM t WHERE x = '{name}'\")\n"
    tree = ast.parse(source)
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and n.func.attr == "execute")
    assert _dynamic(call.args[0], {}) == ["name"]


HOSTILE = [
    "x'; DROP TABLE observations; --",
    "country_us.macro' OR '1'='1",
    'financial.equities.vix"); DELETE FROM observations; --',
    "../../etc/passwd",
    "country_us.macro.labor.unemployment_rate; DROP TABLE field_catalog",
]


@pytest.fixture
def wh(tmp_path) -> Warehouse:
    wh = Warehouse(tmp_path / "wh.duckdb")
    wh.ingest(
        batch([(UNRATE, dt.datetime(2020, 1, 1), 3.5, dt.datetime(2020, 2, 7))]),
        source="fred",
        now=NOW,
    )
    return wh


def _intact(wh: Warehouse) -> None:
    assert wh.count() == 1
    assert wh.sql("SELECT count(*) AS n FROM field_catalog")["n"][0] > 100
    assert wh.as_of(None, UNRATE)["value"].to_list() == [3.5]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_field_paths_are_rejected_never_executed(wh, hostile):
    with pytest.raises(IngestError) as info:
        wh.ingest(
            batch([(hostile, dt.datetime(2020, 1, 1), 1.0, dt.datetime(2020, 2, 1))]),
            source="fred",
            now=NOW,
        )
    assert "unknown field path" in str(info.value) or "invalid" in str(info.value)
    with pytest.raises(UnknownFieldError):
        wh.as_of(None, hostile)
    with pytest.raises(UnknownFieldError):
        wh.vintages(hostile)
    _intact(wh)


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_source_names_are_rejected_or_matched_literally(wh, hostile):
    with pytest.raises(ValueError, match="source name must be alphanumeric"):
        wh.ingest(
            batch([(UNRATE, dt.datetime(2020, 2, 1), 3.6, dt.datetime(2020, 3, 6))]),
            source=hostile,
            now=NOW,
        )
    assert wh.as_of(None, UNRATE, sources=[hostile]).is_empty()  # a parameter, not SQL
    assert wh.vintages(sources=[hostile, "fred"])["source"].to_list() == ["fred"]
    from ingest.yahoo import yahoo_since

    assert yahoo_since(wh, source=hostile) == {}
    _intact(wh)


def test_hostile_names_elsewhere_are_stored_literally(wh, tmp_path):
    from training.profile import DatasetProfile

    name = "fred'; DROP TABLE frame; --"
    spec_frame = batch(
        [(UNRATE, dt.datetime(2020, m, 1), 3.5, dt.datetime(2020, m, 28)) for m in range(1, 13)]
    )
    from warehouse.spec import DatasetSpec

    profile = DatasetProfile.from_source(DatasetSpec.from_fields(name, {"u": UNRATE}), spec_frame)
    assert profile.name == name
    # an export (and its reader) at a path with a quote in it
    lake = tmp_path / "lake'; DROP VIEW observations; --"
    wh.export_parquet(lake)
    from warehouse.lake import LakeReader

    assert LakeReader(lake).count() == 1
    _intact(wh)


# -- paths from configuration -------------------------------------------------------------------


def _spec(tmp_path: Path, table_path: str) -> SourceSettings:
    spec = tmp_path / "specs" / "spec.yaml"
    spec.parent.mkdir(exist_ok=True)
    spec.write_text(f"tables:\n  - path: '{table_path}'\n    mapping: {{v: {CPI}}}\n")
    return SourceSettings(tabular_spec=spec)


@pytest.mark.parametrize(
    "table_path", ["../../etc/passwd", "/etc/passwd", "data/../../secrets.csv", "..", ""]
)
def test_tabular_spec_tables_stay_beside_the_spec(tmp_path, table_path):
    with pytest.raises(ValueError, match="tabular spec") as info:
        tabular_tables(_spec(tmp_path, table_path))
    assert "root:" not in str(info.value)
    from ingest.registry import fetch

    with pytest.raises(ValueError, match="tabular spec"):
        fetch("tabular", _spec(tmp_path, table_path))


def test_tabular_spec_tables_in_its_folder_are_read(tmp_path):
    (tmp_path / "specs" / "data").mkdir(parents=True)
    (tmp_path / "specs" / "data" / "t.csv").write_text("date,v\n2020-01-01,1.5\n")
    tables = tabular_tables(_spec(tmp_path, "data/t.csv"))
    assert Path(tables[0]["path"]) == tmp_path / "specs" / "data" / "t.csv"
    from ingest.registry import fetch

    assert fetch("tabular", _spec(tmp_path, "data/./t.csv")).data["value"].to_list() == [1.5]


def test_recorded_files_are_found_by_fixed_names_only(tmp_path):
    from ingest.earnings import load_earnings_recorded
    from ingest.fred import load_fred_recorded
    from ingest.yahoo import load_yahoo_recorded

    (tmp_path / "macro" / "fred").mkdir(parents=True)
    with pytest.raises(ValueError, match="not in FRED_SERIES"):
        load_fred_recorded(tmp_path, ["../../../etc/passwd"])
    with pytest.raises(ValueError, match="unknown Yahoo symbol"):
        load_yahoo_recorded(tmp_path, symbols=["../../etc/passwd"])
    result = load_earnings_recorded(tmp_path, ["../../etc/passwd"])
    assert "invalid ticker" in result.failures["../../etc/passwd"]


@pytest.mark.parametrize("name", ["../../escape", "/abs", "Up", "a b", "x/../../y"])
def test_curriculum_node_names_cannot_name_other_directories(tmp_path, name):
    from training.dag import CurriculumError, load_dag

    path = tmp_path / "dag.yaml"
    path.write_text(json.dumps({"nodes": [{"name": name, "fields": [UNRATE]}]}))
    with pytest.raises(CurriculumError, match="node name"):
        load_dag(path)


def test_an_export_never_replaces_a_directory_that_is_not_an_export(wh, tmp_path):
    precious = tmp_path / "home"
    (precious / "notes").mkdir(parents=True)
    (precious / "notes" / "todo.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a guwm Parquet export"):
        wh.export_parquet(precious)
    assert (precious / "notes" / "todo.txt").read_text() == "keep me"
    a_file = tmp_path / "file.txt"
    a_file.write_text("keep me too")
    with pytest.raises(FileExistsError, match="not a directory"):
        wh.export_parquet(a_file)
    assert a_file.read_text() == "keep me too"
    # an empty directory, and an earlier export, are fine
    (tmp_path / "empty").mkdir()
    assert wh.export_parquet(tmp_path / "empty") == tmp_path / "empty"
    assert wh.export_parquet(tmp_path / "empty") == tmp_path / "empty"


def test_a_failing_fetch_names_the_source_but_not_the_key(tmp_path, monkeypatch):
    """The same, in-process: every exception text and chain of a failing FRED fetch."""
    import traceback

    import ingest.fred_client
    from ingest.base import RetryPolicy
    from ingest.registry import fetch

    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    key = f"sentinel-{uuid.uuid4().hex}"
    fast = RetryPolicy(attempts=2, base_delay=0.001, max_delay=0.01, timeout=5)
    for mode in ("echo", "502"):
        with loopback(fred_responder(mode)) as fred:
            monkeypatch.setattr(ingest.fred_client.FredClient, "root_url", f"{fred.url}/fred")
            with pytest.raises(SourceError) as info:
                settings = SourceSettings(mode="live", fred_api_key=key, policy=fast)
                fetch("fred", settings).raise_if_nothing()
        text = "".join(traceback.format_exception(info.value))
        assert "source 'fred'" in text or "FRED" in text
        assert key not in text and key[:12] not in text
        assert any(key in r.text() for r in fred.requests)
