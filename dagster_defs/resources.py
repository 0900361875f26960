"""Dagster resources: where the warehouse is and how sources are reached."""

from pathlib import Path

import dagster as dg

from ingest.sources import SourceSettings
from training.llm import LLMProvider
from warehouse.catalog import HISTORY_START, LARGE_CAP_TICKERS
from warehouse.paths import default_artifacts_dir
from warehouse.store import Warehouse


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB field warehouse (default: $GUWM_WAREHOUSE or the user data directory)."""

    path: str | None = None
    lock_timeout: float = 300.0
    allow_outliers: bool = False  # store values outside their field's plausible range

    def open(self, *, read_only: bool = False) -> Warehouse:
        return Warehouse(self.path, read_only=read_only, lock_timeout=self.lock_timeout)


class SourcesResource(dg.ConfigurableResource):
    """Source mode (synthetic | recorded | live) and what each mode needs.

    Set the FRED key through the environment (`FRED_API_KEY`, wired as an EnvVar) so
    it never appears in run config or the UI.
    """

    mode: str = "synthetic"
    recorded_dir: str | None = None
    start_date: str = HISTORY_START
    end_date: str | None = None
    seed: int = 0
    tickers: list[str] = list(LARGE_CAP_TICKERS)
    fred_api_key: str | None = None
    news_path: str | None = None
    tabular_spec: str | None = None

    def settings(self) -> SourceSettings:
        return SourceSettings(
            mode=self.mode,  # type: ignore[arg-type]  # validated by SourceSettings
            recorded_dir=Path(self.recorded_dir) if self.recorded_dir else None,
            start_date=self.start_date,
            end_date=self.end_date,
            seed=self.seed,
            tickers=tuple(self.tickers),
            fred_api_key=self.fred_api_key,
            news_path=Path(self.news_path) if self.news_path else None,
            tabular_spec=Path(self.tabular_spec) if self.tabular_spec else None,
        )


class ArtifactsResource(dg.ConfigurableResource):
    """Where canvases, checkpoints and reports are written (default: beside the warehouse)."""

    root: str | None = None

    def path(self, *parts: str) -> Path:
        base = Path(self.root) if self.root else default_artifacts_dir()
        target = base.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target


class LLMResource(dg.ConfigurableResource):
    """The LLM that plans curricula (OpenAI- or Anthropic-compatible); none: the
    deterministic planner. Set the key through the environment (`GUWM_LLM_API_KEY`,
    wired as an EnvVar) so it never appears in run config or the UI."""

    provider: str | None = None  # "openai" | "anthropic"
    model: str | None = None
    base_url: str | None = None
    api_key: str | None = None

    def client(self) -> LLMProvider | None:
        if not self.provider:
            return None
        return LLMProvider(
            kind=self.provider, model=self.model or "", base_url=self.base_url, api_key=self.api_key
        )
