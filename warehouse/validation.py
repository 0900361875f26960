"""Validation of an ingest batch before anything touches the warehouse.

A batch is a Polars frame in the warehouse's long format:

    field_path  observed_at  value  [vector]  known_at

Every check is a vectorized expression over the whole batch; problems are
collected (not raised one by one) so a user sees every bad row at once, each
named by source, field and row number.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from warehouse.schema import Schema, UnknownFieldError

# The long format every source delivers (the columns of a batch without `vector`).
LONG_SCHEMA = {
    "field_path": pl.Utf8,
    "observed_at": pl.Datetime("us"),
    "value": pl.Float64,
    "known_at": pl.Datetime("us"),
}
VECTOR_DTYPE = pl.List(pl.Float32)  # a vector field's observations, in the `vector` column
BATCH_COLUMNS = ("field_path", "observed_at", "value", "vector", "known_at")
BATCH_COLUMNS_WITH_ROW = ("row", *BATCH_COLUMNS)
MAX_ABS_VALUE = 1e15
EARLIEST_OBSERVATION = dt.datetime(1800, 1, 1)
FUTURE_TOLERANCE = dt.timedelta(days=1)
MAX_PROBLEMS_SHOWN = 20
_NO_PROBLEMS = pl.DataFrame(schema={"row": pl.UInt32, "field_path": pl.Utf8, "problem": pl.Utf8})


# The one rule for dates given as text, on every ingest path: ISO 8601 is read as such
# (a date, a date and time, with or without seconds, a UTC offset or Z; naive times are
# UTC); any other text needs an explicit format (tabular_adapter's date_format) and is
# refused otherwise, because "02/01/2021" is 1 February in one country and 2 January in
# another.
DATE_RULE = "an ISO date (YYYY-MM-DD, optionally THH:MM[:SS] and an offset or Z)"
_ISO_NAIVE = (
    "%Y-%m-%d",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
)
_ISO_OFFSET = ("%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M%#z")


def iso_timestamps(text: pl.Expr) -> pl.Expr:
    """Text -> naive-UTC Datetime("us") by `DATE_RULE`; null where the text is not ISO."""
    text = text.str.strip_chars()
    utc = text.str.replace(r"(?i)Z$", "+0000")
    naive = [text.str.to_datetime(fmt, strict=False, time_unit="us") for fmt in _ISO_NAIVE]
    offset = [
        utc.str.to_datetime(
            fmt, strict=False, time_unit="us", time_zone="UTC"
        ).dt.replace_time_zone(None)
        for fmt in _ISO_OFFSET
    ]
    return pl.coalesce([*naive, *offset])


class IngestError(ValueError):
    """A batch was rejected; nothing was written."""

    def __init__(self, source: str, problems: pl.DataFrame) -> None:
        self.source = source
        self.problems = problems
        shown = problems.head(MAX_PROBLEMS_SHOWN)
        lines = [
            f"  row {r['row']}, field '{r['field_path']}': {r['problem']}"
            for r in shown.iter_rows(named=True)
        ]
        more = len(problems) - len(shown)
        if more > 0:
            lines.append(f"  … and {more} more")
        first = shown.row(0, named=True)
        super().__init__(
            f"source '{source}', field '{first['field_path']}', row {first['row']}: "
            f"{first['problem']} ({len(problems)} problem(s), nothing written)\n" + "\n".join(lines)
        )


@dataclass(frozen=True)
class ValidatedBatch:
    """A clean batch: canonical columns and dtypes, exact duplicate rows removed, sorted by
    (field_path, observed_at, known_at)."""

    frame: pl.DataFrame
    rows_in: int
    duplicates_dropped: int


def _to_timestamp(frame: pl.DataFrame, column: str, source: str) -> pl.Expr:
    dtype = frame.schema[column]
    col = pl.col(column)
    if dtype == pl.Date:
        return col.cast(LONG_SCHEMA[column])
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is not None:
            col = col.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        return col.cast(LONG_SCHEMA[column])
    if dtype == pl.Utf8:
        return iso_timestamps(col)
    raise IngestError(
        source,
        pl.DataFrame(
            {
                "row": [0],
                "field_path": ["*"],
                "problem": [f"column {column} has type {dtype}, expected a date or datetime"],
            }
        ),
    )


def _canonical(frame: pl.DataFrame, source: str) -> pl.DataFrame:
    missing = [c for c in ("field_path", "observed_at", "known_at") if c not in frame.columns]
    if "value" not in frame.columns and "vector" not in frame.columns:
        missing.append("value (or vector)")
    if missing:
        raise IngestError(
            source,
            pl.DataFrame(
                {"row": [0], "field_path": ["*"], "problem": [f"missing column(s): {missing}"]}
            ),
        )
    exprs = [
        pl.col("field_path").cast(LONG_SCHEMA["field_path"]),
        _to_timestamp(frame, "observed_at", source).alias("observed_at"),
        (
            pl.col("value").cast(LONG_SCHEMA["value"], strict=False)
            if "value" in frame.columns
            else pl.lit(None, LONG_SCHEMA["value"])
        ).alias("value"),
        (
            pl.col("vector").cast(VECTOR_DTYPE)
            if "vector" in frame.columns
            else pl.lit(None, VECTOR_DTYPE)
        ).alias("vector"),
        _to_timestamp(frame, "known_at", source).alias("known_at"),
    ]
    raw_value_bad = (
        pl.col("value").is_not_null() & pl.col("value").cast(pl.Float64, strict=False).is_null()
        if "value" in frame.columns and frame.schema["value"] == pl.Utf8
        else pl.lit(False)
    )
    raw_time_bad = [
        (pl.col(c).is_not_null() & iso_timestamps(pl.col(c)).is_null()).alias(f"_{c}_unparsed")
        if frame.schema[c] == pl.Utf8
        else pl.lit(False).alias(f"_{c}_unparsed")
        for c in ("observed_at", "known_at")
    ]
    return frame.with_row_index("row").select(
        "row", *exprs, raw_value_bad.alias("_value_unparsed"), *raw_time_bad
    )


def _field_facts(paths: pl.Series, schema: Schema) -> pl.DataFrame:
    """One row per distinct path: dimension, latent, or why the path is unknown."""
    rows = {"field_path": [], "dimension": [], "latent": [], "unknown": [], "lo": [], "hi": []}
    for path in paths.drop_nulls().unique().to_list():
        try:
            field = schema.field(path)
        except UnknownFieldError as err:
            rows["field_path"].append(path)
            rows["dimension"].append(None)
            rows["latent"].append(None)
            rows["unknown"].append(str(err))
            rows["lo"].append(None)
            rows["hi"].append(None)
            continue
        rows["field_path"].append(path)
        rows["dimension"].append(field.dimension)
        rows["latent"].append(field.latent)
        rows["unknown"].append(None)
        lo, hi = field.bounds or (None, None)
        rows["lo"].append(lo)
        rows["hi"].append(hi)
    return pl.DataFrame(
        rows,
        schema={
            "field_path": pl.Utf8,
            "dimension": pl.Int32,
            "latent": pl.Boolean,
            "unknown": pl.Utf8,
            "lo": pl.Float64,
            "hi": pl.Float64,
        },
    )


def _checks(now: dt.datetime, allow_outliers: bool) -> list[tuple[pl.Expr, pl.Expr | str]]:
    """(condition, message) per rule, over a canonical batch joined with its field facts."""
    is_vector = pl.col("dimension") > 1
    vector_len = pl.col("vector").list.len()
    vector_finite = pl.col("vector").list.eval(pl.element().is_finite()).list.all()
    checks: list[tuple[pl.Expr, pl.Expr | str]] = [
        (pl.col("field_path").is_null(), "field_path is missing"),
        (pl.col("unknown").is_not_null(), pl.col("unknown")),
        (pl.col("latent").fill_null(False), "latent (regime) fields are never observed"),
        (pl.col("_observed_at_unparsed"), f"observed_at is not {DATE_RULE}"),
        (pl.col("_known_at_unparsed"), f"known_at is not {DATE_RULE}"),
        (
            pl.col("observed_at").is_null() & ~pl.col("_observed_at_unparsed"),
            "observed_at is missing",
        ),
        (pl.col("known_at").is_null() & ~pl.col("_known_at_unparsed"), "known_at is missing"),
        (
            pl.col("observed_at") < EARLIEST_OBSERVATION,
            pl.format(
                "observed_at {} is before {}",
                pl.col("observed_at"),
                pl.lit(EARLIEST_OBSERVATION.date().isoformat()),
            ),
        ),
        (
            pl.col("known_at") > now + FUTURE_TOLERANCE,
            pl.format("known_at {} is in the future", pl.col("known_at")),
        ),
        (
            pl.col("known_at") < pl.col("observed_at"),
            pl.format(
                "known_at {} is before observed_at {}", pl.col("known_at"), pl.col("observed_at")
            ),
        ),
        (pl.col("_value_unparsed"), "value is not a number"),
        (~is_vector & pl.col("value").is_null() & ~pl.col("_value_unparsed"), "value is missing"),
        (~is_vector & pl.col("value").is_nan(), "value is NaN"),
        (~is_vector & pl.col("value").is_infinite(), "value is infinite"),
        (
            ~is_vector & (pl.col("value").abs() > MAX_ABS_VALUE) & pl.col("value").is_finite(),
            pl.format(
                "value {} is implausibly large (|value| > {})",
                pl.col("value"),
                pl.lit(f"{MAX_ABS_VALUE:g}"),
            ),
        ),
        (
            ~is_vector
            & pl.col("value").is_finite()
            & ((pl.col("value") < pl.col("lo")) | (pl.col("value") > pl.col("hi")))
            & pl.lit(not allow_outliers),
            pl.format(
                "value {} is outside the field's plausible range [{}, {}] (a real one: "
                "ingest with allow_outliers=True, or GUWM_ALLOW_OUTLIERS=1 for the assets)",
                pl.col("value"),
                pl.col("lo"),
                pl.col("hi"),
            ),
        ),
        (~is_vector & pl.col("vector").is_not_null(), "scalar field given a vector"),
        (is_vector & pl.col("vector").is_null(), "vector is missing"),
        (
            is_vector & (vector_len != pl.col("dimension")),
            pl.format(
                "vector has {} elements, field has dimension {}", vector_len, pl.col("dimension")
            ),
        ),
        (is_vector & ~vector_finite.fill_null(True), "vector has NaN or infinite elements"),
    ]
    return checks


def in_key_order(frame: pl.DataFrame, key: list[str]) -> pl.DataFrame:
    """`frame` sorted by `key` (stable, nulls last). A frame already in order (most
    batches, many reads) is only checked; text columns sort by their ranks among the
    distinct values, which is faster than sorting the text."""
    ascending = pl.lit(True)
    for column in reversed(key):  # lexicographic: each column decides where the ones before tie
        col, previous = pl.col(column), pl.col(column).shift(1)
        ascending = (col > previous) | ((col == previous) & ascending)
    if frame.select(ascending.fill_null(False).slice(1).all()).item():
        return frame
    text = [c for c in key if frame.schema[c] == pl.Utf8]
    ranks = {
        f"_rank_{c}": pl.col(c).cast(pl.Enum(frame[c].drop_nulls().unique().sort())).to_physical()
        for c in text
    }
    by = [f"_rank_{c}" if c in text else c for c in key]
    return (
        frame.with_columns(**ranks).sort(by, maintain_order=True, nulls_last=True).drop(list(ranks))
    )


def _field_facts_by_row(paths: pl.Series, schema: Schema) -> list[pl.Series]:
    """The facts of each row's field, for a batch sorted by field (one lookup per run)."""
    run_paths = paths.rle().struct.field("value")
    facts = pl.DataFrame({"field_path": run_paths}).join(
        _field_facts(run_paths, schema), on="field_path", how="left", maintain_order="left"
    )
    run = paths.rle_id()
    return [facts[column].gather(run) for column in facts.columns if column != "field_path"]


def _duplicates(clean: pl.DataFrame, key: list[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Exact repeats dropped (the first row kept) and the keys repeated with other values."""
    deduped = clean.unique(subset=[*key, "value", "vector"], keep="first", maintain_order=True)
    conflicts = deduped.filter(pl.len().over(key) > 1).select(
        "row",
        "field_path",
        pl.format(
            "duplicate key (observed_at {}, known_at {}) with different values",
            pl.col("observed_at"),
            pl.col("known_at"),
        ).alias("problem"),
    )
    return deduped, conflicts


def validate_batch(
    frame: pl.DataFrame,
    *,
    source: str,
    schema: Schema,
    now: dt.datetime,
    allow_outliers: bool = False,
) -> ValidatedBatch:
    """Check a batch against the schema and the warehouse's rules.

    Raises IngestError listing every problem (source, field, row); returns the
    canonical batch otherwise. `now` is naive UTC. A value outside its field's plausible
    range (`Field.bounds`) is a problem unless `allow_outliers`.
    """
    if frame.is_empty():
        return ValidatedBatch(_canonical(frame, source).drop("row"), 0, 0)
    key = ["field_path", "observed_at", "known_at"]
    batch = in_key_order(_canonical(frame, source), key)
    batch = batch.with_columns(_field_facts_by_row(batch["field_path"], schema))
    checks = _checks(now, allow_outliers)
    # One pass decides whether any row is bad; the messages are only built when one is.
    any_bad = pl.any_horizontal([cond.fill_null(False) for cond, _ in checks]).any()
    problems = (
        pl.concat(
            [
                batch.filter(cond.fill_null(False)).select(
                    "row",
                    pl.col("field_path").fill_null("<missing>"),
                    (msg if isinstance(msg, pl.Expr) else pl.lit(msg))
                    .cast(pl.Utf8)
                    .alias("problem"),
                )
                for cond, msg in checks
            ]
        )
        if batch.select(any_bad).item()
        else _NO_PROBLEMS
    )
    clean = batch.select(BATCH_COLUMNS_WITH_ROW)
    # Sorted by key, a repeated key is next to its twin: without one, nothing to drop.
    repeats = pl.all_horizontal([pl.col(c) == pl.col(c).shift(1) for c in key]).any()
    deduped, conflicts = (
        _duplicates(clean, key) if clean.select(repeats).item() else (clean, _NO_PROBLEMS)
    )
    problems = pl.concat([problems, conflicts]).sort("row")
    if not problems.is_empty():
        raise IngestError(source, problems)
    return ValidatedBatch(
        frame=deduped.drop("row"),
        rows_in=len(batch),
        duplicates_dropped=len(batch) - len(deduped),
    )
