"""The world model's choices, measured on the validation period (never the test period).

Each variant runs the asset graph in-process up to the gate's validation scores
(ingest -> canvas -> world_model -> world_model_validation) on fixed split dates, so
every variant is judged on the same validation windows:

* history: the canvas from 2005 against the default history start (more windows);
* early stopping: on the one-step forecast loss (the default) against the training
  mix of masks;
* cutoffs: training windows cut twice a month (the default: mid-month and month end,
  each with the ragged edge of its moment) against once, at each month's end, and four
  times. Validation windows are the month-end ones either way.

Reported is the model's validation MSE against AR(1)'s (the gate's hardest baseline) on
the forecast and the nowcast task, on the recorded data (when present) and the
synthetic world.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from bench.common import BenchResult
from bench.quality_bench import RECORDED, assets_of, materialize_in
from dagster_defs.canvas_assets import CanvasConfig
from dagster_defs.resources import SourcesResource
from dagster_defs.training_assets import (
    VALIDATION,
    WorldModelConfig,
    world_model,
    world_model_validation,
)
from warehouse.catalog import HISTORY_START

SPLIT = {"train_end": "2019-01-01", "val_end": "2022-01-01"}
SHORT_HISTORY = "2005-01-01"
DEFAULT = {
    "start": HISTORY_START,
    "stop_on": WorldModelConfig().stop_on,
    "cutoffs_per_step": CanvasConfig().cutoffs_per_step,
}
VARIANTS = {
    "default": DEFAULT,
    f"history from {SHORT_HISTORY[:4]}": {**DEFAULT, "start": SHORT_HISTORY},
    "stopping on the training mix": {**DEFAULT, "stop_on": "training_mix"},
    "1 cutoff a month": {**DEFAULT, "cutoffs_per_step": 1},
    "4 cutoffs a month": {**DEFAULT, "cutoffs_per_step": 4},
}


def _validation_ratios(tmp: Path, sources: SourcesResource, canvas: dict, config: dict) -> dict:
    """The gate's validation ratios (task -> baseline -> model MSE / baseline MSE)."""
    materialize_in(
        tmp,
        sources,
        [*assets_of("ingest", "canvas"), world_model, world_model_validation],
        {
            "canvas_tensors": {"config": {**canvas, **SPLIT}},
            "world_model": {"config": config},
        },
    )
    (path,) = (tmp / "artifacts" / "world_model").glob(f"*/{VALIDATION}")
    return json.loads(path.read_text())["ratios"]


def run(*, quick: bool = False, variants: list[str] | None = None) -> BenchResult:
    """Every variant (or those named) on the recorded data (skipped when absent) and the
    synthetic world."""
    result = BenchResult("choices")
    data = {"synthetic": SourcesResource(mode="synthetic", end_date="2024-12-31", seed=0)}
    if (RECORDED / "MANIFEST.md").is_file():
        data["recorded"] = SourcesResource(mode="recorded", recorded_dir=str(RECORDED))
    else:
        print(f"[bench] choices: no recorded data at {RECORDED}; real-data rows skipped")
    with tempfile.TemporaryDirectory() as tmp:
        for name, sources in data.items():
            for variant in variants or VARIANTS:
                choice = VARIANTS[variant]
                start, stop_on, per_step = (
                    choice[k] for k in ("start", "stop_on", "cutoffs_per_step")
                )
                config = {"stop_on": stop_on, **({"n_steps": 60} if quick else {})}
                canvas = {"start": start, "cutoffs_per_step": per_step}
                where = Path(tmp) / name / variant.replace(" ", "_")
                ratios = _validation_ratios(where, sources, canvas, config)
                for task, row in ratios.items():
                    result.add(
                        f"{name}, {variant}: validation {task} MSE",
                        row["ar1"],
                        "x AR(1)'s",
                        note=f"canvas from {start[:4]}, split {SPLIT['train_end'][:4]} / "
                        f"{SPLIT['val_end'][:4]}, early stopping on {stop_on}, "
                        f"{per_step} cutoff(s) a month",
                    )
    return result
