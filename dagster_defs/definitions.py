"""The guwm code location: every asset, check, resource, job and schedule in one place."""

from __future__ import annotations

import os

import dagster as dg

from dagster_defs.canvas_assets import canvas_tensors, presence_matches_warehouse
from dagster_defs.ingest_assets import ingest_assets, ingest_checks, warehouse_parquet
from dagster_defs.resources import ArtifactsResource, SourcesResource, WarehouseResource
from dagster_defs.training_assets import world_model, world_model_evaluation


def _sources_from_env() -> SourcesResource:
    """Source settings from the environment: GUWM_SOURCE_MODE, GUWM_RECORDED_DATA, FRED_API_KEY."""
    return SourcesResource(
        mode=os.environ.get("GUWM_SOURCE_MODE", "synthetic"),
        recorded_dir=os.environ.get("GUWM_RECORDED_DATA"),
        start_date=os.environ.get("GUWM_START_DATE", "2005-01-01"),
        # An EnvVar is resolved at run time and never shown in the UI or run config.
        fred_api_key=dg.EnvVar("FRED_API_KEY") if os.environ.get("FRED_API_KEY") else None,
        news_path=os.environ.get("GUWM_NEWS_PATH"),
        tabular_spec=os.environ.get("GUWM_TABULAR_SPEC"),
    )


ingest_job = dg.define_asset_job(
    "ingest_all",
    selection=dg.AssetSelection.groups("ingest", "warehouse"),
    description="Fetch every source, upsert into the warehouse, export Parquet.",
)

defs = dg.Definitions(
    assets=[*ingest_assets, warehouse_parquet, canvas_tensors, world_model, world_model_evaluation],
    asset_checks=[*ingest_checks, presence_matches_warehouse],
    jobs=[ingest_job],
    resources={
        "warehouse": WarehouseResource(path=os.environ.get("GUWM_WAREHOUSE")),
        "sources": _sources_from_env(),
        "artifacts": ArtifactsResource(root=os.environ.get("GUWM_ARTIFACTS")),
    },
)
