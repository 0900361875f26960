"""The whole asset graph on a small synthetic world: ingest -> canvas -> train -> evaluate,
and the curriculum."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from canvas.materialize import CanvasManifest
from dagster_defs import defs
from dagster_defs.curriculum_assets import CurriculumResource
from dagster_defs.metadata import rounded
from dagster_defs.resources import ArtifactsResource, SourcesResource, WarehouseResource
from dagster_defs.training_assets import beats_baselines_on_validation
from training.evaluate import TASKS
from training.serving import GateResult, promote, served


def resources_for(tmp_path):
    return {
        **defs.resources,
        "warehouse": WarehouseResource(path=str(tmp_path / "wh.duckdb")),
        "sources": SourcesResource(start_date="2008-01-01", end_date="2016-12-31"),
        "artifacts": ArtifactsResource(root=str(tmp_path / "artifacts")),
        "curriculum": CurriculumResource(
            T=4, d_model=16, n_layers=1, batch_size=4, steps_per_tier=[2]
        ),
    }


CONFIG = {
    "ops": {
        "canvas_tensors": {"config": {"T": 6, "start": "2008-01-01", "cutoffs_per_step": 2}},
        "world_model": {"config": {"n_steps": 30, "n_layers": 1, "d_model": 32}},
    }
}


def test_the_asset_graph_trains_and_evaluates(tmp_path):
    resources, config = resources_for(tmp_path), CONFIG
    # the promotion gate is left out here (a 30-step model is refused: the run would not
    # succeed); test_the_gate_refuses_an_untrained_model_and_keeps_the_served_one has it
    checks = [c for c in defs.asset_checks if c is not beats_baselines_on_validation]
    result = dg.materialize([*defs.assets, *checks], resources=resources, run_config=config)
    assert result.success
    events = {
        e.asset_key.to_user_string(): {k: v.value for k, v in e.materialization.metadata.items()}
        for e in result.get_asset_materialization_events()
    }
    assert events["world_model"]["steps"] == 30
    # two windows a month: the model trains on both, evaluation uses the month-end ones
    manifest = CanvasManifest.load(tmp_path / "artifacts" / "canvas")
    assert manifest.cutoffs_per_step == 2 and manifest.n_windows % 2 == 0
    assert events["world_model"]["training_windows"] == manifest.splits["train"][1]
    test_first, test_end = manifest.splits["test"]
    (summary,) = (tmp_path / "artifacts" / "world_model").glob("*/evaluation/summary.json")
    month_ends = range(test_first + (-test_first - 1) % 2, test_end, 2)
    assert json.loads(summary.read_text())["windows"] == len(month_ends) > 0
    assert "![loss]" in events["world_model"]["loss_curve"]
    evaluation = events["world_model_evaluation"]
    assert set(evaluation["summary"]) == set(TASKS)
    # figures a person reads, at four significant digits (not 0.98712443219...)
    for key in ("summary", "intervals", "regime_probe"):
        assert evaluation[key] == rounded(evaluation[key], 4), key
    assert rounded({"r": [0.98712443219, 12345.678]}) == {"r": [0.9871, 12350.0]}
    assert set(evaluation["summary"]["nowcast"]["ratio"]) == {
        "persistence",
        "mean",
        "ar1",
        "ridge",
        "dfm",
        "oracle",
    }
    # the synthetic world's hidden factors give the oracle its regressors
    for task in TASKS:
        assert evaluation["summary"][task]["ratio"]["oracle"] > 0, task
    assert 0 <= evaluation["regime_probe_accuracy"] <= 1
    intervals = evaluation["intervals"]  # from the validation errors of world_model_validation
    assert intervals["cells"] > 0 and 0 <= intervals["coverage_80"] <= intervals["coverage_95"]
    # the DFM's Gaussian intervals and the model's, scored on the same cells
    assert intervals["dfm"]["cells"] == intervals["model_on_dfm_cells"]["cells"] > 0
    assert events["world_model_validation"]["fields_with_intervals"] > 0
    assert "data:image/png;base64" in evaluation["regime_timeline"]
    assert "data:image/png;base64" in evaluation["plot_fan_charts"]
    assert events["curriculum_summary"]["trained"] == 12
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks["presence_matches_warehouse"]
    run_dirs = [p for p in (tmp_path / "artifacts" / "world_model").iterdir() if p.is_dir()]
    assert len(run_dirs) == 1 and (run_dirs[0] / "evaluation" / "summary.json").is_file()

    # materializing the model again resumes the finished run instead of retraining it
    again = dg.materialize(
        [a for a in defs.assets if a.key.to_user_string() == "world_model"],
        resources=resources,
        run_config={"ops": {"world_model": config["ops"]["world_model"]}},
    )
    metadata = again.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["steps"].value == 30
    assert metadata["seconds"].value < 5


def test_the_gate_refuses_an_untrained_model_and_keeps_the_served_one(tmp_path):
    """A model trained for one step is worse than the baselines on validation: the
    blocking check fails and the run served before stays (the test-period report of the
    new run is still made)."""
    resources = resources_for(tmp_path)
    graph = defs.resolve_asset_graph()
    chosen = [a for a in defs.assets if graph.get(next(iter(a.keys))).group_name != "curriculum"]
    config = {"ops": {**CONFIG["ops"], "world_model": {"config": {"n_steps": 1, "d_model": 32}}}}
    root = tmp_path / "artifacts" / "world_model"
    previous = tmp_path / "previous_run"
    previous.mkdir()
    (tmp_path / "artifacts" / "canvas").mkdir(parents=True)
    (tmp_path / "artifacts" / "canvas" / "manifest.json").write_text("{}")
    passing = GateResult(passed=True, ratios={"forecast": {"persistence": 0.5}}, failures=[])
    promote(root, previous, tmp_path / "artifacts" / "canvas", passing)
    before = served(root)

    result = dg.materialize(
        [*chosen, beats_baselines_on_validation],
        resources=resources,
        run_config=config,
        raise_on_error=False,
    )
    (gate,) = [
        c
        for c in result.get_asset_check_evaluations()
        if c.check_name == "beats_baselines_on_validation"
    ]
    assert not gate.passed
    assert "x the MSE of" in gate.metadata["refused_because"].value
    assert "FAIL" in gate.metadata["validation"].value
    assert gate.metadata["served"].value == before["run"]
    assert served(root) == before
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert {"world_model", "world_model_validation", "world_model_evaluation"} <= materialized


def test_early_stopping_watches_the_configured_validation_task(tmp_path):
    from canvas import compile_layout
    from training.config import FORECAST_MASKING, MaskingConfig
    from training.settings import WorldModelSettings
    from training.world_model import world_model_trainer

    bound = compile_layout("country_us.macro.inflation", T=4, d_model=16)
    trainer = world_model_trainer(bound, WorldModelSettings(), tmp_path / "a")
    assert trainer.config.val_masking == FORECAST_MASKING
    mixed = world_model_trainer(bound, WorldModelSettings(stop_on="training_mix"), tmp_path / "b")
    assert mixed.config.val_masking == MaskingConfig() == mixed.config.masking
    with pytest.raises(ValueError, match="stop_on must be one of"):
        world_model_trainer(bound, WorldModelSettings(stop_on="loss"), tmp_path / "c")


def test_a_run_directory_per_layout_backbone_and_width(tmp_path):
    from training.settings import WorldModelSettings
    from training.world_model import run_dir

    assert run_dir(tmp_path, "abc", WorldModelSettings()) == tmp_path / "abc-scratch"
    # the width is not in the layout hash: another width is another run
    wide = run_dir(tmp_path, "abc", WorldModelSettings(d_model=32))
    assert wide == tmp_path / "abc-scratch-d32"
