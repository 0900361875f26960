"""Schedules and sensors: data refresh on the sources' release calendars, retraining on change.

The refresh jobs and schedules are generated from `ingest.registry.REGISTRY`: one per
`Refresh` the sources name (`ingest.protocol`), running those sources' ingest assets.

- `market_refresh` (yahoo) on weekdays at 17:30 New York time, after the US close.
- `macro_refresh` (fred, pmi, tabular) on the 7th of each month at 09:00 New York time:
  after the ISM releases (first and third business day, at the latest the 6th).
- `earnings_news_refresh` (earnings, news) every day at 21:00 New York time: after the
  after-close earnings reports and the end of the UTC news day.
- `canvas_on_new_observations` rebuilds the canvas when the warehouse content changed.
- `retrain_on_canvas_change` trains and evaluates the world model when the canvas changed
  by at least $GUWM_RETRAIN_THRESHOLD (default 0.05: 5% more observation vintages or
  windows than the canvas of the last training) or has a new layout; never while a
  training run is queued or running.

All of them are RUNNING by default in live mode (GUWM_SOURCE_MODE=live) and STOPPED in
synthetic and recorded mode, where nothing arrives on its own; start them in the UI or
with `dagster schedule start` / `dagster sensor start`.
"""

import json
import os
from collections.abc import Iterable
from pathlib import Path

import dagster as dg

from canvas.materialize import CanvasManifest
from dagster_defs.canvas_assets import canvas_tensors
from dagster_defs.ingest_assets import asset_name, ingest_assets, warehouse_parquet
from dagster_defs.resources import ArtifactsResource, WarehouseResource
from dagster_defs.training_assets import (
    WorldModelConfig,
    world_model,
    world_model_evaluation,
    world_model_validation,
)
from ingest.protocol import Refresh
from ingest.registry import REGISTRY
from training.world_model import run_dir
from warehouse.store import Warehouse, WarehouseLockedError, WarehouseNotFoundError

NEW_YORK = "America/New_York"
RETRAIN_THRESHOLD_ENV = "GUWM_RETRAIN_THRESHOLD"
DEFAULT_RETRAIN_THRESHOLD = 0.05
WAREHOUSE_WAIT_SECONDS = 15.0  # a sensor tick must finish well within Dagster's 60 s
IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def _ingest_selection(*sources: str) -> dg.AssetSelection:
    """The ingest assets of `sources` and the Parquet export after them."""
    keys = [dg.AssetKey(asset_name(source)) for source in sources]
    return dg.AssetSelection.assets(*keys, warehouse_parquet)


def _sources_by_refresh() -> dict[Refresh, list[str]]:
    """The registered sources' names per refresh schedule, in registry order."""
    grouped: dict[Refresh, list[str]] = {}
    for source in REGISTRY:
        grouped.setdefault(source.refresh, []).append(source.name)
    return grouped


refresh_jobs = {
    refresh: dg.define_asset_job(
        refresh.job, selection=_ingest_selection(*names), description=refresh.description
    )
    for refresh, names in _sources_by_refresh().items()
}
canvas_job = dg.define_asset_job(
    "canvas_refresh",
    selection=dg.AssetSelection.assets(canvas_tensors),
    description="Rebuild the point-in-time canvas shards from the warehouse.",
)
training_job = dg.define_asset_job(
    "train_world_model",
    selection=dg.AssetSelection.assets(world_model, world_model_validation, world_model_evaluation),
    description="Train the world model on the current canvas, serve it if it beats the "
    "baselines on validation (the blocking check), and evaluate it on the test period.",
)
automation_jobs = [*refresh_jobs.values(), canvas_job, training_job]

INGEST_KEYS = frozenset(a.key for a in ingest_assets) | {warehouse_parquet.key}
REFRESH_JOBS = frozenset(refresh.job for refresh in refresh_jobs) | {
    "ingest_all"  # definitions.py's job of every source
}
TRAINING_KEYS = frozenset({world_model.key, world_model_validation.key, world_model_evaluation.key})


def source_mode() -> str:
    """The source mode of this code location: $GUWM_SOURCE_MODE, default synthetic."""
    return os.environ.get("GUWM_SOURCE_MODE", "synthetic")


def build_schedules(mode: str) -> list[dg.ScheduleDefinition]:
    """The refresh schedules of the registered sources, RUNNING by default only in live mode."""
    status = (
        dg.DefaultScheduleStatus.RUNNING if mode == "live" else dg.DefaultScheduleStatus.STOPPED
    )
    return [
        dg.ScheduleDefinition(
            name=f"{job.name}_schedule",
            job=job,
            cron_schedule=refresh.cron,
            execution_timezone=NEW_YORK,
            default_status=status,
            description=job.description,
        )
        for refresh, job in refresh_jobs.items()
    ]


def retrain_threshold() -> float:
    """The canvas change that triggers retraining: $GUWM_RETRAIN_THRESHOLD, default 0.05."""
    raw = os.environ.get(RETRAIN_THRESHOLD_ENV, str(DEFAULT_RETRAIN_THRESHOLD))
    try:
        threshold = float(raw)
    except ValueError:
        threshold = -1.0
    if not 0 < threshold <= 1:
        raise ValueError(f"{RETRAIN_THRESHOLD_ENV} must be a fraction in (0, 1], got {raw!r}")
    return threshold


def canvas_snapshot(manifest: CanvasManifest) -> dict[str, object]:
    """What the retrain sensor compares: layout, observation vintages read, windows."""
    return {
        "layout_hash": manifest.layout_hash,
        "observations": manifest.observations,
        "n_windows": manifest.n_windows,
    }


def canvas_change(before: dict[str, object] | None, now: dict[str, object]) -> float:
    """How much of the canvas is new since `before`, as a fraction.

    1.0 for a first canvas or a new layout (other fields: a new model); otherwise the
    larger of the relative change in observation vintages read (new periods, revisions
    and restatements all add vintages) and in windows.
    """
    if before is None or before["layout_hash"] != now["layout_hash"]:
        return 1.0
    changes = [
        abs(int(now[key]) - int(before[key])) / max(int(before[key]), 1)
        for key in ("observations", "n_windows")
    ]
    return max(changes)


def _runs_in_progress(
    instance: dg.DagsterInstance, jobs: Iterable[str], keys: Iterable[dg.AssetKey]
) -> list[dg.DagsterRun]:
    """Queued or running runs of `jobs`, or of any job materializing one of `keys`."""
    jobs, keys = set(jobs), set(keys)
    return [
        run
        for run in instance.get_runs(filters=dg.RunsFilter(statuses=IN_PROGRESS))
        if run.job_name in jobs or keys & set(run.asset_selection or ())
    ]


def _describe(runs: list[dg.DagsterRun]) -> str:
    return ", ".join(f"{r.job_name} {r.run_id[:8]} ({r.status.value})" for r in runs)


def _continue_training(instance: dg.DagsterInstance, layout_hash: str) -> dict[str, object]:
    """Run config that trains the model of this layout further, or {} for a fresh model.

    `world_model` resumes its run directory (`training.world_model.run_dir`) and stops
    at `n_steps` in total, so a model of the same layout is trained `n_steps` more steps
    on the new canvas (a warm start); a new layout starts from scratch.
    """
    defaults = WorldModelConfig()
    event = instance.get_latest_materialization_event(world_model.key)
    if event is None or event.asset_materialization is None:
        return {}
    metadata = event.asset_materialization.metadata
    checkpoint, steps = metadata.get("checkpoint"), metadata.get("steps")
    if checkpoint is None or steps is None:
        return {}
    if Path(str(checkpoint.value)).name != run_dir("", layout_hash, defaults.settings()).name:
        return {}
    n_steps = int(steps.value) + defaults.n_steps
    return {"ops": {"world_model": {"config": {"n_steps": n_steps}}}}


def build_sensors(mode: str) -> list[dg.SensorDefinition]:
    """The canvas and retraining sensors, RUNNING by default only in live mode."""
    status = dg.DefaultSensorStatus.RUNNING if mode == "live" else dg.DefaultSensorStatus.STOPPED

    @dg.sensor(
        name="canvas_on_new_observations",
        job=canvas_job,
        minimum_interval_seconds=300,
        default_status=status,
        description="Rebuild the canvas when the warehouse content changed since the last "
        "request (cursor: Warehouse.content_hash); waits while ingest or canvas runs are "
        "under way.",
    )
    def canvas_on_new_observations(
        context: dg.SensorEvaluationContext, warehouse: WarehouseResource
    ) -> dg.RunRequest | dg.SkipReason:
        busy = _runs_in_progress(
            context.instance, REFRESH_JOBS | {canvas_job.name}, INGEST_KEYS | {canvas_tensors.key}
        )
        if busy:
            return dg.SkipReason(f"waiting for runs in progress: {_describe(busy)}")
        try:
            wh = Warehouse(warehouse.path, read_only=True, lock_timeout=WAREHOUSE_WAIT_SECONDS)
            if wh.count() == 0:
                return dg.SkipReason(f"the warehouse at {wh.path} is empty")
            digest = wh.content_hash()
        except WarehouseNotFoundError as err:
            return dg.SkipReason(str(err))
        except WarehouseLockedError:
            return dg.SkipReason("the warehouse is locked by a write; trying again next tick")
        if digest == context.cursor:
            return dg.SkipReason(f"warehouse unchanged (content hash {digest})")
        context.update_cursor(digest)
        return dg.RunRequest(run_key=f"canvas-{digest}", tags={"guwm/warehouse_hash": digest})

    @dg.sensor(
        name="retrain_on_canvas_change",
        job=training_job,
        minimum_interval_seconds=600,
        default_status=status,
        description="Train and evaluate the world model when the canvas changed by at least "
        f"${RETRAIN_THRESHOLD_ENV} (default {DEFAULT_RETRAIN_THRESHOLD:.0%}) of its observation "
        "vintages or windows since the canvas of the last training request, or has a new "
        "layout; never while a training run is queued or running.",
    )
    def retrain_on_canvas_change(
        context: dg.SensorEvaluationContext, artifacts: ArtifactsResource
    ) -> dg.RunRequest | dg.SkipReason:
        training = _runs_in_progress(context.instance, {training_job.name}, TRAINING_KEYS)
        if training:
            return dg.SkipReason(f"a training run is in progress: {_describe(training)}")
        canvas_runs = _runs_in_progress(context.instance, {canvas_job.name}, {canvas_tensors.key})
        if canvas_runs:
            return dg.SkipReason(f"the canvas is being rebuilt: {_describe(canvas_runs)}")
        try:
            manifest = CanvasManifest.load(artifacts.path("canvas"))
        except FileNotFoundError as err:
            return dg.SkipReason(str(err))
        now = canvas_snapshot(manifest)
        before = json.loads(context.cursor) if context.cursor else None
        change, threshold = canvas_change(before, now), retrain_threshold()
        if change < threshold:
            return dg.SkipReason(
                f"canvas changed by {change:.2%} since the last training, below the "
                f"threshold of {threshold:.2%} (${RETRAIN_THRESHOLD_ENV})"
            )
        context.update_cursor(json.dumps(now, sort_keys=True))
        return dg.RunRequest(
            run_key=f"retrain-{now['layout_hash']}-{now['observations']}-{now['n_windows']}",
            run_config=_continue_training(context.instance, manifest.layout_hash),
            tags={
                "guwm/canvas_layout": manifest.layout_hash,
                "guwm/canvas_observations": str(manifest.observations),
                "guwm/canvas_change": f"{change:.4f}",
            },
        )

    return [canvas_on_new_observations, retrain_on_canvas_change]


schedules = build_schedules(source_mode())
sensors = build_sensors(source_mode())
