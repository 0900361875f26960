"""Dataset profiles: what a dataset covers (fields), how often, over which dates, how much.

A profile is what the curriculum planner (`training.planner.build_curriculum`) plans from:

    from training import DatasetProfile
    claims = DatasetProfile(
        name="Jobless claims", fields=["country_us.macro.labor.initial_claims"],
        frequency="weekly", start="2000-01-01", end="2024-12-31", rows=1300,
    )
    profiles = DatasetProfile.from_warehouse()          # one per ingested source
    fred = DatasetProfile.from_source(*fred_adapter(recorded_dir="../shared/data"))

The constructor checks the form of every attribute; `validate(schema)` checks the fields
against a schema (unknown paths come with the schema's suggestions). The planner does
not raise for unknown fields: it reports them (see `build_curriculum`).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import duckdb
import polars as pl

from warehouse.fields import Period
from warehouse.reader import sql_literal
from warehouse.schema import Schema, UnknownFieldError, default_schema

if TYPE_CHECKING:
    from warehouse.spec import DatasetSpec
    from warehouse.store import Warehouse

FREQUENCIES: tuple[str, ...] = tuple(p.value for p in Period)
_ALIASES = {"yearly": "annual", "hourly": "sub_daily", "intraday": "sub_daily"}
# Spacing (days) -> period class: the boundaries are geometric midpoints between classes.
_PERIODS = list(Period)
_BREAKS = [(a.days * b.days) ** 0.5 for a, b in zip(_PERIODS, _PERIODS[1:], strict=False)]

# Per (source, field): distinct periods, first/last period and the median spacing in days.
_STATS = """
WITH periods AS (
    SELECT DISTINCT source, field_path, observed_at FROM {relation} {where}
), gaps AS (
    SELECT source, field_path, observed_at,
        epoch(observed_at) - epoch(lag(observed_at) OVER (
            PARTITION BY source, field_path ORDER BY observed_at)) AS gap
    FROM periods
)
SELECT source, field_path, count(*)::BIGINT AS rows, min(observed_at) AS first,
    max(observed_at) AS last, median(gap) / 86400.0 AS spacing_days
FROM gaps GROUP BY source, field_path ORDER BY source, field_path
"""


class ProfileError(ValueError):
    """A dataset profile with a bad attribute; the message names the dataset and attribute."""


@dataclass(frozen=True)
class DatasetProfile:
    """What one dataset covers.

    `fields`: schema field paths or patterns (prefixes, globs) the dataset provides.
    `frequency`: its dominant period class (``daily``, ``weekly``, ``monthly``,
    ``quarterly``, ``annual``, ``sub_daily``, ``multi_year``); `field_frequencies` the
    measured class per field when known. `start`/`end`: ISO dates of the first and last
    observation. `rows`: observations (one per field and period; revisions not counted).
    `domain` defaults to the fields' common domain (first path segments).
    """

    name: str
    fields: tuple[str, ...] = ()
    frequency: str | None = None
    start: str | None = None
    end: str | None = None
    rows: int | None = None
    domain: str = ""
    description: str = ""
    field_frequencies: Mapping[str, str] = field(default_factory=dict, hash=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ProfileError(f"a dataset profile needs a name, got {self.name!r}")
        fields = [self.fields] if isinstance(self.fields, str) else list(self.fields or ())
        for pattern in fields:
            if not isinstance(pattern, str) or not pattern or pattern != pattern.strip():
                raise ProfileError(
                    f"dataset '{self.name}': field {pattern!r} must be a field path or "
                    "pattern (a non-empty string without surrounding spaces)"
                )
        object.__setattr__(self, "fields", tuple(dict.fromkeys(fields)))
        if self.frequency is not None:
            object.__setattr__(self, "frequency", self._frequency(self.frequency, "frequency"))
        per_field = {
            str(path): self._frequency(freq, f"field_frequencies[{path!r}]")
            for path, freq in dict(self.field_frequencies or {}).items()
        }
        object.__setattr__(self, "field_frequencies", MappingProxyType(per_field))
        for key in ("start", "end"):
            object.__setattr__(self, key, self._date(getattr(self, key), key))
        if self.start and self.end and self.start > self.end:
            raise ProfileError(f"dataset '{self.name}': start {self.start} is after end {self.end}")
        if self.rows is not None and (
            isinstance(self.rows, bool) or not isinstance(self.rows, int) or self.rows < 0
        ):
            raise ProfileError(
                f"dataset '{self.name}': rows must be a non-negative integer, got {self.rows!r}"
            )
        if not self.domain:
            object.__setattr__(self, "domain", _domain(self.fields))

    def _frequency(self, value: Any, key: str) -> str:
        text = str(value).strip().lower().replace("-", "_")
        text = _ALIASES.get(text, text)
        if text not in FREQUENCIES:
            raise ProfileError(
                f"dataset '{self.name}': {key} {value!r} is not a frequency; "
                f"expected one of {', '.join(FREQUENCIES)}"
            )
        return text

    def _date(self, value: Any, key: str) -> str | None:
        if value is None or value == "":
            return None
        if isinstance(value, dt.datetime):
            return value.date().isoformat()
        if isinstance(value, dt.date):
            return value.isoformat()
        try:
            return dt.date.fromisoformat(str(value)[:10]).isoformat()
        except ValueError:
            raise ProfileError(
                f"dataset '{self.name}': {key} {value!r} is not an ISO date (YYYY-MM-DD)"
            ) from None

    # -- fields against a schema -------------------------------------------------------

    def resolve(self, schema: Schema | None = None) -> tuple[list[str], dict[str, str]]:
        """(sorted concrete observable paths the fields select, {pattern: problem}).

        A problem is an unknown path (with the schema's suggestions), a latent field, or a
        template glob such as ``firm_*.earnings`` that names no ticker.
        """
        schema = schema or default_schema()
        paths: set[str] = set()
        problems: dict[str, str] = {}
        for pattern in self.fields:
            try:
                projected = schema.project(pattern)
            except UnknownFieldError as error:
                problems[pattern] = str(error)
                continue
            observable = [f.path for f in projected if not f.latent]
            if observable:
                paths.update(observable)
            elif projected.templates:
                problems[pattern] = "names no ticker (use e.g. firm_AAPL.earnings)"
            else:
                problems[pattern] = "selects only latent regime fields, which are never observed"
        return sorted(paths), problems

    def validate(self, schema: Schema | None = None) -> DatasetProfile:
        """Raise ProfileError when a field is unknown to `schema`; return self otherwise."""
        _, problems = self.resolve(schema)
        if problems:
            detail = "; ".join(f"field {p!r}: {why}" for p, why in problems.items())
            raise ProfileError(f"dataset '{self.name}': {detail}")
        return self

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (JSON / YAML)."""
        return {
            "name": self.name,
            "fields": list(self.fields),
            "frequency": self.frequency,
            "start": self.start,
            "end": self.end,
            "rows": self.rows,
            "domain": self.domain,
            "description": self.description,
            "field_frequencies": dict(self.field_frequencies),
        }

    # -- profiling data ----------------------------------------------------------------

    @classmethod
    def from_warehouse(
        cls,
        warehouse: Warehouse | str | os.PathLike[str] | None = None,
        sources: Sequence[str] | None = None,
    ) -> list[DatasetProfile]:
        """One profile per `source` ingested into the warehouse (all, or those named).

        `warehouse` is a Warehouse, a path (opened read-only) or None (the default one).
        """
        from warehouse.store import Warehouse

        if not isinstance(warehouse, Warehouse):
            warehouse = Warehouse(warehouse, read_only=True)
        where, params = "", None
        if sources is not None:
            sources = list(sources)
            known = warehouse.sql("SELECT DISTINCT source FROM observations ORDER BY source")
            missing = sorted(set(sources) - set(known["source"]))
            if missing:
                raise ProfileError(
                    f"no observations from source(s) {missing} in {warehouse.path}; "
                    f"it holds {known['source'].to_list()}"
                )
            where, params = "WHERE list_contains($sources, source)", {"sources": sources}
        stats = warehouse.sql(_STATS.format(relation="observations", where=where), params)
        return _profiles(stats, warehouse.schema, lambda s: f"source '{s}' in the warehouse")

    @classmethod
    def from_source(
        cls, spec: DatasetSpec, data: pl.DataFrame, schema: Schema | None = None
    ) -> DatasetProfile:
        """The profile of an adapter's ``(DatasetSpec, long frame)`` pair."""
        missing = {"field_path", "observed_at"} - set(data.columns)
        if missing:
            raise ProfileError(f"dataset '{spec.name}': the data has no {sorted(missing)} column")
        frame = data.select("field_path", pl.col("observed_at").cast(pl.Datetime("us")))
        with duckdb.connect() as con:
            con.register("frame", frame.to_arrow())
            relation = f"(SELECT {sql_literal(spec.name)} AS source, * FROM frame)"
            stats = pl.from_arrow(
                con.sql(_STATS.format(relation=relation, where="")).to_arrow_table()
            )
        described = f"adapter dataset '{spec.name}'"
        found = _profiles(stats, schema or default_schema(), lambda _: described)
        if found:
            return found[0]
        return cls(name=spec.name, fields=tuple(spec.field_paths), rows=0, description=described)


def _profiles(
    stats: pl.DataFrame, schema: Schema, describe: Callable[[str], str]
) -> list[DatasetProfile]:
    """Profiles from per-(source, field) statistics (see _STATS), one per source."""
    if stats.is_empty():
        return []
    declared = {}
    for path in stats["field_path"].unique().to_list():
        try:
            declared[path] = schema.field(path).period.value
        except UnknownFieldError:
            continue
    labels = [p.value for p in _PERIODS]
    stats = stats.with_columns(
        pl.col("spacing_days")
        .cut(_BREAKS, labels=labels, left_closed=True)
        .cast(pl.String)
        .fill_null(
            pl.col("field_path").replace_strict(declared, default=None, return_dtype=pl.String)
        )
        .alias("frequency")
    )
    order = {label: i for i, label in enumerate(labels)}
    dominant = (
        stats.drop_nulls("frequency")
        .group_by("source", "frequency")
        .len()
        .with_columns(pl.col("frequency").replace_strict(order).alias("order"))
        .sort(["source", "len", "order"], descending=[False, True, False])
        .unique("source", keep="first", maintain_order=True)
    )
    frequency = dict(zip(dominant["source"], dominant["frequency"], strict=True))
    totals = stats.group_by("source", maintain_order=True).agg(
        pl.col("field_path"),
        pl.col("frequency"),
        pl.col("rows").sum(),
        pl.col("first").min(),
        pl.col("last").max(),
    )
    return [
        DatasetProfile(
            name=row["source"],
            fields=tuple(row["field_path"]),
            frequency=frequency.get(row["source"]),
            start=row["first"],
            end=row["last"],
            rows=int(row["rows"]),
            description=describe(row["source"]),
            field_frequencies={
                p: f for p, f in zip(row["field_path"], row["frequency"], strict=True) if f
            },
        )
        for row in totals.iter_rows(named=True)
    ]


def _domain(fields: Iterable[str]) -> str:
    """The fields' common domain: their shared first two segments, else the shared first
    segment, else the sorted first segments (``firm_<TICKER>`` counts as ``firm``)."""
    split = [p.split(".") for p in fields]
    firsts = sorted({s[0] for s in split})
    if len(firsts) != 1:
        return ", ".join(sorted({"firm" if f.startswith("firm_") else f for f in firsts}))
    common = split[0][:2]
    for segments in split[1:]:
        while common and segments[: len(common)] != common:
            common = common[:-1]
    if len(common) == 2 and not set("*?[") & set(common[1]):
        return ".".join(common)
    return firsts[0]


__all__ = ["FREQUENCIES", "DatasetProfile", "ProfileError"]
