"""Every SQL and Python example of docs/sql.md, run against a warehouse of the synthetic world."""

import re
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from ingest.registry import fetch
from ingest.sources import SourceSettings
from warehouse.store import Warehouse

DOC = Path(__file__).resolve().parents[1] / "docs" / "sql.md"
BLOCK = re.compile(r"^ *```(\w+)\n(.*?)^ *```", re.MULTILINE | re.DOTALL)
COLUMNS = re.compile(r"^-- columns: (.+)$", re.MULTILINE)


def _blocks(language: str) -> list[str]:
    return [body for lang, body in BLOCK.findall(DOC.read_text()) if lang == language]


SQL = _blocks("sql")


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    """The synthetic world's scalar sources for 2015-2019, with its Parquet export.

    $GUWM_WAREHOUSE points at it, as it would for a user running the examples.
    """
    path = tmp_path_factory.mktemp("sql_examples") / "warehouse.duckdb"
    wh = Warehouse(path)
    settings = SourceSettings(start_date="2015-01-01", end_date="2019-12-31")
    for source in ("fred", "yahoo", "pmi", "earnings"):
        data = fetch(source, settings).raise_if_nothing().data
        wh.ingest(data, source=settings.warehouse_source(source))
    wh.export_parquet()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GUWM_WAREHOUSE", str(path))
        yield Warehouse(path, read_only=True)


def test_the_doc_has_the_examples():
    assert len(SQL) >= 7
    assert all(COLUMNS.search(query) for query in SQL), "every SQL block names its columns"
    assert len(_blocks("python")) >= 3


@pytest.mark.parametrize("query", SQL, ids=[f"sql{i}" for i in range(len(SQL))])
def test_sql_example_returns_its_columns(warehouse, query):
    expected = [c.strip() for c in COLUMNS.search(query).group(1).split(",")]
    result = warehouse.sql(query)
    assert result.columns == expected
    assert len(result) > 0


def test_point_in_time_example_matches_as_of(warehouse):
    (query,) = [q for q in SQL if "TIMESTAMP '2019-06-30 00:00:00'" in q]
    from_sql = warehouse.sql(query)
    as_of = (
        warehouse.as_of("2019-06-30", "country_us.macro")
        .filter(pl.col("observed_at") == pl.col("observed_at").max().over("field_path", "source"))
        .select("field_path", "source", pl.col("observed_at").dt.date().alias("period"), "value")
    )
    assert from_sql.drop("known_at").equals(as_of)


def test_python_examples_run(warehouse):
    namespace: dict[str, object] = {}
    for code in _blocks("python"):
        exec(compile(code, str(DOC), "exec"), namespace)
    assert namespace["path"] == warehouse.path
    n_cpi = warehouse.sql(
        "SELECT count(*) AS n FROM observations "
        "WHERE field_path = 'country_us.macro.inflation.headline_cpi'"
    )["n"][0]
    assert len(namespace["cpi"]) == namespace["cpi_vintages"].num_rows == n_cpi > 50
    n_fields = warehouse.sql("SELECT count(*) AS n FROM fields WHERE n_observations > 0")["n"][0]
    assert namespace["coverage"].num_rows == n_fields
    assert len(namespace["firm"]) > 0
    sources = warehouse.sql("SELECT DISTINCT source FROM observations")["source"]
    assert set(namespace["by_source"]["source"]) == set(sources)
