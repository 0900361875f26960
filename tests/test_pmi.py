"""ISM PMI: recorded files, release calendar, consensus vintages, URL fetch with retries."""

from __future__ import annotations

import datetime as dt
import http.server
import threading
from collections.abc import Iterator

import polars as pl
import pytest

from ingest.base import RetryPolicy, SourceError
from ingest.pmi import CONSENSUS_FIELD, MANUFACTURING, SERVICES, pmi_adapter, release_time
from ingest.registry import fetch
from ingest.sources import SourceSettings
from ingest.tables import TabularError
from warehouse.schema import UnknownFieldError
from warehouse.store import Warehouse

MFG = f"{MANUFACTURING}.pmi"
SVC = f"{SERVICES}.pmi"
FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02, timeout=5.0, rate_limit_delay=0.01)
CSV = "\ufeffDate,Value\n2020-03-01,49.1\n2020-04-01,41.5\n2020-05-01,43.1\n"


def vintages(frame: pl.DataFrame, path: str, month: dt.datetime) -> list[tuple]:
    return (
        frame.filter((pl.col("field_path") == path) & (pl.col("observed_at") == month))
        .sort("known_at")
        .select("value", "known_at")
        .rows()
    )


# -- the recorded files ------------------------------------------------------------------


@pytest.fixture(scope="module")
def recorded(request) -> tuple:
    root = request.getfixturevalue("shared_data")
    return pmi_adapter(recorded_dir=root)


def test_recorded_headline_values_and_release_times(recorded):
    spec, frame = recorded
    assert set(spec.field_paths) == {MFG, SVC, CONSENSUS_FIELD}
    # 2020-04 was never revised: one vintage, known at 10:00 New York on Fri 2020-05-01.
    assert vintages(frame, MFG, dt.datetime(2020, 4, 1)) == [(41.5, dt.datetime(2020, 5, 1, 14))]
    # 2025-11 (after the consensus file ends): the file value at its release (EST: 15:00 UTC).
    assert vintages(frame, MFG, dt.datetime(2025, 11, 1)) == [(48.2, dt.datetime(2025, 12, 1, 15))]
    # Services: third business day (Fri 1, Mon 4, Tue 5 May 2020).
    assert vintages(frame, SVC, dt.datetime(2020, 4, 1)) == [(41.8, dt.datetime(2020, 5, 5, 14))]
    services = frame.filter(pl.col("field_path") == SVC)
    assert len(services) == 344 and services["observed_at"].min() == dt.datetime(1997, 7, 1)
    # The BOM did not leak into a column name: every headline month is there (1970-01 is not).
    mfg_months = frame.filter(pl.col("field_path") == MFG)["observed_at"].unique()
    assert len(mfg_months) == 937 and dt.datetime(1970, 1, 1) not in mfg_months.to_list()
    assert (frame["known_at"] > frame["observed_at"]).all()


def test_recorded_vintages_from_the_consensus_file(recorded):
    _, frame = recorded
    # Dec 2008: first print 32.4 (Fri 2 Jan 2009), second print 32.9 with the January
    # report, today's revised 33.1 one year after the first print.
    assert vintages(frame, MFG, dt.datetime(2008, 12, 1)) == [
        (32.4, dt.datetime(2009, 1, 2, 15)),
        (32.9, dt.datetime(2009, 2, 2, 15)),
        (33.1, dt.datetime(2010, 1, 4, 15)),
    ]
    # Consensus for June 2024 (row DATE 2024-07-01), known before the 10:00 release.
    assert vintages(frame, CONSENSUS_FIELD, dt.datetime(2024, 6, 1)) == [
        (49.2, dt.datetime(2024, 7, 1))
    ]
    # The unreleased newest row (DATE 2024-09-01, no Actual) is ignored.
    assert vintages(frame, CONSENSUS_FIELD, dt.datetime(2024, 8, 1)) == []
    assert len(frame.filter(pl.col("field_path") == CONSENSUS_FIELD)) == 198


def test_recorded_point_in_time_in_the_warehouse(recorded, tmp_path):
    spec, frame = recorded
    wh = Warehouse(tmp_path / "w.duckdb")
    report = wh.ingest(frame, source=spec.name)
    assert report.rows_inserted == len(frame)
    again = wh.ingest(frame, source=spec.name)
    assert (again.rows_inserted, again.rows_revised) == (0, 0)

    def dec_2008(t: str) -> list[float]:
        rows = wh.as_of(t, MFG, start="2008-12-01", end="2008-12-01")
        return rows["value"].to_list()

    assert dec_2008("2009-01-02 14:59") == []  # before the release
    assert dec_2008("2009-01-02 15:00") == [32.4]
    assert dec_2008("2009-06-30") == [32.9]
    assert dec_2008("2020-01-01") == [33.1]


# -- the release calendar ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("month", "business_day", "expected"),
    [
        ("2020-04-01", 1, dt.datetime(2020, 5, 1, 14)),  # EDT: 10:00 = 14:00 UTC
        ("2016-12-01", 1, dt.datetime(2017, 1, 3, 15)),  # Jan 1 a Sunday: Mon 2 observed
        ("2025-08-01", 1, dt.datetime(2025, 9, 2, 14)),  # Labor Day Mon 1 Sep
        ("2022-06-01", 3, dt.datetime(2022, 7, 6, 14)),  # Fri 1, (Mon 4 July), Tue 5, Wed 6
        ("2021-03-01", 3, dt.datetime(2021, 4, 5, 14)),  # ISM publishes on Good Friday
        ("2024-01-01", 3, dt.datetime(2024, 2, 5, 15)),  # Thu 1, Fri 2, Mon 5
    ],
)
def test_release_time(month, business_day, expected):
    frame = pl.DataFrame({"m": [dt.datetime.fromisoformat(month)]})
    assert frame.select(release_time(pl.col("m"), business_day))["m"][0] == expected


# -- local files -------------------------------------------------------------------------


def test_local_files_bom_release_column_and_sub_indices(tmp_path):
    mfg = tmp_path / "mfg.csv"
    mfg.write_text(CSV, encoding="utf-8")
    assert mfg.read_bytes().startswith(b"\xef\xbb\xbf")
    svc = tmp_path / "svc.csv"
    svc.write_text("date,pmi,release_date\n2020-04-01,41.8,2020-05-06\n", encoding="utf-8")
    orders = tmp_path / "orders.csv"
    orders.write_text("Date,Value\n2020-04-01,27.1\n", encoding="utf-8")
    spec, frame = pmi_adapter(
        mfg, svc, sub_indices={"ism_manufacturing.new_orders": orders, "production": orders}
    )
    assert set(spec.field_paths) == {
        MFG,
        SVC,
        f"{MANUFACTURING}.new_orders",
        f"{MANUFACTURING}.production",
    }
    assert vintages(frame, MFG, dt.datetime(2020, 4, 1)) == [(41.5, dt.datetime(2020, 5, 1, 14))]
    # The file's release column wins over the third-business-day rule (a bare date: 10:00 NY).
    assert vintages(frame, SVC, dt.datetime(2020, 4, 1)) == [(41.8, dt.datetime(2020, 5, 6, 14))]
    assert vintages(frame, f"{MANUFACTURING}.new_orders", dt.datetime(2020, 4, 1)) == [
        (27.1, dt.datetime(2020, 5, 1, 14))
    ]


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="at least one file"):
        pmi_adapter()
    with pytest.raises(UnknownFieldError) as info:
        pmi_adapter(sub_indices={"new_orders": tmp_path / "x.csv"})  # in both surveys
    assert f"{SERVICES}.new_orders" in info.value.suggestions
    bad = tmp_path / "bad.csv"
    bad.write_text("Date,Value\n2020-04-01,41.5\n2020-05-01,n/a\n", encoding="utf-8")
    with pytest.raises(TabularError, match=r"bad.csv, row 2 \(line 3\), column 'Value'"):
        pmi_adapter(bad)
    with pytest.raises(TabularError, match="does not exist"):
        pmi_adapter(tmp_path / "missing.csv")


# -- URLs --------------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    script: dict[str, list[int]] = {}
    bodies: dict[str, str] = {}
    hits: dict[str, int] = {}

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        path = self.path.split("?")[0]
        self.hits[path] = self.hits.get(path, 0) + 1
        codes = self.script.get(path, [404])
        code = codes.pop(0) if len(codes) > 1 else codes[0]
        body = self.bodies.get(path, CSV).encode() if code == 200 else b"nope"
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, type[_Handler]]]:
    _Handler.script, _Handler.bodies, _Handler.hits = {}, {}, {}
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", _Handler
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def test_url_fetch(server):
    base, handler = server
    handler.script["/ism.csv"] = [200]
    _, frame = pmi_adapter(f"{base}/ism.csv?key=secret", policy=FAST)
    assert vintages(frame, MFG, dt.datetime(2020, 4, 1)) == [(41.5, dt.datetime(2020, 5, 1, 14))]
    assert handler.hits == {"/ism.csv": 1}


def test_url_retries_500_then_200(server):
    base, handler = server
    handler.script["/flaky.csv"] = [500, 503, 200]
    _, frame = pmi_adapter(services=f"{base}/flaky.csv", policy=FAST)
    assert handler.hits["/flaky.csv"] == 3
    assert frame["field_path"].unique().to_list() == [SVC]


def test_url_gives_up_and_does_not_retry_404(server):
    base, handler = server
    handler.script["/down.csv"] = [500]
    with pytest.raises(SourceError, match="gave up after 3 attempts: TransientError: HTTP 500"):
        pmi_adapter(f"{base}/down.csv", policy=FAST)
    assert handler.hits["/down.csv"] == 3
    with pytest.raises(SourceError, match="HTTP 404") as info:
        pmi_adapter(f"{base}/gone.csv?token=hunter2", policy=FAST)
    assert handler.hits["/gone.csv"] == 1
    assert "hunter2" not in str(info.value)


def test_url_bad_content_names_the_url(server):
    base, handler = server
    handler.script["/prices.csv"] = [200]
    handler.bodies["/prices.csv"] = "Date,Value\n2020-04-01,41.5\n2020-05-01,high\n"
    with pytest.raises(TabularError) as info:
        pmi_adapter(sub_indices={"services.prices": f"{base}/prices.csv?key=k"}, policy=FAST)
    message = str(info.value)
    assert f"{base}/prices.csv?…, row 2 (line 3), column 'Value': 'high' is not a number" in message


def test_the_pmi_source_has_no_live_mode_and_says_what_to_do():
    with pytest.raises(SourceError, match="no live mode; ISM data .* no public API"):
        fetch("pmi", SourceSettings(mode="live"))
