"""Bad inputs, systematically: every adapter's file path and its HTTP client, each fault a
clear error naming the source (and field and row where they apply), and the warehouse
exactly as it was before (row count, content hash, run log).

Every case goes through what the ingest assets run: `ingest.registry.fetch` (recorded or
live mode) then `Warehouse.ingest`, into one warehouse holding earlier data. PMI URLs go
through `pmi_adapter` (ISM has no live mode). yfinance hard-codes Yahoo's hosts and TLS,
so its live faults are injected at the `yf.download` boundary instead of a socket.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import polars as pl
import pytest
from faults_support import (
    PMI,
    TBILL,
    UNRATE,
    VIX,
    Reply,
    Snapshot,
    fred_error_xml,
    loopback,
    observations_xml,
    warehouse_with_prior_data,
)

import ingest.earnings
import ingest.fred_client
import ingest.yahoo
from ingest.base import RetryPolicy, SourceError
from ingest.pmi import pmi_adapter
from ingest.registry import fetch
from ingest.sources import SourceSettings
from warehouse.store import Warehouse
from warehouse.validation import IngestError

pytestmark = pytest.mark.faults

SOURCES = ("fred", "yahoo", "pmi", "earnings", "news", "tabular")
KEY = "fault-suite-key-0000"
FAST = RetryPolicy(attempts=2, base_delay=0.001, max_delay=0.005, timeout=0.3)


@pytest.fixture(scope="module")
def wh(tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    """One warehouse with earlier data of every source: each case must leave it as it is."""
    path = tmp_path_factory.mktemp("faults") / "wh.duckdb"
    return warehouse_with_prior_data(path, SOURCES)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)


def attempt(wh: Warehouse, source: str, settings: SourceSettings) -> Exception:
    """Fetch and ingest as the ingest asset does; the error, with the warehouse unchanged."""
    before = Snapshot.of(wh)
    with pytest.raises((SourceError, ValueError)) as info:
        result = fetch(source, settings).raise_if_nothing()
        wh.ingest(result.data, source=settings.warehouse_source(source))
    assert Snapshot.of(wh) == before, "a failed ingest changed the warehouse"
    return info.value


def assert_names(message: str, expected: list[str | re.Pattern[str]]) -> None:
    for part in expected:
        if isinstance(part, re.Pattern):
            assert part.search(message), f"{part.pattern!r} not in:\n{message}"
        else:
            assert part in message, f"{part!r} not in:\n{message}"


# -- the file-based path of every adapter ---------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """Where an adapter's recorded file lives, its header and how a (date, value) row reads."""

    source: str
    relative: str
    header: tuple[str, ...]
    row: Callable[[str, str], tuple[str, ...]]
    value_column: str
    date_column: str
    field: str | None  # where the value lands (None: text, as news headlines)
    file_checked: bool = True  # dates checked in the file (else by the warehouse)

    @property
    def file(self) -> str:
        return Path(self.relative).name


LAYOUTS = {
    "fred": Layout(
        "fred",
        "macro/fred/UNRATE.csv",
        ("date", "value"),
        lambda d, v: (d, v),
        "value",
        "date",
        UNRATE,
    ),
    "yahoo": Layout(
        "yahoo",
        "market/yahoo_multi_asset/IDX_VIX.csv",
        ("Date", "Open", "High", "Low", "Close", "Volume"),
        lambda d, v: (d, "1", "1", "1", v, "100"),
        "Close",
        "Date",
        VIX,
    ),
    "pmi": Layout(
        "pmi",
        "surveys/ism_manufacturing_pmi.csv",
        ("Date", "Value"),
        lambda d, v: (d, v),
        "Value",
        "Date",
        PMI,
        file_checked=False,
    ),
    "earnings": Layout(
        "earnings",
        "earnings/earnings_history_30_large_caps.csv",
        ("ticker", "earnings_date", "eps_estimate", "eps_actual"),
        lambda d, v: ("AAPL", d, "1.0", v),
        "eps_actual",
        "earnings_date",
        "firm_AAPL.earnings.eps_actual",
    ),
    "news": Layout(
        "news",
        "news/bbc_business_news_2022_2024.csv",
        ("title", "pubDate", "description"),
        lambda d, v: (f"Stocks move {v}", d, "markets"),
        "title",
        "pubDate",
        None,
    ),
    "tabular": Layout(
        "tabular",
        "tables/rates.csv",
        ("day", "bill"),
        lambda d, v: (d, v),
        "bill",
        "day",
        TBILL,
        file_checked=False,
    ),
}
GOOD = [("2020-01-02", "3.5"), ("2020-04-01", "3.6"), ("2020-07-01", "4.4")]
ROW2 = "row 2 (line 3)"


def render(layout: Layout, rows: list[tuple[str, str]], sep: str = ",") -> str:
    lines = [sep.join(layout.header), *(sep.join(layout.row(d, v)) for d, v in rows)]
    return "\n".join(lines) + "\n"


def replace_row2(date: str | None = None, value: str | None = None) -> list[tuple[str, str]]:
    d, v = GOOD[1]
    return [GOOD[0], (date or d, value or v), GOOD[2]]


def body(layout: Layout, case: str) -> bytes:
    """The bytes of the malformed file of `case`."""
    good = render(layout, GOOD)
    if case == "truncated":  # the download stopped inside the last row
        head, last = good.rstrip("\n").rsplit("\n", 1)
        return f"{head}\n{last[:9]}".encode()
    if case == "wrong_delimiter":
        return render(layout, GOOD, sep=";").encode()
    if case == "latin1":
        return render(layout, replace_row2(value="3\xe9")).encode("latin-1")
    if case == "utf16":
        return good.encode("utf-16")
    if case == "empty":
        return b""
    if case == "no_rows":
        return render(layout, []).encode()
    rows = {
        "not_a_number": replace_row2(value="abc"),
        "nan": replace_row2(value="NaN"),
        "inf": replace_row2(value="inf"),
        "bad_date": replace_row2(date="2020-13-45"),
        "too_old": [("1700-01-01", "3.5"), *GOOD[1:]],
        "future": replace_row2(date="2099-04-01"),
        "conflicting_duplicate": [GOOD[0], (GOOD[0][0], "3.9"), GOOD[2]],
        "huge": replace_row2(value="1e18"),
    }[case]
    return render(layout, rows).encode()


def expected(layout: Layout, case: str) -> tuple[type[Exception] | None, list]:
    """(exception type or None for any, message parts) of a case."""
    f, v, d = layout.file, layout.value_column, layout.date_column
    by_warehouse = [
        f"source '{layout.source}'",
        f"field '{layout.field}'",
        re.compile(r"row \d+"),
        "nothing written",
    ]
    if case == "too_old":
        if not layout.file_checked:
            return IngestError, [*by_warehouse, "is before 1800-01-01"]
        return None, [f, "1700-01-01", "is before 1800-01-01", "row 1 (line 2)", f"column '{d}'"]
    if case == "future":
        if not layout.file_checked:
            return IngestError, [*by_warehouse, "is in the future"]
        return None, [f, "2099-04-01", "is in the future", ROW2, f"column '{d}'"]
    if case == "huge":
        return IngestError, [*by_warehouse, "implausibly large"]
    return None, {
        "truncated": [f, "truncated row", "row 3 (line 4)"],
        "wrong_delimiter": [f, ";".join(layout.header[:2])],
        "latin1": [f, "cannot decode as utf8", "byte 0xe9", ROW2, f"column '{v}'"],
        "utf16": [f, "cannot decode as utf8", "byte 0xff at byte offset 0"],
        "not_a_number": [f, "'abc' is not a number", ROW2, f"column '{v}'"],
        "nan": [f, "value is NaN", ROW2, f"column '{v}'"],
        "inf": [f, "value is infinite", ROW2, f"column '{v}'"],
        "bad_date": [f, "cannot parse", "'2020-13-45'", ROW2, f"column '{d}'"],
        "conflicting_duplicate": [f, "appears twice with different values", "first in row 1", ROW2],
        "empty": [f, "file is empty"],
    }[case]


STRUCTURAL = ["truncated", "wrong_delimiter", "latin1", "utf16", "bad_date", "too_old", "future"]
NUMERIC = ["not_a_number", "nan", "inf", "conflicting_duplicate", "huge"]
FILE_CASES = [
    (name, case)
    for name, layout in LAYOUTS.items()
    for case in [*STRUCTURAL, *(NUMERIC if layout.field else []), "empty"]
]


def settings_for(root: Path, layout: Layout, **overrides) -> SourceSettings:
    """Recorded-mode settings over `root` (the tabular source through a spec file)."""
    spec = None
    if layout.source == "tabular":
        spec = root / "tables" / "spec.yaml"
        mapping = overrides.pop("mapping", {"bill": TBILL})
        spec.write_text(
            "tables:\n  - path: rates.csv\n    date_column: day\n    release_lag: 1d\n"
            f"    mapping: {mapping}\n"
        )
    return SourceSettings(
        mode="recorded",
        recorded_dir=root,
        start_date="2000-01-01",
        tickers=("AAPL",),
        tabular_spec=spec,
        policy=FAST,
        **overrides,
    )


def write_file(root: Path, layout: Layout, data: bytes) -> Path:
    path = root / layout.relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(("adapter", "case"), FILE_CASES, ids=[f"{a}-{c}" for a, c in FILE_CASES])
def test_a_bad_file_is_a_clear_error_and_writes_nothing(wh, tmp_path, adapter, case):
    layout = LAYOUTS[adapter]
    write_file(tmp_path, layout, body(layout, case))
    error = attempt(wh, layout.source, settings_for(tmp_path, layout))
    kind, parts = expected(layout, case)
    if kind is not None:
        assert isinstance(error, kind), f"{type(error).__name__}: {error}"
    assert_names(str(error), parts)


@pytest.mark.parametrize("adapter", [name for name, lay in LAYOUTS.items() if lay.field])
def test_the_good_file_of_each_layout_ingests(wh, tmp_path, adapter):
    """The control of the matrix above: the same file without its fault goes in (news
    would embed its headlines, a model load: test_news covers it)."""
    layout = LAYOUTS[adapter]
    write_file(tmp_path, layout, render(layout, GOOD).encode())
    settings = settings_for(tmp_path, layout)
    result = fetch(layout.source, settings).raise_if_nothing()
    assert layout.field in set(result.data["field_path"])
    # into a scratch warehouse: the shared one must keep its state for the other cases
    scratch = Warehouse(tmp_path / "scratch.duckdb")
    report = scratch.ingest(result.data, source=settings.warehouse_source(layout.source))
    assert report.rows_inserted == len(result.data) > 0


@pytest.mark.parametrize("adapter", list(LAYOUTS))
def test_a_file_without_rows_writes_nothing(wh, tmp_path, adapter):
    """A header without rows is not corrupt: an error naming the file, or nothing stored."""
    layout = LAYOUTS[adapter]
    write_file(tmp_path, layout, body(layout, "no_rows"))
    settings = settings_for(tmp_path, layout)
    before = Snapshot.of(wh)
    try:
        result = fetch(layout.source, settings).raise_if_nothing()
    except (SourceError, ValueError) as err:
        assert layout.file.removesuffix(".csv") in str(err) or layout.source in str(err)
    else:
        assert result.data.is_empty()
        wh.ingest(result.data, source=settings.warehouse_source(layout.source))
    after = Snapshot.of(wh)
    assert (after.count, after.content_hash) == (before.count, before.content_hash)


@pytest.mark.parametrize(
    ("mapping", "parts"),
    [
        (
            {"bill": "country_us.macro.rates.treasury_3mo"},
            ["column 'bill'", "unknown field path", "treasury_3mo", "did you mean", TBILL],
        ),
        ({"bill": "regime.growth"}, ["column 'bill'", "latent regime field"]),
        ({"bill": "narratives.news.embedding"}, ["column 'bill'", "vector field"]),
        ({"rate": TBILL}, ["mapping column 'rate' not in the file", "'bill'"]),
    ],
    ids=["unknown-field", "latent-field", "vector-field", "unknown-column"],
)
def test_tabular_mapping_errors_name_the_column(wh, tmp_path, mapping, parts):
    layout = LAYOUTS["tabular"]
    write_file(tmp_path, layout, render(layout, GOOD).encode())
    error = attempt(wh, "tabular", settings_for(tmp_path, layout, mapping=mapping))
    assert_names(str(error), ["rates.csv", *parts])


def test_one_bad_file_among_good_ones_is_named_and_the_rest_is_kept(tmp_path):
    """Partial failure (recorded FRED folder): the bad series is named, the others load."""
    fred = tmp_path / "macro" / "fred"
    fred.mkdir(parents=True)
    (fred / "UNRATE.csv").write_text(render(LAYOUTS["fred"], GOOD))
    (fred / "DGS10.csv").write_text("date,value\n2020-01-02,1.9\n2020-01-03,abc\n")
    result = fetch("fred", settings_for(tmp_path, LAYOUTS["fred"])).raise_if_nothing()
    assert set(result.data["field_path"]) == {UNRATE}
    assert list(result.failures) == ["DGS10"]
    assert_names(result.failures["DGS10"], ["DGS10.csv", ROW2, "column 'value'", "'abc'"])


# -- HTTP: FRED's live client against a loopback FRED ---------------------------------------

FRED_FAULTS = {
    "empty-body": (Reply(200, b""), ["not XML"]),
    "malformed-xml": (Reply(200, '<observations count="1"><observation date='), ["not XML"]),
    "json-not-xml": (Reply(200, '{"observations": []}'), ["not XML"]),
    "status-400": (
        Reply(400, fred_error_xml(400, "Bad Request.  The series does not exist.")),
        ["HTTP 400", "series does not exist"],
    ),
    "status-404": (Reply(404, "<html>Not Found</html>"), ["HTTP 404"]),
    "status-500": (Reply(500, "<html>boom</html>"), ["HTTP 500", "gave up after 2 attempts"]),
    "status-503": (Reply(503, ""), ["HTTP 503", "gave up after 2 attempts"]),
    "bad-value": (
        Reply(200, observations_xml([("2020-01-01", "3.5"), ("2020-02-01", "abc")])),
        ["could not convert string to float: 'abc'"],
    ),
    "timeout": (Reply(200, observations_xml([("2020-01-01", "3.5")]), delay=2.0), ["timed out"]),
}


@pytest.fixture
def live_fred(monkeypatch: pytest.MonkeyPatch):
    """A loopback FRED (answering every request with the case's reply) for live mode."""

    def start(reply: Reply):
        server = loopback(lambda request: reply)
        loop = server.__enter__()
        monkeypatch.setattr(ingest.fred_client.FredClient, "root_url", f"{loop.url}/fred")
        started.append(server)
        return loop

    started: list = []
    yield start
    for server in started:
        server.__exit__(None, None, None)


@pytest.mark.parametrize("case", list(FRED_FAULTS))
def test_fred_http_faults(wh, live_fred, case):
    reply, parts = FRED_FAULTS[case]
    loop = live_fred(reply)
    settings = SourceSettings(mode="live", fred_api_key=KEY, policy=FAST)
    started = dt.datetime.now()
    error = attempt(wh, "fred", settings)
    assert (dt.datetime.now() - started).total_seconds() < 20
    assert isinstance(error, SourceError)
    assert_names(str(error), ["source 'fred'", "every request failed", *parts])
    assert KEY not in str(error)
    # ~90 series fail alike: one short line with the count and the common cause
    assert "\n" not in str(error) and len(str(error)) < 600
    assert loop.requests and all(r.query.get("api_key") == KEY for r in loop.requests)


# -- HTTP: PMI files from URLs --------------------------------------------------------------

PMI_FAULTS = {
    "empty-body": (Reply(200, b""), ["file is empty"]),
    "status-404": (Reply(404, "gone"), ["source 'ism_pmi'", "HTTP 404"]),
    "status-500": (Reply(500, "boom"), ["HTTP 500", "gave up after 2 attempts"]),
    "binary-garbage": (Reply(200, b"\x89PNG\r\n\x1a\n\x00\x00\xff"), ["cannot decode as utf8"]),
    "html-page": (
        Reply(200, "<html><body>Service unavailable</body></html>"),
        ["cannot tell the value column"],
    ),
    "truncated": (Reply(200, "Date,Value\n2020-01-01,50.1\n2020-02-0"), ["truncated row"]),
    "timeout": (Reply(200, "Date,Value\n2020-01-01,50.1\n", delay=2.0), ["timed out"]),
}


@pytest.mark.parametrize("case", list(PMI_FAULTS))
def test_pmi_url_faults(wh, case):
    reply, parts = PMI_FAULTS[case]
    before = Snapshot.of(wh)
    with loopback(lambda request: reply) as loop:
        url = f"{loop.url}/ism/manufacturing.csv?token=hunter2"
        with pytest.raises((SourceError, ValueError)) as info:
            wh.ingest(pmi_adapter(url, policy=FAST)[1], source="pmi")
    assert Snapshot.of(wh) == before
    message = str(info.value)
    assert_names(message, ["/ism/manufacturing.csv", *parts])
    assert "hunter2" not in message


# -- live Yahoo and earnings: faults at the yfinance boundary -------------------------------


def _empty(symbols, **kwargs):
    return pd.DataFrame()


def _all_nan(symbols, **kwargs):
    index = pd.DatetimeIndex(["2024-01-02", "2024-01-03"], name="Date")
    columns = pd.MultiIndex.from_product([symbols, ["Close"]], names=["Ticker", "Price"])
    return pd.DataFrame(float("nan"), index=index, columns=columns)


def _timeout(symbols, **kwargs):
    raise TimeoutError("The read operation timed out")


def _rate_limited(symbols, **kwargs):
    from yfinance.exceptions import YFRateLimitError

    raise YFRateLimitError()


YAHOO_FAULTS = {
    "empty-frame": (_empty, ["no data returned"]),
    "all-nan": (_all_nan, ["no data returned (empty or all-NaN column)"]),
    "timeout": (_timeout, ["gave up after 2 attempts", "timed out"]),
    "rate-limited": (_rate_limited, ["gave up after 2 attempts", "YFRateLimitError"]),
}


@pytest.mark.parametrize("case", list(YAHOO_FAULTS))
def test_yahoo_live_faults(wh, monkeypatch, case):
    downloader, parts = YAHOO_FAULTS[case]
    monkeypatch.setattr(ingest.yahoo, "_default_downloader", lambda: downloader)
    policy = RetryPolicy(attempts=2, base_delay=0.001, max_delay=0.005, rate_limit_delay=0.001)
    error = attempt(wh, "yahoo", SourceSettings(mode="live", policy=policy))
    assert_names(str(error), ["source 'yahoo'", "every request failed", "^GSPC", *parts])


def _earnings_timeout(ticker, limit):
    raise TimeoutError("The read operation timed out")


def _earnings_garbage(ticker, limit):
    return pd.DataFrame({"nonsense": ["x", "y"]})


@pytest.mark.parametrize(
    ("fetcher", "parts"),
    [
        (_earnings_timeout, ["gave up after 2 attempts", "timed out"]),
        (_earnings_garbage, ["no reported earnings returned"]),
    ],
    ids=["timeout", "garbage"],
)
def test_earnings_live_faults(wh, monkeypatch, fetcher, parts):
    monkeypatch.setattr(ingest.earnings, "_default_fetcher", fetcher)
    error = attempt(wh, "earnings", SourceSettings(mode="live", tickers=("AAPL",), policy=FAST))
    assert_names(str(error), ["source 'earnings'", "every request failed", "AAPL", *parts])


# -- the warehouse's own checks, whatever the adapter ---------------------------------------

BAD_BATCHES = {
    "nan": (pl.lit(float("nan")), "value is NaN"),
    "inf": (pl.lit(float("inf")), "value is infinite"),
    "huge": (pl.lit(1e16), "implausibly large"),
}


@pytest.mark.parametrize("case", list(BAD_BATCHES))
def test_a_bad_value_anywhere_in_a_large_batch_writes_nothing(wh, case):
    """One bad row in 50,000: named by source, field and row; none of the others stored."""
    value, problem = BAD_BATCHES[case]
    months = pl.datetime_range(
        dt.datetime(1900, 1, 1), dt.datetime(2020, 12, 1), "1mo", eager=True
    ).head(1000)
    frame = pl.concat(
        [
            pl.DataFrame({"observed_at": months}).with_columns(
                pl.lit(path).alias("field_path"),
                # 0 and 0.5: inside every field's plausible range
                (pl.int_range(pl.len()) % 2 / 2).cast(pl.Float64).alias("value"),
                pl.col("observed_at").dt.offset_by("40d").alias("known_at"),
            )
            for path in sorted(wh.schema.paths)
            if not wh.schema.field(path).latent and wh.schema.field(path).dimension == 1
        ][:50]
    ).select("field_path", "observed_at", "value", "known_at")
    bad_row = len(frame) - 7
    frame = frame.with_columns(
        pl.when(pl.int_range(pl.len()) == bad_row)
        .then(value)
        .otherwise(pl.col("value"))
        .alias("value")
    )
    path = frame["field_path"][bad_row]
    before = Snapshot.of(wh)
    with pytest.raises(IngestError) as info:
        wh.ingest(frame, source="fred")
    assert Snapshot.of(wh) == before
    assert_names(str(info.value), ["source 'fred'", f"field '{path}'", f"row {bad_row}", problem])


def test_many_alike_failures_are_one_line_with_their_common_cause():
    from ingest.base import FetchResult

    reason = "gave up after 4 attempts: ConnectionError: cannot resolve api.example (id={s})"
    failures = {f"S{i:03d}": reason.format(s=f"S{i:03d}") for i in range(88)}
    failures |= {"ODD1": "HTTP 400: bad series", "ODD2": "not attempted: source unreachable"}
    result = FetchResult("fred", pl.DataFrame(), failures)
    with pytest.raises(SourceError) as info:
        result.raise_if_nothing()
    message = str(info.value)
    assert message.startswith("source 'fred': every request failed (90 items, 1 not attempted)")
    assert "commonest cause (88 of 90), e.g. S000: gave up after 4 attempts" in message
    assert "\n" not in message and "S087" not in message
