"""What a source module declares: one `Source` that the registry lists.

A `Source` names the source, fetches it in each mode it has (every fetch returns a
FetchResult), lists the fields it should fill, says how stale it may get and which
refresh schedule runs it. `ingest.registry` lists them; the ingest assets, their
checks and their schedules are generated from that list.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ingest.base import FetchResult, SourceError
from ingest.sources import Mode, SourceSettings
from ingest.synthetic import synthetic_world

Fetch = Callable[[SourceSettings, Mapping[str, dt.date]], FetchResult]
"""Fetch in one mode: the settings, and the last stored date per item (live increments)."""


@dataclass(frozen=True)
class Refresh:
    """A refresh schedule: its job's name, when it runs (cron, New York time), what it does."""

    job: str
    cron: str
    description: str


# US close at 16:00; Yahoo's daily bars are final well within 90 minutes.
MARKET_REFRESH = Refresh(
    "market_refresh",
    "30 17 * * 1-5",
    "Daily closes, returns and volatility from Yahoo Finance.",
)
# ISM services comes out on the third business day, at the latest the 6th.
MACRO_REFRESH = Refresh(
    "macro_refresh",
    "0 9 7 * *",
    "Monthly macro series (FRED), ISM PMI and the monthly tabular sources.",
)
# Daily, not weekly: news must stay within its 4-day freshness check, and earnings land
# a day after their report; both ingests are idempotent.
EARNINGS_NEWS_REFRESH = Refresh(
    "earnings_news_refresh",
    "0 21 * * *",
    "Earnings reports and the day's news.",
)


@dataclass(frozen=True)
class Source:
    """One source: how to fetch it in each of its modes and what to expect from it."""

    name: str
    description: str
    modes: Mapping[Mode, Fetch]
    expected_fields: Callable[[SourceSettings], list[str]]  # the paths it should fill
    max_age: dt.timedelta  # older than this since the last ingest: not fresh
    refresh: Refresh
    missing_mode_hint: str = ""  # what to do instead, for a mode the source lacks

    def fetch(
        self, settings: SourceSettings, since: Mapping[str, dt.date] | None = None
    ) -> FetchResult:
        """Long-format rows in the settings' mode; SourceError for a mode it lacks."""
        fetch = self.modes.get(settings.mode)
        if fetch is None:
            hint = f"; {self.missing_mode_hint}" if self.missing_mode_hint else ""
            raise SourceError(f"source '{self.name}' has no {settings.mode} mode{hint}")
        return fetch(settings, since or {})


def from_synthetic_world(name: str) -> Fetch:
    """The synthetic mode of a source the synthetic world generates (`world.sources[name]`)."""

    def fetch(settings: SourceSettings, since: Mapping[str, dt.date]) -> FetchResult:
        return FetchResult(name, synthetic_world(settings.synthetic_config).sources[name])

    return fetch


def synthetic_fields(name: str, settings: SourceSettings) -> list[str]:
    """The field paths the synthetic world generates for source `name`."""
    frame = synthetic_world(settings.synthetic_config).sources[name]
    return sorted(frame["field_path"].unique())
