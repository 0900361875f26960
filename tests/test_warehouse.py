"""The field warehouse: idempotent upserts, vintages, point-in-time reads, bad input."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import threading

import polars as pl
import pytest

from warehouse import clock
from warehouse.schema import UnknownFieldError
from warehouse.store import (
    Warehouse,
    WarehouseLockedError,
    WarehouseNotFoundError,
    WarehouseVersionError,
)
from warehouse.validation import DATE_RULE, IngestError

CPI = "country_us.macro.inflation.headline_cpi"
UNRATE = "country_us.macro.labor.unemployment_rate"
VIX = "financial.equities.vix"
NOW = dt.datetime(2025, 6, 1)


def batch(rows: list[tuple]) -> pl.DataFrame:
    """Rows of (field_path, observed_at, value, known_at) as a long-format frame."""
    return pl.DataFrame(
        rows,
        schema={
            "field_path": pl.Utf8,
            "observed_at": pl.Datetime("us"),
            "value": pl.Float64,
            "known_at": pl.Datetime("us"),
        },
        orient="row",
    )


def monthly_cpi(n: int = 24, offset: float = 0.0) -> pl.DataFrame:
    months = pl.datetime_range(
        dt.datetime(2020, 1, 1),
        dt.datetime(2020 + (n - 1) // 12, (n - 1) % 12 + 1, 1),
        "1mo",
        eager=True,
    )
    return pl.DataFrame(
        {
            "field_path": [CPI] * n,
            "observed_at": months,
            "value": [2.0 + 0.1 * i + offset for i in range(n)],
            "known_at": months.dt.offset_by("1mo").dt.offset_by("12d"),
        }
    )


@pytest.fixture
def wh(tmp_path) -> Warehouse:
    return Warehouse(tmp_path / "wh.duckdb")


def test_same_batch_twice_changes_nothing(wh):
    first = wh.ingest(monthly_cpi(), source="fred", now=NOW)
    assert (first.rows_in, first.rows_inserted, first.rows_unchanged) == (24, 24, 0)
    digest = wh.content_hash()
    second = wh.ingest(monthly_cpi(), source="fred", now=NOW)
    assert (second.rows_inserted, second.rows_revised, second.rows_unchanged) == (0, 0, 24)
    assert wh.count() == 24
    assert wh.content_hash() == digest


def test_a_refresh_compares_row_by_row_only_the_fields_whose_rows_changed(wh):
    unrate = monthly_cpi().with_columns(field_path=pl.lit(UNRATE), value=pl.col("value") + 1)
    first = wh.ingest(pl.concat([monthly_cpi(), unrate]), source="fred", now=NOW)
    assert (first.rows_inserted, first.rows_compared) == (48, 0)  # nothing stored to compare
    again = wh.ingest(pl.concat([monthly_cpi(), unrate]), source="fred", now=NOW)
    assert (again.rows_unchanged, again.rows_compared) == (48, 0)  # both settled by digest
    # a month more of CPI: its stored rows are settled whole, the new one is new
    extended = wh.ingest(pl.concat([monthly_cpi(25), unrate]), source="fred", now=NOW)
    assert (extended.rows_inserted, extended.rows_unchanged, extended.rows_compared) == (1, 48, 0)
    # an incremental fetch: only the newest month, nothing to compare
    newest = monthly_cpi(26).tail(1)
    incremental = wh.ingest(newest, source="fred", now=NOW)
    assert (incremental.rows_inserted, incremental.rows_compared) == (1, 0)
    # one CPI value changed: CPI's rows are compared one by one, UNRATE's are not
    changed = monthly_cpi(26).with_columns(
        value=pl.when(pl.int_range(pl.len()) == 3).then(9.9).otherwise(pl.col("value"))
    )
    later = dt.datetime(2025, 7, 1)
    report = wh.ingest(pl.concat([changed, unrate]), source="fred", now=later)
    assert (report.rows_revised, report.rows_unchanged, report.rows_compared) == (1, 49, 26)
    april = dt.datetime(2020, 4, 1)
    assert wh.as_of(NOW, CPI).filter(pl.col("observed_at") == april)["value"].item() == 2.3
    assert wh.as_of(later, CPI).filter(pl.col("observed_at") == april)["value"].item() == 9.9
    assert len(wh.as_of(later, CPI)) == 26


def test_each_vintage_is_superseded_exactly_by_the_next_one_known(wh):
    jan = dt.datetime(2024, 1, 1)
    releases = [dt.datetime(2024, 2, 2), dt.datetime(2024, 3, 8), dt.datetime(2024, 4, 5)]
    for i in (2, 0, 1):  # vintages arrive out of order
        wh.ingest(batch([(UNRATE, jan, 3.7 + i / 10, releases[i])]), source="fred", now=NOW)
    chain = wh.sql("SELECT known_at, superseded_at FROM observations ORDER BY known_at")
    assert chain.rows() == [
        (releases[0], releases[1]),
        (releases[1], releases[2]),
        (releases[2], None),
    ]


# The version-1 layout: observations keyed by a primary key, no superseded_at.
_VERSION_1_OBSERVATIONS = """
CREATE TABLE observations (
    field_path VARCHAR NOT NULL, observed_at TIMESTAMP NOT NULL, value DOUBLE, vector FLOAT[],
    source VARCHAR NOT NULL, known_at TIMESTAMP NOT NULL, ingested_at TIMESTAMP NOT NULL,
    run_id VARCHAR NOT NULL, PRIMARY KEY (field_path, observed_at, source, known_at));
CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL);
INSERT INTO meta VALUES ('version', '1');
INSERT INTO observations VALUES
    ('country_us.macro.labor.unemployment_rate', '2024-01-01', 3.9, NULL, 'fred',
     '2024-03-08', '2024-03-08', 'r2'),
    ('country_us.macro.labor.unemployment_rate', '2024-01-01', 3.7, NULL, 'fred',
     '2024-02-02', '2024-02-02', 'r1');
"""


def test_a_version_1_warehouse_is_upgraded_in_place_when_opened_for_writing(tmp_path):
    import duckdb

    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(_VERSION_1_OBSERVATIONS)
    with pytest.raises(WarehouseVersionError, match="open it once for writing"):
        Warehouse(path, read_only=True)
    wh = Warehouse(path)
    assert wh.as_of(dt.datetime(2024, 2, 20), UNRATE)["value"].to_list() == [3.7]
    assert wh.as_of(dt.datetime(2024, 3, 8), UNRATE)["value"].to_list() == [3.9]
    assert wh.sql("SELECT value FROM latest")["value"].to_list() == [3.9]
    report = wh.ingest(
        batch([(UNRATE, dt.datetime(2024, 1, 1), 3.9, dt.datetime(2024, 3, 8))]),
        source="fred",
        now=NOW,
    )
    assert report.rows_unchanged == 1
    assert Warehouse(path, read_only=True).count() == 2


def test_freezing_the_one_clock_freezes_ingest_and_as_of(wh, monkeypatch):
    frozen = dt.datetime(2020, 2, 20)
    monkeypatch.setattr(clock, "utc_now", lambda: frozen)
    with pytest.raises(IngestError, match="2020-03-13 00:00:00.000000 is in the future"):
        wh.ingest(monthly_cpi(2), source="fred")  # `now` defaults to the clock
    wh.ingest(monthly_cpi(1), source="fred")
    assert wh.sql("SELECT started_at, finished_at FROM ingest_runs").row(0) == (frozen, frozen)
    # a restatement is known from the clock's now, and as_of() reads the same clock
    assert wh.ingest(monthly_cpi(1, offset=0.5), source="fred").rows_revised == 1
    assert wh.as_of(fields=CPI)["value"].to_list() == [2.5]
    monkeypatch.setattr(clock, "utc_now", lambda: frozen - dt.timedelta(days=1))
    assert wh.as_of(fields=CPI)["value"].to_list() == [2.0]


def test_exact_duplicate_rows_in_a_batch_are_dropped(wh):
    report = wh.ingest(pl.concat([monthly_cpi(3), monthly_cpi(3)]), source="fred", now=NOW)
    assert (report.rows_in, report.duplicates_dropped, report.rows_inserted) == (6, 3, 3)


def test_same_field_from_two_sources_is_kept_apart(wh):
    rows = [(VIX, dt.datetime(2024, 1, 2), 13.2, dt.datetime(2024, 1, 2, 21))]
    wh.ingest(batch(rows), source="fred", now=NOW)
    wh.ingest(batch(rows), source="yahoo", now=NOW)
    assert wh.sql("SELECT list(source ORDER BY source) s FROM observations")["s"][0].to_list() == [
        "fred",
        "yahoo",
    ]


def test_revision_is_a_new_vintage_and_as_of_sees_each_in_its_time(wh):
    jan = dt.datetime(2024, 1, 1)
    advance = batch([(UNRATE, jan, 3.7, dt.datetime(2024, 2, 2))])
    revised = batch([(UNRATE, jan, 3.9, dt.datetime(2024, 3, 8))])
    wh.ingest(advance, source="fred", now=NOW)
    report = wh.ingest(revised, source="fred", now=NOW)
    assert report.rows_inserted == 1
    assert wh.count() == 2

    def value_as_of(t):
        frame = wh.as_of(t, UNRATE)
        return frame["value"].to_list()

    assert value_as_of(dt.datetime(2024, 2, 1)) == []  # not yet released
    assert value_as_of(dt.datetime(2024, 2, 20)) == [3.7]
    assert value_as_of(dt.datetime(2024, 3, 8)) == [3.9]  # known_at is inclusive
    assert wh.sql("SELECT value FROM latest")["value"].to_list() == [3.9]
    # re-sending the advance estimate later is no news: it is not re-inserted
    assert wh.ingest(advance, source="fred", now=NOW).rows_inserted == 0
    assert wh.count() == 2


def test_changed_value_under_the_same_key_is_restated_not_overwritten(wh):
    wh.ingest(monthly_cpi(3), source="fred", now=NOW)
    later = dt.datetime(2025, 7, 1)
    report = wh.ingest(monthly_cpi(3, offset=0.5), source="fred", now=later)
    assert (report.rows_revised, report.rows_inserted) == (3, 0)
    assert wh.count() == 6
    before = wh.as_of(dt.datetime(2025, 6, 15), CPI)["value"].to_list()
    after = wh.as_of(later, CPI)["value"].to_list()
    assert before == pytest.approx([2.0, 2.1, 2.2])
    assert after == pytest.approx([2.5, 2.6, 2.7])
    # the same restated batch again: nothing new
    again = wh.ingest(monthly_cpi(3, offset=0.5), source="fred", now=dt.datetime(2025, 8, 1))
    assert (again.rows_inserted, again.rows_revised, again.rows_unchanged) == (0, 0, 3)


def test_bad_rows_are_all_named_and_nothing_is_written(wh):
    wh.ingest(monthly_cpi(6), source="fred", now=NOW)
    count, digest = wh.count(), wh.content_hash()
    bad = pl.concat(
        [
            monthly_cpi(6, offset=1.0),
            batch(
                [
                    (CPI, dt.datetime(2023, 1, 1), float("nan"), dt.datetime(2023, 2, 10)),
                    (
                        "country_us.macro.inflation.headlin_cpi",
                        dt.datetime(2023, 1, 1),
                        1.0,
                        dt.datetime(2023, 2, 10),
                    ),
                    (CPI, dt.datetime(2023, 2, 1), float("inf"), dt.datetime(2023, 3, 10)),
                    (CPI, dt.datetime(2023, 3, 1), 1.0, dt.datetime(2023, 2, 10)),
                    (CPI, dt.datetime(2023, 4, 1), 1.0, dt.datetime(2031, 1, 1)),
                    ("regime.growth", dt.datetime(2023, 1, 1), 1.0, dt.datetime(2023, 2, 10)),
                ]
            ),
        ]
    )
    with pytest.raises(IngestError) as caught:
        wh.ingest(bad, source="fred", now=NOW)
    message = str(caught.value)
    assert message.startswith(f"source 'fred', field '{CPI}', row 6: value is NaN")
    assert "row 7, field 'country_us.macro.inflation.headlin_cpi'" in message
    assert "did you mean" in message and "headline_cpi" in message
    assert "row 8" in message and "infinite" in message
    assert "row 9" in message and "before observed_at" in message
    assert "row 10" in message and "in the future" in message
    assert "row 11" in message and "latent" in message
    assert caught.value.problems["row"].to_list() == [6, 7, 8, 9, 10, 11]
    assert wh.count() == count
    assert wh.content_hash() == digest


def test_conflicting_duplicates_in_one_batch_are_rejected(wh):
    rows = [
        (CPI, dt.datetime(2024, 1, 1), 3.1, dt.datetime(2024, 2, 13)),
        (CPI, dt.datetime(2024, 1, 1), 3.4, dt.datetime(2024, 2, 13)),
    ]
    with pytest.raises(IngestError, match="duplicate key"):
        wh.ingest(batch(rows), source="fred", now=NOW)
    assert wh.count() == 0


def test_missing_columns_and_unparseable_strings_are_clear_errors(wh):
    with pytest.raises(IngestError, match="missing column"):
        wh.ingest(pl.DataFrame({"field_path": [CPI], "value": [1.0]}), source="csv", now=NOW)
    text = pl.DataFrame(
        {
            "field_path": [CPI, CPI],
            "observed_at": ["2024-01-01", "not a date"],
            "value": ["3.1", "three"],
            "known_at": ["2024-02-13", "2024-03-12"],
        }
    )
    with pytest.raises(IngestError) as caught:
        wh.ingest(text, source="csv", now=NOW)
    assert "row 1" in str(caught.value)
    assert set(caught.value.problems["problem"]) == {
        f"observed_at is not {DATE_RULE}",
        "value is not a number",
    }


@pytest.mark.parametrize("text", ["02/01/2021", "2021-02-30", "Feb 1 2021"])
def test_a_text_date_that_is_not_iso_is_refused_naming_its_row(wh, text):
    frame = pl.DataFrame(
        {
            "field_path": [CPI, CPI],
            "observed_at": ["2021-01-01", text],
            "value": [1.0, 1.5],
            "known_at": ["2021-02-13", "2021-03-12"],
        }
    )
    with pytest.raises(IngestError) as caught:
        wh.ingest(frame, source="csv", now=NOW)
    assert "row 1" in str(caught.value) and "not an ISO date" in str(caught.value)
    assert wh.count() == 0  # nothing of the batch is written
    # the ISO forms are read as such, an offset converted to UTC
    iso = frame.with_columns(
        observed_at=pl.Series(["2021-01-01", "2021-02-01T00:00:00Z"]),
        known_at=pl.Series(["2021-02-13T09:30", "2021-03-12T09:30:00+01:00"]),
    )
    wh.ingest(iso, source="csv", now=NOW)
    stored = wh.sql("SELECT observed_at, known_at FROM observations ORDER BY 1").rows()
    assert stored[1] == (dt.datetime(2021, 2, 1), dt.datetime(2021, 3, 12, 8, 30))


def test_vector_fields_round_trip_and_wrong_dimensions_are_rejected(wh):
    path = "narratives.news.embedding"
    day = dt.datetime(2024, 5, 1)
    good = pl.DataFrame(
        {
            "field_path": [path],
            "observed_at": [day],
            "vector": [[0.5] * 384],
            "known_at": [day + dt.timedelta(hours=23)],
        },
        schema_overrides={"vector": pl.List(pl.Float32)},
    )
    assert wh.ingest(good, source="news", now=NOW).rows_inserted == 1
    assert wh.ingest(good, source="news", now=NOW).rows_unchanged == 1
    stored = wh.as_of(NOW, path)
    assert stored["vector"][0].to_list() == [0.5] * 384
    short = good.with_columns(pl.lit([1.0, 2.0], dtype=pl.List(pl.Float32)).alias("vector"))
    with pytest.raises(IngestError, match="vector has 2 elements, field has dimension 384"):
        wh.ingest(short, source="news", now=NOW)


def test_firm_entity_fields_are_added_to_the_catalog(wh):
    path = "firm_ZZTOP.earnings.eps_actual"
    wh.ingest(
        batch([(path, dt.datetime(2024, 1, 1), 1.25, dt.datetime(2024, 4, 25))]),
        source="earnings",
        now=NOW,
    )
    fields = wh.sql("SELECT path, n_observations FROM fields WHERE path = $p", {"p": path})
    assert fields.rows() == [(path, 1)]


def test_fields_view_reports_coverage(wh):
    wh.ingest(monthly_cpi(12), source="fred", now=NOW)
    row = wh.sql("SELECT * FROM fields WHERE path = $p", {"p": CPI}).row(0, named=True)
    assert row["n_observations"] == 12
    assert row["sources"] == ["fred"]
    assert row["first_observed"] == dt.datetime(2020, 1, 1)
    assert wh.sql("SELECT count(*) n FROM fields")["n"][0] == len(wh.schema)


def test_as_of_filters_by_prefix_glob_and_window(wh):
    wh.ingest(monthly_cpi(12), source="fred", now=NOW)
    wh.ingest(
        batch(
            [
                (UNRATE, dt.datetime(2020, 3, 1), 4.4, dt.datetime(2020, 4, 3)),
                (VIX, dt.datetime(2020, 3, 16), 82.7, dt.datetime(2020, 3, 16, 21)),
            ]
        ),
        source="fred",
        now=NOW,
    )
    assert set(wh.as_of(NOW, "country_us.macro")["field_path"]) == {CPI, UNRATE}
    assert set(wh.as_of(NOW, ["*.vix"])["field_path"]) == {VIX}
    window = wh.as_of(NOW, CPI, start="2020-03-01", end="2020-05-01")
    assert window["observed_at"].to_list() == [
        dt.datetime(2020, 3, 1),
        dt.datetime(2020, 4, 1),
        dt.datetime(2020, 5, 1),
    ]
    with pytest.raises(UnknownFieldError, match="did you mean"):
        wh.as_of(NOW, "country_us.macro.inflaton")


def test_wide_frame_is_calendar_aligned_and_point_in_time(wh):
    wh.ingest(monthly_cpi(6), source="fred", now=NOW)
    wh.ingest(
        batch(
            [
                (UNRATE, dt.datetime(2020, 2, 1), 3.5, dt.datetime(2020, 3, 6)),
                (UNRATE, dt.datetime(2020, 2, 1), 3.6, dt.datetime(2020, 4, 3)),
            ]
        ),
        source="fred",
        now=NOW,
    )
    wide = wh.as_of(
        dt.datetime(2020, 3, 20),
        ["country_us.macro"],
        wide=True,
        every="1mo",
        start="2019-12-01",
        end="2020-04-01",
    )
    assert wide.columns == ["date", CPI, UNRATE]
    assert wide["date"].to_list() == [dt.datetime(2019, 12, 1)] + [
        dt.datetime(2020, m, 1) for m in range(1, 5)
    ]
    # CPI for month m is known in month m+1 (12th): as of Mar 20 Jan and Feb are known.
    assert wide[CPI].to_list()[:4] == [None, 2.0, 2.1, None]
    assert wide[UNRATE].to_list() == [None, None, 3.5, None, None]


def test_wide_daily_sql_view(wh):
    wh.ingest(monthly_cpi(2), source="fred", now=NOW)
    view = wh.sql("SELECT * FROM wide_daily")
    assert view.columns == ["day", CPI]
    assert len(view) == 32  # 2020-01-01 .. 2020-02-01, every day
    assert view[CPI].drop_nulls().to_list() == pytest.approx([2.0, 2.1])


def test_parquet_export_is_partitioned_and_complete(wh, tmp_path):
    wh.ingest(monthly_cpi(24), source="fred", now=NOW)
    dest = wh.export_parquet(tmp_path / "lake")
    assert sorted(p.name for p in (dest / "observations").iterdir()) == ["source=fred"]
    years = sorted(p.name for p in (dest / "observations" / "source=fred").iterdir())
    assert years == ["year=2020", "year=2021"]
    lake = pl.read_parquet(dest / "observations", hive_partitioning=True)
    assert len(lake) == 24 and set(lake["source"]) == {"fred"}
    assert len(pl.read_parquet(dest / "field_catalog.parquet")) == len(wh.schema)
    # a second export replaces the first whole
    wh.ingest(
        batch([(UNRATE, dt.datetime(2022, 1, 1), 4.0, dt.datetime(2022, 2, 4))]),
        source="fred",
        now=NOW,
    )
    wh.export_parquet(dest)
    assert len(pl.read_parquet(dest / "observations", hive_partitioning=True)) == 25
    assert not list(tmp_path.glob(".lake*"))


def test_readers_see_whole_commits_only(wh):
    wh.ingest(monthly_cpi(12), source="fred", now=NOW)
    days = pl.datetime_range(dt.datetime(2000, 1, 3), dt.datetime(2019, 12, 31), "1d", eager=True)
    fields = ["financial.equities.vix", "financial.equities.sp500", "financial.fx.eurusd"]
    totals = [12 + len(days) * k for k in range(len(fields) + 1)]
    seen: set[int] = set()
    errors: list[str] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            try:
                seen.add(wh.count())
            except Exception as err:  # any error in a reader is a failure
                errors.append(repr(err))

    readers = [threading.Thread(target=read) for _ in range(3)]
    for reader in readers:
        reader.start()
    try:
        for path in fields:
            frame = pl.DataFrame(
                {
                    "field_path": path,
                    "observed_at": days,
                    "value": 20.0,
                    "known_at": days.dt.offset_by("21h"),
                }
            )
            wh.ingest(frame, source="yahoo", now=NOW)
    finally:
        done.set()
        for reader in readers:
            reader.join()
    assert errors == []
    assert seen <= set(totals)
    assert wh.count() == totals[-1]


HOLD_LOCK = """
import duckdb, sys, time
con = duckdb.connect(sys.argv[1])
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
con.close()
"""


def _hold_lock(path, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(path), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_second_writer_process_waits_for_the_lock(wh):
    proc = _hold_lock(wh.path, 1.5)
    try:
        report = wh.ingest(monthly_cpi(3), source="fred", now=NOW)
    finally:
        proc.wait(timeout=30)
    assert report.rows_inserted == 3


def test_a_writer_gives_up_clearly_after_the_lock_timeout(tmp_path):
    wh = Warehouse(tmp_path / "wh.duckdb", lock_timeout=0.3)
    proc = _hold_lock(wh.path, 3)
    try:
        with pytest.raises(WarehouseLockedError, match="locked by another process"):
            wh.ingest(monthly_cpi(3), source="fred", now=NOW)
    finally:
        proc.kill()
        proc.wait()
    assert wh.count() == 0


def test_read_only_warehouse_refuses_writes_and_missing_files(wh, tmp_path):
    wh.ingest(monthly_cpi(3), source="fred", now=NOW)
    reader = Warehouse(wh.path, read_only=True)
    with pytest.raises(PermissionError):
        reader.ingest(monthly_cpi(3), source="fred")
    with pytest.raises(WarehouseNotFoundError, match="no warehouse at"):
        Warehouse(tmp_path / "missing.duckdb", read_only=True)


def test_bad_source_names_are_rejected(wh):
    with pytest.raises(ValueError, match="source name"):
        wh.ingest(monthly_cpi(1), source="fred; DROP TABLE observations")


def test_sql_is_parametrized(wh):
    wh.ingest(monthly_cpi(3), source="fred", now=NOW)
    hostile = "x' OR '1'='1"
    assert wh.sql("SELECT * FROM observations WHERE field_path = $p", {"p": hostile}).is_empty()


def test_same_value_republished_later_is_kept_as_its_own_vintage(wh):
    """A vintage that repeats the value before it is stored: were it dropped, a vintage
    with another value arriving later in between would hide it from as_of."""
    jan = dt.datetime(2024, 1, 1)
    first = batch([(UNRATE, jan, 3.7, dt.datetime(2024, 2, 2))])
    republished = batch([(UNRATE, jan, 3.7, dt.datetime(2024, 4, 5))])
    wh.ingest(first, source="fred", now=NOW)
    assert wh.ingest(republished, source="fred", now=NOW).rows_inserted == 1
    wh.ingest(batch([(UNRATE, jan, 3.9, dt.datetime(2024, 3, 8))]), source="fred", now=NOW)
    assert wh.count() == 3
    assert wh.as_of(dt.datetime(2024, 3, 20), UNRATE)["value"].to_list() == [3.9]
    assert wh.as_of(dt.datetime(2024, 4, 5), UNRATE)["value"].to_list() == [3.7]
    # an identical re-ingest is still a no-op
    again = wh.ingest(republished, source="fred", now=NOW)
    assert (again.rows_inserted, again.rows_unchanged) == (0, 1)
    assert wh.count() == 3


def test_a_failure_inside_the_transaction_writes_nothing(wh, monkeypatch):
    import warehouse.store as store

    wh.ingest(monthly_cpi(3), source="fred", now=NOW)
    digest = wh.content_hash()

    def fail(con):
        raise RuntimeError("disk full")

    monkeypatch.setattr(store, "_refresh_wide_view", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        wh.ingest(monthly_cpi(12, offset=1.0), source="fred", now=NOW)
    assert wh.content_hash() == digest
    assert wh.sql("SELECT count(*) n FROM ingest_runs")["n"][0] == 1


def test_restatements_in_quick_succession_each_get_their_own_vintage(wh):
    wh.ingest(monthly_cpi(3), source="fred", now=NOW)
    for offset in (0.5, 0.7, 0.9):  # all at the same wall-clock instant
        report = wh.ingest(monthly_cpi(3, offset=offset), source="fred", now=NOW)
        assert report.rows_revised == 3
    assert wh.count() == 12
    assert wh.as_of(dt.datetime(2025, 7, 1), CPI)["value"].to_list() == pytest.approx(
        [2.9, 3.0, 3.1]
    )


def test_two_vintages_of_one_period_restated_in_one_batch(wh):
    month = dt.datetime(2020, 1, 1)
    first, second = dt.datetime(2020, 2, 12), dt.datetime(2020, 3, 12)
    wh.ingest(batch([(CPI, month, 2.0, first), (CPI, month, 2.1, second)]), source="fred", now=NOW)
    report = wh.ingest(
        batch([(CPI, month, 2.5, first), (CPI, month, 2.6, second)]), source="fred", now=NOW
    )
    assert report.rows_revised == 2
    vintages = wh.sql("SELECT value, known_at FROM observations ORDER BY known_at")
    assert vintages["value"].to_list() == [2.0, 2.1, 2.5, 2.6]
    # the restatement of the later vintage is the later one, so it is the latest value
    assert wh.as_of(None, CPI)["value"].to_list() == [2.6]


def test_a_value_outside_its_fields_plausible_range_is_refused_naming_the_bound(wh):
    vix = "financial.equities.vix"
    day = dt.datetime(2021, 3, 1)
    next_day = day + dt.timedelta(days=1)
    frame = batch([(vix, day, 22.5, day), (vix, next_day, 2e9, next_day)])
    with pytest.raises(IngestError) as caught:
        wh.ingest(frame, source="yahoo", now=NOW)
    message = str(caught.value)
    assert f"field '{vix}', row 1: value 2000000000.0 is outside" in message
    assert "plausible range [0.0, 200.0]" in message and "allow_outliers=True" in message
    assert wh.count() == 0
    # the escape for a real one
    wh.ingest(frame, source="yahoo", now=NOW, allow_outliers=True)
    assert sorted(wh.sql("SELECT value FROM observations")["value"]) == [22.5, 2e9]


def test_every_observable_scalar_field_declares_a_plausible_range():
    from warehouse.catalog import FIELDS, TEMPLATES

    for field in (*FIELDS, *TEMPLATES):
        observable_scalar = not field.latent and field.dimension == 1
        assert (field.bounds is not None) == observable_scalar, field.path
        if field.bounds is not None:
            assert field.bounds[0] < field.bounds[1], field.path
