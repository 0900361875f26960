"""The Parquet lake: a fixed schema, read back unchanged by DuckDB, Polars and PyArrow,
atomic exports to file:// and memory:// URLs, and canvases built from it."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path

import dagster as dg
import duckdb
import fsspec
import numpy as np
import polars as pl
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from canvas.layout import compile_layout
from canvas.materialize import CanvasManifest, materialize_canvas
from canvas.sources import sources_from_warehouse
from dagster_defs.canvas_assets import canvas_tensors
from dagster_defs.cli import main
from dagster_defs.ingest_assets import warehouse_parquet
from dagster_defs.resources import ArtifactsResource, SourcesResource, WarehouseResource
from ingest.synthetic import SyntheticWorldConfig, generate_world
from warehouse import lake
from warehouse.lake import LakeNotFoundError, LakeReader, lake_columns
from warehouse.reader import observations_hash
from warehouse.store import Warehouse

NOW = dt.datetime(2025, 6, 1)
NEWS = "narratives.news.embedding"
COLUMNS = ["field_path", "observed_at", "value", "vector", "source", "known_at", "ingested_at"]
EXPECTED_COLUMNS = {  # the documented schema: changing it is a format change
    "observations": [
        ("field_path", "string", False, False),
        ("observed_at", "timestamp[us]", False, False),
        ("value", "double", True, False),
        ("vector", "list<element: float>", True, False),
        ("known_at", "timestamp[us]", False, False),
        ("ingested_at", "timestamp[us]", False, False),
        ("run_id", "string", False, False),
        ("source", "string", False, True),
        ("year", "int32", False, True),
    ],
    "field_catalog": [
        ("path", "string", False, False),
        ("domain", "string", False, False),
        ("semantic_type", "string", False, False),
        ("unit", "string", False, False),
        ("period", "string", False, False),
        ("period_days", "double", False, False),
        ("dimension", "int32", False, False),
        ("loss_weight", "double", False, False),
        ("latent", "bool", False, False),
    ],
    "ingest_runs": [
        ("run_id", "string", False, False),
        ("source", "string", False, False),
        ("started_at", "timestamp[us]", False, False),
        ("finished_at", "timestamp[us]", False, False),
        ("rows_in", "int64", False, False),
        ("rows_inserted", "int64", False, False),
        ("rows_revised", "int64", False, False),
        ("rows_unchanged", "int64", False, False),
    ],
}


def news_batch(start: str, end: str) -> pl.DataFrame:
    """A daily 384-d embedding (the lake's vector column)."""
    days = pl.datetime_range(
        dt.datetime.fromisoformat(start), dt.datetime.fromisoformat(end), "1d", eager=True
    )
    vectors = np.random.default_rng(0).normal(size=(len(days), 384)).astype(np.float32)
    return pl.DataFrame(
        {
            "field_path": NEWS,
            "observed_at": days,
            "vector": pl.Series(vectors).cast(pl.List(pl.Float32)),
            "known_at": days + dt.timedelta(hours=23),
        }
    )


def fill(wh: Warehouse, start: str, end: str) -> None:
    world = generate_world(SyntheticWorldConfig(start=start, end=end))
    for name, frame in world.sources.items():
        wh.ingest(frame, source=f"synthetic_{name}", now=NOW)
    wh.ingest(news_batch(start, end), source="synthetic_news", now=NOW)


@pytest.fixture(scope="module")
def wh(tmp_path_factory) -> Warehouse:
    wh = Warehouse(tmp_path_factory.mktemp("lake") / "wh.duckdb")
    fill(wh, "2012-01-01", "2014-12-31")
    return wh


@pytest.fixture
def memory_url():
    url = f"memory://guwm-test-{uuid.uuid4().hex[:8]}"
    yield url
    fs, root = fsspec.core.url_to_fs(url)
    if fs.exists(root):
        fs.rm(root, recursive=True)


def stored(wh: Warehouse | LakeReader) -> pl.DataFrame:
    return wh.sql(f"SELECT {', '.join(COLUMNS)}, run_id FROM observations").sort(COLUMNS[:6])


def same_rows(frame: pl.DataFrame, wh: Warehouse) -> bool:
    return frame.select(*COLUMNS, "run_id").sort(COLUMNS[:6]).equals(stored(wh))


def test_the_schema_is_stable_and_spark_friendly(wh, tmp_path):
    root = wh.export_parquet(tmp_path / "lake")
    manifest = json.loads((root / lake.MANIFEST).read_text())
    described = {
        table: [(c["name"], c["type"], c["nullable"], c["partition"]) for c in columns]
        for table, columns in manifest["columns"].items()
    }
    assert described == EXPECTED_COLUMNS
    assert manifest["columns"] == lake_columns()
    # the files hold exactly the non-partition columns, with those types
    for table, columns in EXPECTED_COLUMNS.items():
        files = manifest["files"][table]
        schema = pq.read_schema(root / files[0]["path"])
        assert [(f.name, str(f.type), f.nullable) for f in schema] == [
            (name, type_, nullable) for name, type_, nullable, partition in columns if not partition
        ]
    # Spark-friendly physical types: INT64 microsecond timestamps without a zone (no INT96,
    # no nanoseconds), signed integers only, standard 3-level lists
    first = root / manifest["files"]["observations"][0]["path"]
    parquet = pq.ParquetFile(first).schema
    observed = parquet.column(1)
    assert observed.physical_type == "INT64"
    assert "isAdjustedToUTC=false" in str(observed.logical_type)
    assert "timeUnit=microseconds" in str(observed.logical_type)
    assert parquet.column(3).path == "vector.list.element"
    assert not any(
        "UINT" in str(parquet.column(i).logical_type).upper() for i in range(len(parquet))
    )
    dirs = sorted(p.name for p in (root / "observations").iterdir())
    assert dirs == [f"source=synthetic_{s}" for s in ("earnings", "fred", "news", "pmi", "yahoo")]
    assert sorted(p.name for p in (root / "observations" / dirs[0]).iterdir()) == [
        "year=2012",
        "year=2013",
        "year=2014",
    ]


def test_a_file_url_export_reads_back_unchanged_in_duckdb_polars_and_pyarrow(wh, tmp_path):
    root = wh.export_parquet((tmp_path / "lake").as_uri())
    assert root == tmp_path / "lake"
    glob = f"{root}/observations/**/*.parquet"
    con = duckdb.connect()
    con.execute(
        f"CREATE VIEW observations AS SELECT * FROM read_parquet('{glob}', hive_partitioning=true)"
    )
    assert con.execute("SELECT count(*) FROM observations").fetchall() == [(wh.count(),)]
    assert observations_hash(con) == wh.content_hash()
    assert same_rows(pl.from_arrow(con.sql("SELECT * FROM observations").to_arrow_table()), wh)

    polars = pl.scan_parquet(root / "observations", hive_partitioning=True).collect()
    assert same_rows(polars, wh)

    dataset = ds.dataset(root / "observations", format="parquet", partitioning="hive")
    assert dataset.count_rows() == wh.count()
    assert same_rows(pl.from_arrow(dataset.to_table()), wh)

    reader = LakeReader((tmp_path / "lake").as_uri())
    assert reader.manifest.content_hash == reader.content_hash() == wh.content_hash()
    assert reader.manifest.observations == wh.count()
    catalog = pl.read_parquet(root / "field_catalog.parquet")
    assert catalog.equals(wh.sql("SELECT * FROM field_catalog ORDER BY path"), null_equal=True)


def test_a_memory_url_export_is_a_committed_snapshot(wh, memory_url):
    location = wh.export_parquet(memory_url)
    fs, path = fsspec.core.url_to_fs(memory_url)
    assert location == fs.unstrip_protocol(path)
    snapshot = json.loads(fs.cat_file(f"{path}/{lake.LATEST}"))["snapshot"]
    snapshot_dir = f"{path}/{lake.SNAPSHOTS}/{snapshot}"
    assert fs.isfile(f"{snapshot_dir}/{lake.MANIFEST}")

    reader = LakeReader(memory_url)
    assert reader.root == snapshot_dir and reader.manifest.snapshot == snapshot
    assert reader.count() == wh.count() and reader.content_hash() == wh.content_hash()
    assert stored(reader).equals(stored(wh))
    for view in ("latest", "fields"):
        query = f"SELECT * FROM {view} ORDER BY ALL"
        assert reader.sql(query).equals(wh.sql(query), null_equal=True)
    assert reader.vintages("country_us.macro").equals(wh.vintages("country_us.macro"))
    assert reader.as_of("2014-06-30", NEWS).equals(wh.as_of("2014-06-30", NEWS))

    dataset = ds.dataset(
        f"{snapshot_dir}/observations", filesystem=fs, format="parquet", partitioning="hive"
    )
    assert same_rows(pl.scan_pyarrow_dataset(dataset).collect(), wh)
    con = duckdb.connect()
    con.register_filesystem(fs)
    n = con.execute(
        f"SELECT count(*) FROM read_parquet('{reader.location('observations')}/**/*.parquet', "
        "hive_partitioning=true)"
    ).fetchall()
    assert n == [(wh.count(),)]


def test_old_snapshots_are_pruned_and_readers_keep_their_snapshot(wh, memory_url):
    fs, path = fsspec.core.url_to_fs(memory_url)
    wh.export_parquet(memory_url)
    pinned = LakeReader(memory_url)
    for _ in range(3):
        wh.export_parquet(memory_url, keep=2)
    snapshots = fs.ls(f"{path}/{lake.SNAPSHOTS}", detail=False)
    assert len(snapshots) == 2
    assert LakeReader(memory_url).root == sorted(snapshots)[-1]
    assert not fs.exists(pinned.root)  # readers outliving `keep` exports lose their files
    with pytest.raises(ValueError, match="keep"):
        wh.export_parquet(memory_url, keep=0)


@pytest.mark.parametrize("kind", ["file", "memory"])
def test_an_interrupted_export_leaves_the_previous_one_readable(
    kind, tmp_path, memory_url, monkeypatch
):
    wh = Warehouse(tmp_path / "wh.duckdb")
    fill(wh, "2013-01-01", "2013-06-30")
    url = (tmp_path / "lake").as_uri() if kind == "file" else memory_url
    wh.export_parquet(url)
    before = LakeReader(url)
    count, digest = before.count(), before.content_hash()
    fill(wh, "2013-07-01", "2013-12-31")
    assert wh.count() > count

    def fail(*args, **kwargs):  # after the observation files, before the catalog
        raise OSError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(lake.pq, "write_table", fail)
        with pytest.raises(OSError, match="disk full"):
            wh.export_parquet(url)
    after = LakeReader(url)
    assert after.manifest.snapshot == before.manifest.snapshot
    assert (after.count(), after.content_hash()) == (count, digest)
    fs, path = fsspec.core.url_to_fs(url)
    if kind == "file":
        assert sorted(p.name for p in tmp_path.iterdir()) == ["lake", "wh.duckdb"]
        return
    # the failed snapshot was removed; a writer that died leaves files nobody reads
    assert fs.ls(f"{path}/{lake.SNAPSHOTS}", detail=False) == [after.root]
    stray = f"{path}/{lake.SNAPSHOTS}/00000000T000000000000Z-dead/observations/x.parquet"
    fs.pipe_file(stray, b"not parquet")
    assert LakeReader(url).count() == count
    wh.export_parquet(url, keep=1)  # … and the next export prunes them
    assert fs.ls(f"{path}/{lake.SNAPSHOTS}", detail=False) == [LakeReader(url).root]
    assert LakeReader(url).content_hash() == wh.content_hash()


def test_missing_and_empty_lakes(tmp_path, memory_url):
    with pytest.raises(LakeNotFoundError, match="guwm export"):
        LakeReader(memory_url)
    empty = Warehouse(tmp_path / "empty.duckdb")
    empty.export_parquet(memory_url)
    reader = LakeReader(memory_url)
    assert reader.count() == 0 and reader.content_hash() == empty.content_hash()
    assert reader.vintages().columns == empty.vintages().columns


def test_the_canvas_from_the_lake_equals_the_canvas_from_duckdb(wh, tmp_path):
    url = (tmp_path / "lake").as_uri()
    wh.export_parquet(url)
    reader = LakeReader(url)
    layout = compile_layout("country_us.macro", "financial.equities", NEWS, T=6)
    args = {"start": "2012-01-01", "end": "2014-12-31", "shard_windows": 12}
    from_duckdb = materialize_canvas(wh, layout, tmp_path / "duckdb", **args)
    from_lake = materialize_canvas(reader, layout, tmp_path / "lake_canvas", **args)
    assert from_duckdb.observations > 0 and layout.vector_fields
    skip = {"created_at"}
    assert {k: v for k, v in vars(from_lake).items() if k not in skip} == {
        k: v for k, v in vars(from_duckdb).items() if k not in skip
    }
    for shard in from_duckdb.shards:
        for name in ("values", "presence", "vectors"):
            a = np.load(tmp_path / "duckdb" / shard["dir"] / f"{name}.npy")
            b = np.load(tmp_path / "lake_canvas" / shard["dir"] / f"{name}.npy")
            np.testing.assert_array_equal(a, b)
    assert CanvasManifest.load(tmp_path / "lake_canvas").stats == from_duckdb.stats

    pairs = sources_from_warehouse(reader, "financial", sources=["synthetic_yahoo"])
    expected = sources_from_warehouse(wh, "financial", sources=["synthetic_yahoo"])
    assert [(s.name, d.equals(e)) for (s, d), (_, e) in zip(pairs, expected, strict=True)] == [
        ("synthetic_yahoo", True)
    ]


def test_guwm_export_takes_a_url(wh, tmp_path, capsys):
    url = (tmp_path / "cli").as_uri()
    assert main(["--warehouse", str(wh.path), "export", url]) == 0
    assert str(tmp_path / "cli") in capsys.readouterr().out
    assert LakeReader(url).content_hash() == wh.content_hash()


def test_dagster_exports_to_the_lake_and_builds_the_canvas_from_it(wh, tmp_path, memory_url):
    resources = {
        "warehouse": WarehouseResource(path=str(wh.path)),
        "sources": SourcesResource(mode="synthetic"),
        "artifacts": ArtifactsResource(root=str(tmp_path / "artifacts")),
    }
    exported = dg.materialize(
        [warehouse_parquet],
        resources=resources,
        run_config={"ops": {"warehouse_parquet": {"config": {"target": memory_url}}}},
    )
    (event,) = exported.get_asset_materialization_events()
    metadata = event.materialization.metadata
    assert metadata["observations"].value == wh.count()
    assert metadata["content_hash"].value == wh.content_hash()
    assert [c.name for c in metadata["dagster/column_schema"].schema.columns][-2:] == [
        "source",
        "year",
    ]
    config = {"fields": ["country_us.macro.inflation"], "T": 6, "lake_url": memory_url}
    built = dg.materialize(
        [canvas_tensors],
        resources=resources,
        run_config={"ops": {"canvas_tensors": {"config": config}}},
    )
    assert built.success
    manifest = CanvasManifest.load(Path(tmp_path / "artifacts" / "canvas"))
    assert manifest.fields == compile_layout("country_us.macro.inflation").paths
    assert manifest.n_windows > 0 and manifest.observations > 0
