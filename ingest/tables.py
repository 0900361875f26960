"""Reading CSV and Parquet tables into checked long-format rows: the kit the file adapters share.

:func:`read_table` reads a file with row and line numbers, :func:`to_long` unpivots a
wide table (one date column, one column per series) to the warehouse's long format,
:func:`parse_columns` checks the fixed-layout files of the FRED, Yahoo and earnings
adapters, :func:`parse_timestamps` reads dates. Everything is vectorized (Polars); there
is no loop over rows. :mod:`ingest.tabular`, :mod:`ingest.pmi`, :mod:`ingest.news` and
the recorded readers use it.

Conventions
-----------
* **observed_at** is parsed from `date_column`: ISO dates and datetimes (with or without
  a UTC offset), ``YYYY/MM/DD``, ``YYYY-MM`` and RFC 822 are read as such; any other text
  (``02/01/2021`` is 1 February or 2 January, by country) needs exactly `date_format`
  and is refused, naming its row, without one. Times with an offset are converted to
  naive UTC; times without one are taken as UTC.
* **known_at** (when the value became public), first rule that applies:
  `known_at_column` (parsed like the date) > ``observed_at + release_lag`` (a Polars
  duration such as ``"13d"``, ``"1mo"``, ``"1mo13d"``) > ``observed_at`` itself. The last
  default claims every value was known at the start of its period, which is only right
  for data published in real time (market closes); pass a lag for anything released later.
* **Missing values**: an empty (or blank) cell, or one of `missing_values`, is missing and
  dropped. It is not an error. A row whose date is empty or unparseable is an error
  only when it carries a value.
* **Row numbers in errors**: ``row N`` is the 1-based data row, counting from the first
  row after the header and the `skip_rows_after_header` rows (row 1 = first data row; a
  blank line counts as a row). For CSV files ``line L`` is the physical line in the file
  (the header is line 1), which is what an editor shows. It is omitted when a quoted cell
  spans several lines. For Parquet only the row is given.

Every problem raises :class:`TabularError`, a ValueError that names the file (source),
the column and the row. Problems are collected across the whole file and reported
together (the first 20 are shown).
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import difflib
import io
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from warehouse import clock
from warehouse.validation import LONG_SCHEMA, iso_timestamps

__all__ = [
    "LINE",
    "ROW",
    "Table",
    "TabularError",
    "observation_bounds",
    "parse_columns",
    "parse_timestamps",
    "read_table",
    "to_long",
]

ROW = "__row"  # 1-based data row number, added by read_table
LINE = "__line"  # 1-based physical line in a CSV file (null when unknown)
MAX_PROBLEMS_SHOWN = 20
_SEPARATORS = (",", ";", "\t", "|")
_QUOTED = r'"(?:[^"]|"")*"'

# Besides ISO (warehouse.validation.DATE_RULE), the unambiguous forms parse_timestamps
# reads without a format: year first with slashes, and RFC 822 (a named month).
_NAIVE_FORMATS = ("%Y/%m/%d", "%a, %d %b %Y %H:%M:%S")
_OFFSET_FORMATS = ("%a, %d %b %Y %H:%M:%S %z",)


class TabularError(ValueError):
    """A table could not be read; names the source (file), the column and the row.

    `problems` is a frame (row, line, column, problem) of every problem found, so a user
    sees every bad cell at once; `source`, `column`, `row` and `line` describe the first.
    """

    def __init__(
        self,
        source: str,
        problem: str,
        *,
        column: str | None = None,
        row: int | None = None,
        line: int | None = None,
        problems: pl.DataFrame | None = None,
    ) -> None:
        self.source = source
        self.column = column
        self.row = row
        self.line = line
        self.problems = (
            problems
            if problems is not None
            else pl.DataFrame(
                {"row": [row], "line": [line], "column": [column], "problem": [problem]},
                schema=_PROBLEM_SCHEMA,
            )
        )
        head = _where(source, row, line, column) + problem
        count = len(self.problems)
        if count > 1:
            shown = self.problems.head(MAX_PROBLEMS_SHOWN)
            lines = [
                "  " + _where(None, r["row"], r["line"], r["column"]) + r["problem"]
                for r in shown.iter_rows(named=True)
            ]
            if count > len(shown):
                lines.append(f"  … and {count - len(shown)} more")
            head = f"{head} ({count} problems)\n" + "\n".join(lines)
        super().__init__(head)

    @classmethod
    def from_problems(cls, source: str, problems: pl.DataFrame) -> TabularError:
        """The error for a non-empty problems frame (row, line, column, problem)."""
        problems = problems.sort("row", "column", nulls_last=True)
        first = problems.row(0, named=True)
        return cls(
            source,
            first["problem"],
            column=first["column"],
            row=first["row"],
            line=first["line"],
            problems=problems,
        )


_PROBLEM_SCHEMA = {"row": pl.Int64, "line": pl.Int64, "column": pl.Utf8, "problem": pl.Utf8}


def _where(source: str | None, row: int | None, line: int | None, column: str | None) -> str:
    parts = [source] if source else []
    if row is not None:
        parts.append(f"row {row}" + (f" (line {line})" if line is not None else ""))
    if column is not None:
        parts.append(f"column '{column}'")
    return ", ".join(parts) + ": " if parts else ""


@dataclass(frozen=True)
class Table:
    """A table as read: its columns plus ROW (1-based data row) and LINE (file line)."""

    frame: pl.DataFrame
    source: str
    separator: str | None = None  # the CSV separator used (None for Parquet)

    @property
    def columns(self) -> list[str]:
        """The file's own columns (without ROW and LINE)."""
        return [c for c in self.frame.columns if c not in (ROW, LINE)]

    def require(self, columns: Iterable[str], what: str = "column") -> None:
        """Raise TabularError naming the first column not in the table, listing those that are."""
        for column in columns:
            if column not in self.columns:
                close = difflib.get_close_matches(column, self.columns, n=1, cutoff=0.5)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                raise TabularError(
                    self.source,
                    f"{what} '{column}' not in the file; available columns: "
                    f"{', '.join(repr(c) for c in self.columns)}{hint}",
                    column=column,
                )


# -- reading -------------------------------------------------------------------------


def read_table(
    source: str | Path | bytes,
    *,
    label: str | None = None,
    file_format: str | None = None,
    encoding: str = "utf8",
    separator: str = ",",
    skip_rows_after_header: int = 0,
) -> Table:
    """Read a CSV (every column as text) or Parquet file, with row and line numbers.

    `source` is a path or the raw bytes of a file (then `label` names it in errors and
    `file_format` defaults to csv). `encoding` is "utf8" (a UTF-8 BOM is dropped),
    "utf8-lossy" (bad bytes become U+FFFD) or any Python codec ("windows-1252", ...).
    """
    if isinstance(source, bytes):
        name = label or "<bytes>"
        raw = source
        fmt = (file_format or "csv").lower()
    else:
        path = Path(source)
        name = label or str(path)
        fmt = file_format or ("parquet" if path.suffix.lower() in (".parquet", ".pq") else "csv")
        fmt = fmt.lower()
        if not path.is_file():
            where = "is a directory" if path.is_dir() else "does not exist"
            raise TabularError(name, f"file {where}")
        raw = path.read_bytes()
    if fmt == "parquet":
        return _read_parquet(raw, name)
    if fmt != "csv":
        raise TabularError(name, f"unknown file format {file_format!r}; use csv or parquet")
    if len(separator) != 1:
        raise TabularError(name, f"separator must be one character, got {separator!r}")
    if skip_rows_after_header < 0:
        raise TabularError(
            name, f"skip_rows_after_header must be >= 0, got {skip_rows_after_header}"
        )
    text = _decode(raw, name, encoding, separator, skip_rows_after_header)
    lines = _line_map(text, name, separator, skip_rows_after_header)
    if not text.strip():
        raise TabularError(name, "file is empty (no header line)")
    try:
        frame = pl.read_csv(
            io.BytesIO(text.encode("utf-8")),
            separator=separator,
            infer_schema=False,
            skip_rows_after_header=skip_rows_after_header,
        )
    except pl.exceptions.PolarsError as err:
        first = str(err).strip().splitlines()[0]
        raise TabularError(
            name, f"cannot parse as CSV (separator {separator!r}): {first}"
        ) from None
    frame = frame.with_row_index(ROW, offset=1).with_columns(pl.col(ROW).cast(pl.Int64))
    if lines is not None and len(lines) == len(frame):
        frame = frame.with_columns(lines.alias(LINE))
    else:
        frame = frame.with_columns(pl.lit(None, pl.Int64).alias(LINE))
    return Table(frame, name, separator)


def _read_parquet(raw: bytes, name: str) -> Table:
    try:
        frame = pl.read_parquet(io.BytesIO(raw))
    except (pl.exceptions.PolarsError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise TabularError(name, f"not a readable Parquet file: {first}") from None
    frame = frame.with_row_index(ROW, offset=1).with_columns(
        pl.col(ROW).cast(pl.Int64), pl.lit(None, pl.Int64).alias(LINE)
    )
    return Table(frame, name)


def _decode(raw: bytes, name: str, encoding: str, separator: str = ",", skip: int = 0) -> str:
    """Bytes to text; a decoding error names byte offset, line, row, column and encodings to try."""
    key = encoding.lower().replace("_", "-")
    if key in ("utf8", "utf-8", "utf-8-sig", "utf8-sig"):
        codec, errors = "utf-8-sig", "strict"
    elif key in ("utf8-lossy", "utf-8-lossy"):
        codec, errors = "utf-8-sig", "replace"
    else:
        try:
            codec = codecs.lookup(encoding).name
        except LookupError:
            raise TabularError(name, f"unknown encoding {encoding!r}") from None
        errors = "strict"
    try:
        return raw.decode(codec, errors=errors)
    except UnicodeDecodeError as err:
        line_start = raw.rfind(b"\n", 0, err.start) + 1
        line = raw.count(b"\n", 0, err.start) + 1
        header = raw.split(b"\n", 1)[0].decode("utf-8-sig", errors="replace").rstrip("\r")
        prefix = raw[line_start : err.start].decode("utf-8", errors="replace")
        names = next(csv.reader([header], delimiter=separator), [])
        index = re.sub(_QUOTED, "", prefix).count(separator)
        column = names[index].strip() if line > 1 and index < len(names) else None
        row = line - 1 - skip if line - 1 - skip >= 1 else None
        raise TabularError(
            name,
            f"cannot decode as {encoding}: byte 0x{raw[err.start : err.start + 1].hex()} at "
            f"byte offset {err.start} ({err.reason}); try encoding='windows-1252' "
            "(Excel/Windows exports) or 'latin-1', or encoding='utf8-lossy' to replace bad bytes",
            column=column,
            row=row,
            line=line,
        ) from None


def _line_map(text: str, name: str, separator: str, skip: int) -> pl.Series | None:
    """File line of each data row; raises on rows with too few or too many fields.

    Returns None (no line numbers, no field-count check) when a quoted cell spans lines.
    """
    lines = pl.Series("text", [text], dtype=pl.Utf8).str.split("\n").explode(empty_as_null=False)
    if len(lines) and lines[-1] == "":
        lines = lines.head(len(lines) - 1)
    frame = pl.DataFrame({"text": lines}).with_row_index("line", offset=1)
    frame = frame.with_columns(
        pl.col("text").str.strip_chars_end("\r"), pl.col("line").cast(pl.Int64)
    )
    if frame.is_empty() or (frame["text"].str.count_matches('"', literal=True) % 2 == 1).any():
        return None
    fields = (
        pl.col("text").str.replace_all(_QUOTED, "").str.count_matches(separator, literal=True) + 1
    )
    frame = frame.with_columns(fields.alias("fields"))
    header_fields = int(frame["fields"][0])
    data = frame.slice(1 + skip).with_row_index(ROW, offset=1)
    if header_fields == 1:
        return data["line"]  # one column: checked later (wrong separator?)
    ragged = data.filter(
        (pl.col("fields") != header_fields) & (pl.col("text").str.strip_chars() != "")
    )
    if not ragged.is_empty():
        problems = ragged.select(
            pl.col(ROW).cast(pl.Int64).alias("row"),
            pl.col("line"),
            pl.lit(None, pl.Utf8).alias("column"),
            pl.when(pl.col("fields") < header_fields)
            .then(pl.format("truncated row: {} of {} fields", pl.col("fields"), header_fields))
            .otherwise(pl.format("row has {} fields, the header has {}", "fields", header_fields))
            .alias("problem"),
        )
        raise TabularError.from_problems(name, problems)
    return data["line"]


def _check_separator(table: Table, needed: int) -> None:
    """A table with one column where several are needed was split on the wrong separator."""
    if len(table.columns) != 1 or needed <= 1 or table.separator is None:
        return
    separator = table.separator
    header = table.columns[0]
    guesses = [s for s in _SEPARATORS if s != separator and s in header]
    hint = f"; the header holds {guesses[0]!r}: try separator={guesses[0]!r}" if guesses else ""
    raise TabularError(
        table.source,
        f"one column found; wrong separator? (read with separator={separator!r}, "
        f"header {header[:80]!r}){hint}",
        column=header,
    )


# -- parsing ---------------------------------------------------------------------------


def parse_timestamps(
    column: pl.Expr, dtype: pl.DataType, date_format: str | None = None
) -> pl.Expr:
    """A naive-UTC Datetime("us") expression from a text or temporal column; null if unparsed.

    Text is read as ISO dates/datetimes (with or without a UTC offset or "Z"), YYYY/MM/DD,
    YYYY-MM (first of the month) and RFC 822 ("Mon, 07 Mar 2022 00:14:42 GMT"), or only
    as `date_format` when given. Offsets are converted to UTC. Anything else, such as the
    ambiguous 02/01/2021, is null (the caller refuses its row): it needs `date_format`.
    """
    if dtype == pl.Date:
        return column.cast(pl.Datetime("us"))
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is not None:
            column = column.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        return column.cast(pl.Datetime("us"))
    if dtype not in (pl.Utf8, pl.Categorical):
        return pl.lit(None, pl.Datetime("us"))  # numbers are not dates: reported unparsed
    text = column.cast(pl.Utf8).str.strip_chars()
    if date_format is not None:
        parsed = text.str.to_datetime(date_format, strict=False, time_unit="us")
        if "%z" in date_format or "%#z" in date_format or "%:z" in date_format:
            parsed = parsed.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        return parsed.cast(pl.Datetime("us"))
    utc = text.str.replace(r"(?i)(?:Z|\s*(?:GMT|UTC))$", "+0000")
    candidates = [iso_timestamps(text)]
    candidates += [
        text.str.to_datetime(fmt, strict=False, time_unit="us") for fmt in _NAIVE_FORMATS
    ]
    candidates.append(
        pl.when(text.str.contains(r"^\d{4}-\d{2}$"))
        .then(text + "-01")
        .str.to_datetime("%Y-%m-%d", strict=False, time_unit="us")
    )
    candidates += [
        utc.str.to_datetime(
            fmt, strict=False, time_unit="us", time_zone="UTC"
        ).dt.replace_time_zone(None)
        for fmt in _OFFSET_FORMATS
    ]
    return pl.coalesce(candidates)


def _format_hint(date_format: str | None) -> str:
    """What an unparsed date message adds: the format tried, or how to give one."""
    if date_format is not None:
        return f" with format {date_format!r}"
    return " (ISO dates are read as such; give date_format for any other, e.g. '%m/%d/%Y')"


def _release_lag(lag: str, name: str) -> str:
    """Validate a Polars duration string (non-negative)."""
    probe = pl.Series([dt.datetime(2000, 1, 31)])
    try:
        shifted = probe.dt.offset_by(lag)[0]
    except (pl.exceptions.PolarsError, TypeError, ValueError) as err:
        raise TabularError(
            name, f"release_lag {lag!r} is not a duration like '13d', '1mo', '1mo13d': {err}"
        ) from None
    if shifted is None or shifted < probe[0]:
        raise TabularError(name, f"release_lag {lag!r} must not be negative")
    return lag


def _problems(
    frame: pl.DataFrame, condition: pl.Expr, column: str | pl.Expr, message: pl.Expr | str
) -> pl.DataFrame:
    return frame.filter(condition.fill_null(False)).select(
        pl.col(ROW).alias("row"),
        pl.col(LINE).alias("line"),
        (pl.lit(column) if isinstance(column, str) else column).cast(pl.Utf8).alias("column"),
        (pl.lit(message) if isinstance(message, str) else message).cast(pl.Utf8).alias("problem"),
    )


def to_long(
    table: Table,
    mapping: Mapping[str, str],
    *,
    date_column: str = "date",
    known_at_column: str | None = None,
    release_lag: str | None = None,
    release: Callable[[pl.Expr], pl.Expr] | None = None,
    date_format: str | None = None,
    missing_values: Iterable[str] = (),
    keep_column: bool = False,
) -> pl.DataFrame:
    """Unpivot `mapping` columns of `table` to long format (LONG_SCHEMA), checking every cell.

    known_at: `known_at_column`, else ``release(observed_at)`` (an expression), else
    ``observed_at + release_lag``, else observed_at. Raises TabularError listing every bad
    cell (row, column). Empty cells are missing and dropped; exact duplicate rows are dropped.
    `keep_column=True` adds the source column name as "column" (several columns may then
    map to one field at the same observed_at).
    """
    name = table.source
    columns = list(mapping)
    _check_separator(table, len(columns) + 1 + (known_at_column is not None))
    table.require([date_column], "date column")
    if known_at_column is not None:
        table.require([known_at_column], "known_at column")
    table.require(columns, "mapping column")
    if release_lag is not None:
        _release_lag(release_lag, name)
    schema = table.frame.schema
    missing = [m.strip() for m in missing_values]

    def cell(col: str) -> pl.Expr:
        if schema[col] in (pl.Utf8, pl.Categorical):
            text = pl.col(col).cast(pl.Utf8).str.strip_chars()
            return pl.when((text == "") | text.is_in(missing)).then(None).otherwise(text)
        return pl.col(col)

    # Value cells share one dtype for the unpivot: Float64, or text when any column is text.
    any_text = any(schema[c] in (pl.Utf8, pl.Categorical) for c in columns)

    def value_cell(col: str) -> pl.Expr:
        return cell(col).cast(pl.Utf8 if any_text else pl.Float64)

    frame = table.frame.select(
        ROW,
        LINE,
        cell(date_column).alias("_date_raw"),
        parse_timestamps(cell(date_column), schema[date_column], date_format).alias("observed_at"),
        *(
            [
                cell(known_at_column).alias("_known_raw"),
                parse_timestamps(cell(known_at_column), schema[known_at_column], date_format).alias(
                    "_known"
                ),
            ]
            if known_at_column is not None
            else []
        ),
        *(value_cell(c).alias(f"_v{i}") for i, c in enumerate(columns)),
    )
    long = frame.unpivot(
        index=[c for c in frame.columns if not c.startswith("_v")],
        on=[f"_v{i}" for i in range(len(columns))],
        variable_name="_slot",
        value_name="raw",
    )
    slot_to_column = {f"_v{i}": c for i, c in enumerate(columns)}
    slot_to_path = {f"_v{i}": mapping[c] for i, c in enumerate(columns)}
    long = long.filter(pl.col("raw").is_not_null()).with_columns(
        pl.col("_slot").replace_strict(slot_to_column, return_dtype=pl.Utf8).alias("column"),
        pl.col("_slot").replace_strict(slot_to_path, return_dtype=pl.Utf8).alias("field_path"),
    )
    raw_is_text = long.schema["raw"] == pl.Utf8
    value = pl.col("raw").cast(pl.Float64, strict=False)
    long = long.with_columns(value.alias("value"))
    if known_at_column is not None:
        known = pl.col("_known")
    elif release is not None:
        known = release(pl.col("observed_at"))
    elif release_lag is not None:
        known = pl.col("observed_at").dt.offset_by(release_lag)
    else:
        known = pl.col("observed_at")
    long = long.with_columns(known.cast(pl.Datetime("us")).alias("known_at"))

    row_level = long.unique(subset=[ROW], keep="first", maintain_order=True)
    problems = [
        _problems(row_level, pl.col("_date_raw").is_null(), date_column, "date is missing"),
        _problems(
            row_level,
            pl.col("_date_raw").is_not_null() & pl.col("observed_at").is_null(),
            date_column,
            pl.format("cannot parse date {}", _quoted("_date_raw"))
            + pl.lit(_format_hint(date_format)),
        ),
    ]
    if known_at_column is not None:
        problems += [
            _problems(
                row_level, pl.col("_known_raw").is_null(), known_at_column, "known_at is missing"
            ),
            _problems(
                row_level,
                pl.col("_known_raw").is_not_null() & pl.col("_known").is_null(),
                known_at_column,
                pl.format("cannot parse known_at {}", _quoted("_known_raw")),
            ),
        ]
    problems += [
        _problems(
            row_level,
            pl.col("known_at") < pl.col("observed_at"),
            known_at_column or date_column,
            pl.format("known_at {} is before observed_at {}", "known_at", "observed_at"),
        ),
        _problems(
            long,
            pl.col("value").is_null(),
            pl.col("column"),
            pl.format("{} is not a number", _quoted("raw")) if raw_is_text else "not a number",
        ),
        _problems(long, pl.col("value").is_nan(), pl.col("column"), "value is NaN"),
        _problems(long, pl.col("value").is_infinite(), pl.col("column"), "value is infinite"),
    ]
    result = long.select(ROW, LINE, "column", *LONG_SCHEMA).with_columns(
        pl.col("observed_at").cast(pl.Datetime("us"))
    )
    key = ["field_path", "observed_at", "known_at"] + (["column"] if keep_column else [])
    deduped = result.unique(subset=[*key, "value"], keep="first", maintain_order=True)
    # the first row of each key, taken before the problem rows are filtered out
    first_row = deduped.select(pl.col(ROW).first().over(key).alias("_first"))["_first"]
    problems.append(
        _problems(
            deduped.with_columns(first_row),
            pl.col(ROW) != pl.col("_first"),
            pl.col("column"),
            pl.format(
                "observed_at {} appears twice with different values (first in row {})",
                pl.col("observed_at"),
                pl.col("_first"),
            ),
        )
    )
    found = pl.concat(problems)
    if not found.is_empty():
        raise TabularError.from_problems(name, found)
    out = [*LONG_SCHEMA, "column"] if keep_column else list(LONG_SCHEMA)
    return deduped.select(out).sort("field_path", "observed_at", "known_at")


def _quoted(col: str) -> pl.Expr:
    text = pl.col(col).cast(pl.Utf8)
    return (
        pl.lit("'")
        + pl.when(text.str.len_chars() > 40).then(text.str.slice(0, 40) + "…").otherwise(text)
        + pl.lit("'")
    )


def observation_bounds() -> dict[str, dt.datetime]:
    """`earliest` and `latest` for parse_columns: the warehouse's own bounds on dates
    (nothing before 1800; nothing later than a day from now, naive UTC)."""
    from warehouse.validation import EARLIEST_OBSERVATION, FUTURE_TOLERANCE

    return {"earliest": EARLIEST_OBSERVATION, "latest": clock.utc_now() + FUTURE_TOLERANCE}


def parse_columns(
    table: Table,
    *,
    numbers: Sequence[str],
    date_column: str,
    date_format: str | None = None,
    key: Sequence[str] = (),
    missing_values: Iterable[str] = (),
    earliest: dt.datetime | None = None,
    latest: dt.datetime | None = None,
    dated: Sequence[str] | None = None,
) -> pl.DataFrame:
    """`table`'s frame with `date_column` parsed (naive UTC) and `numbers` as Float64.

    For the fixed-layout files of the other adapters (FRED, yfinance and earnings CSVs).
    Empty cells and `missing_values` are missing (null), not errors. Every cell is
    checked and every problem is raised at once as a TabularError naming file, row, line
    and column: a number that is not one, NaN or infinite; a date that is unparseable, or
    missing, before `earliest` or after `latest` on a row that carries a value (in one of
    `dated`, default `numbers`); the same `key` columns and date twice with different
    numbers (exact duplicate rows are fine).
    """
    table.require([date_column, *numbers, *key])
    schema = table.frame.schema
    missing = [m.strip() for m in missing_values]

    def raw(col: str) -> pl.Expr:
        if schema[col] not in (pl.Utf8, pl.Categorical):
            return pl.col(col)
        text = pl.col(col).cast(pl.Utf8).str.strip_chars()
        return pl.when((text == "") | text.is_in(missing)).then(None).otherwise(text)

    slots = {c: f"_n{i}" for i, c in enumerate(numbers)}
    frame = table.frame.with_columns(
        raw(date_column).alias("_date_raw"), *(raw(c).alias(s) for c, s in slots.items())
    ).with_columns(
        parse_timestamps(pl.col("_date_raw"), schema[date_column], date_format).alias(date_column),
        *(pl.col(s).cast(pl.Float64, strict=False).alias(c) for c, s in slots.items()),
    )
    has_value = pl.any_horizontal([pl.col(slots[c]).is_not_null() for c in dated or numbers])
    date = pl.col(date_column)
    found = [
        _problems(frame, has_value & pl.col("_date_raw").is_null(), date_column, "date is missing"),
        _problems(
            frame,
            pl.col("_date_raw").is_not_null() & date.is_null(),
            date_column,
            pl.format("cannot parse date {}", _quoted("_date_raw"))
            + pl.lit(_format_hint(date_format)),
        ),
    ]
    if earliest is not None:
        message = pl.format(
            "date {} is before {}", _quoted("_date_raw"), pl.lit(earliest.date().isoformat())
        )
        found.append(_problems(frame, has_value & (date < earliest), date_column, message))
    if latest is not None:
        message = pl.format("date {} is in the future", _quoted("_date_raw"))
        found.append(_problems(frame, has_value & (date > latest), date_column, message))
    for column, slot in slots.items():
        value = pl.col(column)
        found += [
            _problems(
                frame,
                pl.col(slot).is_not_null() & value.is_null(),
                column,
                pl.format("{} is not a number", _quoted(slot)),
            ),
            _problems(frame, value.is_nan(), column, "value is NaN"),
            _problems(frame, value.is_infinite(), column, "value is infinite"),
        ]
    keyed = frame.filter(date.is_not_null() & has_value)
    distinct = keyed.unique(subset=[*key, date_column, *numbers], keep="first", maintain_order=True)
    distinct = distinct.with_columns(pl.col(ROW).first().over([*key, date_column]).alias("_first"))
    found.append(
        _problems(
            distinct,
            pl.col(ROW) != pl.col("_first"),
            date_column,
            pl.format(
                "{} appears twice with different values (first in row {})",
                pl.col("_date_raw"),
                pl.col("_first"),
            ),
        )
    )
    problems = pl.concat(found)
    if not problems.is_empty():
        raise TabularError.from_problems(table.source, problems)
    return frame.drop("_date_raw", *slots.values())
