"""Sources as ``(DatasetSpec, data)`` pairs: from the warehouse, and restricted to fields.

    pairs = sources_from_warehouse(Warehouse(), ["country_us.macro", "financial"])
    pairs = sources_from_warehouse(LakeReader("s3://bucket/guwm"), "financial")  # or a lake
    pairs = restrict_sources(pairs, layout.paths)   # only what a canvas holds

Each warehouse source becomes one pair whose data are its stored vintages (long
format), so a `HeterogeneousDataset` built from them is point-in-time correct.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Collection, Sequence
from dataclasses import replace
from typing import Any

import polars as pl

from warehouse.reader import WarehouseReader
from warehouse.spec import DatasetSpec

Source = tuple[DatasetSpec, Any]


def sources_from_warehouse(
    warehouse: WarehouseReader,
    fields: Sequence[str] | str | None = None,
    *,
    sources: Sequence[str] | None = None,
    start: dt.datetime | dt.date | str | None = None,
    end: dt.datetime | dt.date | str | None = None,
) -> list[Source]:
    """One ``(spec, vintages)`` pair per warehouse source that has any of `fields`."""
    frame = warehouse.vintages(fields, start=start, end=end, sources=sources)
    pairs = []
    for (name,), part in frame.partition_by("source", as_dict=True, maintain_order=True).items():
        paths = part["field_path"].unique().sort().to_list()
        spec = DatasetSpec.from_fields(name, {p: p for p in paths})
        pairs.append((spec, part.drop("source")))
    return pairs


def restrict_sources(pairs: Sequence[Source], paths: Collection[str]) -> list[Source]:
    """The pairs cut down to `paths`: specs keep only those fields, long data only their
    rows (wide data keep their columns: a spec's missing keys are ignored there); a
    source left without a field is dropped."""
    keep = set(paths)
    out = []
    for spec, data in pairs:
        inputs = [s for s in spec.input_specs if s.field_path in keep]
        outputs = [s for s in spec.output_specs if s.field_path in keep]
        if not inputs and not outputs:
            continue
        frame = data if isinstance(data, pl.DataFrame) else pl.from_pandas(data)
        if "field_path" in frame.columns:
            frame = frame.filter(pl.col("field_path").is_in(sorted(keep)))
        out.append((replace(spec, input_specs=inputs, output_specs=outputs), frame))
    return out


def fingerprint(pairs: Sequence[Source]) -> str:
    """A content hash of the pairs (names, fields, rows): changes when the data change."""
    digest = hashlib.sha256()
    for spec, data in pairs:
        frame = data if isinstance(data, pl.DataFrame) else pl.from_pandas(data)
        digest.update(f"{spec.name}|{','.join(spec.field_paths)}|{len(frame)}|".encode())
        if len(frame):  # an order-independent sum of row hashes (wrapping on overflow)
            digest.update(str(frame.hash_rows(seed=0).sum()).encode())
    return digest.hexdigest()[:16]
