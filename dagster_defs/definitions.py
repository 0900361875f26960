"""The guwm code location: every asset, check, resource, job and schedule in one place."""

from __future__ import annotations

import os

import dagster as dg

from dagster_defs.automation import automation_jobs, schedules, sensors
from dagster_defs.canvas_assets import canvas_tensors, presence_matches_warehouse
from dagster_defs.curriculum_assets import CurriculumResource, curriculum_assets
from dagster_defs.ingest_assets import ingest_assets, ingest_checks, warehouse_parquet
from dagster_defs.resources import (
    ArtifactsResource,
    LLMResource,
    SourcesResource,
    WarehouseResource,
)
from dagster_defs.training_assets import (
    beats_baselines_on_validation,
    world_model,
    world_model_evaluation,
    world_model_validation,
)
from warehouse.catalog import HISTORY_START


def _sources_from_env() -> SourcesResource:
    """Source settings from the environment: GUWM_SOURCE_MODE, GUWM_RECORDED_DATA, FRED_API_KEY."""
    return SourcesResource(
        mode=os.environ.get("GUWM_SOURCE_MODE", "synthetic"),
        recorded_dir=os.environ.get("GUWM_RECORDED_DATA"),
        start_date=os.environ.get("GUWM_START_DATE", HISTORY_START),
        # An EnvVar is resolved at run time and never shown in the UI or run config.
        fred_api_key=dg.EnvVar("FRED_API_KEY") if os.environ.get("FRED_API_KEY") else None,
        news_path=os.environ.get("GUWM_NEWS_PATH"),
        tabular_spec=os.environ.get("GUWM_TABULAR_SPEC"),
    )


def _curriculum_from_env() -> CurriculumResource:
    """Curriculum settings: a small CPU configuration on the synthetic world, the
    standard one otherwise (GUWM_CURRICULUM_BACKBONE, GUWM_DEVICE override)."""
    backbone = os.environ.get("GUWM_CURRICULUM_BACKBONE", CurriculumResource().backbone)
    device = os.environ.get("GUWM_DEVICE", "cpu")
    if os.environ.get("GUWM_SOURCE_MODE", "synthetic") == "synthetic":
        return CurriculumResource(
            backbone=backbone,
            device=device,
            n_layers=1,
            d_model=32,
            batch_size=8,
            steps_per_tier=[40, 40, 40, 80],
        )
    return CurriculumResource(backbone=backbone, device=device)


ingest_job = dg.define_asset_job(
    "ingest_all",
    selection=dg.AssetSelection.groups("ingest", "warehouse"),
    description="Fetch every source, upsert into the warehouse, export Parquet.",
)

defs = dg.Definitions(
    assets=[
        *ingest_assets,
        warehouse_parquet,
        canvas_tensors,
        world_model,
        world_model_validation,
        world_model_evaluation,
        *curriculum_assets,
    ],
    asset_checks=[*ingest_checks, presence_matches_warehouse, beats_baselines_on_validation],
    jobs=[ingest_job, *automation_jobs],
    schedules=schedules,
    sensors=sensors,
    resources={
        "warehouse": WarehouseResource(
            path=os.environ.get("GUWM_WAREHOUSE"),
            allow_outliers=os.environ.get("GUWM_ALLOW_OUTLIERS") == "1",
        ),
        "sources": _sources_from_env(),
        "artifacts": ArtifactsResource(),  # $GUWM_ARTIFACTS, else beside the warehouse
        "curriculum": _curriculum_from_env(),
        "llm": LLMResource(
            provider=os.environ.get("GUWM_LLM_PROVIDER"),
            model=os.environ.get("GUWM_LLM_MODEL"),
            base_url=os.environ.get("GUWM_LLM_BASE_URL"),
            api_key=dg.EnvVar("GUWM_LLM_API_KEY") if os.environ.get("GUWM_LLM_API_KEY") else None,
        ),
    },
)
