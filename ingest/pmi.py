"""ISM manufacturing and services PMI (and sub-indices, and the consensus forecast).

ISM data is not on FRED and has no public API, so `pmi_adapter` reads CSV (or Parquet)
files from local paths or URLs, each with a reference-month date column and a value
column (``Date,Value`` as in ISM exports; a UTF-8 BOM is handled). Parsing is
:mod:`ingest.tables`'s, so errors name file, column and row the same way.

Time stamps
-----------
* **observed_at** is the reference month (its 1st, 00:00).
* **known_at** is ISM's release: 10:00 New York time (14:00 UTC in summer, 15:00 UTC in
  winter) on the *first* business day of the next month for manufacturing, the *third*
  for services, skipping weekends, New Year's Day, Independence Day (both as observed)
  and Labor Day (:func:`release_time`). A file with a release-date column
  (``release_date``, ``released``, ``known_at``, …) overrides the rule; a bare date there
  gets 10:00 New York time.

Vintages from the consensus file
--------------------------------
The consensus file (``DATE,Actual,Forecast,Previous``; DATE is the *release* month, so the
row dated 2024-07-01 holds the June reading) carries real vintages, used like this:

* ``Actual`` -> the **first print** of ``ism_manufacturing.pmi`` for month DATE - 1,
  known at that month's release.
* ``Previous`` -> the **second print** of month DATE - 2 (the prior month as shown in the
  next release), known at the release in month DATE.
* The headline file holds today's (seasonally revised) values. For a month the
  consensus file covers, that value is treated as a **revision** known one year after
  the first print (by then ISM's annual seasonal revision is out), capped at now.
  Months the consensus file does not cover get the file value at their release.
  Because ISM later revises up to four years back, that is the best the data allows.
* A vintage that repeats the previous vintage's value is dropped (no news).
* ``Forecast`` -> ``ism_manufacturing.pmi_consensus`` for month DATE - 1, known at
  00:00 UTC of the release day (the consensus is settled before the 10:00 release).
* Rows without an Actual (a release still to come) are ignored: in the recorded file
  that row repeats stale numbers.
"""

from __future__ import annotations

import datetime as dt
import functools
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from http.client import HTTPException
from pathlib import Path

import polars as pl

from ingest.base import (
    FetchResult,
    RateLimitedError,
    RetryPolicy,
    SourceError,
    call_with_retries,
    empty_long_frame,
)
from ingest.protocol import MACRO_REFRESH, Source, from_synthetic_world, synthetic_fields
from ingest.sources import SourceSettings
from ingest.tables import Table, TabularError, read_table, to_long
from warehouse import clock
from warehouse.schema import UnknownFieldError, default_schema
from warehouse.spec import DatasetSpec
from warehouse.validation import LONG_SCHEMA

__all__ = [
    "MANUFACTURING",
    "PMI_SOURCE",
    "RECORDED_FILES",
    "SERVICES",
    "ism_holidays",
    "pmi_adapter",
    "release_time",
]

MANUFACTURING = "country_us.surveys.ism_manufacturing"
SERVICES = "country_us.surveys.ism_services"
CONSENSUS_FIELD = f"{MANUFACTURING}.pmi_consensus"
RELEASE_BUSINESS_DAY = {MANUFACTURING: 1, SERVICES: 3}
RELEASE_HOUR_NEW_YORK = 10
REVISION_DELAY = "12mo"  # a revised value counts as known one year after the first print
RECORDED_FILES = {
    "manufacturing": "surveys/ism_manufacturing_pmi.csv",
    "services": "surveys/ism_services_pmi.csv",
    "consensus": "surveys/ism_manufacturing_pmi_consensus.csv",
}
SOURCE = "ism_pmi"
DEFAULT_POLICY = RetryPolicy()
_DATE_NAMES = ("date", "month", "reference_month", "period", "observation_date", "sasdate")
_RELEASE_NAMES = ("release_date", "released", "release", "known_at", "release_time", "published")
_VALUE_NAMES = ("value", "pmi", "index", "actual", "level")


class TransientError(Exception):
    """A failure worth retrying (5xx, connection trouble, timeout)."""


# -- release calendar ------------------------------------------------------------------


@functools.cache
def ism_holidays(first_year: int = 1940, last_year: int = 2100) -> tuple[dt.date, ...]:
    """US holidays that can move an ISM release: New Year's Day and July 4th (as
    observed, Saturday -> Friday, Sunday -> Monday) and Labor Day (first Monday of
    September). Good Friday is not one: ISM publishes on it."""
    days: list[dt.date] = []
    for year in range(first_year, last_year + 1):
        for month, day in ((1, 1), (7, 4)):
            date = dt.date(year, month, day)
            if date.weekday() == 5:
                date -= dt.timedelta(days=1)
            elif date.weekday() == 6:
                date += dt.timedelta(days=1)
            days.append(date)
        sept1 = dt.date(year, 9, 1)
        days.append(sept1 + dt.timedelta(days=(7 - sept1.weekday()) % 7))
    return tuple(sorted(days))


def release_business_day(observed_at: pl.Expr, business_day: int) -> pl.Expr:
    """The date of the `business_day`-th business day of the month after `observed_at`."""
    first = observed_at.dt.truncate("1mo").dt.offset_by("1mo").dt.date()
    rolled = first.dt.add_business_days(0, roll="forward", holidays=ism_holidays())
    if business_day > 1:
        rolled = rolled.dt.add_business_days(business_day - 1, holidays=ism_holidays())
    return rolled


def new_york_time(day: pl.Expr, hour: int = RELEASE_HOUR_NEW_YORK) -> pl.Expr:
    """`hour`:00 New York time on `day`, as naive UTC Datetime("us")."""
    return (
        (day.cast(pl.Datetime("us")) + pl.duration(hours=hour))
        .dt.replace_time_zone("America/New_York", ambiguous="earliest", non_existent="null")
        .dt.convert_time_zone("UTC")
        .dt.replace_time_zone(None)
    )


def release_time(observed_at: pl.Expr, business_day: int = 1) -> pl.Expr:
    """ISM's release for a reference month: 10:00 New York time on the `business_day`-th
    business day of the next month (1 = manufacturing, 3 = services), naive UTC."""
    return new_york_time(release_business_day(observed_at, business_day))


# -- fetching --------------------------------------------------------------------------


def _is_url(source: str | Path) -> bool:
    return isinstance(source, str) and source.lower().startswith(("http://", "https://"))


def _label(url: str) -> str:
    """The URL without its query string (which may hold a key) for messages."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(query="…" if parts.query else ""))


def fetch_bytes(url: str, policy: RetryPolicy = DEFAULT_POLICY) -> bytes:
    """GET `url` with a timeout, retrying 5xx, 429 and connection errors with backoff.

    Raises SourceError (other 4xx at once; the rest after `policy.attempts`).
    """
    label = _label(url)

    def attempt() -> bytes:
        try:
            with urllib.request.urlopen(url, timeout=policy.timeout) as response:
                return response.read()
        except urllib.error.HTTPError as err:
            if err.code == 429:
                raise RateLimitedError(f"HTTP 429 {err.reason}") from None
            if err.code >= 500:
                raise TransientError(f"HTTP {err.code} {err.reason}") from None
            raise SourceError(
                f"source '{SOURCE}': GET {label}: HTTP {err.code} {err.reason}"
            ) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError, HTTPException) as err:
            raise TransientError(str(getattr(err, "reason", err))) from None

    return call_with_retries(
        attempt,
        policy=policy,
        what=f"source '{SOURCE}': GET {label}",
        retry_on=(TransientError, RateLimitedError),
        secrets=[urllib.parse.urlsplit(url).query],
    )


def _load(source: str | Path, policy: RetryPolicy) -> Table:
    if _is_url(source):
        url = str(source)
        fmt = "parquet" if urllib.parse.urlsplit(url).path.lower().endswith(".parquet") else "csv"
        return read_table(fetch_bytes(url, policy), label=_label(url), file_format=fmt)
    return read_table(Path(source))


# -- parsing ---------------------------------------------------------------------------


def _pick(table: Table, names: tuple[str, ...], exclude: set[str]) -> str | None:
    lower = {c.lower().strip(): c for c in table.columns if c not in exclude}
    return next((lower[n] for n in names if n in lower), None)


def _columns(table: Table) -> tuple[str, str, str | None]:
    """(date column, value column, release column or None) of a one-series file."""
    date = _pick(table, _DATE_NAMES, set()) or (table.columns[0] if table.columns else None)
    if date is None:
        raise TabularError(table.source, "no columns")
    release = _pick(table, _RELEASE_NAMES, {date})
    value = _pick(table, _VALUE_NAMES, {date, release or ""})
    if value is None:
        rest = [c for c in table.columns if c not in (date, release)]
        if len(rest) != 1:
            raise TabularError(
                table.source,
                f"cannot tell the value column: expected one of {', '.join(_VALUE_NAMES)} "
                f"(any case) or a single column beside '{date}'; "
                f"found {', '.join(repr(c) for c in table.columns)}",
            )
        value = rest[0]
    return date, value, release


def _month_start(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.col("observed_at").dt.truncate("1mo"))


def _series(source: str | Path, path: str, policy: RetryPolicy) -> pl.DataFrame:
    """Long rows of one ISM series file, known at its release (or its release column)."""
    table = _load(source, policy)
    date, value, release = _columns(table)
    business_day = RELEASE_BUSINESS_DAY[path.rsplit(".", 1)[0]]
    frame = to_long(
        table,
        {value: path},
        date_column=date,
        known_at_column=release,
        release=lambda observed: release_time(observed, business_day),
    )
    frame = _month_start(frame)
    if release is not None:  # a bare release date gets the usual 10:00 New York time
        frame = frame.with_columns(
            pl.when(pl.col("known_at") == pl.col("known_at").dt.truncate("1d"))
            .then(new_york_time(pl.col("known_at").dt.date()))
            .otherwise(pl.col("known_at"))
            .alias("known_at")
        )
    return frame


def _consensus(source: str | Path, policy: RetryPolicy) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(PMI first and second prints, consensus forecasts) from the consensus file."""
    table = _load(source, policy)
    date = _pick(table, _DATE_NAMES, set()) or "DATE"
    names = {c.lower(): c for c in table.columns}
    for needed in ("actual", "forecast"):
        if needed not in names:
            table.require([needed.capitalize()], "consensus column")
    # A row without an Actual is a release still to come; such scraped rows are unreliable
    # (the recorded file's newest row repeats old numbers), so only released rows count.
    actual = pl.col(names["actual"]).cast(pl.Utf8).str.strip_chars()
    table = Table(
        table.frame.filter(actual.is_not_null() & (actual != "")), table.source, table.separator
    )
    mapping = {names["actual"]: "first", names["forecast"]: "forecast"}
    if "previous" in names:
        mapping[names["previous"]] = "second"
    pmi = f"{MANUFACTURING}.pmi"
    long = to_long(
        table,
        dict.fromkeys(mapping, pmi) | {names["forecast"]: CONSENSUS_FIELD},
        date_column=date,
        keep_column=True,
    )
    release_month = pl.col("observed_at").dt.truncate("1mo")
    release = release_time(release_month.dt.offset_by("-1mo"), 1)
    kind = pl.col("column").replace_strict(mapping, return_dtype=pl.Utf8)
    long = long.with_columns(kind.alias("kind"))
    prints = long.filter(pl.col("kind") != "forecast").select(
        pl.lit(pmi).alias("field_path"),
        pl.when(pl.col("kind") == "first")
        .then(release_month.dt.offset_by("-1mo"))
        .otherwise(release_month.dt.offset_by("-2mo"))
        .alias("observed_at"),
        "value",
        release.alias("known_at"),
        pl.when(pl.col("kind") == "first").then(1).otherwise(2).alias("vintage"),
    )
    forecasts = long.filter(pl.col("kind") == "forecast").select(
        pl.lit(CONSENSUS_FIELD).alias("field_path"),
        release_month.dt.offset_by("-1mo").alias("observed_at"),
        "value",
        release_business_day(release_month.dt.offset_by("-1mo"), 1)
        .cast(pl.Datetime("us"))
        .alias("known_at"),
    )
    return prints, forecasts


def _with_vintages(headline: pl.DataFrame, prints: pl.DataFrame, now: dt.datetime) -> pl.DataFrame:
    """Merge first/second prints with the headline file (see the module doc)."""
    first = prints.filter(pl.col("vintage") == 1).select("observed_at", "known_at")
    covered = headline.join(first, on="observed_at", how="semi")
    revised = covered.join(first, on="observed_at", suffix="_first").select(
        "field_path",
        "observed_at",
        "value",
        pl.min_horizontal(
            release_time(pl.col("observed_at").dt.offset_by(REVISION_DELAY), 1), pl.lit(now)
        ).alias("known_at"),
        pl.lit(3).alias("vintage"),
    )
    uncovered = headline.join(first, on="observed_at", how="anti").with_columns(
        pl.lit(0).alias("vintage")
    )
    # A second print only for months with a first print; the revision is never earlier.
    seconds = prints.filter(pl.col("vintage") == 2).join(first, on="observed_at", how="semi")
    chain = pl.concat(
        [prints.filter(pl.col("vintage") == 1), seconds, revised, uncovered],
        how="vertical_relaxed",
    ).sort("observed_at", "known_at", "vintage")
    news = pl.col("value") != pl.col("value").shift(1).over("observed_at")
    return chain.filter(news.fill_null(True)).unique(
        ["observed_at", "known_at"], keep="first", maintain_order=True
    )


def _sub_index_path(key: str) -> str:
    """A sub-index key (full path, 'ism_services.prices', 'services.prices' or an
    unambiguous component like 'production') -> its field path."""
    schema = default_schema()
    if key in schema:
        return key
    survey, _, component = key.rpartition(".")
    prefixes = {
        "": (MANUFACTURING, SERVICES),
        "ism_manufacturing": (MANUFACTURING,),
        "manufacturing": (MANUFACTURING,),
        "ism_services": (SERVICES,),
        "services": (SERVICES,),
    }.get(survey, ())
    hits = [f"{p}.{component}" for p in prefixes if f"{p}.{component}" in schema]
    if len(hits) == 1:
        return hits[0]
    candidates = [p for p in schema.paths if p.startswith((MANUFACTURING, SERVICES))]
    suggestions = hits or [c for c in candidates if c.endswith("." + component)]
    if not suggestions:
        import difflib

        suggestions = difflib.get_close_matches(
            key, [c.removeprefix("country_us.surveys.") for c in candidates], n=5, cutoff=0.5
        )
    raise UnknownFieldError(key, suggestions)


# -- the adapter -----------------------------------------------------------------------


def pmi_adapter(
    manufacturing: str | Path | None = None,
    services: str | Path | None = None,
    *,
    sub_indices: Mapping[str, str | Path] | None = None,
    consensus: str | Path | None = None,
    recorded_dir: Path | None = None,
    policy: RetryPolicy = DEFAULT_POLICY,
) -> tuple[DatasetSpec, pl.DataFrame]:
    """ISM PMI files (paths or http(s) URLs) as a DatasetSpec and long-format rows.

    `manufacturing` / `services`: headline PMI files. `sub_indices` maps a component
    ("ism_manufacturing.new_orders", "services.prices", a full field path, or an
    unambiguous name such as "production") to its file. `consensus`: the actual-vs-
    consensus calendar file (see the module doc for how its vintages are used).
    `recorded_dir` fills whichever of the three files are not given from
    ``recorded_dir/surveys/`` (see RECORDED_FILES). URLs are fetched with `policy`.
    """
    series, consensus_file = _inputs(manufacturing, services, sub_indices, consensus, recorded_dir)
    frame = _read(series, consensus_file, policy)
    paths = list(series) + (
        [f"{MANUFACTURING}.pmi", CONSENSUS_FIELD] if consensus_file is not None else []
    )
    keys = {p.removeprefix("country_us.surveys."): p for p in dict.fromkeys(paths)}
    return DatasetSpec.from_fields(SOURCE, keys), frame


def _inputs(
    manufacturing: str | Path | None,
    services: str | Path | None,
    sub_indices: Mapping[str, str | Path] | None,
    consensus: str | Path | None,
    recorded_dir: Path | None,
) -> tuple[dict[str, str | Path], str | Path | None]:
    """The file of each series (by field path) and the consensus file, if any."""
    sources: dict[str, str | Path] = {}
    if recorded_dir is not None:
        root = Path(recorded_dir)
        for key, rel in RECORDED_FILES.items():
            if (root / rel).is_file():
                sources[key] = root / rel
        if not sources:
            expected = ", ".join(RECORDED_FILES.values())
            raise FileNotFoundError(f"no ISM files under {root} (expected {expected})")
    given = {"manufacturing": manufacturing, "services": services, "consensus": consensus}
    sources.update({k: v for k, v in given.items() if v is not None})
    series: dict[str, str | Path] = {}
    if "manufacturing" in sources:
        series[f"{MANUFACTURING}.pmi"] = sources["manufacturing"]
    if "services" in sources:
        series[f"{SERVICES}.pmi"] = sources["services"]
    for key, src in (sub_indices or {}).items():
        series[_sub_index_path(key)] = src
    if not series and "consensus" not in sources:
        raise ValueError(
            "pmi_adapter needs at least one file: manufacturing=, services=, sub_indices=, "
            "consensus= (paths or URLs) or recorded_dir="
        )
    return series, sources.get("consensus")


def _read(
    series: Mapping[str, str | Path], consensus: str | Path | None, policy: RetryPolicy
) -> pl.DataFrame:
    """Long-format rows of every series file, the headline with the consensus' vintages."""
    frames = {path: _series(src, path, policy) for path, src in series.items()}
    parts = [f for path, f in frames.items() if path != f"{MANUFACTURING}.pmi"]
    if consensus is not None:
        prints, forecasts = _consensus(consensus, policy)
        headline = frames.get(f"{MANUFACTURING}.pmi", empty_long_frame())
        now = clock.utc_now()
        parts += [_with_vintages(headline, prints, now).select(list(LONG_SCHEMA)), forecasts]
    elif f"{MANUFACTURING}.pmi" in frames:
        parts.append(frames[f"{MANUFACTURING}.pmi"])
    return (
        pl.concat([p.select(list(LONG_SCHEMA)).cast(LONG_SCHEMA) for p in parts])
        if parts
        else empty_long_frame()
    ).sort("field_path", "observed_at", "known_at")


# -- the source --------------------------------------------------------------------------


def _recorded(settings: SourceSettings, since: Mapping[str, dt.date]) -> FetchResult:
    series, consensus = _inputs(None, None, None, None, Path(settings.recorded_dir))
    return FetchResult("pmi", _read(series, consensus, settings.policy))


def _expected_fields(settings: SourceSettings) -> list[str]:
    if settings.mode == "synthetic":
        return synthetic_fields("pmi", settings)
    return [f"{MANUFACTURING}.pmi", f"{SERVICES}.pmi"]


PMI_SOURCE = Source(
    name="pmi",
    description="ISM manufacturing and services PMI with sub-indices, known at "
    "their release on a business day of the next month.",
    modes={"synthetic": from_synthetic_world("pmi"), "recorded": _recorded},
    expected_fields=_expected_fields,
    max_age=dt.timedelta(days=35),
    refresh=MACRO_REFRESH,
    missing_mode_hint="ISM data is not on FRED and has no public API: point pmi_adapter at "
    "your ISM CSV files, or use the recorded mode",
)
