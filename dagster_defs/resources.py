"""Dagster resources: where the warehouse is and how sources are reached; and the
config classes built from the library's settings dataclasses (`settings_model`)."""

import dataclasses
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg
import pydantic

from ingest.sources import SourceSettings
from training.llm import LLMProvider
from warehouse.config import config_fields
from warehouse.paths import default_artifacts_dir
from warehouse.store import Warehouse

Model = TypeVar("Model", bound=pydantic.BaseModel)


def settings_model(settings: type, base: type[Model]) -> type[Model]:
    """A `base` (dg.Config or dg.ConfigurableResource) with one field per field of the
    dataclass `settings`, in plain config types with its defaults (`config_fields`):
    subclass it to add the rest."""
    return pydantic.create_model(
        f"{settings.__name__}Fields",
        __base__=base,
        __module__=__name__,
        **config_fields(settings, _nested_config),
    )


def _nested_config(settings: type, fields: dict[str, Any]) -> type[dg.Config]:
    """The config class of a dataclass nested in settings (e.g. a retry policy)."""
    return pydantic.create_model(
        f"{settings.__name__}Config", __base__=dg.Config, __module__=__name__, **fields
    )


def settings_of(config: pydantic.BaseModel, settings: type) -> Any:
    """The `settings` dataclass of a `settings_model` config (its other fields left out),
    through the dataclass's `from_dict`."""
    names = {f.name for f in dataclasses.fields(settings)}
    return settings.from_dict(config.model_dump(include=names))


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB field warehouse (default: $GUWM_WAREHOUSE or the user data directory)."""

    path: str | None = None
    lock_timeout: float = 300.0
    allow_outliers: bool = False  # store values outside their field's plausible range

    def open(self, *, read_only: bool = False) -> Warehouse:
        return Warehouse(self.path, read_only=read_only, lock_timeout=self.lock_timeout)


class SourcesResource(settings_model(SourceSettings, dg.ConfigurableResource)):
    """Source mode (synthetic | recorded | live) and what each mode needs: one field per
    field of `ingest.sources.SourceSettings`, in config types (paths as text, lists).

    Set the FRED key through the environment (`FRED_API_KEY`, wired as an EnvVar) so
    it never appears in run config or the UI.
    """

    def settings(self) -> SourceSettings:
        """The library's settings of this configuration."""
        return settings_of(self, SourceSettings)


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
