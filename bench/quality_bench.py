"""Model quality: the world model against honest baselines, and the regime probe.

Runs the asset graph in-process (ingest -> canvas -> world_model -> evaluation) twice:
on the recorded real data in ../shared/data (when present) and on the synthetic world,
whose hidden regimes give the probe its labels. Each error is reported as the model's
MSE against a baseline's on the same held-out cells (ratio < 1: the model is better).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import dagster as dg

from bench.common import BenchResult
from dagster_defs.definitions import defs
from dagster_defs.resources import ArtifactsResource, SourcesResource, WarehouseResource
from dagster_defs.training_assets import VALIDATION, WorldModelConfig

GROUPS = ("ingest", "canvas", "training")
BASELINES = {
    "persistence": "persistence",
    "mean": "training mean",
    "ar1": "AR(1)",
    "ridge": "ridge on the panel",
    "dfm": "DynamicFactorMQ",
    "oracle": "oracle on the hidden factors",
}
RECORDED = Path(
    os.environ.get("GUWM_RECORDED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)


def assets_of(*groups: str) -> list[dg.AssetsDefinition]:
    """The code location's assets in `groups`."""
    graph = defs.resolve_asset_graph()
    return [a for a in defs.assets if graph.get(next(iter(a.keys))).group_name in groups]


def materialize_in(
    tmp: Path, sources: SourcesResource, assets: list, ops: dict
) -> dg.ExecuteInProcessResult:
    """`assets` in-process with a warehouse and artifacts under `tmp`, op config `ops`."""
    return dg.materialize(
        assets,
        resources={
            **defs.resources,
            "warehouse": WarehouseResource(path=str(tmp / "wh.duckdb")),
            "sources": sources,
            "artifacts": ArtifactsResource(root=str(tmp / "artifacts")),
        },
        run_config={"ops": ops, "loggers": {"console": {"config": {"log_level": "WARNING"}}}},
    )


def _evaluate(tmp: Path, sources: SourcesResource, steps: int) -> dict:
    """Materialize the graph up to the evaluation; the evaluation's metadata and summary."""
    result = materialize_in(
        tmp, sources, assets_of(*GROUPS), {"world_model": {"config": {"n_steps": steps}}}
    )
    events = {
        e.asset_key.to_user_string(): {k: v.value for k, v in e.materialization.metadata.items()}
        for e in result.get_asset_materialization_events()
    }
    (summary,) = (tmp / "artifacts" / "world_model").glob("*/evaluation/summary.json")
    (gate,) = (tmp / "artifacts" / "world_model").glob(f"*/{VALIDATION}")
    return {
        "metadata": events["world_model_evaluation"],
        "summary": json.loads(summary.read_text()),
        "gate": json.loads(gate.read_text()),
    }


def _add_gate(result: BenchResult, data: str, gate: dict) -> None:
    """The promotion gate's validation ratios against AR(1), its hardest baseline."""
    for task, ratios in gate["ratios"].items():
        result.add(
            f"{data}: validation {task} MSE (the gate)",
            ratios["ar1"],
            "x AR(1)'s",
            note=("served" if gate["passed"] else "refused: " + "; ".join(gate["failures"])),
        )


def _add_ratios(result: BenchResult, data: str, summary: dict) -> None:
    for task in summary["tasks"]:
        row = summary[task]
        for key, label in BASELINES.items():
            ratio = row["ratio"].get(key)
            if ratio is None or ratio != ratio:  # not covered
                continue
            result.add(
                f"{data}: {task} MSE",
                row["model_mse"],
                "(normalised)",
                label,
                row["model_mse"] / ratio,
                note=f"{row['n_compared'][key]:,} held-out cells, {row['fields']} fields",
            )
        medians = {k: v for k, v in row["median_field_ratio"].items() if v is not None and v == v}
        if "ar1" in medians:
            result.add(
                f"{data}: {task} median per-field MSE ratio",
                medians["ar1"],
                "x AR(1)'s",
                note="vs "
                + ", ".join(
                    f"{BASELINES[k]}: {v:.2f}" for k, v in medians.items() if k in BASELINES
                ),
            )


def _add_intervals(result: BenchResult, data: str, metadata: dict) -> None:
    """Coverage of the 80% and 95% intervals (from validation errors) on test cells, and
    the CRPS against the DFM's Gaussian intervals on the cells both cover."""
    intervals = metadata.get("intervals") or {}
    if not intervals.get("cells"):
        return
    for level in (80, 95):
        result.add(
            f"{data}: {level}% interval coverage",
            intervals[f"coverage_{level}"],
            "",
            "nominal",
            level / 100,
            note=f"{intervals['cells']:,} held-out forecast cells; CRPS "
            f"{intervals['crps']:.3f} (normalised)",
        )
    dfm, same = intervals.get("dfm") or {}, intervals.get("model_on_dfm_cells") or {}
    if dfm.get("cells"):
        result.add(
            f"{data}: CRPS where the DFM predicts",
            same["crps"],
            "(normalised)",
            "DFM's Gaussian",
            dfm["crps"],
            note=f"{dfm['cells']:,} cells; 80% / 95% coverage: model {same['coverage_80']:.1%}"
            f" / {same['coverage_95']:.1%}, DFM {dfm['coverage_80']:.1%} / "
            f"{dfm['coverage_95']:.1%}",
        )


def run(*, quick: bool = False) -> BenchResult:
    """Recorded real data (skipped when absent) and the synthetic world, from the default
    history start; the world model trains for its configured steps (60 when quick)."""
    steps = 60 if quick else WorldModelConfig().n_steps
    result = BenchResult("quality")
    with tempfile.TemporaryDirectory() as tmp:
        if (RECORDED / "MANIFEST.md").is_file():
            real = _evaluate(
                Path(tmp) / "recorded",
                SourcesResource(mode="recorded", recorded_dir=str(RECORDED)),
                steps,
            )
            _add_gate(result, "recorded", real["gate"])
            _add_ratios(result, "recorded", real["summary"])
            _add_intervals(result, "recorded", real["metadata"])
        else:
            print(f"[bench] quality: no recorded data at {RECORDED}; real-data rows skipped")
        synthetic = _evaluate(
            Path(tmp) / "synthetic",
            SourcesResource(mode="synthetic", end_date="2024-12-31", seed=0),
            steps,
        )
    _add_gate(result, "synthetic", synthetic["gate"])
    _add_ratios(result, "synthetic", synthetic["summary"])
    _add_intervals(result, "synthetic", synthetic["metadata"])
    probe = synthetic["metadata"]
    result.add(
        "synthetic: regime probe accuracy",
        probe["regime_probe_accuracy"],
        "",
        "chance (majority regime)",
        probe["regime_chance"],
        note=f"linear probe on the regime latent, blocked over time; raw inputs: "
        f"{probe['regime_raw_input_accuracy']:.3f}; {steps} training steps",
    )
    result.add(
        "synthetic: regime probe vs raw inputs",
        probe["regime_probe_accuracy"],
        "",
        "probe on the raw inputs",
        probe["regime_raw_input_accuracy"],
    )
    return result
