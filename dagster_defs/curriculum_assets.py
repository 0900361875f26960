"""The curriculum as Dagster assets: one asset per DAG node, depending on its parents.

Independent branches (the six foundation nodes) run in parallel under the multiprocess
executor; a join runs once all its parents are materialized. Every node reads the
warehouse (only its own fields), starts from its parents' weights and records its
result beside its checkpoint, where its children find it. `curriculum_summary` draws
the run: which node ran when (tier-0 bars overlap when they ran in parallel).

The DAG comes from `$GUWM_CURRICULUM_DAG` (a YAML file, see `training.dag`) or is the
standard 12-node DAG. The settings every node shares are the `curriculum` resource.
"""

import json
import os
from dataclasses import asdict
from pathlib import Path

import dagster as dg
import torch

from dagster_defs.ingest_assets import OWNERS, ingest_assets
from dagster_defs.metadata import image_markdown
from dagster_defs.resources import (
    ArtifactsResource,
    LLMResource,
    SourcesResource,
    WarehouseResource,
    settings_model,
    settings_of,
)
from ingest.registry import SOURCES
from training.compute import estimate_compute
from training.dag import (
    DAGNode,
    load_dag,
    standard_dag,
    tiers,
    validate_dag,
    with_steps_per_tier,
)
from training.dag_trainer import (
    CURRICULUM_FOLDERS,
    NodeResult,
    latest_result,
    parallel_seconds,
    train_warehouse_node,
)
from training.node_worker import node_runner
from training.planner import build_curriculum
from training.plots import plot_curriculum_timeline
from training.profile import DatasetProfile
from training.settings import CurriculumSettings

GROUP = "curriculum"


class CurriculumResource(settings_model(CurriculumSettings, dg.ConfigurableResource)):
    """Settings every curriculum node shares (`training.settings.CurriculumSettings`,
    every one of them), and how the nodes are run.

    `steps_per_tier` replaces the DAG's own step counts by tier (the last entry covers
    deeper tiers): a quick CPU run of the standard DAG without editing it.
    """

    threads: int = 1  # torch threads per node process (nodes run side by side)
    nproc_per_node: int = 1  # > 1: a node trains data-parallel under torchrun (DDP)
    steps_per_tier: list[int] | None = None

    def settings(self) -> CurriculumSettings:
        """The shared settings (this resource's fields, less how nodes are run)."""
        return settings_of(self, CurriculumSettings)

    def dag(self, nodes: list[DAGNode]) -> list[DAGNode]:
        """The nodes as this run trains them (`steps_per_tier` applied)."""
        return with_steps_per_tier(nodes, self.steps_per_tier or [])


def curriculum_dag() -> list[DAGNode]:
    """The DAG of the code location: `$GUWM_CURRICULUM_DAG` or the standard DAG."""
    path = os.environ.get("GUWM_CURRICULUM_DAG")
    return load_dag(path) if path else standard_dag()


def _out_dir(artifacts: ArtifactsResource) -> Path:
    """Where the curriculum's nodes write: where DAGCurriculumTrainer writes by default."""
    return artifacts.path(CURRICULUM_FOLDERS["dag"])


def asset_name(node: str) -> str:
    return f"curriculum_{node}"


def _node_asset(nodes: list[DAGNode], node: DAGNode, tier: int) -> dg.AssetsDefinition:
    parents = [dg.AssetKey(asset_name(p)) for p in node.parents]
    deps = parents or [a.key for a in ingest_assets]
    origin = (
        f"joins {', '.join(node.parents)} (element-wise average of their trainable weights)"
        if len(node.parents) > 1
        else f"forks from {node.parents[0]} (a copy of its weights)"
        if node.parents
        else "starts from fresh weights"
    )

    @dg.asset(
        name=asset_name(node.name),
        group_name=GROUP,
        kinds={"pytorch"},
        owners=OWNERS,
        deps=deps,
        tags={"tier": str(tier)},
        description=f"Curriculum node `{node.name}` (tier {tier}): {node.description} "
        f"Fields: {', '.join(node.fields)}. It {origin}.",
    )
    def _train(
        context: dg.AssetExecutionContext,
        curriculum: CurriculumResource,
        warehouse: WarehouseResource,
        sources: SourcesResource,
        artifacts: ArtifactsResource,
    ) -> dg.MaterializeResult:
        torch.set_num_threads(curriculum.threads)
        settings = curriculum.settings()
        dag = curriculum.dag(nodes)
        result = train_warehouse_node(
            next(n for n in dag if n.name == node.name),
            warehouse.open(read_only=True),
            settings,
            _out_dir(artifacts),
            sources=[sources.settings().warehouse_source(s) for s in SOURCES],
            tier=tier,
            runner=node_runner(curriculum.nproc_per_node, curriculum.threads),
        )
        context.log.info(
            f"{node.name}: {result.status} {result.reason} from {result.merged_from or 'fresh'}"
        )
        estimate = estimate_compute(dag, settings)
        return dg.MaterializeResult(
            metadata={
                **_metadata(result),
                "compute_estimate": dg.MetadataValue.json(estimate.node_metadata(node.name)),
            }
        )

    return _train


def _metadata(result: NodeResult) -> dict[str, object]:
    metadata: dict[str, object] = {
        "status": result.status,
        "tier": result.tier,
        "fields": len(result.fields),
        "field_paths": dg.MetadataValue.json(result.fields),
        "steps": result.steps,
        "merge_sources": ", ".join(result.merged_from) or "fresh weights",
        "started_at": result.started_at,
        "finished_at": result.finished_at,
        "pid": result.pid,
    }
    if result.reason:
        metadata["reason"] = result.reason
    if result.trained:
        run_dir = Path(result.run_dir)
        metadata |= {
            "final_loss": round(float(result.final_loss or float("nan")), 5),
            "val_loss": round(float(result.val_loss or float("nan")), 5),
            "seconds": result.seconds,
            "canvas": "x".join(map(str, result.canvas)),
            "sources": ", ".join(result.sources),
            "merge": dg.MetadataValue.json(result.merge),
            "checkpoint": dg.MetadataValue.path(str(run_dir / "checkpoints")),
            "loss_curve": dg.MetadataValue.md(image_markdown(run_dir / "loss.png", alt="loss")),
        }
    return metadata


class PlanConfig(dg.Config):
    """What the planned curriculum is for."""

    goal: str = "A world model of the US economy and markets from every ingested source"
    total_steps: int | None = None


@dg.asset(
    group_name=GROUP,
    kinds={"yaml"},
    owners=OWNERS,
    deps=[a.key for a in ingest_assets],
    description="A curriculum designed for the goal from profiles of the ingested sources: by "
    "the configured LLM, else by the deterministic planner. Written as a YAML DAG; point "
    "GUWM_CURRICULUM_DAG at it to train it as the curriculum assets.",
)
def curriculum_plan(
    context: dg.AssetExecutionContext,
    config: PlanConfig,
    llm: LLMResource,
    warehouse: WarehouseResource,
    sources: SourcesResource,
    artifacts: ArtifactsResource,
) -> dg.MaterializeResult:
    wh = warehouse.open(read_only=True)
    stored = set(wh.sql("SELECT DISTINCT source FROM observations")["source"])
    names = [n for s in SOURCES if (n := sources.settings().warehouse_source(s)) in stored]
    if not names:
        raise dg.Failure("no source of this mode has been ingested yet; materialize group:ingest")
    profiles = DatasetProfile.from_warehouse(wh, sources=names)
    plan = build_curriculum(
        config.goal, profiles, provider=llm.client() or False, total_steps=config.total_steps
    )
    path = plan.to_yaml(artifacts.path(CURRICULUM_FOLDERS["dag"], "plan.yaml"))
    context.log.info(f"{plan.planner} planned {len(plan)} nodes; wrote {path}")
    return dg.MaterializeResult(
        metadata={
            "planner": plan.planner,
            "nodes": len(plan),
            "total_steps": plan.total_steps,
            "path": dg.MetadataValue.path(str(path)),
            "plan": dg.MetadataValue.md(plan.to_markdown()),
        }
    )


def build_curriculum_assets(nodes: list[DAGNode]) -> list[dg.AssetsDefinition]:
    """One asset per node plus `curriculum_summary`."""
    nodes = validate_dag(nodes)
    depth = tiers(nodes)
    node_assets = [_node_asset(nodes, node, depth[node.name]) for node in nodes]
    names = [n.name for n in nodes]

    @dg.asset(
        group_name=GROUP,
        kinds={"pytorch"},
        owners=OWNERS,
        deps=[a.key for a in node_assets],
        description="The curriculum run at a glance: every node's result and a timeline of "
        "when each node trained (overlapping bars ran in parallel).",
    )
    def curriculum_summary(
        context: dg.AssetExecutionContext,
        curriculum: CurriculumResource,
        artifacts: ArtifactsResource,
    ) -> dg.MaterializeResult:
        out_dir = _out_dir(artifacts)
        results = [latest_result(out_dir, n) for n in names]
        timeline = plot_curriculum_timeline(results, out_dir / "timeline.png")
        rows = [
            "| tier | node | status | fields | steps | final loss | from | started | finished |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in results:
            loss = f"{r.final_loss:.4f}" if r.final_loss is not None else "-"
            rows.append(
                f"| {r.tier} | {r.name} | {r.status} {r.reason} | {len(r.fields)} | {r.steps} "
                f"| {loss} | {', '.join(r.merged_from) or '-'} | {r.started_at[11:23]} "
                f"| {r.finished_at[11:23]} |"
            )
        overlap = parallel_seconds(results, tier=0)
        (out_dir / "summary.json").write_text(json.dumps([asdict(r) for r in results], indent=1))
        context.log.info(f"curriculum: {len(results)} nodes; tier-0 overlap {overlap:.1f}s")
        return dg.MaterializeResult(
            metadata={
                "nodes": len(results),
                "trained": sum(r.status == "trained" for r in results),
                "reused": sum(r.status == "reused" for r in results),
                "skipped": sum(r.status == "skipped" for r in results),
                "tier0_parallel_seconds": round(overlap, 2),
                "results": dg.MetadataValue.md("\n".join(rows)),
                "timeline": dg.MetadataValue.md(image_markdown(timeline, alt="timeline")),
                "compute_estimate": dg.MetadataValue.md(
                    estimate_compute(curriculum.dag(nodes), curriculum.settings()).tier_table()
                ),
                "compute_estimate_cogvideox_2b": dg.MetadataValue.md(
                    estimate_compute(
                        nodes, CurriculumSettings(backbone="cogvideox", batch_size=8)
                    ).tier_table()
                ),
            }
        )

    return [curriculum_plan, *node_assets, curriculum_summary]


curriculum_assets = build_curriculum_assets(curriculum_dag())
