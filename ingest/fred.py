"""FRED adapter: 80+ FRED series mapped onto schema field paths, live (fredapi) or recorded.

The series are listed in :mod:`ingest.fred_series` (field path, frequency, transform,
release lag). Two ways in, one code path after parsing:

* live: :func:`fetch_fred_live` goes through ``fredapi`` (latest values, or every ALFRED
  vintage with ``vintages=True``) with :class:`ingest.fred_client.FredClient` doing the HTTP.
* recorded: :func:`load_fred_recorded` reads the files :mod:`ingest.fred_recorded` knows.

Both produce raw ``(date, value, realtime_start)`` rows that
:func:`ingest.fred_transforms.to_long` turns into the warehouse's long format. Each field
is written by its first series (in table order) that delivers: fallback series stand in
for a failed primary. As the `fred` source it is :data:`FRED_SOURCE`.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import os
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from ingest.base import (
    NOT_ATTEMPTED,
    FetchResult,
    RetryPolicy,
    SourceError,
    call_with_retries,
    redact,
)
from ingest.fred_client import (
    API_KEY_HELP,
    RETRYABLE,
    FredClient,
    KeyRejected,
    TransportError,
    raw_latest,
    raw_vintages,
    resolve_key,
)
from ingest.fred_recorded import fred_folder, read_fred_md, read_recorded
from ingest.fred_series import FRED_SERIES, FredSeries, select_series
from ingest.fred_transforms import to_long
from ingest.protocol import MACRO_REFRESH, Source, from_synthetic_world, synthetic_fields
from ingest.sources import SourceSettings
from warehouse import clock
from warehouse.spec import DatasetSpec
from warehouse.validation import LONG_SCHEMA

__all__ = [
    "FRED_SOURCE",
    "UNREACHABLE_AFTER",
    "fetch_fred_live",
    "fred_adapter",
    "fred_series_info",
    "load_fred_recorded",
]

log = logging.getLogger("guwm.ingest.fred")

SOURCE = "fred"
UNREACHABLE_AFTER = 2  # consecutive series lost to connection errors, none delivered -> stop


# -- fetching many series: fallbacks, partial failure -------------------------------------


class _Unreachable(SourceError):
    """The source cannot be reached at all: stop asking for the remaining series."""


# What can go wrong with one series without saying anything about the others.
_PER_SERIES_ERRORS = (
    SourceError,
    ET.ParseError,
    ValueError,
    TypeError,
    KeyError,
    OSError,
    pl.exceptions.PolarsError,
)


@dataclass
class _Collected:
    result: FetchResult
    delivered: list[FredSeries]


def _collect(
    series: list[FredSeries],
    fetch_raw: Callable[[FredSeries], pl.DataFrame],
    *,
    now: dt.datetime,
    start: dt.date | None,
    end: dt.date | None,
    secrets: tuple[str, ...] = (),
) -> _Collected:
    """Fetch every requested field from its first series (in table order) that delivers."""
    frames: list[pl.DataFrame] = []
    failures: dict[str, str] = {}
    delivered: dict[str, FredSeries] = {}
    stop: str | None = None
    for s in series:
        if s.field_path in delivered:
            primary = delivered[s.field_path].series_id
            log.debug("FRED %s skipped: %s comes from %s", s.series_id, s.field_path, primary)
            continue
        if stop is not None:
            failures[s.series_id] = f"{NOT_ATTEMPTED}: FRED unreachable"
            continue
        try:
            long = to_long(fetch_raw(s), s, now=now, start=start, end=end)
        except KeyRejected:
            raise
        except _Unreachable as err:
            stop = redact(str(err), secrets)
            failures[s.series_id] = stop
            continue
        except _PER_SERIES_ERRORS as err:
            failures[s.series_id] = redact(str(err) or type(err).__name__, secrets)
            continue
        if long.is_empty():
            failures[s.series_id] = "no observations in the requested date range"
            continue
        delivered[s.field_path] = s
        frames.append(long)
    data = (
        pl.concat(frames).cast(LONG_SCHEMA).sort("field_path", "observed_at", "known_at")
        if frames
        else pl.DataFrame(schema=LONG_SCHEMA)
    )
    log.info(
        "FRED: %d series delivered, %d rows, %d failed", len(delivered), len(data), len(failures)
    )
    return _Collected(FetchResult(SOURCE, data, failures), list(delivered.values()))


def _as_date(value: str | dt.date | None, name: str) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.date()
    if value is None or isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        raise ValueError(f"{name} must be an ISO date like 2010-01-01, got {value!r}") from None


def _load_recorded(
    root: Path,
    series_ids: Iterable[str] | None,
    start_date: str | dt.date | None,
    end_date: str | dt.date | None,
    now: dt.datetime | None,
) -> _Collected:
    directory = fred_folder(Path(root))
    if not directory.is_dir():
        raise FileNotFoundError(f"no recorded FRED folder at {directory}")
    series = select_series(series_ids)
    if series_ids is None:  # everything that was recorded
        series = [s for s in series if (directory / f"{s.series_id}.csv").is_file()]
    return _collect(
        series,
        functools.partial(read_recorded, directory, history=read_fred_md(Path(root))),
        now=now or clock.utc_now(),
        start=_as_date(start_date, "start_date"),
        end=_as_date(end_date, "end_date"),
    )


def load_fred_recorded(
    root: Path,
    series_ids: Iterable[str] | None = None,
    start_date: str | dt.date | None = None,
    *,
    end_date: str | dt.date | None = None,
    now: dt.datetime | None = None,
) -> FetchResult:
    """Long-format rows from recorded FRED CSVs (``root/macro/fred/<ID>.csv``, ``date,value``).

    Without `series_ids`, every table series that has a file is loaded. Empty cells are
    missing values and are dropped. Values go through the same transforms and release lags
    as live data; `now` (naive UTC, default the clock) caps known_at.
    """
    return _load_recorded(root, series_ids, start_date, end_date, now).result


def _fetch_live(
    series_ids: Iterable[str] | None,
    *,
    api_key: str | None,
    start_date: str | dt.date | None,
    end_date: str | dt.date | None,
    vintages: bool,
    policy: RetryPolicy,
    root_url: str | None,
    now: dt.datetime | None = None,
) -> _Collected:
    key = resolve_key(api_key)
    series = select_series(series_ids)
    start, end = _as_date(start_date, "start_date"), _as_date(end_date, "end_date")
    client = FredClient(key, timeout=policy.timeout, root_url=root_url)
    secrets = client.secrets
    state = {"delivered": 0, "lost": 0}

    def fetch_raw(s: FredSeries) -> pl.DataFrame:
        last: list[BaseException] = []

        def attempt() -> pl.DataFrame:
            try:
                return raw_vintages(s, client) if vintages else raw_latest(s, start, end, client)
            except Exception as err:
                last[:] = [err]
                raise

        try:
            raw = call_with_retries(
                attempt,
                policy=policy,
                what=f"FRED series {s.series_id}",
                retry_on=RETRYABLE,
                secrets=secrets,
            )
        except KeyRejected as err:
            raise KeyRejected(f"FRED rejected the API key ({err}); {API_KEY_HELP}") from None
        except SourceError as err:
            state["lost"] = state["lost"] + 1 if isinstance(last[-1], TransportError) else 0
            if state["lost"] >= UNREACHABLE_AFTER and not state["delivered"]:
                raise _Unreachable(
                    f"FRED unreachable ({state['lost']} series in a row failed to connect; "
                    f"last: {err})"
                ) from None
            raise
        state["delivered"] += 1
        state["lost"] = 0
        return raw

    return _collect(
        series, fetch_raw, now=now or clock.utc_now(), start=start, end=end, secrets=secrets
    )


def fetch_fred_live(
    series_ids: Iterable[str] | None = None,
    *,
    api_key: str | None = None,
    start_date: str | dt.date | None = None,
    end_date: str | dt.date | None = None,
    vintages: bool = False,
    policy: RetryPolicy = RetryPolicy(),  # noqa: B008 -- frozen dataclass, safe default
    root_url: str | None = None,
) -> FetchResult:
    """Fetch FRED series (default: the whole table) through fredapi into the long format.

    The key comes from `api_key` or the environment variable FRED_API_KEY (ValueError when
    neither is set). Timeouts, connection errors, HTTP 5xx and 429 are retried with backoff
    (`policy`); a 400 (bad series id) is not. A failed series lands in `failures` with its
    reason and does not stop the others; fallback series stand in for a failed primary.
    A rejected key raises SourceError. With `vintages=True` every ALFRED vintage is a row
    with known_at = its realtime_start (at the series' release time). `root_url` replaces
    https://api.stlouisfed.org/fred (tests use a loopback server).
    """
    return _fetch_live(
        series_ids,
        api_key=api_key,
        start_date=start_date,
        end_date=end_date,
        vintages=vintages,
        policy=policy,
        root_url=root_url,
    ).result


def fred_series_info(
    series_ids: Iterable[str] | None = None,
    *,
    api_key: str | None = None,
    policy: RetryPolicy = RetryPolicy(),  # noqa: B008 -- frozen dataclass, safe default
    root_url: str | None = None,
) -> tuple[pl.DataFrame, dict[str, str]]:
    """FRED's own metadata (/series) for table rows, beside the table's frequency.

    A maintenance check of :data:`FRED_SERIES` when FRED is reachable: rows whose
    ``frequency_matches`` is false, or whose ``units`` disagree with the schema, need a look.
    Returns the frame and the series that failed, with reasons.
    """
    client = FredClient(resolve_key(api_key), timeout=policy.timeout, root_url=root_url)
    rows: list[dict[str, str]] = []
    failures: dict[str, str] = {}
    for s in select_series(series_ids):
        try:
            info = call_with_retries(
                functools.partial(client.get_series_info, s.series_id),
                policy=policy,
                what=f"FRED series {s.series_id}",
                retry_on=RETRYABLE,
                secrets=client.secrets,
            )
        except KeyRejected as err:
            raise KeyRejected(f"FRED rejected the API key ({err}); {API_KEY_HELP}") from None
        except (SourceError, ValueError, ET.ParseError) as err:
            failures[s.series_id] = redact(str(err), client.secrets)
            continue
        rows.append(
            {
                "series_id": s.series_id,
                "field_path": s.field_path,
                "table_frequency": s.frequency,
                "fred_frequency": str(info.get("frequency_short", "")),
                "units": str(info.get("units", "")),
                "title": str(info.get("title", "")),
                "last_updated": str(info.get("last_updated", "")),
            }
        )
    columns = ["series_id", "field_path", "table_frequency", "fred_frequency", "units", "title"]
    frame = pl.DataFrame(rows, schema=dict.fromkeys([*columns, "last_updated"], pl.Utf8))
    return frame.with_columns(
        frequency_matches=pl.col("table_frequency") == pl.col("fred_frequency")
    ), failures


# -- the seed's adapter -------------------------------------------------------------------


def fred_adapter(
    api_key: str | None = None,
    start_date: str | dt.date | None = None,
    *,
    series: Iterable[str] | None = None,
    vintages: bool = False,
    recorded_dir: str | os.PathLike[str] | None = None,
    end_date: str | dt.date | None = None,
    policy: RetryPolicy = RetryPolicy(),  # noqa: B008 -- frozen dataclass, safe default
    root_url: str | None = None,
) -> tuple[DatasetSpec, pl.DataFrame]:
    """FRED as ``(DatasetSpec "FRED", long-format data)``: recorded files or the live API.

    `recorded_dir` (a folder like shared/data, or one holding the CSVs) selects the recorded
    files; otherwise the live API is used (see :func:`fetch_fred_live`). The spec maps each
    delivered series id, lower case, to its field path. Failed series are logged; SourceError
    only when every series failed.
    """
    started = time.perf_counter()
    if recorded_dir is not None:
        if vintages:
            raise ValueError("recorded FRED files hold one vintage; vintages=True needs the API")
        collected = _load_recorded(Path(recorded_dir), series, start_date, end_date, None)
    else:
        collected = _fetch_live(
            series,
            api_key=api_key,
            start_date=start_date,
            end_date=end_date,
            vintages=vintages,
            policy=policy,
            root_url=root_url,
        )
    result = collected.result.raise_if_nothing()
    spec = DatasetSpec.from_fields("FRED", {s.key: s.field_path for s in collected.delivered})
    seconds = time.perf_counter() - started
    log.info(
        "FRED adapter: %d fields, %d rows in %.1fs",
        len(spec.field_paths),
        len(result.data),
        seconds,
    )
    return spec, result.data


# -- the source ---------------------------------------------------------------------------


def _recorded(settings: SourceSettings, since: Mapping[str, dt.date]) -> FetchResult:
    return load_fred_recorded(Path(settings.recorded_dir), start_date=settings.start_date)


def _live(settings: SourceSettings, since: Mapping[str, dt.date]) -> FetchResult:
    return fetch_fred_live(
        api_key=settings.fred_api_key,
        start_date=settings.start_date,
        end_date=settings.end_date,
        policy=settings.policy,
    )


def _expected_fields(settings: SourceSettings) -> list[str]:
    if settings.mode == "synthetic":
        return synthetic_fields(SOURCE, settings)
    if settings.mode == "live":
        return sorted({s.field_path for s in FRED_SERIES if s.primary})
    files = {p.stem for p in fred_folder(Path(settings.recorded_dir)).glob("*.csv")}
    return sorted({s.field_path for s in FRED_SERIES if s.series_id in files})


FRED_SOURCE = Source(
    name=SOURCE,
    description="US macro series from FRED (50+), transformed to schema units, "
    "with release lags or ALFRED vintages as known_at.",
    modes={"synthetic": from_synthetic_world(SOURCE), "recorded": _recorded, "live": _live},
    expected_fields=_expected_fields,
    max_age=dt.timedelta(days=35),
    refresh=MACRO_REFRESH,
)
