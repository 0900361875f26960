"""How sources are reached: the modes and the settings every source reads.

Modes:
- `synthetic` (default, offline): the synthetic world, written under source names
  `synthetic_<source>` so it never mixes with real data.
- `recorded`: real files laid out like ../shared/data (see its MANIFEST.md).
- `live`: the network (FRED needs an API key; Yahoo needs nothing).

:class:`SourceSettings` is the one declaration of the settings (the source window
`start_date`..`end_date`, the mode and what each mode needs): the Dagster resource is
built from its fields (`warehouse.config`, :meth:`SourceSettings.from_dict`).
Fetching a source in these settings: :func:`ingest.registry.fetch`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ingest.base import RetryPolicy
from ingest.synthetic import SyntheticWorldConfig
from warehouse.catalog import HISTORY_START, LARGE_CAP_TICKERS
from warehouse.config import from_plain

Mode = Literal["synthetic", "recorded", "live"]
MODES: tuple[Mode, ...] = ("synthetic", "recorded", "live")


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
        if self.mode not in MODES:
            raise ValueError(f"unknown source mode {self.mode!r}: synthetic, recorded or live")
        if self.mode == "recorded":
            if self.recorded_dir is None:
                raise ValueError("recorded mode needs recorded_dir (a folder like shared/data)")
            if not Path(self.recorded_dir).is_dir():
                raise FileNotFoundError(f"recorded_dir {self.recorded_dir} is not a directory")

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> SourceSettings:
        """Settings from plain config values (`warehouse.config.config_fields`)."""
        return from_plain(cls, raw)

    def warehouse_source(self, source: str) -> str:
        """The `source` column value: synthetic data is kept apart from real data."""
        return f"synthetic_{source}" if self.mode == "synthetic" else source

    @property
    def synthetic_config(self) -> SyntheticWorldConfig:
        """The synthetic world of this window, seed and firms (its own end by default)."""
        return SyntheticWorldConfig(
            start=self.start_date,
            end=self.end_date or SyntheticWorldConfig.end,
            seed=self.seed,
            firms=self.tickers,
        )
