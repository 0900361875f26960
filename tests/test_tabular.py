"""The generic CSV/Parquet adapter: mapping, known_at rules, every bad input, warehouse."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from ingest.tables import TabularError
from ingest.tabular import UnknownMappedFieldError, tabular_adapter
from warehouse.schema import UnknownFieldError
from warehouse.store import Warehouse
from warehouse.validation import IngestError

CPI = "country_us.macro.inflation.headline_cpi"
UNRATE = "country_us.macro.labor.unemployment_rate"
MAPPING = {"cpi": CPI, "unrate": UNRATE}


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


@pytest.fixture
def good_csv(tmp_path) -> Path:
    return write(
        tmp_path / "macro.csv",
        "date,cpi,unrate,released\n"
        "2020-01-01,257.9,3.5,2020-02-13\n"
        "2020-02-01,258.7,,2020-03-11\n"  # empty cell: missing, dropped
        "2020-03-01, 258.1 ,4.4,2020-04-10\n",
    )


def rows(frame: pl.DataFrame, path: str) -> list[tuple]:
    return (
        frame.filter(pl.col("field_path") == path).select("observed_at", "value", "known_at").rows()
    )


# -- happy paths -----------------------------------------------------------------------


def test_csv_with_mapping_and_known_at_column(good_csv):
    spec, frame = tabular_adapter(good_csv, MAPPING, known_at_column="released")
    assert spec.name == "tabular_macro"
    assert spec.key_to_path == MAPPING
    assert frame.schema == pl.Schema(
        {
            "field_path": pl.Utf8,
            "observed_at": pl.Datetime("us"),
            "value": pl.Float64,
            "known_at": pl.Datetime("us"),
        }
    )
    assert rows(frame, CPI) == [
        (dt.datetime(2020, 1, 1), 257.9, dt.datetime(2020, 2, 13)),
        (dt.datetime(2020, 2, 1), 258.7, dt.datetime(2020, 3, 11)),
        (dt.datetime(2020, 3, 1), 258.1, dt.datetime(2020, 4, 10)),
    ]
    assert rows(frame, UNRATE) == [
        (dt.datetime(2020, 1, 1), 3.5, dt.datetime(2020, 2, 13)),
        (dt.datetime(2020, 3, 1), 4.4, dt.datetime(2020, 4, 10)),
    ]


def test_parquet_with_typed_columns(tmp_path):
    path = tmp_path / "macro.parquet"
    pl.DataFrame(
        {
            "day": [dt.date(2021, 1, 1), dt.date(2021, 2, 1), dt.date(2021, 3, 1)],
            "cpi": [261.6, None, 264.9],
            "known": [
                dt.datetime(2021, 2, 10, 13, 30, tzinfo=dt.UTC),
                dt.datetime(2021, 3, 10, 13, 30, tzinfo=dt.UTC),
                dt.datetime(2021, 4, 13, 12, 30, tzinfo=dt.UTC),
            ],
        }
    ).write_parquet(path)
    spec, frame = tabular_adapter(
        path, {"cpi": CPI}, date_column="day", known_at_column="known", name="my_cpi"
    )
    assert spec.name == "my_cpi"
    assert rows(frame, CPI) == [
        (dt.datetime(2021, 1, 1), 261.6, dt.datetime(2021, 2, 10, 13, 30)),
        (dt.datetime(2021, 3, 1), 264.9, dt.datetime(2021, 4, 13, 12, 30)),
    ]


def test_release_lag_and_default_known_at(good_csv):
    _, lagged = tabular_adapter(good_csv, {"cpi": CPI}, release_lag="1mo12d")
    assert lagged["known_at"].to_list() == [
        dt.datetime(2020, 2, 13),
        dt.datetime(2020, 3, 13),
        dt.datetime(2020, 4, 13),
    ]
    _, same = tabular_adapter(good_csv, {"cpi": CPI})
    assert same["known_at"].to_list() == same["observed_at"].to_list()


def test_bom_other_encoding_separator_and_skipped_meta_row(tmp_path):
    bom = write(tmp_path / "bom.csv", "\ufeffdate,cpi\n2020-01-01,1.5\n")
    assert tabular_adapter(bom, {"cpi": CPI})[1]["value"].to_list() == [1.5]
    # FRED-MD style: M/D/YYYY dates, a "Transform:" row under the header, ';' and cp1252.
    text = "sasdate;CPI\xa0index;UNRATE\nTransform:;6;2\n1/1/2020;257.9;3.5\n2/1/2020;;3.5\n"
    path = write(tmp_path / "md.csv", text, "windows-1252")
    _, frame = tabular_adapter(
        path,
        {"CPI\xa0index": CPI, "UNRATE": UNRATE},
        date_column="sasdate",
        encoding="windows-1252",
        separator=";",
        skip_rows_after_header=1,
        date_format="%m/%d/%Y",
    )
    assert rows(frame, CPI) == [(dt.datetime(2020, 1, 1), 257.9, dt.datetime(2020, 1, 1))]
    assert len(rows(frame, UNRATE)) == 2


def test_missing_values_and_exact_duplicates(tmp_path):
    path = write(tmp_path / "f.csv", "date,cpi\n2020-01-01,.\n2020-02-01,2\n2020-02-01,2\n")
    _, frame = tabular_adapter(path, {"cpi": CPI}, missing_values=["."])
    assert frame["value"].to_list() == [2.0]


def test_recorded_fred_series(shared_data):
    path = shared_data / "macro" / "fred" / "UNRATE.csv"
    _, frame = tabular_adapter(path, {"value": UNRATE}, release_lag="1mo7d")
    april = frame.filter(pl.col("observed_at") == dt.datetime(2020, 4, 1)).row(0, named=True)
    assert april["value"] == pytest.approx(14.8)
    assert april["known_at"] == dt.datetime(2020, 5, 8)
    # 2025-10 is empty in the file (no release during the shutdown): dropped, no error.
    assert frame.filter(pl.col("observed_at") == dt.datetime(2025, 10, 1)).is_empty()


# -- bad inputs ------------------------------------------------------------------------


def expect_error(path: Path, mapping=None, **kwargs) -> TabularError:
    with pytest.raises(TabularError) as info:
        tabular_adapter(path, mapping or {"cpi": CPI}, **kwargs)
    assert path.name in str(info.value)  # every error names the file
    return info.value


def test_file_missing(tmp_path):
    err = expect_error(tmp_path / "nope.csv")
    assert "does not exist" in str(err)


def test_unknown_field_path_names_column_and_suggests(good_csv):
    with pytest.raises(UnknownMappedFieldError) as info:
        tabular_adapter(good_csv, {"cpi": "country_us.macro.inflation.headline_cpl"})
    err = info.value
    assert isinstance(err, UnknownFieldError) and isinstance(err, TabularError)
    assert err.column == "cpi" and "column 'cpi'" in str(err)
    assert CPI in err.suggestions and CPI in str(err)
    assert "macro.csv" in str(err)


def test_mapping_column_not_in_file_lists_columns(good_csv):
    err = expect_error(good_csv, {"CPI_X": CPI})
    assert err.column == "CPI_X"
    assert "'date', 'cpi', 'unrate', 'released'" in str(err)


def test_date_column_missing(good_csv):
    err = expect_error(good_csv, date_column="Date")
    assert err.column == "Date" and "did you mean 'date'" in str(err)


@pytest.mark.parametrize(
    ("body", "row", "line", "column", "message"),
    [
        ("2020-01-01,1\n2020-13-01,2\n", 2, 3, "date", "cannot parse date '2020-13-01'"),
        ("2020-01-01,1\n,2\n", 2, 3, "date", "date is missing"),
        ("2020-01-01,1\n2020-02-01,1.2.3\n", 2, 3, "cpi", "'1.2.3' is not a number"),
        ("2020-01-01,NaN\n", 1, 2, "cpi", "value is NaN"),
        ("2020-01-01,1\n2020-02-01,-inf\n", 2, 3, "cpi", "value is infinite"),
        ("2020-01-01,1\n2020-01-01,2\n", 2, 3, "cpi", "appears twice with different values"),
    ],
)
def test_bad_cells_name_row_line_and_column(tmp_path, body, row, line, column, message):
    err = expect_error(write(tmp_path / "bad.csv", "date,cpi\n" + body))
    assert (err.row, err.line, err.column) == (row, line, column)
    assert f"row {row} (line {line})" in str(err) and f"column '{column}'" in str(err)
    assert message in str(err)


def test_every_bad_cell_is_reported(tmp_path):
    path = write(tmp_path / "bad.csv", "date,cpi,unrate\n2020-01-01,x,1\n2020-02-01,1,y\n")
    err = expect_error(path, MAPPING)
    assert len(err.problems) == 2
    assert "row 1 (line 2), column 'cpi'" in str(err)
    assert "row 2 (line 3), column 'unrate'" in str(err)


def test_wrong_separator(tmp_path):
    err = expect_error(write(tmp_path / "semi.csv", "date;cpi\n2020-01-01;1\n"))
    assert "one column found; wrong separator?" in str(err)
    assert "separator=';'" in str(err)


def test_bad_encoding_names_offset_and_encoding_to_try(tmp_path):
    path = write(tmp_path / "cp.csv", "date,cpi\n2020-01-01,1\n2020-02-01,2\xa0\n", "cp1252")
    err = expect_error(path)
    assert "byte offset 34" in str(err) and "0xa0" in str(err)
    assert "windows-1252" in str(err) and "utf8-lossy" in str(err)
    assert (err.row, err.line, err.column) == (2, 3, "cpi")


def test_truncated_and_overlong_rows(tmp_path):
    cut = write(tmp_path / "cut.csv", "date,cpi,unrate\n2020-01-01,1,2\n2020-02-01,3\n")
    err = expect_error(cut, MAPPING)
    assert (err.row, err.line) == (2, 3) and "truncated row: 2 of 3 fields" in str(err)
    long = write(tmp_path / "long.csv", "date,cpi\n2020-01-01,1\n2020-02-01,3,4\n")
    err = expect_error(long)
    assert (err.row, err.line) == (2, 3) and "3 fields, the header has 2" in str(err)


def test_known_at_problems(tmp_path):
    path = write(tmp_path / "k.csv", "date,cpi,rel\n2020-01-01,1,2019-12-01\n2020-02-01,2,soon\n")
    err = expect_error(path, known_at_column="rel")
    assert "known_at 2019-12-01 00:00:00.000000 is before observed_at" in str(err)
    assert "row 2 (line 3), column 'rel': cannot parse known_at 'soon'" in str(err)
    err = expect_error(path, release_lag="-3d")
    assert "release_lag" in str(err)


def test_quoted_cell_over_two_lines_gives_rows_without_lines(tmp_path):
    text = 'date,note,cpi\n2020-01-01,"two\nlines",1\n2020-02-01,"a, b",x\n'
    err = expect_error(write(tmp_path / "q.csv", text))
    assert (err.row, err.line, err.column) == (2, None, "cpi")
    assert "q.csv, row 2, column 'cpi': 'x' is not a number" in str(err)


def test_empty_and_unreadable_files(tmp_path):
    assert "empty" in str(expect_error(write(tmp_path / "empty.csv", "")))
    bad = write(tmp_path / "broken.parquet", "not parquet")
    assert "Parquet" in str(expect_error(bad))


# -- into the warehouse ------------------------------------------------------------------


def test_ingest_reingest_and_bad_file_leaves_warehouse_unchanged(tmp_path, good_csv):
    wh = Warehouse(tmp_path / "w.duckdb")
    spec, frame = tabular_adapter(good_csv, MAPPING, known_at_column="released")
    first = wh.ingest(frame, source=spec.name)
    assert first.rows_inserted == 5
    count, digest = wh.count(), wh.content_hash()
    again = wh.ingest(tabular_adapter(good_csv, MAPPING, known_at_column="released")[1],
                      source=spec.name)  # fmt: skip
    assert (again.rows_inserted, again.rows_revised, again.rows_unchanged) == (0, 0, 5)
    assert (wh.count(), wh.content_hash()) == (count, digest)

    bad = write(tmp_path / "bad.csv", "date,cpi\n2020-04-01,260\n2020-05-01,oops\n")
    with pytest.raises(TabularError):
        wh.ingest(tabular_adapter(bad, {"cpi": CPI})[1], source=spec.name)
    # A file the adapter accepts but the warehouse rejects (known in the future): no rows.
    future = write(tmp_path / "future.csv", "date,cpi,rel\n2020-04-01,260,2999-01-01\n")
    with pytest.raises(IngestError):
        wh.ingest(tabular_adapter(future, {"cpi": CPI}, known_at_column="rel")[1], source=spec.name)
    assert (wh.count(), wh.content_hash()) == (count, digest)


def test_a_date_that_reads_two_ways_is_refused_without_a_format(tmp_path):
    path = write(tmp_path / "f.csv", "date,cpi\n2021-01-01,1.0\n02/01/2021,1.5\n")
    with pytest.raises(TabularError) as info:
        tabular_adapter(path, {"cpi": CPI})
    message = str(info.value)
    assert "row 2" in message and "'02/01/2021'" in message and "date_format" in message
    # with a format it reads one way, the one the user said
    us = write(tmp_path / "us.csv", "date,cpi\n02/01/2021,1.5\n")
    _, frame = tabular_adapter(us, {"cpi": CPI}, date_format="%m/%d/%Y")
    assert frame["observed_at"].to_list() == [dt.datetime(2021, 2, 1)]
