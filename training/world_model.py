"""The world model's run as plain functions, from the canvas shards to the served model.
The Dagster assets only call these.

    run = train_world_model(canvas_dir, root, WorldModelSettings(n_steps=900))
    validation = validate_run(latest_run(root), canvas_dir)   # the gate, on validation
    promote_validated(root, latest_run(root), canvas_dir)     # served when it passed
    evaluation = evaluate_run(latest_run(root), canvas_dir)   # the held-out test period

`root` is the world model's folder (`training.serving.world_model_root`). A run lives in
`run_dir(root, layout_hash, settings)`: runs of one layout, backbone and width resume
each other. `<root>/latest.json` names the run trained last, which validation and
evaluation read.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import polars as pl

from canvas.layout import CanvasLayout
from canvas.materialize import CanvasManifest
from canvas.shards import ShardDataset, build_shard_dataloader
from training.baselines import AR1
from training.config import TrainConfig
from training.evaluate import CELL_TASKS, EvaluationReport, evaluate
from training.inference import WorldModel
from training.intervals import ERRORS, fan, score, score_gaussian, validation_errors
from training.masked import MaskedCanvasTrainer
from training.plots import plot_fans, plot_loss_curves
from training.probe import (
    blocked_probe,
    labels_for,
    plot_regime_timeline,
    raw_inputs,
    regime_latent,
    window_factors,
)
from training.runs import build_trainer
from training.serving import GATE_TASKS, GateResult, gate, promote
from training.settings import STOP_ON, ModelSettings, WorldModelSettings

LATEST = "latest.json"  # the run trained last
VALIDATION = "validation.json"  # a run's gate result


def world_model_trainer(
    bound: CanvasLayout, settings: WorldModelSettings, run_dir: str | Path | None
) -> MaskedCanvasTrainer:
    """The world model's trainer on the canvas layout `bound`, at the settings' width."""
    config = TrainConfig(
        lr=settings.lr,
        seed=settings.seed,
        progress=False,
        log_every=max(1, settings.n_steps // 20),
        patience=settings.patience,
        val_masking=STOP_ON[settings.stop_on],
    )
    return build_trainer(replace(bound, d_model=settings.d_model), settings, config, run_dir)


def run_dir(root: str | Path, layout_hash: str, settings: ModelSettings) -> Path:
    """The run directory of the world model of `layout_hash` trained with `settings`."""
    name = f"{layout_hash}-{settings.backbone}"
    # the width is not in the layout hash; the default width adds nothing to the name
    if settings.d_model != ModelSettings.d_model:
        name += f"-d{settings.d_model}"
    return Path(root) / name


def latest_run(root: str | Path) -> Path:
    """The run `train_world_model` trained last under `root`."""
    return Path(json.loads((Path(root) / LATEST).read_text())["run"])


@dataclass
class TrainedRun:
    """What `train_world_model` did: where, how far, on how many windows, how long."""

    run_dir: Path
    steps: int
    best_step: int | None
    training_windows: int
    history: list[dict[str, Any]]
    seconds: float
    backbone: dict[str, Any]
    loss_curve: Path


def train_world_model(
    canvas_dir: str | Path, root: str | Path, settings: WorldModelSettings
) -> TrainedRun:
    """Train (or resume) the world model on the canvas shards in `canvas_dir`, in its run
    directory under `root`, and record it as the latest run."""
    manifest = CanvasManifest.load(canvas_dir)
    bound = CanvasLayout.from_description(manifest.fields, manifest.layout)
    directory = run_dir(root, manifest.layout_hash, settings)
    directory.mkdir(parents=True, exist_ok=True)
    trainer = world_model_trainer(bound, settings, directory)
    # every window of the training period, those cut inside a step too
    train = build_shard_dataloader(
        canvas_dir, bound, "train", settings.batch_size, shuffle=True, every_cutoff=True
    )
    # start as a per-field AR(1) fitted on the training windows at each step's end, the
    # baseline's own (a resumed run reloads)
    step_ends = ShardDataset(canvas_dir, split="train", layout=bound)
    windows = step_ends.__getitems__(list(range(len(step_ends))))
    ar1 = AR1.fit(windows["values"].numpy(), windows["presence"].numpy())
    trainer.decoder.start_as_ar1(ar1.b, ar1.fitted)
    val = build_shard_dataloader(canvas_dir, bound, "val", settings.batch_size, shuffle=False)
    started = time.perf_counter()
    history = trainer.train(train, settings.n_steps, val_loader=val)
    seconds = time.perf_counter() - started
    curve = plot_loss_curves(
        history,
        directory / "loss.png",
        title=f"{settings.backbone} on layout {manifest.layout_hash}",
    )
    (Path(root) / LATEST).write_text(json.dumps({"run": str(directory)}))
    return TrainedRun(
        run_dir=directory,
        steps=trainer.step,
        best_step=trainer.best_step,
        training_windows=len(train.dataset),
        history=history,
        seconds=seconds,
        backbone=trainer.backbone.describe(),
        loss_curve=curve,
    )


@dataclass
class Validation:
    """A run on the validation period: the gate's verdict, and per field its one-step
    errors (normalised): the intervals it serves."""

    gate: GateResult
    windows: int
    errors: dict[str, list[float]]


def validate_run(run_dir: str | Path, canvas_dir: str | Path) -> Validation:
    """Score the run against the gate's baselines on validation; write the verdict and the
    errors beside it (a run without a validation window is refused)."""
    run_dir = Path(run_dir)
    model = WorldModel.load(run_dir, canvas_dir=canvas_dir)
    train = ShardDataset(canvas_dir, split="train", layout=model.bound)
    # the gate's tasks, and the last-step cells whose errors are the served intervals
    report = _on_validation(model, canvas_dir, train, tuple(dict.fromkeys(GATE_TASKS + CELL_TASKS)))
    result = gate(report.summary if report else {})
    (run_dir / VALIDATION).write_text(json.dumps(asdict(result)))
    errors = _errors(model, report)
    (run_dir / ERRORS).write_text(json.dumps(errors))
    return Validation(result, report.summary["windows"] if report else 0, errors)


def promote_validated(root: str | Path, run_dir: str | Path, canvas_dir: str | Path) -> GateResult:
    """Serve the run when its validation (`validate_run`) passed; the gate's verdict."""
    result = GateResult(**json.loads((Path(run_dir) / VALIDATION).read_text()))
    if result.passed:
        promote(root, run_dir, canvas_dir, result)
    return result


@dataclass
class Evaluation:
    """A run on the held-out test period (written under `out`): the report, its plots,
    the served intervals scored, and with the true regimes the regime probe."""

    report: EvaluationReport
    out: Path
    plots: list[Path]
    intervals: dict[str, Any]
    probe: dict[str, Any] | None = None
    timeline: Path | None = None


def evaluate_run(
    run_dir: str | Path, canvas_dir: str | Path, regimes: pl.DataFrame | None = None
) -> Evaluation:
    """The run on the test period against the baselines, in `<run_dir>/evaluation`.

    `regimes` (a synthetic world's `regimes`) gives the oracle its factors and adds a
    linear probe from the model's regime latent to the true regime."""
    model = WorldModel.load(run_dir, canvas_dir=canvas_dir)
    train = ShardDataset(canvas_dir, split="train", layout=model.bound)
    test = ShardDataset(canvas_dir, split="test", layout=model.bound)
    factors = (
        tuple(
            window_factors(d.window_days, model.bound.T, model.bound.step, regimes)
            for d in (train, test)
        )
        if regimes is not None
        else None
    )
    report = evaluate(model.parts, test, dataset_train=train, factors=factors)
    out = Path(run_dir) / "evaluation"
    report.save(out)
    plots = report.plots(out)
    # the intervals as served, scored on the test period (recomputed rather than read from
    # validate_run: the evaluation must not wait for, or be blocked by, the gate)
    errors = _errors(model, _on_validation(model, canvas_dir, train, CELL_TASKS))
    stds = _stds(model)
    intervals = score(report.predictions, errors, stds)
    # the DFM's Gaussian intervals against the model's, on the cells both cover
    common = report.predictions.filter(
        pl.col("dfm").is_finite() & pl.col("field").is_in(list(errors))
    )
    intervals["dfm"] = score_gaussian(common, stds)
    intervals["model_on_dfm_cells"] = score(common, errors, stds)
    (out / "intervals.json").write_text(json.dumps(intervals))
    fans = fan(report.predictions, errors, stds, test)  # in the fields' own units
    fans.write_parquet(out / "fans.parquet")
    if fans.height:
        plots.append(plot_fans(fans, out / "fan_charts.png"))
    evaluation = Evaluation(report, out, plots, intervals)
    if regimes is not None:
        every = ShardDataset(canvas_dir, split=None, layout=model.bound)
        days = every.window_days
        labels = labels_for(days, regimes)
        probe = blocked_probe(regime_latent(model, every), labels, raw=raw_inputs(every))
        evaluation.timeline = plot_regime_timeline(
            days.astype("datetime64[D]"),
            labels,
            probe.pop("predicted"),
            out / "regime_timeline.png",
        )
        evaluation.probe = probe
        (out / "regime_probe.json").write_text(json.dumps(probe, indent=1))
    return evaluation


def _on_validation(
    model: WorldModel, canvas_dir: str | Path, train: ShardDataset, tasks: tuple[str, ...]
) -> EvaluationReport | None:
    """The run on the validation period (None when that period has no window)."""
    val = ShardDataset(canvas_dir, split="val", layout=model.bound)
    return evaluate(model.parts, val, dataset_train=train, tasks=tasks) if len(val) else None


def _errors(model: WorldModel, report: EvaluationReport | None) -> dict[str, list[float]]:
    """Per field, the run's one-step errors on validation: its served intervals."""
    return validation_errors(report.predictions, _stds(model)) if report else {}


def _stds(model: WorldModel) -> dict[str, float]:
    return {path: s["std"] for path, s in model.manifest.stats.items()}
