"""Training assets: the world model trained on the canvas shards, and its evaluation."""

import json
import time
from dataclasses import asdict
from pathlib import Path

import dagster as dg
import polars as pl
import torch

from canvas.layout import CanvasLayout
from canvas.materialize import CanvasManifest
from canvas.shards import ShardDataset, build_shard_dataloader
from dagster_defs.canvas_assets import canvas_tensors
from dagster_defs.ingest_assets import OWNERS
from dagster_defs.metadata import image_markdown, rounded
from dagster_defs.resources import ArtifactsResource, SourcesResource
from ingest.sources import synthetic_world
from training import FieldDecoder, FieldEncoder, MaskedCanvasTrainer, TrainConfig, build_backbone
from training.baselines import AR1
from training.config import FORECAST_MASKING, MaskingConfig
from training.evaluate import CELL_TASKS, EvaluationReport, evaluate
from training.inference import WorldModel
from training.intervals import ERRORS, fan, score, score_gaussian, validation_errors
from training.plots import plot_fans, plot_loss_curves
from training.probe import (
    blocked_probe,
    labels_for,
    plot_regime_timeline,
    raw_inputs,
    regime_latent,
    window_factors,
)
from training.serving import GATE_TASKS, GateResult, gate, promote, served

LATEST = "latest.json"  # the run the world_model asset trained last
VALIDATION = "validation.json"  # a run's gate result


class WorldModelConfig(dg.Config):
    """The training run: backbone, length, batch, optimiser."""

    backbone: str = "scratch"
    n_layers: int = 2
    attention: str = "factorized"  # scratch: "full" attends over every position
    n_steps: int = 900
    batch_size: int = 16
    lr: float = 1e-3
    patience: int = 5  # validation checks (every n_steps / 20) without improvement
    # the validation loss early stopping watches: "forecast" (every field's last step
    # hidden, the gate's task) or "training_mix" (the masks training draws)
    stop_on: str = "forecast"
    seed: int = 0
    device: str = "cpu"
    pretrained_model_id: str = "THUDM/CogVideoX-2b"


STOP_ON = {"forecast": FORECAST_MASKING, "training_mix": MaskingConfig()}


def build_trainer(config: WorldModelConfig, bound: CanvasLayout, run_dir) -> MaskedCanvasTrainer:
    """Encoder, backbone and decoder for `bound`, in a trainer writing to `run_dir`."""
    if config.stop_on not in STOP_ON:
        raise ValueError(f"stop_on must be one of {sorted(STOP_ON)}, got {config.stop_on!r}")
    torch.manual_seed(config.seed)
    if config.backbone == "cogvideox":
        backbone = build_backbone(
            "cogvideox", bound, pretrained_model_id=config.pretrained_model_id, device=config.device
        )
    else:
        backbone = build_backbone(
            config.backbone, bound, n_layers=config.n_layers, attention=config.attention
        )
    return MaskedCanvasTrainer(
        bound_schema=bound,
        backbone=backbone,
        encoder=FieldEncoder(bound),
        decoder=FieldDecoder(bound),
        config=TrainConfig(
            lr=config.lr,
            seed=config.seed,
            progress=False,
            log_every=max(1, config.n_steps // 20),
            patience=config.patience,
            val_masking=STOP_ON[config.stop_on],
        ),
        checkpoint_dir=run_dir,
        device=config.device,
    )


@dg.asset(
    group_name="training",
    kinds={"pytorch"},
    owners=OWNERS,
    deps=[canvas_tensors],
    description="The world model trained on the canvas shards with the masked objective "
    "(hidden fields, groups and recent steps predicted from the rest). Resumes from its "
    "last checkpoint; a finished run with the same layout is not retrained.",
)
def world_model(
    context: dg.AssetExecutionContext, config: WorldModelConfig, artifacts: ArtifactsResource
) -> dg.MaterializeResult:
    canvas_dir = artifacts.path("canvas")
    manifest = CanvasManifest.load(canvas_dir)
    bound = CanvasLayout.from_description(manifest.fields, manifest.layout)
    run_dir = artifacts.path("world_model", f"{manifest.layout_hash}-{config.backbone}")
    run_dir.mkdir(parents=True, exist_ok=True)
    trainer = build_trainer(config, bound, run_dir)
    # every window of the training period, those cut inside a step too (CanvasConfig)
    train = build_shard_dataloader(
        canvas_dir, bound, "train", config.batch_size, shuffle=True, every_cutoff=True
    )
    # start as a per-field AR(1) fitted on the training windows at each step's end, the
    # baseline's own (a resumed run reloads)
    step_ends = ShardDataset(canvas_dir, split="train", layout=bound)
    windows = step_ends.__getitems__(list(range(len(step_ends))))
    ar1 = AR1.fit(windows["values"].numpy(), windows["presence"].numpy())
    trainer.decoder.start_as_ar1(ar1.b, ar1.fitted)
    val = build_shard_dataloader(canvas_dir, bound, "val", config.batch_size, shuffle=False)
    started = time.perf_counter()
    history = trainer.train(train, config.n_steps, val_loader=val)
    seconds = time.perf_counter() - started
    last = history[-1] if history else {}
    context.log.info(f"trained to step {trainer.step}: {last}")
    curve = plot_loss_curves(
        history, run_dir / "loss.png", title=f"{config.backbone} on layout {manifest.layout_hash}"
    )
    artifacts.path("world_model", LATEST).write_text(json.dumps({"run": str(run_dir)}))
    return dg.MaterializeResult(
        metadata={
            "checkpoint": dg.MetadataValue.path(str(run_dir)),
            "steps": trainer.step,
            "best_step": trainer.best_step,
            "training_windows": len(train.dataset),
            "final_loss": round(float(last.get("loss", float("nan"))), 5),
            "val_loss": round(float(last.get("val_loss", float("nan"))), 5),
            "seconds": round(seconds, 1),
            "backbone": dg.MetadataValue.json(trainer.backbone.describe()),
            "loss_curve": dg.MetadataValue.md(image_markdown(curve, alt="loss")),
        }
    )


@dg.asset(
    group_name="training",
    kinds={"pytorch", "polars"},
    owners=OWNERS,
    deps=[world_model],
    description="The run the world_model asset trained last against persistence, the "
    "training mean and AR(1) on the validation period (one-step forecast and ragged-edge "
    "nowcast). Its blocking check serves the run only when it beats all of them.",
)
def world_model_validation(artifacts: ArtifactsResource) -> dg.MaterializeResult:
    canvas_dir = artifacts.path("canvas")
    run_dir = _latest_run(artifacts)
    model = WorldModel.load(run_dir, canvas_dir=canvas_dir)
    train = ShardDataset(canvas_dir, split="train", layout=model.bound)
    # the gate's tasks, and the last-step cells whose errors are the served intervals
    report = _on_validation(model, canvas_dir, train, tuple(dict.fromkeys(GATE_TASKS + CELL_TASKS)))
    result = gate(report.summary if report else {})  # no validation window: refused
    (run_dir / VALIDATION).write_text(json.dumps(asdict(result)))
    errors = _errors(model, report)
    (run_dir / ERRORS).write_text(json.dumps(errors))
    return dg.MaterializeResult(
        metadata={
            "run": dg.MetadataValue.path(str(run_dir)),
            "validation_windows": report.summary["windows"] if report else 0,
            "ratios": dg.MetadataValue.md(result.to_markdown()),
            "beats_baselines": result.passed,
            "fields_with_intervals": len(errors),
        }
    )


def _latest_run(artifacts: ArtifactsResource) -> Path:
    """The run the world_model asset trained last."""
    return Path(json.loads(artifacts.path("world_model", LATEST).read_text())["run"])


def _on_validation(
    model: WorldModel, canvas_dir: Path, train: ShardDataset, tasks: tuple[str, ...]
) -> EvaluationReport | None:
    """The run on the validation period (None when that period has no window)."""
    val = ShardDataset(canvas_dir, split="val", layout=model.bound)
    return evaluate(model.parts, val, dataset_train=train, tasks=tasks) if len(val) else None


def _stds(model: WorldModel) -> dict[str, float]:
    return {path: s["std"] for path, s in model.manifest.stats.items()}


def _errors(model: WorldModel, report: EvaluationReport | None) -> dict[str, list[float]]:
    """Per field, the run's one-step errors on validation: its served intervals."""
    return validation_errors(report.predictions, _stds(model)) if report else {}


@dg.asset_check(
    asset=world_model_validation,
    blocking=True,
    description="Serve the new run (WorldModel.load(), guwm nowcast) only when it beats "
    "every gate baseline on every gate task on validation; otherwise the run served "
    "before stays, and nothing downstream runs.",
)
def beats_baselines_on_validation(artifacts: ArtifactsResource) -> dg.AssetCheckResult:
    root = artifacts.path("world_model")
    run_dir = _latest_run(artifacts)
    result = GateResult(**json.loads((run_dir / VALIDATION).read_text()))
    if result.passed:
        promote(root, run_dir, artifacts.path("canvas"), result)
    current = served(root)
    return dg.AssetCheckResult(
        passed=result.passed,
        metadata={
            "validation": dg.MetadataValue.md(result.to_markdown()),
            "refused_because": "; ".join(result.failures) or "-",
            "served": current["run"] if current else "nothing served yet",
        },
    )


@dg.asset(
    group_name="training",
    kinds={"pytorch", "polars"},
    owners=OWNERS,
    deps=[world_model],
    description="The world model on the held-out test period against honest baselines "
    "(persistence, training mean, AR(1), a dynamic factor model), and on the synthetic "
    "world a linear probe from the regime latent to the true hidden regime.",
)
def world_model_evaluation(
    context: dg.AssetExecutionContext,
    artifacts: ArtifactsResource,
    sources: SourcesResource,
) -> dg.MaterializeResult:
    canvas_dir = artifacts.path("canvas")
    run_dir = _latest_run(artifacts)
    model = WorldModel.load(run_dir, canvas_dir=canvas_dir)
    train = ShardDataset(canvas_dir, split="train", layout=model.bound)
    test = ShardDataset(canvas_dir, split="test", layout=model.bound)
    settings = sources.settings()
    world = synthetic_world(settings.synthetic_config) if settings.mode == "synthetic" else None
    factors = (
        tuple(
            window_factors(d.window_days, model.bound.T, model.bound.step, world.regimes)
            for d in (train, test)
        )
        if world is not None
        else None
    )
    report = evaluate(model.parts, test, dataset_train=train, factors=factors)
    out = run_dir / "evaluation"
    report.save(out)
    plots = report.plots(out)
    # the intervals as served, scored on the test period (recomputed rather than read from
    # world_model_validation: this asset must not wait for, or be blocked by, the gate)
    errors = _errors(model, _on_validation(model, canvas_dir, train, CELL_TASKS))
    intervals = score(report.predictions, errors, _stds(model))
    # the DFM's Gaussian intervals against the model's, on the cells both cover
    common = report.predictions.filter(
        pl.col("dfm").is_finite() & pl.col("field").is_in(list(errors))
    )
    intervals["dfm"] = score_gaussian(common, _stds(model))
    intervals["model_on_dfm_cells"] = score(common, errors, _stds(model))
    (out / "intervals.json").write_text(json.dumps(intervals))
    fans = fan(report.predictions, errors, _stds(model), test)  # in the fields' own units
    fans.write_parquet(out / "fans.parquet")
    if fans.height:
        plots.append(plot_fans(fans, out / "fan_charts.png"))
    metadata: dict[str, object] = {
        "report": dg.MetadataValue.md(report.to_markdown()),
        "summary": dg.MetadataValue.json(rounded(_summary_ratios(report.summary))),
        "intervals": dg.MetadataValue.json(rounded(intervals)),
        **{
            f"plot_{path.stem}": dg.MetadataValue.md(image_markdown(path, alt=path.stem))
            for path in plots
        },
    }
    if world is not None:
        every = ShardDataset(canvas_dir, split=None, layout=model.bound)
        days = every.window_days
        labels = labels_for(days, world.regimes)
        probe = blocked_probe(regime_latent(model, every), labels, raw=raw_inputs(every))
        timeline = plot_regime_timeline(
            days.astype("datetime64[D]"),
            labels,
            probe.pop("predicted"),
            out / "regime_timeline.png",
        )
        metadata["regime_probe"] = dg.MetadataValue.json(rounded(probe))
        metadata["regime_probe_accuracy"] = round(probe["accuracy"], 3)
        metadata["regime_chance"] = round(probe["chance"], 3)
        metadata["regime_raw_input_accuracy"] = round(probe["raw_accuracy"], 3)
        metadata["regime_timeline"] = dg.MetadataValue.md(image_markdown(timeline))
        (out / "regime_probe.json").write_text(json.dumps(probe, indent=1))
    context.log.info(f"evaluation written to {out}")
    return dg.MaterializeResult(metadata=metadata)


def _summary_ratios(summary: dict) -> dict:
    """Per task: scored cells and the pooled ratio of the model's MSE to each baseline's."""
    return {
        task: {"n": summary[task]["n"], "ratio": summary[task]["ratio"]}
        for task in summary["tasks"]
    }
