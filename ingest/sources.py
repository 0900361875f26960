"""One entry point per source and mode: what the ingest assets (and scripts) call.

Modes:
- `synthetic` (default, offline): the synthetic world, written under source names
  `synthetic_<source>` so it never mixes with real data.
- `recorded`: real files laid out like ../shared/data (see its MANIFEST.md).
- `live`: the network (FRED needs an API key; Yahoo needs nothing).
"""

from __future__ import annotations

import datetime as dt
import functools
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any, Literal

import polars as pl
import yaml

from ingest.base import FetchResult, RetryPolicy, SourceError
from ingest.synthetic import SyntheticWorld, SyntheticWorldConfig, generate_world
from warehouse.catalog import HISTORY_START, LARGE_CAP_TICKERS
from warehouse.schema import firm_entity

Mode = Literal["synthetic", "recorded", "live"]
SOURCES: tuple[str, ...] = ("fred", "yahoo", "pmi", "earnings", "news", "tabular")
SENTIMENT_FIELD = "country_us.macro.sentiment.consumer_sentiment"


@dataclass(frozen=True)
class SourceSettings:
    """How to reach the sources. Secrets (the FRED key) are read, never stored in output."""

    mode: Mode = "synthetic"
    recorded_dir: Path | None = None
    start_date: str = HISTORY_START
    end_date: str | None = None
    seed: int = 0
    tickers: tuple[str, ...] = LARGE_CAP_TICKERS
    fred_api_key: str | None = field(default=None, repr=False)
    news_path: Path | None = None
    tabular_spec: Path | None = None
    policy: RetryPolicy = RetryPolicy()

    def __post_init__(self) -> None:
        if self.mode not in ("synthetic", "recorded", "live"):
            raise ValueError(f"unknown source mode {self.mode!r}: synthetic, recorded or live")
        if self.mode == "recorded":
            if self.recorded_dir is None:
                raise ValueError("recorded mode needs recorded_dir (a folder like shared/data)")
            if not Path(self.recorded_dir).is_dir():
                raise FileNotFoundError(f"recorded_dir {self.recorded_dir} is not a directory")

    def warehouse_source(self, source: str) -> str:
        """The `source` column value: synthetic data is kept apart from real data."""
        return f"synthetic_{source}" if self.mode == "synthetic" else source

    @property
    def synthetic_config(self) -> SyntheticWorldConfig:
        return SyntheticWorldConfig(
            start=self.start_date,
            end=self.end_date or SyntheticWorldConfig.end,
            seed=self.seed,
            firms=self.tickers,
        )


@functools.lru_cache(maxsize=2)
def synthetic_world(config: SyntheticWorldConfig) -> SyntheticWorld:
    """The synthetic world for a config, generated once per process."""
    return generate_world(config)


def fetch(
    source: str, settings: SourceSettings, *, since: Mapping[str, dt.date] | None = None
) -> FetchResult:
    """Long-format rows of one source in the configured mode.

    `since` maps a source item (ticker, series id) to the last date already stored,
    for incremental live fetches.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; one of {', '.join(SOURCES)}")
    if source == "tabular":
        return _tabular(settings)
    if settings.mode == "synthetic":
        return _synthetic(source, settings)
    if settings.mode == "recorded":
        return _recorded(source, settings)
    return _live(source, settings, since or {})


def tabular_tables(settings: SourceSettings) -> list[dict[str, Any]]:
    """The tables the tabular source reads: `tabular_spec` (YAML), else a default per mode.

    A spec file holds `tables:`, each with `path` and `mapping` (column -> field path)
    and optionally `date_column`, `known_at_column`, `release_lag`, `date_format`,
    `skip_rows_after_header`, `separator`, `encoding`, `name` (tabular_adapter's
    arguments; paths are relative to the spec file and stay in its folder).
    """
    if settings.tabular_spec is not None:
        spec_path = Path(settings.tabular_spec)
        tables = yaml.safe_load(spec_path.read_text()).get("tables") or []
        return [{**t, "path": str(_table_path(spec_path, t))} for t in tables]
    if settings.mode == "recorded":
        return [
            {
                "path": str(Path(settings.recorded_dir) / "macro" / "fred_md_current.csv"),
                "name": "FRED-MD",
                "mapping": {"TB3MS": "country_us.macro.rates.treasury_3m"},
                "date_column": "sasdate",
                "date_format": "%m/%d/%Y",
                "skip_rows_after_header": 1,
                "release_lag": "1mo5d",
            }
        ]
    if settings.mode == "synthetic":
        return [SYNTHETIC_SPREADSHEET]
    return []


def _table_path(spec: Path, table: Any) -> Path:
    """A spec table's file: relative to the spec file's folder, and confined to it.

    Absolute paths and '..' are refused, so a spec can name only files beside it (a
    symlink placed there by the owner of the folder is followed).
    """
    raw = table.get("path") if isinstance(table, Mapping) else None
    if not isinstance(raw, str) or not raw.strip():
        raise ValueError(f"tabular spec {spec}: every table needs a path (relative to the spec)")
    relative = PurePath(raw)
    if relative.is_absolute() or ".." in relative.parts:
        raise ValueError(
            f"tabular spec {spec}: table path {raw!r} must be relative to the spec's folder "
            f"{spec.parent} and stay inside it (no absolute path, no '..')"
        )
    return spec.parent / relative


# The synthetic mode's table: a user-style CSV export written at fetch time.
SYNTHETIC_SPREADSHEET: dict[str, Any] = {
    "path": "sentiment_survey.csv",
    "name": "sentiment survey",
    "mapping": {"sentiment": SENTIMENT_FIELD},
    "date_column": "month",
    "release_lag": "1mo14d",
}


def _write_synthetic_spreadsheet(settings: SourceSettings, directory: Path) -> Path:
    """Monthly consumer sentiment from the synthetic world, as a user would export it."""
    frame = synthetic_world(settings.synthetic_config).sources["fred"]
    table = (
        frame.filter(pl.col("field_path") == SENTIMENT_FIELD)
        .group_by("observed_at")
        .agg(pl.col("value").sort_by("known_at").last().alias("sentiment"))
        .sort("observed_at")
        .select(pl.col("observed_at").dt.strftime("%Y-%m-%d").alias("month"), "sentiment")
    )
    target = directory / SYNTHETIC_SPREADSHEET["path"]
    table.write_csv(target)
    return target


def _tabular(settings: SourceSettings) -> FetchResult:
    from ingest.tabular import TabularBatchError, TabularError, tabular_adapter

    tables = tabular_tables(settings)
    if not tables:
        raise SourceError("source 'tabular': live mode needs tabular_spec (a YAML of tables)")
    with tempfile.TemporaryDirectory(prefix="guwm-tabular-") as tmp:
        frames, errors = [], []
        for table in tables:
            if table is SYNTHETIC_SPREADSHEET:
                table = {**table, "path": _write_synthetic_spreadsheet(settings, Path(tmp))}
            try:
                frames.append(tabular_adapter(**table)[1])
            except TabularError as err:  # read every table: report every bad one at once
                errors.append(err)
    if errors:
        raise TabularBatchError(errors, len(tables))
    return FetchResult("tabular", pl.concat(frames, how="diagonal_relaxed"))


def _synthetic(source: str, settings: SourceSettings) -> FetchResult:
    world = synthetic_world(settings.synthetic_config)
    if source == "news":
        from ingest.news import daily_news_fields

        return FetchResult("news", daily_news_fields(world.headlines))
    return FetchResult(source, world.sources[source])


def _recorded(source: str, settings: SourceSettings) -> FetchResult:
    root = Path(settings.recorded_dir)
    if source == "fred":
        from ingest.fred import load_fred_recorded

        return load_fred_recorded(root, start_date=settings.start_date)
    if source == "yahoo":
        from ingest.yahoo import load_yahoo_recorded

        return load_yahoo_recorded(root)
    if source == "earnings":
        from ingest.earnings import load_earnings_recorded

        return load_earnings_recorded(root, tickers=list(settings.tickers))
    if source == "pmi":
        from ingest.pmi import pmi_adapter

        return FetchResult("pmi", pmi_adapter(recorded_dir=root)[1])
    from ingest.news import news_adapter

    return FetchResult("news", news_adapter(recorded_dir=root)[1])


def _live(source: str, settings: SourceSettings, since: Mapping[str, dt.date]) -> FetchResult:
    if source == "fred":
        from ingest.fred import fetch_fred_live

        return fetch_fred_live(
            api_key=settings.fred_api_key,
            start_date=settings.start_date,
            end_date=settings.end_date,
            policy=settings.policy,
        )
    if source == "yahoo":
        from ingest.yahoo import SYMBOLS, fetch_yahoo_live

        return fetch_yahoo_live(
            list(SYMBOLS), start=settings.start_date, since=dict(since), policy=settings.policy
        )
    if source == "earnings":
        from ingest.earnings import fetch_earnings_live

        return fetch_earnings_live(list(settings.tickers), policy=settings.policy)
    if source == "pmi":
        raise SourceError(
            "source 'pmi': ISM data is not on FRED and has no public API; in live mode "
            "point pmi_adapter at your ISM CSV files, or use the recorded mode"
        )
    if settings.news_path is None:
        raise SourceError("source 'news': live mode needs news_path (a CSV/Parquet of headlines)")
    from ingest.news import news_adapter

    return FetchResult("news", news_adapter(settings.news_path)[1])


NEWS_FIELDS = ("narratives.news.embedding", "narratives.news.volume", "narratives.news.sentiment")


def expected_fields(source: str, settings: SourceSettings) -> list[str]:
    """The field paths a source should fill in the configured mode (for asset checks)."""
    if source == "news":
        return list(NEWS_FIELDS)
    if source == "tabular":
        return sorted({p for t in tabular_tables(settings) for p in t["mapping"].values()})
    if settings.mode == "synthetic":
        frame = synthetic_world(settings.synthetic_config).sources[source]
        return sorted(frame["field_path"].unique())
    root = Path(settings.recorded_dir) if settings.mode == "recorded" else None
    if source == "fred":
        from ingest.fred import FRED_SERIES

        if root is None:
            return sorted({s.field_path for s in FRED_SERIES if s.primary})
        files = {p.stem for p in (root / "macro" / "fred").glob("*.csv")}
        return sorted({s.field_path for s in FRED_SERIES if s.series_id in files})
    if source == "yahoo":
        from ingest.yahoo import INSTRUMENTS, symbol_from_filename

        if root is None:
            return sorted({p for i in INSTRUMENTS for p in i.paths})
        symbols = {symbol_from_filename(p.stem) for p in (root / "market").rglob("*.csv")}
        return sorted({p for i in INSTRUMENTS if i.symbol in symbols for p in i.paths})
    if source == "earnings":
        from ingest.earnings import FIELDS

        return sorted(f"{firm_entity(t)}.earnings.{f}" for t in settings.tickers for f in FIELDS)
    from ingest.pmi import MANUFACTURING, SERVICES

    return [f"{MANUFACTURING}.pmi", f"{SERVICES}.pmi"]
