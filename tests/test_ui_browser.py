"""The Dagster UI in headless Chromium: asset groups listed, one ingest launched from the UI.

Starts `dagster dev` on a free port with a temporary DAGSTER_HOME, warehouse and
artifacts (synthetic mode), drives Debian's `chromium` through Playwright, and saves a
screenshot of the asset graph to $GUWM_UI_SCREENSHOT_DIR (default: the test's tmp_path).
Skipped when no Chromium is installed (`apt-get install chromium`, or set GUWM_CHROMIUM);
Playwright cannot download its own browser builds here, so it drives the system's.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from warehouse.store import Warehouse

playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

REPO = Path(__file__).resolve().parents[1]
GROUPS = ("ingest", "warehouse", "canvas", "training")
SERVER_TIMEOUT = 120.0
RUN_TIMEOUT = 150.0
RUN_QUERY = "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"
RUNS_QUERY = "{ runsOrError { ... on Runs { results { runId } } } }"
UI_TIMEOUT_MS = 60_000  # the first page waits for the code location, which imports torch


def chromium_path() -> str | None:
    """$GUWM_CHROMIUM, else a Chromium on PATH."""
    candidates = [os.environ.get("GUWM_CHROMIUM"), "chromium", "chromium-browser"]
    return next((shutil.which(c) for c in candidates if c and shutil.which(c)), None)


CHROMIUM = chromium_path()
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None, reason="no Chromium found: apt-get install chromium, or set GUWM_CHROMIUM"
    ),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _default_signals() -> None:
    """In the server: SIGTERM and SIGINT as usual, even if this test runs with them ignored."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@dataclass
class DagsterUI:
    """A running `dagster dev`: its URL, log and warehouse."""

    url: str
    log: Path
    warehouse: Path

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def graphql(self, query: str, **variables: object) -> dict:
        response = requests.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables}, timeout=30
        )
        response.raise_for_status()
        return response.json()["data"]


def _stop(process: subprocess.Popen) -> None:
    """Terminate the server's whole process group (webserver, daemon, code servers, runs)."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    process.wait(timeout=15)


@pytest.fixture(scope="module")
def dagster_ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DagsterUI]:
    """`dagster dev -m dagster_defs` on a free port, killed whatever happens."""
    root = tmp_path_factory.mktemp("dagster_ui")
    home = root / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\nnux:\n  enabled: false\n")
    ui = DagsterUI(
        url=f"http://127.0.0.1:{_free_port()}",
        log=root / "dagster.log",
        warehouse=root / "warehouse.duckdb",
    )
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "GUWM_SOURCE_MODE": "synthetic",
        "GUWM_START_DATE": "2015-01-01",
        "GUWM_WAREHOUSE": str(ui.warehouse),
        "GUWM_ARTIFACTS": str(root / "artifacts"),
        "GUWM_EMBEDDING_CACHE": str(root / "embedding_cache"),
    }
    dagster = Path(sys.executable).with_name("dagster")
    port = ui.url.rsplit(":", 1)[1]
    command = [str(dagster), "dev", "-m", "dagster_defs", "-h", "127.0.0.1", "-p", port]
    yield from _serve(ui, command, env)


def _serve(ui: DagsterUI, command: list[str], env: dict[str, str]) -> Iterator[DagsterUI]:
    """Run the server `command` until it answers, yield `ui`, then stop its process group."""
    with ui.log.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_default_signals,
        )
    name = f"{Path(command[0]).name} {command[1]}"
    try:
        deadline = time.monotonic() + SERVER_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"{name} exited with {process.returncode}:\n{ui.log_tail()}")
            try:
                if requests.get(f"{ui.url}/server_info", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"{name} not up after {SERVER_TIMEOUT:.0f}s:\n{ui.log_tail()}")
            time.sleep(1)
        yield ui
    finally:
        _stop(process)


@pytest.fixture
def page(dagster_ui: DagsterUI) -> Iterator["playwright.Page"]:
    """A headless Chromium page with generous timeouts."""
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.set_default_timeout(UI_TIMEOUT_MS)
            yield page
        finally:
            browser.close()


def screenshot_dir(tmp_path: Path) -> Path:
    """$GUWM_UI_SCREENSHOT_DIR, else the test's tmp_path."""
    target = Path(os.environ.get("GUWM_UI_SCREENSHOT_DIR") or tmp_path)
    target.mkdir(parents=True, exist_ok=True)
    return target


def _wait_for_run(ui: DagsterUI, run_id: str) -> str:
    """Poll the run's status until it finishes; returns the final status."""
    deadline = time.monotonic() + RUN_TIMEOUT
    status = "UNKNOWN"
    while time.monotonic() < deadline:
        status = ui.graphql(RUN_QUERY, id=run_id)["runOrError"].get("status", status)
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            return status
        time.sleep(2)
    return f"{status} after {RUN_TIMEOUT:.0f}s"


def test_asset_groups_and_a_materialization_from_the_ui(dagster_ui, page, tmp_path):
    def expect_visible(locator: "playwright.Locator") -> None:
        playwright.expect(locator).to_be_visible(timeout=UI_TIMEOUT_MS)

    page.goto(f"{dagster_ui.url}/asset-groups")
    for group in GROUPS:  # the asset graph's group list (curriculum too, when defined)
        expect_visible(page.get_by_text(group, exact=True).first)

    page.goto(f"{dagster_ui.url}/assets/fred_observations")
    page.get_by_role("button", name="Materialize").click()
    toast = page.get_by_text(re.compile(r"Launched run [0-9a-f]{8}"))
    expect_visible(toast)
    short_id = re.search(r"[0-9a-f]{8}", toast.inner_text()).group(0)
    runs = dagster_ui.graphql(RUNS_QUERY)["runsOrError"]["results"]
    (run_id,) = [r["runId"] for r in runs if r["runId"].startswith(short_id)]

    status = _wait_for_run(dagster_ui, run_id)
    assert status == "SUCCESS", f"run {run_id}: {status}\n{dagster_ui.log_tail()}"
    stored = Warehouse(dagster_ui.warehouse, read_only=True).sql(
        "SELECT DISTINCT source FROM observations"
    )["source"]
    assert stored.to_list() == ["synthetic_fred"]

    page.goto(f"{dagster_ui.url}/asset-groups")
    expect_visible(page.get_by_text("ingest", exact=True).first)
    statuses = page.get_by_text("fetching statuses")
    playwright.expect(statuses).to_have_count(0, timeout=UI_TIMEOUT_MS)
    shot = screenshot_dir(tmp_path) / "asset_graph.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


EVALUATION_QUERY = """{ assetOrError(assetKey: {path: ["world_model_evaluation"]}) {
  ... on Asset { assetMaterializations(limit: 1) { runId metadataEntries { label } } } } }"""
CHECKS_QUERY = """query($name: String!) { assetNodeOrError(assetKey: {path: [$name]}) {
  ... on AssetNode { assetChecksOrError { ... on AssetChecks {
    checks { name executionForLatestMaterialization { status } } } } } } }"""
GUWM = Path(sys.executable).with_name("guwm")


@pytest.fixture(scope="module")
def after_the_main_job(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DagsterUI]:
    """`guwm demo` (on a short synthetic world), then `guwm dev` on the same defaults."""
    root = tmp_path_factory.mktemp("after_demo")
    ui = DagsterUI(
        url=f"http://127.0.0.1:{_free_port()}",
        log=root / "dev.log",
        warehouse=root / "warehouse.duckdb",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "GUWM_"))}
    env["GUWM_WAREHOUSE"] = str(ui.warehouse)  # the Dagster home goes beside it
    env["GUWM_EMBEDDING_CACHE"] = str(root / "embedding_cache")
    demo = subprocess.run(
        [str(GUWM), "demo", "--start", "2008-01-01", "--end", "2016-12-31"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert f"Dagster instance at {root / 'dagster'}" in demo.stdout
    port = ui.url.rsplit(":", 1)[1]
    yield from _serve(ui, [str(GUWM), "dev", "--port", port], env)


def test_the_ui_shows_what_the_main_job_did(after_the_main_job, tmp_path):
    ui = after_the_main_job
    asset = ui.graphql(EVALUATION_QUERY)["assetOrError"]
    (latest,) = asset["assetMaterializations"]
    labels = {e["label"] for e in latest["metadataEntries"]}
    assert {"report", "plot_fan_charts", "regime_timeline", "intervals"} <= labels
    checks = ui.graphql(CHECKS_QUERY, name="canvas_tensors")["assetNodeOrError"]
    statuses = {
        c["name"]: (c["executionForLatestMaterialization"] or {}).get("status")
        for c in checks["assetChecksOrError"]["checks"]
    }
    assert statuses == {"presence_matches_warehouse": "SUCCEEDED"}
    assert "SupersessionWarning" not in ui.log_tail()
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(f"{ui.url}/assets/world_model_evaluation")
            playwright.expect(page.get_by_text("plot_fan_charts").first).to_be_visible(
                timeout=UI_TIMEOUT_MS
            )
            page.screenshot(path=str(screenshot_dir(tmp_path) / "after_demo.png"))
        finally:
            browser.close()
