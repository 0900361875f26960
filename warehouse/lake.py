"""The Parquet data lake: the warehouse exported for other engines, at any fsspec URL.

An export holds every table with a fixed schema (`OBSERVATIONS_SCHEMA`, `CATALOG_SCHEMA`,
`INGEST_RUNS_SCHEMA`: plain Parquet types, timestamps in microseconds without a zone,
so DuckDB, Polars, PyArrow and Spark read it unchanged):

    _manifest.json                               what the export holds (see LakeManifest)
    observations/source=<s>/year=<y>/part-0.parquet
    field_catalog.parquet                        the field schema with its units and periods
    ingest_runs.parquet

Where it goes, and how readers never see half of it:

- **Local paths and file:// URLs** are written to a staging directory beside the target
  and swapped in whole (`warehouse.paths.staged_directory`).
- **Object stores** (s3://, gs://, az://, memory://, …) cannot rename a directory, so
  each export is a new snapshot, `<url>/snapshots/<id>/` (ids sort by time), laid out as
  above. Its `_manifest.json` is written after every data file, then `<url>/_latest.json`
  (`{"snapshot": "<id>"}`) is replaced in one write: that is the commit. Readers follow
  `_latest.json`, so an export that fails half-way (its files are removed) or a writer
  that dies (its files are left, unreferenced) changes nothing for them. After a commit
  snapshots older than the newest `keep` are deleted. One exporter at a time.

s3:// needs `pip install s3fs`, gs:// `gcsfs`, az:// `adlfs`; credentials come from their
usual environment (AWS_*, GOOGLE_APPLICATION_CREDENTIALS, …).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb
import fsspec
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from warehouse.paths import staged_directory
from warehouse.reader import (
    CONNECT_LOCK,
    VIEWS_DDL,
    WarehouseReader,
    observations_hash,
    sql_literal,
)
from warehouse.schema import Schema, default_schema

FORMAT = "guwm-lake"
FORMAT_VERSION = 1
MANIFEST = "_manifest.json"
LATEST = "_latest.json"
SNAPSHOTS = "snapshots"

OBSERVATIONS_SCHEMA = pa.schema(
    [
        pa.field("field_path", pa.string(), nullable=False),
        pa.field("observed_at", pa.timestamp("us"), nullable=False),
        pa.field("value", pa.float64()),
        pa.field("vector", pa.list_(pa.field("element", pa.float32()))),  # Parquet LIST
        pa.field("known_at", pa.timestamp("us"), nullable=False),
        pa.field("ingested_at", pa.timestamp("us"), nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
    ]
)
# Directory keys of the observations (hive style), not stored inside the files.
PARTITION_SCHEMA = pa.schema(
    [pa.field("source", pa.string(), nullable=False), pa.field("year", pa.int32(), nullable=False)]
)
CATALOG_SCHEMA = pa.schema(
    [
        pa.field("path", pa.string(), nullable=False),
        pa.field("domain", pa.string(), nullable=False),
        pa.field("semantic_type", pa.string(), nullable=False),
        pa.field("unit", pa.string(), nullable=False),
        pa.field("period", pa.string(), nullable=False),
        pa.field("period_days", pa.float64(), nullable=False),
        pa.field("dimension", pa.int32(), nullable=False),
        pa.field("loss_weight", pa.float64(), nullable=False),
        pa.field("latent", pa.bool_(), nullable=False),
    ]
)
INGEST_RUNS_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("started_at", pa.timestamp("us"), nullable=False),
        pa.field("finished_at", pa.timestamp("us"), nullable=False),
        pa.field("rows_in", pa.int64(), nullable=False),
        pa.field("rows_inserted", pa.int64(), nullable=False),
        pa.field("rows_revised", pa.int64(), nullable=False),
        pa.field("rows_unchanged", pa.int64(), nullable=False),
    ]
)
_OBSERVATION_FILES_SCHEMA = pa.schema([*OBSERVATIONS_SCHEMA, *PARTITION_SCHEMA])
_OBSERVATIONS_QUERY = f"""
    SELECT {", ".join(OBSERVATIONS_SCHEMA.names)}, source, year(observed_at) AS year
    FROM observations ORDER BY source, year, field_path, observed_at, known_at
"""  # sorted, so row-group statistics let readers skip by field and date
_TABLES = {
    "field_catalog": ("SELECT * FROM field_catalog ORDER BY path", CATALOG_SCHEMA),
    "ingest_runs": ("SELECT * FROM ingest_runs ORDER BY started_at, run_id", INGEST_RUNS_SCHEMA),
}
_WAREHOUSE_COLUMNS = "field_path, observed_at, value, vector, source, known_at, ingested_at, run_id"


class LakeNotFoundError(FileNotFoundError):
    """No complete export at the URL."""


@dataclass(frozen=True)
class LakeManifest:
    """What one export holds: written last, so its presence marks a complete export.

    `files` lists each table's files (path relative to the export, rows, bytes);
    `columns` each table's column schema (name, Arrow type, nullable, partition key);
    `content_hash` equals `Warehouse.content_hash()` at the time of the export.
    """

    snapshot: str
    created_at: str
    observations: int
    content_hash: str
    files: dict[str, list[dict[str, object]]]
    columns: dict[str, list[dict[str, object]]]
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str | bytes) -> LakeManifest:
        data = json.loads(text)
        if data.get("format") != FORMAT or data.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"not a {FORMAT} v{FORMAT_VERSION} manifest: "
                f"{data.get('format')} v{data.get('format_version')}"
            )
        return cls(**data)


def lake_columns() -> dict[str, list[dict[str, object]]]:
    """The documented column schema of every table, as the manifest records it."""

    def describe(schema: pa.Schema, partition: bool = False) -> list[dict[str, object]]:
        return [
            {"name": f.name, "type": str(f.type), "nullable": f.nullable, "partition": partition}
            for f in schema
        ]

    return {
        "observations": describe(OBSERVATIONS_SCHEMA) + describe(PARTITION_SCHEMA, True),
        **{name: describe(schema) for name, (_, schema) in _TABLES.items()},
    }


def export_lake(
    con: duckdb.DuckDBPyConnection, dest: str | os.PathLike[str], *, keep: int = 2
) -> Path | str:
    """Export the warehouse behind `con` to `dest` (a path or fsspec URL), atomically.

    Returns the local directory, or for an object store the URL of the lake.
    """
    if keep < 1:
        raise ValueError(f"keep must be at least 1, got {keep}")
    fs, root = fsspec.core.url_to_fs(os.fspath(dest))
    snapshot = f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}"
    if isinstance(fs, LocalFileSystem):
        target = Path(root)
        # the export replaces `target` whole: never a directory that is not an export
        if target.is_dir() and not (target / MANIFEST).is_file() and any(target.iterdir()):
            raise FileExistsError(
                f"{target} is a non-empty directory that is not a guwm Parquet export; "
                "refusing to replace it (choose a new or empty directory)"
            )
        if target.exists() and not target.is_dir():
            raise FileExistsError(f"{target} exists and is not a directory")
        with staged_directory(target) as staging:
            _write_snapshot(con, fs, staging.as_posix(), snapshot)
        return Path(root)
    prefix = f"{root}/{SNAPSHOTS}/{snapshot}"
    try:
        _write_snapshot(con, fs, prefix, snapshot)
    except BaseException:
        with suppress(OSError):
            fs.rm(prefix, recursive=True)
        raise
    fs.pipe_file(f"{root}/{LATEST}", json.dumps({"snapshot": snapshot}).encode())
    _prune(fs, root, keep)
    return fs.unstrip_protocol(root)


def _write_snapshot(
    con: duckdb.DuckDBPyConnection, fs: fsspec.AbstractFileSystem, prefix: str, snapshot: str
) -> LakeManifest:
    """Every table under `prefix`, read in one transaction, then the manifest."""
    files: dict[str, list[dict[str, object]]] = {"observations": []}

    def visit(written: ds.WrittenFile) -> None:
        files["observations"].append(
            {
                "path": written.path.removeprefix(prefix + "/"),
                "rows": written.metadata.num_rows,
                "bytes": written.size,
            }
        )

    con.execute("BEGIN TRANSACTION")  # one consistent state of every table
    try:
        ds.write_dataset(
            con.sql(_OBSERVATIONS_QUERY).to_arrow_reader().cast(_OBSERVATION_FILES_SCHEMA),
            f"{prefix}/observations",
            filesystem=fs,
            format="parquet",
            partitioning=ds.partitioning(PARTITION_SCHEMA, flavor="hive"),
            basename_template="part-{i}.parquet",
            existing_data_behavior="error",
            preserve_order=True,
            file_visitor=visit,
        )
        for name, (query, schema) in _TABLES.items():
            sink = pa.BufferOutputStream()
            table = con.sql(query).to_arrow_table().cast(schema)
            pq.write_table(table, sink)
            data = sink.getvalue()
            fs.pipe_file(f"{prefix}/{name}.parquet", data.to_pybytes())
            files[name] = [{"path": f"{name}.parquet", "rows": len(table), "bytes": data.size}]
        manifest = LakeManifest(
            snapshot=snapshot,
            created_at=dt.datetime.now(dt.UTC).isoformat(),
            observations=sum(int(f["rows"]) for f in files["observations"]),
            content_hash=observations_hash(con),
            files=files,
            columns=lake_columns(),
        )
    finally:
        con.execute("ROLLBACK")
    fs.pipe_file(f"{prefix}/{MANIFEST}", manifest.to_json().encode())
    return manifest


def _prune(fs: fsspec.AbstractFileSystem, root: str, keep: int) -> None:
    """Delete snapshots older than the newest `keep` complete ones (and abandoned ones)."""
    fs.invalidate_cache(f"{root}/{SNAPSHOTS}")
    snapshots = sorted(fs.ls(f"{root}/{SNAPSHOTS}", detail=False))
    complete = [s for s in snapshots if fs.exists(f"{s}/{MANIFEST}")]
    if len(complete) > keep:
        for old in snapshots[: snapshots.index(complete[-keep])]:
            fs.rm(old, recursive=True)


def _resolve(fs: fsspec.AbstractFileSystem, root: str, url: str) -> str:
    """The directory of the current complete export at `root`."""
    fs.invalidate_cache(root)
    if fs.isfile(f"{root}/{LATEST}"):
        snapshot = json.loads(fs.cat_file(f"{root}/{LATEST}"))["snapshot"]
        return f"{root}/{SNAPSHOTS}/{snapshot}"
    if fs.isfile(f"{root}/{MANIFEST}"):
        return root
    raise LakeNotFoundError(f"no guwm Parquet export at {url}; write one with `guwm export {url}`")


class LakeReader(WarehouseReader):
    """A read-only warehouse over a Parquet export at any fsspec URL.

    The same read API as `Warehouse` (`sql`, `as_of`, `vintages`, `count`,
    `content_hash`) with the tables and the `latest` and `fields` views, run by an
    in-memory DuckDB over the export's files, so training machines can share one lake
    instead of one DuckDB file. An object-store reader stays on the snapshot that was
    current when it was opened; a local export is replaced in place, so open a new
    reader after one.
    """

    def __init__(self, url: str | os.PathLike[str], *, schema: Schema | None = None) -> None:
        self.url = os.fspath(url)
        self.schema = schema if schema is not None else default_schema()
        self.fs, root = fsspec.core.url_to_fs(self.url)
        self.root = _resolve(self.fs, root, self.url)
        self.manifest = LakeManifest.from_json(self.fs.cat_file(f"{self.root}/{MANIFEST}"))
        self._local = isinstance(self.fs, LocalFileSystem)

    def __repr__(self) -> str:
        return f"LakeReader({self.url!r}, snapshot={self.manifest.snapshot!r})"

    def location(self, relative: str) -> str:
        """A path or URL that DuckDB (and other engines) open for a file of the export."""
        path = f"{self.root}/{relative}"
        return path if self._local else self.fs.unstrip_protocol(path)

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """An in-memory DuckDB connection with the export's tables as views."""
        with CONNECT_LOCK:
            con = duckdb.connect()
        try:
            if not self._local:
                con.register_filesystem(self.fs)
            files = self.manifest.files
            observations = [sql_literal(self.location(f["path"])) for f in files["observations"]]
            if observations:
                source = (
                    f"read_parquet([{', '.join(observations)}], hive_partitioning = true, "
                    "hive_types = {'source': VARCHAR, 'year': INTEGER})"
                )
            else:  # an export of an empty warehouse has no observation file
                con.register("empty_observations", _OBSERVATION_FILES_SCHEMA.empty_table())
                source = "empty_observations"
            # superseded_at is derived, so not exported: the view computes it
            con.execute(
                f"CREATE VIEW observations AS SELECT {_WAREHOUSE_COLUMNS}, lead(known_at) OVER "
                "(PARTITION BY field_path, observed_at, source ORDER BY known_at) AS superseded_at "
                f"FROM {source}"
            )
            for name in _TABLES:
                (file,) = files[name]
                path = sql_literal(self.location(str(file["path"])))
                con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet({path})")
            con.execute(VIEWS_DDL)
            yield con
        finally:
            with CONNECT_LOCK:
                con.close()
