"""Training assets: the world model trained on the canvas shards, validated, served and
evaluated; each calls one function of `training.world_model` and returns its metadata."""

import dagster as dg

from dagster_defs.canvas_assets import canvas_tensors
from dagster_defs.ingest_assets import OWNERS
from dagster_defs.metadata import image_markdown, rounded
from dagster_defs.resources import (
    ArtifactsResource,
    SourcesResource,
    settings_model,
    settings_of,
)
from ingest.synthetic import synthetic_world
from training.serving import WORLD_MODEL, served
from training.settings import WorldModelSettings
from training.world_model import (
    evaluate_run,
    latest_run,
    promote_validated,
    train_world_model,
    validate_run,
)


class WorldModelConfig(settings_model(WorldModelSettings, dg.Config)):
    """The training run (`training.settings.WorldModelSettings`): backbone, width,
    length, batch, optimiser, early stopping."""

    def settings(self) -> WorldModelSettings:
        return settings_of(self, WorldModelSettings)


@dg.asset(
    group_name="training",
    kinds={"pytorch"},
    owners=OWNERS,
    deps=[canvas_tensors],
    description="The world model trained on the canvas shards with the masked objective "
    "(hidden fields, groups and recent steps predicted from the rest). Resumes from its "
    "last checkpoint; a finished run of the same layout, backbone and width is not "
    "retrained.",
)
def world_model(
    context: dg.AssetExecutionContext, config: WorldModelConfig, artifacts: ArtifactsResource
) -> dg.MaterializeResult:
    run = train_world_model(
        artifacts.path("canvas"), artifacts.path(WORLD_MODEL), config.settings()
    )
    last = run.history[-1] if run.history else {}
    context.log.info(f"trained to step {run.steps}: {last}")
    return dg.MaterializeResult(
        metadata={
            "checkpoint": dg.MetadataValue.path(str(run.run_dir)),
            "steps": run.steps,
            "best_step": run.best_step,
            "training_windows": run.training_windows,
            "final_loss": round(float(last.get("loss", float("nan"))), 5),
            "val_loss": round(float(last.get("val_loss", float("nan"))), 5),
            "seconds": round(run.seconds, 1),
            "backbone": dg.MetadataValue.json(run.backbone),
            "loss_curve": dg.MetadataValue.md(image_markdown(run.loss_curve, alt="loss")),
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
    run_dir = latest_run(artifacts.path(WORLD_MODEL))
    validation = validate_run(run_dir, artifacts.path("canvas"))
    return dg.MaterializeResult(
        metadata={
            "run": dg.MetadataValue.path(str(run_dir)),
            "validation_windows": validation.windows,
            "ratios": dg.MetadataValue.md(validation.gate.to_markdown()),
            "beats_baselines": validation.gate.passed,
            "fields_with_intervals": len(validation.errors),
        }
    )


@dg.asset_check(
    asset=world_model_validation,
    blocking=True,
    description="Serve the new run (WorldModel.load(), guwm nowcast) only when it beats "
    "every gate baseline on every gate task on validation; otherwise the run served "
    "before stays, and nothing downstream runs.",
)
def beats_baselines_on_validation(artifacts: ArtifactsResource) -> dg.AssetCheckResult:
    root = artifacts.path(WORLD_MODEL)
    result = promote_validated(root, latest_run(root), artifacts.path("canvas"))
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
    settings = sources.settings()
    world = synthetic_world(settings.synthetic_config) if settings.mode == "synthetic" else None
    evaluation = evaluate_run(
        latest_run(artifacts.path(WORLD_MODEL)),
        artifacts.path("canvas"),
        regimes=world.regimes if world is not None else None,
    )
    report = evaluation.report
    metadata: dict[str, object] = {
        "report": dg.MetadataValue.md(report.to_markdown()),
        "summary": dg.MetadataValue.json(rounded(_summary_ratios(report.summary))),
        "intervals": dg.MetadataValue.json(rounded(evaluation.intervals)),
        **{
            f"plot_{path.stem}": dg.MetadataValue.md(image_markdown(path, alt=path.stem))
            for path in evaluation.plots
        },
    }
    if evaluation.probe is not None and evaluation.timeline is not None:
        probe = evaluation.probe
        metadata["regime_probe"] = dg.MetadataValue.json(rounded(probe))
        metadata["regime_probe_accuracy"] = round(probe["accuracy"], 3)
        metadata["regime_chance"] = round(probe["chance"], 3)
        metadata["regime_raw_input_accuracy"] = round(probe["raw_accuracy"], 3)
        metadata["regime_timeline"] = dg.MetadataValue.md(image_markdown(evaluation.timeline))
    context.log.info(f"evaluation written to {evaluation.out}")
    return dg.MaterializeResult(metadata=metadata)


def _summary_ratios(summary: dict) -> dict:
    """Per task: scored cells and the pooled ratio of the model's MSE to each baseline's."""
    return {
        task: {"n": summary[task]["n"], "ratio": summary[task]["ratio"]}
        for task in summary["tasks"]
    }
