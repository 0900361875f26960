"""DAGCurriculumTrainer: train curriculum nodes in topological order, forking and joining.

    trainer = DAGCurriculumTrainer(
        nodes=standard_dag(),
        data_sources=[fred_adapter(...), yahoo_finance_adapter(...)],  # or a Warehouse
        backbone="cogvideox",
        pretrained_model_id="THUDM/CogVideoX-2b",
        device="cuda",
    )
    results = trainer.run()

Each node (`train_node`) builds its canvas (`node_layout`), cuts the data sources down to
its fields, starts from its parents' weights (`training.merge`) and trains with the
masked (or diffusion) objective. Its run directory is keyed by everything that decides
its weights — node, settings, layout, data fingerprint and the parents' keys — so a
node that already finished for the same inputs is reused, not retrained, and a node
interrupted mid-way resumes from its last checkpoint.

    <out_dir>/<node>/<key>/checkpoints/   trainable weights (safetensors), optimiser, metrics
    <out_dir>/<node>/<key>/result.json    the node's outcome (NodeResult)
    <out_dir>/<node>/latest.json          the node's latest result (read by its children)

A node whose fields have no data is reported as skipped, not trained on nothing; its
children join the parents that did train (or start fresh, and say so).

`train_warehouse_node` trains one node by itself (a Dagster asset per node): it reads
only its own fields from the warehouse and its parents' `latest.json`, and splits the
data where the whole curriculum does (`warehouse_split`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import torch
from torch.utils.data import DataLoader

from canvas.align import DEFAULT_SPLIT
from canvas.dataset import HeterogeneousDataset, collate_batch
from canvas.layout import CanvasLayout
from canvas.sources import Source, fingerprint, restrict_sources, sources_from_warehouse
from training.checkpoint import load_checkpoint
from training.config import TrainConfig
from training.dag import CurriculumError, DAGNode, tiers, validate_dag
from training.distributed import barrier, is_main
from training.masked import MaskedCanvasTrainer
from training.merge import ParentWeights, merge_parents
from training.plots import plot_loss_curves
from training.runs import build_trainer
from training.settings import CurriculumSettings, node_layout
from warehouse.clock import as_timestamp
from warehouse.paths import default_artifacts_dir, default_warehouse_path
from warehouse.schema import Schema, default_schema
from warehouse.store import Warehouse

log = logging.getLogger("guwm.curriculum")
LATEST = "latest.json"  # a node's latest result, beside its runs


@dataclass
class NodeResult:
    """The outcome of one node: trained (or reused), or skipped with the reason."""

    name: str
    status: str  # "trained" | "reused" | "skipped"
    tier: int
    reason: str = ""
    key: str = ""
    run_dir: str = ""
    fields: list[str] = field(default_factory=list)
    layout_hash: str = ""
    layout: dict[str, Any] = field(default_factory=dict)  # CanvasLayout.describe()
    paths: list[str] = field(default_factory=list)  # every canvas field, regime latents too
    canvas: list[int] = field(default_factory=list)  # T, H, W
    sources: list[str] = field(default_factory=list)
    windows: dict[str, int] = field(default_factory=dict)
    steps: int = 0
    final_loss: float | None = None
    val_loss: float | None = None
    merged_from: list[str] = field(default_factory=list)
    skipped_parents: list[str] = field(default_factory=list)
    merge: dict[str, Any] = field(default_factory=dict)
    backbone: dict[str, Any] = field(default_factory=dict)
    started_at: str = ""
    finished_at: str = ""
    seconds: float = 0.0
    pid: int = 0

    @property
    def trained(self) -> bool:
        return self.status in ("trained", "reused")

    def save(self, path: Path) -> None:
        """Write the result atomically (under torchrun: rank 0 writes, the others don't)."""
        if not is_main():
            return
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(asdict(self), indent=1))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | Path) -> NodeResult:
        return cls(**json.loads(Path(path).read_text()))


def curriculum_split(
    pairs: Sequence[Source], settings: CurriculumSettings
) -> tuple[dt.datetime, dt.datetime]:
    """Train / val end dates shared by every node (`split_between` over the data's date
    range: one split for the whole curriculum, so no node validates on another node's
    training period)."""
    dates = [
        frame[next(c for c in ("observed_at", "date") if c in frame.columns)].cast(
            pl.Datetime("us")
        )
        for frame in (d if isinstance(d, pl.DataFrame) else pl.from_pandas(d) for _, d in pairs)
    ]
    dates = pl.concat(dates) if dates else pl.Series([], dtype=pl.Datetime("us"))
    if dates.drop_nulls().is_empty():
        raise CurriculumError("the data sources hold no observation")
    return split_between(dates.min(), dates.max(), settings)


def warehouse_split(
    warehouse: Warehouse, sources: Sequence[str], settings: CurriculumSettings
) -> tuple[dt.datetime, dt.datetime]:
    """`curriculum_split` of the warehouse's `sources` (within the settings' start and
    end), from their date range alone: a node that loads only its own fields splits
    where the whole curriculum does."""
    lo, hi = warehouse.sql(
        "SELECT min(observed_at), max(observed_at) FROM observations "
        "WHERE list_contains($s, source) AND observed_at >= coalesce($start, observed_at) "
        "AND observed_at <= coalesce($end, observed_at)",
        {
            "s": list(sources),
            "start": as_timestamp(settings.start) if settings.start else None,
            "end": as_timestamp(settings.end) if settings.end else None,
        },
    ).row(0)
    if lo is None:
        raise CurriculumError("the warehouse holds no observation of the sources")
    return split_between(lo, hi, settings)


def split_between(
    lo: dt.datetime, hi: dt.datetime, settings: CurriculumSettings
) -> tuple[dt.datetime, dt.datetime]:
    """The settings' train / val ends, else `DEFAULT_SPLIT` of the way from `lo` to `hi`."""
    defaults = (lo + (hi - lo) * fraction for fraction in DEFAULT_SPLIT)
    given = (settings.train_end, settings.val_end)
    train_end, val_end = (as_timestamp(g) if g else d for g, d in zip(given, defaults, strict=True))
    return train_end, val_end


def load_sources(data_sources: Any, settings: CurriculumSettings) -> list[Source]:
    """(spec, data) pairs from what a user passes: pairs, a Warehouse, a path or None
    (the default warehouse)."""
    if data_sources is None or isinstance(data_sources, str | os.PathLike):
        path = data_sources or default_warehouse_path()
        if not Path(path).is_file():
            raise CurriculumError(
                f"no warehouse at {path}: ingest first (`make demo` or the Dagster ingest "
                "assets), or pass data_sources=[(spec, data), ...]"
            )
        data_sources = Warehouse(path, read_only=True)
    if isinstance(data_sources, Warehouse):
        return sources_from_warehouse(data_sources, start=settings.start, end=settings.end)
    if isinstance(data_sources, Mapping):
        data_sources = list(data_sources.values())
    pairs = list(data_sources)
    for i, pair in enumerate(pairs):
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise CurriculumError(
                f"data_sources[{i}] must be a (DatasetSpec, data) pair, got {type(pair).__name__}"
            )
    return pairs


def schema_for(pairs: Sequence[Source]) -> Schema:
    """The default schema with firm templates made concrete for the tickers in the data."""
    return schema_of(path for spec, _ in pairs for path in spec.field_paths)


def schema_of(paths: Iterable[str]) -> Schema:
    """The default schema with concrete firm fields for the tickers among `paths`."""
    tickers = {p.split(".", 1)[0].removeprefix("firm_") for p in paths if p.startswith("firm_")}
    return default_schema().with_entities(sorted(tickers))


def node_key(
    node: DAGNode,
    settings: CurriculumSettings,
    layout: CanvasLayout,
    data_fingerprint: str,
    parent_keys: Sequence[str],
) -> str:
    """Hash of everything that decides a node's weights (device excluded)."""
    payload = {
        "node": node.to_dict(),
        "settings": {k: v for k, v in settings.to_dict().items() if k != "device"},
        "layout": layout.layout_hash(),
        "data": data_fingerprint,
        "parents": list(parent_keys),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def train_node(
    node: DAGNode,
    pairs: Sequence[Source],
    parents: Sequence[NodeResult],
    settings: CurriculumSettings,
    out_dir: str | Path,
    *,
    tier: int = 0,
    split: tuple[dt.datetime, dt.datetime] | None = None,
    schema: Schema | None = None,
    transformer: torch.nn.Module | None = None,
    progress: bool = False,
) -> NodeResult:
    """Train one node (or reuse its finished run) and record the result beside its weights."""
    started, clock = _now(), time.perf_counter()
    schema = schema or schema_for(pairs)
    layout = node_layout(node, settings, schema)
    node_dir = Path(out_dir) / node.name
    node_dir.mkdir(parents=True, exist_ok=True)
    trained_parents = [p for p in parents if p.trained]
    base = NodeResult(
        name=node.name,
        status="skipped",
        tier=tier,
        fields=[p for p, f in zip(layout.paths, layout.fields, strict=True) if not f.latent],
        layout_hash=layout.layout_hash(),
        layout=layout.describe(),
        paths=list(layout.paths),
        canvas=[layout.T, layout.H, layout.W],
        merged_from=[p.name for p in trained_parents],
        skipped_parents=[p.name for p in parents if not p.trained],
        started_at=started,
        pid=os.getpid(),
    )
    own = restrict_sources(pairs, layout.paths)
    if not own:
        return _skip(base, node_dir, f"no data source has any of its {len(base.fields)} fields")
    train_end, val_end = split or curriculum_split(pairs, settings)
    try:
        datasets = {
            name: HeterogeneousDataset(
                layout, own, split=name, train_end=train_end, val_end=val_end
            )
            for name in ("train", "val")
        }
    except ValueError as error:
        return _skip(base, node_dir, f"its data give no training window: {error}")
    base.sources = [spec.name for spec, _ in own]
    base.windows = {name: len(d) for name, d in datasets.items()}
    key = node_key(node, settings, layout, fingerprint(own), [p.key for p in trained_parents])
    run_dir = node_dir / key
    done = run_dir / "result.json"
    if done.is_file():
        result = NodeResult.load(done)
        if result.steps >= node.n_steps:
            result.status = "reused"
            result.save(node_dir / LATEST)
            log.info("node %s: reusing finished run %s", node.name, run_dir)
            return result

    trainer = _trainer(node, layout, settings, run_dir / "checkpoints", transformer, progress)
    merge = merge_parents(trainer.modules, [_parent_weights(p) for p in trained_parents])
    if merge.parameters_initialised:
        log.warning(
            "node %s: no parent has %s; left at initialisation",
            node.name,
            merge.parameters_initialised,
        )
    loaders = {
        name: DataLoader(d, batch_size=settings.batch_size, collate_fn=collate_batch)
        for name, d in datasets.items()
    }
    log.info(
        "node %s (tier %d): %d fields on %dx%dx%d, %d train windows, from %s",
        node.name,
        tier,
        len(base.fields),
        *base.canvas,
        base.windows["train"],
        base.merged_from or "fresh weights",
    )
    history = trainer.train(loaders["train"], node.n_steps, val_loader=loaders["val"])
    last = history[-1] if history else {}
    if is_main():
        plot_loss_curves(history, run_dir / "loss.png", title=f"{node.name} (tier {tier})")
    result = NodeResult(
        **{
            **asdict(base),
            "status": "trained",
            "key": key,
            "run_dir": str(run_dir),
            "steps": trainer.step,
            "final_loss": last.get("loss"),
            "val_loss": last.get("val_loss"),
            "merge": merge.summary(),
            "backbone": trainer.backbone.describe(),
            "finished_at": _now(),
            "seconds": round(time.perf_counter() - clock, 2),
        }
    )
    result.save(done)
    result.save(node_dir / LATEST)
    barrier()  # under torchrun: every rank sees rank 0's results before any child reads them
    return result


def latest_result(out_dir: str | Path, name: str) -> NodeResult:
    """The latest result of node `name` under `out_dir`."""
    return NodeResult.load(Path(out_dir) / name / LATEST)


def train_warehouse_node(
    node: DAGNode,
    warehouse: Warehouse,
    settings: CurriculumSettings,
    out_dir: str | Path,
    *,
    sources: Sequence[str],
    tier: int = 0,
    runner: Callable[..., NodeResult] | None = None,
) -> NodeResult:
    """Train one node of a curriculum on the warehouse's `sources`, by itself: it loads
    only its own fields, its parents' results from `out_dir` and the curriculum's split
    (`warehouse_split`). `runner` trains it (default `train_node`; see
    `training.node_worker.node_runner`)."""
    pairs = sources_from_warehouse(
        warehouse, list(node.fields), sources=sources, start=settings.start, end=settings.end
    )
    return (runner or train_node)(
        node,
        pairs,
        [latest_result(out_dir, p) for p in node.parents],
        settings,
        out_dir,
        tier=tier,
        split=warehouse_split(warehouse, sources, settings),
        schema=schema_for(pairs),
    )


def _skip(result: NodeResult, node_dir: Path, reason: str) -> NodeResult:
    result.reason, result.finished_at = reason, _now()
    log.warning("node %s skipped: %s", result.name, reason)
    result.save(node_dir / LATEST)
    return result


def _parent_weights(parent: NodeResult) -> ParentWeights:
    layout = CanvasLayout.from_description(parent.paths, parent.layout, schema_of(parent.paths))
    checkpoint = load_checkpoint(
        Path(parent.run_dir) / "checkpoints", expect_layout=parent.layout_hash
    )
    return ParentWeights(parent.name, layout, checkpoint.weights)


def _trainer(
    node: DAGNode,
    layout: CanvasLayout,
    settings: CurriculumSettings,
    checkpoint_dir: Path,
    transformer: torch.nn.Module | None,
    progress: bool,
) -> MaskedCanvasTrainer:
    config = TrainConfig(
        lr=settings.lr,
        seed=settings.seed,
        warmup_steps=min(50, max(1, node.n_steps // 10)),
        log_every=max(1, node.n_steps // 10),
        checkpoint_every=max(1, node.n_steps // 4),
        progress=progress,
    )
    return build_trainer(
        layout,
        settings,
        config,
        checkpoint_dir,
        n_layers=node.n_layers,
        transformer=transformer,
    )


def parallel_seconds(results: Sequence[NodeResult], tier: int = 0) -> float:
    """The longest time two nodes of `tier` trained at once in different processes."""
    spans = [
        (r.pid, as_timestamp(r.started_at), as_timestamp(r.finished_at))
        for r in results
        if r.tier == tier and r.status == "trained"
    ]
    overlaps = [
        (min(a_end, b_end) - max(a_start, b_start)).total_seconds()
        for a_pid, a_start, a_end in spans
        for b_pid, b_start, b_end in spans
        if a_pid != b_pid
    ]
    return max([0.0, *overlaps])


@dataclass
class CurriculumResult:
    """Every node's result, in training order."""

    nodes: dict[str, NodeResult]

    def __getitem__(self, name: str) -> NodeResult:
        return self.nodes[name]

    def to_markdown(self) -> str:
        lines = [
            "| tier | node | status | fields | steps | final loss | val loss | from |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in self.nodes.values():
            loss = f"{r.final_loss:.4f}" if r.final_loss is not None else "-"
            val = f"{r.val_loss:.4f}" if r.val_loss is not None else "-"
            origin = ", ".join(r.merged_from) or ("-" if r.status == "skipped" else "fresh")
            status = f"{r.status}: {r.reason}" if r.reason else r.status
            lines.append(
                f"| {r.tier} | {r.name} | {status} | {len(r.fields)} | {r.steps} | {loss} | "
                f"{val} | {origin} |"
            )
        return "\n".join(lines)


class DAGCurriculumTrainer:
    """Trains a fork/join DAG of nodes; see the module doc.

    `nodes`: DAGNodes (or a Curriculum). `data_sources`: (spec, data) pairs, a
    Warehouse, a warehouse path, or None for the default warehouse. `backbone`,
    `pretrained_model_id` and `device` override `settings`. With the CogVideoX backbone
    the frozen transformer is loaded once and shared by every node (`transformer` passes
    one in, e.g. a small test model).
    """

    def __init__(
        self,
        nodes: Sequence[DAGNode] | Any,
        data_sources: Any = None,
        backbone: str | None = None,
        pretrained_model_id: str | None = None,
        device: str | None = None,
        *,
        settings: CurriculumSettings | None = None,
        out_dir: str | Path | None = None,
        transformer: torch.nn.Module | None = None,
        progress: bool = True,
    ) -> None:
        self.settings = (settings or CurriculumSettings()).override(
            backbone=backbone, pretrained_model_id=pretrained_model_id, device=device
        )
        self.pairs = load_sources(data_sources, self.settings)
        self.schema = schema_for(self.pairs)
        self.nodes = validate_dag(list(getattr(nodes, "nodes", nodes)), self.schema)
        self.tiers = tiers(self.nodes)
        self.out_dir = Path(out_dir) if out_dir else default_curriculum_dir()
        self.transformer = transformer
        self.progress = progress

    def run(self) -> CurriculumResult:
        """Train every node in topological order; returns each node's result."""
        split = curriculum_split(self.pairs, self.settings)
        transformer = self.transformer
        if self.settings.backbone == "cogvideox" and transformer is None:
            from training.backbones.cogvideox import load_pretrained_transformer

            transformer = load_pretrained_transformer(self.settings.pretrained_model_id)
        results: dict[str, NodeResult] = {}
        for i, node in enumerate(self.nodes, 1):
            log.info("curriculum: node %d/%d %s", i, len(self.nodes), node.name)
            results[node.name] = train_node(
                node,
                self.pairs,
                [results[p] for p in node.parents],
                self.settings,
                self.out_dir,
                tier=self.tiers[node.name],
                split=split,
                schema=self.schema,
                transformer=transformer,
                progress=self.progress,
            )
        return CurriculumResult(results)


CURRICULUM_FOLDERS = {"dag": "curriculum", "phases": "curriculum_phases"}


def default_curriculum_dir(kind: str = "dag") -> Path:
    """Where a curriculum of `kind` ("dag" or "phases", the sequential one) writes by
    default: its own folder under `$GUWM_ARTIFACTS`, else beside the default warehouse."""
    return default_artifacts_dir() / CURRICULUM_FOLDERS[kind]
