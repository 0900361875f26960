"""The FRED adapter: a loopback FRED API for the live path, the recorded files for the rest."""

from __future__ import annotations

import datetime as dt
import logging
import socket
import threading
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from xml.etree import ElementTree as ET
from xml.sax.saxutils import quoteattr

import polars as pl
import pytest

from ingest.base import RetryPolicy, SourceError
from ingest.fred import (
    UNREACHABLE_AFTER,
    fetch_fred_live,
    fred_adapter,
    fred_series_info,
    load_fred_recorded,
)
from ingest.fred_client import FredClient
from ingest.fred_recorded import read_fred_md
from ingest.fred_series import FRED_SERIES, MOM_DIFF, QOQ_SAAR, YOY_PCT, series_by_id
from warehouse.schema import default_schema
from warehouse.store import Warehouse
from warehouse.validation import LONG_SCHEMA

KEY = "SENTINEL_KEY_123"
FIXTURES = Path(__file__).parent / "fixtures" / "fred"
FAST = RetryPolicy(attempts=3, base_delay=0.001, max_delay=0.01, timeout=5, rate_limit_delay=0.001)
CPI = "country_us.macro.inflation.headline_cpi"
GDP = "country_us.macro.output.gdp_nowcast"
PAYROLLS = "country_us.macro.labor.nonfarm_payrolls_change"
UNRATE = "country_us.macro.labor.unemployment_rate"
FED_FUNDS = "country_us.macro.rates.fed_funds"
# The 53 series recorded in shared/data/macro/fred (see its MANIFEST.md).
RECORDED_IDS = str.split(
    "AHETPI ANFCI BAMLC0A0CM BAMLH0A0HYM2 BUSLOANS CFNAI CIVPART CPIAUCSL CPILFESL CSUSHPINSA "
    "DCOILBRENTEU DCOILWTICO DEXJPUS DEXUSEU DFF DGORDER DGS10 DGS2 DGS30 DGS3MO DTWEXBGS "
    "FEDFUNDS GASREGW GDP GDPC1 HOUST HSN1F ICSA INDPRO JTSJOL M2SL MICH MORTGAGE30US OILPRICE "
    "PALLFNFINDEXM PAYEMS PCEPILFE PCOPPUSDM PPIFIS RRPONTSYD RSXFS SP500 STLFSI4 T10Y2Y T10YIE "
    "T5YIE U6RATE UMCSENT UNRATE USREC VIXCLS WALCL WM2NS"
)


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


# -- a loopback FRED API ------------------------------------------------------------------


def observations_xml(
    rows: list[tuple[str, str]], *, offset: int = 0, count: int | None = None
) -> str:
    """A /fred/series/observations answer in FRED's XML format."""
    count = len(rows) if count is None else count
    items = "".join(
        f'<observation realtime_start="2026-11-25" realtime_end="2026-11-25" '
        f'date="{date}" value="{value}"/>'
        for date, value in rows
    )
    return (
        '<?xml version="1.0" encoding="utf-8" ?><observations realtime_start="2026-11-25" '
        'realtime_end="2026-11-25" units="lin" output_type="1" file_type="xml" '
        f'order_by="observation_date" sort_order="asc" count="{count}" '
        f'offset="{offset}" limit="100000">{items}</observations>'
    )


def error_xml(code: int, message: str) -> str:
    head = '<?xml version="1.0" encoding="utf-8" ?>'
    return f'{head}<error code="{code}" message={quoteattr(message)}/>'


@dataclass
class FakeFred:
    """What the loopback server answers: series data, scripted failures, delays, paging."""

    key: str = KEY
    latest: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    failures: dict[str, list[int]] = field(default_factory=dict)  # statuses, one per request
    delays: dict[str, float] = field(default_factory=dict)
    page_size: int = 100_000
    hits: Counter = field(default_factory=Counter)
    queries: list[dict[str, str]] = field(default_factory=list)


class Handler(BaseHTTPRequestHandler):
    server: FredServer

    def log_message(self, *args: object) -> None:  # quiet: request lines hold the key
        pass

    def do_GET(self) -> None:
        fake = self.server.fake
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        series_id = query.get("series_id", "")
        fake.hits[series_id] += 1
        fake.queries.append(query)
        if query.get("api_key") != fake.key:
            message = "Bad Request.  The value for variable api_key is not registered."
            return self.send(400, error_xml(400, message))
        time.sleep(fake.delays.get(series_id, 0.0))
        script = fake.failures.get(series_id)
        if script:
            status = script.pop(0)
            if status == 500:  # not XML, and echoing the request (key included)
                return self.send(500, f"<html>internal error serving {self.path}</html>")
            if status == 502:  # the key echoed across the 200th character
                pad = "x" * max(0, 195 - self.path.index("api_key=") - len("api_key="))
                return self.send(502, f"{pad}{self.path}")
            if status == 429:
                return self.send(429, error_xml(429, "Too Many Requests.  Exceeded Rate Limit"))
            return self.send(status, error_xml(status, "Bad Request.  The series does not exist."))
        if url.path == "/fred/series":
            return self.send(200, (FIXTURES / f"series_{series_id}.xml").read_text())
        if "realtime_start" in query:  # ALFRED: every vintage
            return self.send(200, (FIXTURES / f"{series_id}_vintages.xml").read_text())
        rows = [
            (d, v)
            for d, v in fake.latest[series_id]
            if query.get("observation_start", "0000") <= d <= query.get("observation_end", "9999")
        ]
        offset = int(query.get("offset", 0))
        page = rows[offset : offset + fake.page_size]
        self.send(200, observations_xml(page, offset=offset, count=len(rows)))

    def send(self, status: int, body: str) -> None:
        data = body.encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "text/xml; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client gave up (timeout test)
            pass


class FredServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeFred) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.fake = fake

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/fred"


@pytest.fixture
def fred(monkeypatch: pytest.MonkeyPatch) -> Iterator[FredServer]:
    """A FRED API on 127.0.0.1 (port 0) with a 24-month CPI, GDP, payrolls and a few more."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    fake = FakeFred(
        latest={
            "CPIAUCSL": CPI_ROWS,
            "GDPC1": [("2019-10-01", "100"), ("2020-01-01", "101"), ("2020-04-01", "95")],
            "PAYEMS": [
                ("2020-05-01", "150000"),
                ("2020-06-01", "150250"),
                ("2020-07-01", "150100"),
            ],
            "UNRATE": [("2022-06-01", "3.6"), ("2022-07-01", "3.5")],
            "DFF": [("2022-06-03", "0.83"), ("2022-06-04", "0.83")],
            "FEDFUNDS": [("2022-06-01", "1.21")],
            "DGS10": [("2022-06-03", "2.96")],
        }
    )
    server = FredServer(fake)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _cpi_rows() -> list[tuple[str, str]]:
    """2021: 200 + m; 2022: year-on-year growth of exactly m %; 2021-03 missing ('.')."""
    rows = [(f"2021-{m:02d}-01", "." if m == 3 else repr(200.0 + m)) for m in range(1, 13)]
    rows += [(f"2022-{m:02d}-01", repr((200.0 + m) * (1 + m / 100))) for m in range(1, 13)]
    return rows


CPI_ROWS = _cpi_rows()


def live(server: FredServer, series: list[str], **kwargs: object):
    kwargs.setdefault("policy", FAST)
    return fetch_fred_live(series, api_key=KEY, root_url=server.root_url, **kwargs)


def values(frame: pl.DataFrame, path: str) -> pl.DataFrame:
    return frame.filter(pl.col("field_path") == path).sort("observed_at", "known_at")


# -- the table ----------------------------------------------------------------------------


def test_table_covers_the_recorded_series_and_honours_schema_units() -> None:
    ids = [s.series_id for s in FRED_SERIES]
    assert len(ids) == len(set(ids)) >= 80
    assert set(RECORDED_IDS) <= set(ids)
    assert {"DTB3", "DGS5", "DGS1", "T10Y3M", "RSAFS", "NFCI"} <= set(ids)
    schema = default_schema()
    by_field: dict[str, list] = {}
    for s in FRED_SERIES:
        f = schema.field(s.field_path)
        assert not f.latent
        assert s.frequency in ("D", "W", "M", "Q")
        if s.transform is YOY_PCT:
            assert f.unit == "percent change from a year earlier", s.series_id
        if s.transform is QOQ_SAAR:
            assert "annual rate" in f.unit, s.series_id
        if s.transform is MOM_DIFF:
            assert "change from the previous month" in f.unit, s.series_id
        by_field.setdefault(s.field_path, []).append(s)
    for path, rows in by_field.items():
        assert [r.primary for r in rows] == [True] + [False] * (len(rows) - 1), path
    assert series_by_id("dff").primary and not series_by_id("FEDFUNDS").primary
    assert len(by_field) >= 80


# -- live, through fredapi and the loopback server ---------------------------------------


def test_live_transforms_and_release_times(fred: FredServer) -> None:
    result = live(fred, ["CPIAUCSL"], start_date="2022-01-01")
    assert result.failures == {}
    assert result.data.schema == pl.Schema(LONG_SCHEMA)
    # the live fetch asks for enough history to compute the first year-on-year change
    cpi_query = next(q for q in fred.fake.queries if q["series_id"] == "CPIAUCSL")
    assert cpi_query["observation_start"] <= "2020-12-31"

    cpi = values(result.data, CPI)
    months = [d.month for d in cpi["observed_at"]]
    assert months == [1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12]  # 2022-03: its 2021 base is missing
    assert cpi["value"].to_list() == pytest.approx(months, abs=1e-9)
    known = dict(zip(cpi["observed_at"], cpi["known_at"], strict=True))
    assert known[at("2022-06-01")] == at("2022-07-13 12:30")  # June 30 + 13 days
    assert known[at("2022-01-01")] == at("2022-02-14 12:30")  # Sunday Feb 13 -> Monday

    gdp = values(live(fred, ["GDPC1"]).data, GDP)
    assert gdp["observed_at"].to_list() == [at("2020-01-01"), at("2020-04-01")]
    assert gdp["value"].to_list() == pytest.approx(
        [((101 / 100) ** 4 - 1) * 100, ((95 / 101) ** 4 - 1) * 100], rel=1e-12
    )
    assert gdp["known_at"].to_list() == [at("2020-04-30 12:30"), at("2020-07-30 12:30")]

    payrolls = values(live(fred, ["PAYEMS"]).data, PAYROLLS)
    assert payrolls["value"].to_list() == [250.0, -150.0]
    assert payrolls["known_at"].to_list() == [at("2020-07-07 12:30"), at("2020-08-07 12:30")]


def test_live_pages_long_answers(fred: FredServer) -> None:
    fred.fake.page_size = 5
    cpi = values(live(fred, ["CPIAUCSL"]).data, CPI)
    assert len(cpi) == 11
    assert fred.fake.hits["CPIAUCSL"] == 5  # 24 rows in pages of 5


def test_fredapi_still_fetches_through_the_overridden_method(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The live client replaces fredapi's private, name-mangled ``Fred.__fetch_data`` (the
    timeout, paging and key redaction live there). fredapi is pinned; should an upgrade
    rename or bypass that method, this fails instead of the client silently losing them."""
    import fredapi

    assert "_Fred__fetch_data" in vars(fredapi.Fred), (
        f"fredapi {fredapi.__version__} has no Fred.__fetch_data: FredClient no longer "
        "overrides its network call"
    )
    fetched: list[str] = []

    def answer(self: FredClient, url: str) -> ET.Element:
        fetched.append(url)
        return ET.fromstring(
            '<seriess count="1"><series id="X" title="x" frequency_short="M" '
            'units_short="u" seasonal_adjustment_short="SA" observation_start="2020-01-01" '
            'observation_end="2020-01-01" last_updated="2020-02-01 07:00:00-06" /></seriess>'
            if "series?" in url
            else '<observations count="1"><observation realtime_start="2020-02-01" '
            'realtime_end="9999-12-31" date="2020-01-01" value="1.5"/></observations>'
        )

    monkeypatch.setattr(FredClient, "_get", answer)
    client = FredClient("k" * 32, timeout=1.0)
    client.get_series("X")
    client.get_series_all_releases("X")
    client.get_series_info("X")
    assert len(fetched) == 3  # every call the adapter makes went through the override


def test_server_errors_are_retried(fred: FredServer) -> None:
    fred.fake.failures["CPIAUCSL"] = [500, 500]
    result = live(fred, ["CPIAUCSL"])
    assert result.failures == {}
    assert len(values(result.data, CPI)) == 11
    assert fred.fake.hits["CPIAUCSL"] == 3


def test_rate_limit_is_retried(fred: FredServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    fred.fake.failures["UNRATE"] = [429]
    fred.fake.failures["DGS10"] = [429] * 5
    result = live(fred, ["UNRATE", "DGS10"])
    assert fred.fake.hits["UNRATE"] == 2
    assert len(values(result.data, UNRATE)) == 2
    assert "RateLimitedError" in caplog.text
    assert list(result.failures) == ["DGS10"]
    assert "gave up after 3 attempts" in result.failures["DGS10"]
    assert "HTTP 429" in result.failures["DGS10"]


def test_bad_series_is_not_retried_and_others_survive(fred: FredServer) -> None:
    fred.fake.failures["UNRATE"] = [400]
    result = live(fred, ["CPIAUCSL", "UNRATE"])
    assert fred.fake.hits["UNRATE"] == 1
    assert result.failures == {"UNRATE": "HTTP 400: Bad Request. The series does not exist."}
    assert set(result.data["field_path"]) == {CPI}


def test_timeout_is_a_failure_with_bounded_time(fred: FredServer) -> None:
    fred.fake.delays["DGS10"] = 2.0
    policy = RetryPolicy(attempts=2, base_delay=0.001, max_delay=0.01, timeout=0.2)
    started = time.perf_counter()
    result = live(fred, ["UNRATE", "DGS10"], policy=policy)
    assert time.perf_counter() - started < 1.5
    assert "timed out after 0.2s" in result.failures["DGS10"]
    assert set(result.data["field_path"]) == {UNRATE}


def test_fallback_series_stands_in_for_a_failed_primary(fred: FredServer) -> None:
    spec, data = fred_adapter(
        api_key=KEY, series=["DFF", "FEDFUNDS", "UNRATE"], root_url=fred.root_url, policy=FAST
    )
    assert fred.fake.hits["FEDFUNDS"] == 0  # DFF delivered: the fallback is never asked
    assert spec.key_to_path == {"unrate": UNRATE, "dff": FED_FUNDS}
    assert len(values(data, FED_FUNDS)) == 2

    fred.fake.failures["DFF"] = [400]
    spec, data = fred_adapter(
        api_key=KEY, series=["DFF", "FEDFUNDS"], root_url=fred.root_url, policy=FAST
    )
    assert spec.key_to_path == {"fedfunds": FED_FUNDS}
    assert values(data, FED_FUNDS)["value"].to_list() == [1.21]


def _chain(err: BaseException | None) -> Iterator[BaseException]:
    while err is not None:
        yield err
        err = err.__cause__ or err.__context__


def test_api_key_never_leaks(fred: FredServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fred.fake.failures.update(
        {"CPIAUCSL": [500] * 5, "UNRATE": [400], "DGS10": [429] * 5, "FEDFUNDS": [502] * 5}
    )
    fred.fake.delays["GDPC1"] = 1.0
    fred.fake.latest["GDPC1"] = []
    policy = RetryPolicy(attempts=2, base_delay=0.001, max_delay=0.01, timeout=0.2)
    result = live(
        fred, ["CPIAUCSL", "UNRATE", "DGS10", "GDPC1", "PAYEMS", "FEDFUNDS"], policy=policy
    )
    assert set(result.failures) == {"CPIAUCSL", "UNRATE", "DGS10", "GDPC1", "FEDFUNDS"}
    assert "HTTP 502" in result.failures["FEDFUNDS"]
    assert KEY[:4] not in result.failures["FEDFUNDS"]  # not even the start of a cut-off key
    assert "HTTP 500" in result.failures["CPIAUCSL"]
    assert any(KEY in q.get("api_key", "") for q in fred.fake.queries)  # it was sent ...
    assert "***" in result.failures["CPIAUCSL"]  # ... echoed by the server, and redacted
    everything = caplog.text + repr(result) + repr(result.failures)
    assert KEY not in everything

    # every series failing: the adapter raises, and neither message nor chain holds the key
    fred.fake.failures.update({"CPIAUCSL": [500] * 5, "UNRATE": [400]})
    with pytest.raises(SourceError, match="every request failed") as info:
        fred_adapter(
            api_key=KEY, series=["CPIAUCSL", "UNRATE"], root_url=fred.root_url, policy=policy
        )
    assert KEY not in "".join(traceback.format_exception(info.value))
    assert all(KEY not in str(e) for e in _chain(info.value))
    assert KEY not in caplog.text


def test_rejected_key_stops_with_a_clear_error(fred: FredServer) -> None:
    with pytest.raises(SourceError, match="rejected the API key") as info:
        fetch_fred_live(
            ["UNRATE", "CPIAUCSL"], api_key="WRONG_KEY_9", root_url=fred.root_url, policy=FAST
        )
    assert "WRONG_KEY_9" not in str(info.value)
    assert "FRED_API_KEY" in str(info.value)
    assert sum(fred.fake.hits.values()) == 1  # the first refusal stops the fetch


def test_missing_key(monkeypatch: pytest.MonkeyPatch, fred: FredServer) -> None:
    monkeypatch.delenv("FRED_API_KEY", raising=False)
    for call in (
        lambda: fetch_fred_live(["UNRATE"]),
        lambda: fred_adapter(start_date="2010-01-01"),
    ):
        with pytest.raises(ValueError) as info:
            call()
        assert "https://fred.stlouisfed.org/docs/api/api_key.html" in str(info.value)
        assert "FRED_API_KEY" in str(info.value)
    monkeypatch.setenv("FRED_API_KEY", KEY)
    result = fetch_fred_live(["UNRATE"], root_url=fred.root_url, policy=FAST)
    assert len(result.data) == 2


def test_unreachable_source_stops_early() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.perf_counter()
    result = fetch_fred_live(
        ["CPIAUCSL", "UNRATE", "DGS10", "GDPC1", "PAYEMS"],
        api_key=KEY,
        root_url=f"http://127.0.0.1:{port}/fred",
        policy=FAST,
    )
    assert time.perf_counter() - started < 5
    assert result.data.is_empty()
    reasons = list(result.failures.values())
    tried = [r for r in reasons if not r.startswith("not attempted")]
    assert len(reasons) == 5 and len(tried) == UNREACHABLE_AFTER
    assert all("connection failed" in r for r in tried)
    assert KEY not in repr(result)


def test_vintages_are_point_in_time(fred: FredServer) -> None:
    result = live(fred, ["CPIAUCSL", "UNRATE"], vintages=True)
    assert result.failures == {}
    assert any(q.get("realtime_start") == "1776-07-04" for q in fred.fake.queries)

    unrate = values(result.data, UNRATE)  # two releases of one observation: two rows
    assert unrate.select("observed_at", "value", "known_at").rows() == [
        (at("2022-06-01"), 3.6, at("2022-07-08 12:30")),
        (at("2022-06-01"), 3.5, at("2023-01-06 12:30")),
    ]
    # 2022-06 CPI yoy, each input as known at the time: 2021-06 was 101 when 2022-06 came
    # out (110), revised to 102 a week later; 2022-06 revised to 111 in August.
    cpi = values(result.data, CPI)
    assert cpi["observed_at"].unique().to_list() == [at("2022-06-01")]
    assert cpi["known_at"].to_list() == [
        at("2022-07-13 12:30"),
        at("2022-07-20 12:30"),
        at("2022-08-10 12:30"),
    ]
    expected = [(110 / 101 - 1) * 100, (110 / 102 - 1) * 100, (111 / 102 - 1) * 100]
    assert cpi["value"].to_list() == pytest.approx(expected, rel=1e-12)


def test_series_info_checks_the_table(fred: FredServer) -> None:
    fred.fake.failures["UNRATE"] = [400]
    info, failures = fred_series_info(
        ["CPIAUCSL", "UNRATE"], api_key=KEY, root_url=fred.root_url, policy=FAST
    )
    assert info.select("series_id", "fred_frequency", "frequency_matches").rows() == [
        ("CPIAUCSL", "M", True)
    ]
    assert info["units"].to_list() == ["Index 1982-1984=100"]
    assert list(failures) == ["UNRATE"]


# -- recorded files -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def recorded(request: pytest.FixtureRequest) -> pl.DataFrame:
    root = request.getfixturevalue("shared_data")
    result = load_fred_recorded(root)
    assert result.failures == {}
    return result.data


def test_recorded_loads_every_series(shared_data: Path, recorded: pl.DataFrame) -> None:
    assert recorded.schema == pl.Schema(LONG_SCHEMA)
    paths = set(recorded["field_path"])
    assert len(paths) >= 49
    assert {series_by_id(i).field_path for i in RECORDED_IDS} == paths  # fallbacks included
    assert (recorded["known_at"] > recorded["observed_at"]).all()
    assert recorded["value"].is_finite().all()
    assert recorded.select("field_path", "observed_at", "known_at").is_unique().all()

    cpi = values(recorded, CPI).filter(pl.col("observed_at") == at("2022-06-01"))
    # 9.06 % is the headline (not seasonally adjusted); CPIAUCSL, seasonally adjusted, gives 9.0
    assert cpi["value"].item() == pytest.approx(9.0, abs=0.1)
    raw = pl.read_csv(shared_data / "macro" / "fred" / "CPIAUCSL.csv", try_parse_dates=True)
    june = dict(raw.filter(pl.col("date").dt.month() == 6).rows())
    assert cpi["value"].item() == pytest.approx(
        (june[dt.date(2022, 6, 1)] / june[dt.date(2021, 6, 1)] - 1) * 100, rel=1e-12
    )
    assert cpi["known_at"].item() == at("2022-07-13 12:30")

    gdp = values(recorded, GDP).filter(pl.col("observed_at") == at("2020-04-01"))
    assert gdp["value"].item() < -25
    assert gdp["known_at"].item() == at("2020-07-30 12:30")
    payrolls = values(recorded, PAYROLLS).filter(pl.col("observed_at") == at("2020-04-01"))
    assert -21_000 < payrolls["value"].item() < -20_000
    # DFF (the primary) writes fed funds, FEDFUNDS does not: daily rows, no monthly ones
    assert values(recorded, FED_FUNDS)["observed_at"].min() == at("2000-01-01")
    copper = values(recorded, "financial.commodities.copper")  # USD/tonne -> USD/lb
    assert 1 < copper.filter(pl.col("observed_at") == at("2024-05-01"))["value"].item() < 6


def test_recorded_ingests_idempotently(tmp_path: Path, recorded: pl.DataFrame) -> None:
    warehouse = Warehouse(tmp_path / "wh" / "warehouse.duckdb")
    first = warehouse.ingest(recorded, source="fred")
    assert first.rows_inserted == len(recorded)
    again = warehouse.ingest(recorded, source="fred")
    assert (again.rows_inserted, again.rows_revised) == (0, 0)
    assert warehouse.count() == len(recorded)


def test_recorded_start_date_keeps_the_lag(shared_data: Path) -> None:
    data = load_fred_recorded(shared_data, ["CPIAUCSL", "UNRATE"], start_date="2010-01-01").data
    assert data["observed_at"].min() == at("2010-01-01")
    assert values(data, CPI)["observed_at"].min() == at("2010-01-01")  # from the 2009 base


def test_adapter_spec_matches_the_data(shared_data: Path) -> None:
    spec, data = fred_adapter(recorded_dir=shared_data, start_date="2010-01-01")
    assert spec.name == "FRED"
    assert set(spec.field_paths) == set(data["field_path"])
    assert len(spec.field_paths) >= 49
    assert spec.key_to_path["cpiaucsl"] == CPI
    assert spec.key_to_path["anfci"] == "country_us.macro.credit.nfci"
    assert "fedfunds" not in spec.key_to_path and spec.key_to_path["dff"] == FED_FUNDS
    assert data["observed_at"].min() >= at("2010-01-01")
    with pytest.raises(ValueError, match="one vintage"):
        fred_adapter(recorded_dir=shared_data, vintages=True)


def test_recorded_edge_cases(tmp_path: Path) -> None:
    folder = tmp_path / "macro" / "fred"
    folder.mkdir(parents=True)
    months = [f"{y}-{m:02d}-01" for y in (2020, 2021) for m in range(1, 13)]
    special = {"2020-02-01": "0.0", "2020-05-01": ""}  # a zero base, a missing value
    cpi = [special.get(d, f"{100 + i}") for i, d in enumerate(months)]
    (folder / "CPIAUCSL.csv").write_text(
        "date,value\n" + "".join(f"{d},{v}\n" for d, v in zip(months, cpi, strict=True))
    )
    (folder / "DFF.csv").write_text("date,dff\n2021-06-04,0.06\n2021-06-05,\n")
    (folder / "UNRATE.csv").write_text("when,rate\n2021-06-01,5.9\n")
    (folder / "DGS10.csv").write_text("date,value\n2021-06-04,abc\n")
    result = load_fred_recorded(tmp_path, ["CPIAUCSL", "DFF", "UNRATE", "DGS10", "GDPC1"])
    assert set(result.failures) == {"UNRATE", "DGS10", "GDPC1"}
    assert "expected columns" in result.failures["UNRATE"]
    assert "unparseable" in result.failures["DGS10"]
    assert "no recorded file" in result.failures["GDPC1"]
    yoy = values(result.data, CPI)
    # 2021-02 divides by zero and 2021-05 has no base: both dropped, never inf or NaN
    assert [d.month for d in yoy["observed_at"]] == [1, 3, 4, 6, 7, 8, 9, 10, 11, 12]
    assert yoy["value"].is_finite().all()
    dff = values(result.data, FED_FUNDS)
    assert dff.select("value", "known_at").rows() == [(0.06, at("2021-06-07 13:00"))]
    with pytest.raises(ValueError, match="not in FRED_SERIES"):
        load_fred_recorded(tmp_path, ["NOPE"])


def test_fred_md_extends_the_monthly_series_back_to_1959(shared_data: Path) -> None:
    """The recorded files start in 1980; FRED-MD (one 2025 vintage) holds the same monthly
    series from 1959. A year-on-year change across the seam divides a recorded value by a
    FRED-MD one; a daily series (DGS10) has no FRED-MD column and is unchanged."""
    data = load_fred_recorded(shared_data, ["CPIAUCSL", "UNRATE", "DGS10"], start_date="1950-01-01")
    assert data.failures == {}
    unrate = values(data.data, "country_us.macro.labor.unemployment_rate")
    assert unrate["observed_at"].min() == at("1959-01-01")
    # the same release lag as every later month: month end + lag, rolled to a weekday
    assert unrate.filter(pl.col("observed_at") == at("1959-01-01"))["known_at"].item() == at(
        "1959-02-09 12:30"
    )
    md = read_fred_md(shared_data)
    raw = pl.read_csv(shared_data / "macro" / "fred" / "CPIAUCSL.csv", try_parse_dates=True)
    cpi = values(data.data, CPI).filter(pl.col("observed_at") == at("1980-01-01"))
    base = md.filter(pl.col("date") == dt.date(1979, 1, 1))["CPIAUCSL"].item()
    assert cpi["value"].item() == pytest.approx((raw["value"][0] / base - 1) * 100, rel=1e-12)
    assert values(data.data, CPI)["observed_at"].min() == at("1960-01-01")
    ten_year = values(data.data, "financial.yield_curves.ten_year")
    assert ten_year["observed_at"].min() == at("1980-01-02")


def test_fred_md_fills_only_before_the_recorded_file_and_fails_clearly(tmp_path: Path) -> None:
    folder = tmp_path / "macro" / "fred"
    folder.mkdir(parents=True)
    months = [f"{y}-{m:02d}-01" for y in (2000, 2001) for m in range(1, 13)]
    (folder / "CPIAUCSL.csv").write_text(
        "date,value\n" + "".join(f"{d},{100 + i}\n" for i, d in enumerate(months))
    )
    md_months = [f"{m}/1/{y}" for y in (1999, 2000) for m in range(1, 13)]
    rows = "".join(f"{d},{50 + i},{4 + i / 10}\n" for i, d in enumerate(md_months))
    md = tmp_path / "macro" / "fred_md_current.csv"
    md.write_text("sasdate,CPIAUCSL,UNRATE\nTransform:,6,2\n" + rows)
    result = load_fred_recorded(tmp_path, ["CPIAUCSL", "UNRATE"])
    assert set(result.failures) == {"UNRATE"}  # no recorded file: FRED-MD alone adds nothing
    yoy = values(result.data, CPI)
    assert yoy["observed_at"].min() == at("2000-01-01")  # 1999 is FRED-MD's, 2000 the file's
    assert yoy.filter(pl.col("observed_at") == at("2000-01-01"))["value"].item() == (
        pytest.approx((100 / 50 - 1) * 100)
    )
    # 2001-01 divides by the file's 2000-01 (100), not FRED-MD's (62)
    assert yoy.filter(pl.col("observed_at") == at("2001-01-01"))["value"].item() == (
        pytest.approx((112 / 100 - 1) * 100)
    )
    md.write_text("sasdate,CPIAUCSL\nTransform:,6\n1/1/1999,50\n2/1/1999,abc\n")
    with pytest.raises(SourceError, match=r"fred_md_current\.csv.*CPIAUCSL"):
        load_fred_recorded(tmp_path, ["CPIAUCSL"])
