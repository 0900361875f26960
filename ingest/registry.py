"""Every source, in one list: a new source is one module declaring a `Source`, and one line here.

The ingest assets, their checks and their refresh schedules are generated from
:data:`REGISTRY`; :func:`fetch` fetches a source by name in the configured mode.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from ingest.base import FetchResult
from ingest.earnings import EARNINGS_SOURCE
from ingest.fred import FRED_SOURCE
from ingest.news import NEWS_SOURCE
from ingest.pmi import PMI_SOURCE
from ingest.protocol import Source
from ingest.sources import SourceSettings
from ingest.tabular import TABULAR_SOURCE
from ingest.yahoo import YAHOO_SOURCE

__all__ = ["REGISTRY", "SOURCES", "expected_fields", "fetch", "source_named"]

REGISTRY: tuple[Source, ...] = (
    FRED_SOURCE,
    YAHOO_SOURCE,
    PMI_SOURCE,
    EARNINGS_SOURCE,
    NEWS_SOURCE,
    TABULAR_SOURCE,
)
SOURCES: tuple[str, ...] = tuple(source.name for source in REGISTRY)

_BY_NAME = {source.name: source for source in REGISTRY}
if len(_BY_NAME) != len(REGISTRY):
    raise RuntimeError("REGISTRY lists a source name twice")


def source_named(name: str) -> Source:
    """The registered source called `name`; ValueError naming the others when there is none."""
    if name not in _BY_NAME:
        raise ValueError(f"unknown source {name!r}; one of {', '.join(SOURCES)}")
    return _BY_NAME[name]


def fetch(
    source: str, settings: SourceSettings, *, since: Mapping[str, dt.date] | None = None
) -> FetchResult:
    """Long-format rows of one source in the configured mode.

    `since` maps a source item (ticker, series id) to the last date already stored,
    for incremental live fetches.
    """
    return source_named(source).fetch(settings, since)


def expected_fields(source: str, settings: SourceSettings) -> list[str]:
    """The field paths a source should fill in the configured mode (for asset checks)."""
    return source_named(source).expected_fields(settings)
