"""Schedules and sensors, evaluated on an ephemeral Dagster instance and a real warehouse."""

import json
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from dagster_defs import defs
from dagster_defs.automation import (
    build_schedules,
    build_sensors,
    canvas_tensors,
    retrain_threshold,
)
from dagster_defs.ingest_assets import ingest_assets
from dagster_defs.resources import ArtifactsResource, SourcesResource, WarehouseResource
from dagster_defs.training_assets import WorldModelConfig
from warehouse.store import Warehouse

STOPPED, RUNNING = dg.DefaultScheduleStatus.STOPPED, dg.DefaultScheduleStatus.RUNNING


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    """An ephemeral Dagster instance (in-memory run and event storage)."""
    with dg.DagsterInstance.ephemeral() as instance:
        yield instance


def _resources(tmp_path: Path) -> dict[str, object]:
    return {
        "warehouse": WarehouseResource(path=str(tmp_path / "wh.duckdb")),
        "sources": SourcesResource(start_date="2015-01-01", end_date="2019-12-31"),
        "artifacts": ArtifactsResource(root=str(tmp_path / "artifacts")),
    }


def _ingest(resources: dict[str, object], *sources: str) -> None:
    names = {f"{s}_observations" for s in sources}
    selected = [a for a in ingest_assets if a.key.path[0] in names]
    assert dg.materialize(selected, resources=resources).success


def _build_canvas(resources: dict[str, object], end: str) -> None:
    config = {"T": 6, "start": "2015-01-01", "end": end}
    result = dg.materialize(
        [canvas_tensors],
        resources=resources,
        run_config={"ops": {"canvas_tensors": {"config": config}}},
    )
    assert result.success


def _tick(
    sensor_name: str, instance: dg.DagsterInstance, resources: dict, cursor: str | None
) -> tuple[dg.RunRequest | dg.SkipReason, str | None]:
    """One evaluation of a sensor of the code location: its result and its new cursor."""
    sensor = defs.resolve_sensor_def(sensor_name)
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources) as context:
        return sensor(context), context.cursor


def _start_run(instance: dg.DagsterInstance, job_name: str) -> dg.DagsterRun:
    """A run record of `job_name` that the instance sees as running."""
    job = defs.resolve_job_def(job_name)
    return instance.create_run_for_job(job, status=dg.DagsterRunStatus.STARTED)


def _selected(job_name: str) -> set[str]:
    job = defs.resolve_job_def(job_name)
    return {key.to_user_string() for key in job.asset_layer.selected_asset_keys}


def test_jobs_select_the_right_assets():
    assert _selected("market_refresh") == {"yahoo_observations", "warehouse_parquet"}
    assert _selected("macro_refresh") == {
        "fred_observations",
        "pmi_observations",
        "tabular_observations",
        "warehouse_parquet",
    }
    assert _selected("earnings_news_refresh") == {
        "earnings_observations",
        "news_observations",
        "warehouse_parquet",
    }
    assert _selected("canvas_refresh") == {"canvas_tensors"}
    assert _selected("train_world_model") == {
        "world_model",
        "world_model_validation",
        "world_model_evaluation",
    }


def test_schedules_run_on_the_release_calendars(instance):
    schedules = {s.name: s for s in defs.schedules}
    expected = {
        "market_refresh_schedule": ("market_refresh", "30 17 * * 1-5"),
        "macro_refresh_schedule": ("macro_refresh", "0 9 7 * *"),
        "earnings_news_refresh_schedule": ("earnings_news_refresh", "0 21 * * *"),
    }
    assert set(schedules) == set(expected)
    for name, (job_name, cron) in expected.items():
        schedule = schedules[name]
        assert (schedule.job_name, schedule.cron_schedule) == (job_name, cron)
        assert schedule.execution_timezone == "America/New_York"
        with dg.build_schedule_context(instance=instance) as context:
            assert len(schedule.evaluate_tick(context).run_requests) == 1


@pytest.mark.parametrize(
    ("mode", "status"), [("synthetic", STOPPED), ("recorded", STOPPED), ("live", RUNNING)]
)
def test_default_status_follows_the_source_mode(mode, status):
    assert {s.default_status for s in build_schedules(mode)} == {status}
    assert {s.default_status.value for s in build_sensors(mode)} == {status.value}


def test_the_code_location_is_stopped_by_default_outside_live_mode():
    # tests run without GUWM_SOURCE_MODE, i.e. in synthetic mode
    assert {s.default_status for s in defs.schedules} == {STOPPED}
    assert {s.default_status.value for s in defs.sensors} == {STOPPED.value}


def test_canvas_sensor_requests_a_run_only_after_new_observations(tmp_path, instance):
    resources = _resources(tmp_path)
    result, cursor = _tick("canvas_on_new_observations", instance, resources, None)
    assert isinstance(result, dg.SkipReason) and "no warehouse" in result.skip_message

    _ingest(resources, "fred")
    result, cursor = _tick("canvas_on_new_observations", instance, resources, None)
    assert isinstance(result, dg.RunRequest)
    assert cursor == Warehouse(tmp_path / "wh.duckdb").content_hash()
    assert result.run_key == f"canvas-{cursor}"

    _ingest(resources, "fred")  # idempotent: the content does not change
    result, same = _tick("canvas_on_new_observations", instance, resources, cursor)
    assert isinstance(result, dg.SkipReason) and "unchanged" in result.skip_message
    assert same == cursor

    _ingest(resources, "pmi")
    result, new = _tick("canvas_on_new_observations", instance, resources, cursor)
    assert isinstance(result, dg.RunRequest) and new != cursor

    run = _start_run(instance, "macro_refresh")
    result, _ = _tick("canvas_on_new_observations", instance, resources, None)
    assert isinstance(result, dg.SkipReason)
    assert f"macro_refresh {run.run_id[:8]} (STARTED)" in result.skip_message


def test_retrain_sensor_follows_the_threshold_and_waits_for_training(
    tmp_path, monkeypatch, instance
):
    resources = _resources(tmp_path)
    result, _ = _tick("retrain_on_canvas_change", instance, resources, None)
    assert isinstance(result, dg.SkipReason) and "no canvas manifest" in result.skip_message

    _ingest(resources, "fred")
    _build_canvas(resources, end="2018-12-31")
    first, cursor = _tick("retrain_on_canvas_change", instance, resources, None)
    assert isinstance(first, dg.RunRequest)  # no model yet: train from scratch
    assert first.run_config == {}
    assert json.loads(cursor)["layout_hash"] == first.tags["guwm/canvas_layout"]

    _build_canvas(resources, end="2018-12-31")  # the same canvas again
    result, same = _tick("retrain_on_canvas_change", instance, resources, cursor)
    assert isinstance(result, dg.SkipReason) and "changed by 0.00%" in result.skip_message
    assert same == cursor

    # a year more: same fields and layout, more observations and windows
    _build_canvas(resources, end="2019-12-31")
    monkeypatch.setenv("GUWM_RETRAIN_THRESHOLD", "0.9")
    result, _ = _tick("retrain_on_canvas_change", instance, resources, cursor)
    assert isinstance(result, dg.SkipReason) and "below the threshold of 90.00%" in (
        result.skip_message
    )

    monkeypatch.delenv("GUWM_RETRAIN_THRESHOLD")
    assert retrain_threshold() == 0.05
    layout = first.tags["guwm/canvas_layout"]
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            "world_model",
            metadata={
                "checkpoint": dg.MetadataValue.path(str(tmp_path / f"{layout}-scratch")),
                "steps": 300,
            },
        )
    )
    result, new = _tick("retrain_on_canvas_change", instance, resources, cursor)
    assert isinstance(result, dg.RunRequest) and new != cursor
    assert float(result.tags["guwm/canvas_change"]) >= 0.05
    assert result.tags["guwm/canvas_layout"] == layout
    # the model of this layout is trained further on the new canvas
    more = 300 + WorldModelConfig().n_steps
    assert result.run_config == {"ops": {"world_model": {"config": {"n_steps": more}}}}
    training = defs.resolve_job_def("train_world_model")
    assert dg.validate_run_config(training, result.run_config)

    run = _start_run(instance, "train_world_model")
    result, unchanged = _tick("retrain_on_canvas_change", instance, resources, cursor)
    assert isinstance(result, dg.SkipReason) and unchanged == cursor
    assert "a training run is in progress" in result.skip_message
    assert run.run_id[:8] in result.skip_message


def test_a_bad_threshold_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("GUWM_RETRAIN_THRESHOLD", "five percent")
    with pytest.raises(ValueError, match="GUWM_RETRAIN_THRESHOLD must be a fraction"):
        retrain_threshold()
