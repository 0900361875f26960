"""GPU training throughput: the CogVideoX-2b graft and the scratch backbone on the full schema.

On a CUDA device, each backbone trains on the canvas of every field of the default
schema (the curriculum's settings: T=12, d_model 64) with random data; the graft wraps
a randomly initialised transformer of diffusers' default config (CogVideoX-2b, frozen,
bfloat16), so no weights are needed. One step is `MaskedCanvasTrainer.train_step`:
masking, encoder, backbone, decoder, forward and backward, AdamW.

Per backbone, at the largest batch that fits (doubling until CUDA runs out of memory, a
step would take more than `MAX_STEP_S` or the cap) and at the curriculum's batch:
step time, canvas positions per second (T * H * W per sample, as `training.compute`
counts them), peak GPU memory, and model FLOPs utilisation: the analytic FLOPs of
`training.compute.step_flops` per step time against the card's dense bf16 peak. Its
baseline is a bf16 matmul's share of the same peak, measured in the same run. Then the
standard curriculum's tier table (`estimate_compute`) at the utilisation measured at
the curriculum's batch, against the estimate's assumed 40% of the H100.

Without CUDA the report holds one row, "skipped: no CUDA device".
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch

from bench.common import BenchResult, timed
from bench.training_bench import TINY_COGVIDEOX
from canvas.layout import CanvasLayout
from training.compute import (
    SEMANTIC_DIM,
    ComputeEstimate,
    bf16_peak_flops,
    estimate_compute,
    step_flops,
)
from training.config import TrainConfig
from training.dag import DAGNode, standard_dag
from training.fields import FieldDecoder, FieldEncoder, random_batch
from training.masked import BatchSource, MaskedCanvasTrainer
from training.runs import node_backbone
from training.settings import CurriculumSettings, node_layout
from warehouse.schema import default_schema

MAX_BATCH = 4096  # batch search cap on CUDA
MAX_STEP_S = 2.0  # the search does not double past a step this long: the run stays short
TINY_MAX_BATCH = 4
TOTAL_STEPS = 10_000  # the learning-rate schedule's horizon; irrelevant to speed
GIB = 2**30


@dataclass(frozen=True)
class BenchConfig:
    """One measured model: a backbone's settings on a node's canvas."""

    label: str
    node: DAGNode
    settings: CurriculumSettings
    transformer_config: dict[str, Any] | None = None  # cogvideox: overrides of the 2b config

    @property
    def layout(self) -> CanvasLayout:
        return node_layout(self.node, self.settings)


def configs(device: torch.device, *, tiny: bool = False) -> list[BenchConfig]:
    """The graft and the scratch backbone on the full schema (`tiny`: a two-field canvas,
    T=4, d_model 32 and a tiny CogVideoX config, to test the code path on a CPU)."""
    if tiny:
        node = DAGNode("tiny", fields=("financial.fx", "narratives.news"))
        base = CurriculumSettings(T=4, d_model=32, adapter_rank=4, device=str(device))
        graft = ("tiny CogVideoX graft", TINY_COGVIDEOX)
    else:
        node = DAGNode("full schema", fields=tuple(default_schema().paths))
        base = CurriculumSettings(device=str(device))
        graft = ("CogVideoX-2b graft", None)
    return [
        BenchConfig(graft[0], node, base.override(backbone="cogvideox"), graft[1]),
        BenchConfig(f"scratch {base.attention}", node, base.override(backbone="scratch")),
    ]


class BatchSearch(NamedTuple):
    """The largest batch that fitted and why the search stopped there."""

    batch: int
    stopped: str


def largest_batch(
    step: Callable[[int], float], *, cap: int, max_step_s: float = math.inf
) -> BatchSearch:
    """Double the batch from 1 while `step(batch)` (one step, its seconds) fits.

    Stops at `torch.cuda.OutOfMemoryError` (the cache is emptied and the last batch that
    fitted kept), when doubling would pass `cap`, or when the doubled step would likely
    take longer than `max_step_s`. A batch of 1 that does not fit is an error.
    """
    batch, fitted = 1, 0
    while True:
        try:
            seconds = step(batch)
        except torch.cuda.OutOfMemoryError:
            seconds = None
        if seconds is None:  # outside the handler: the failed step's tensors are freed
            gc.collect()
            torch.cuda.empty_cache()
            if not fitted:
                raise RuntimeError("a batch of 1 does not fit in the device's memory")
            return BatchSearch(fitted, f"out of memory at {batch}")
        fitted = batch
        if 2 * batch > cap:
            return BatchSearch(batch, f"cap {cap}")
        if 2 * seconds > max_step_s:
            return BatchSearch(batch, f"a step of {2 * batch} would pass {max_step_s:g} s")
        batch *= 2


@dataclass(frozen=True)
class Throughput:
    """Timed training steps of one config at one batch."""

    config: BenchConfig
    batch: int
    search: str  # how the batch was chosen
    step_s: float
    canvas: str  # the layout's grid and fields, for the report
    precision: str
    positions: int  # canvas positions per sample, T * H * W
    flops: int  # analytic FLOPs of one step (training.compute)
    peak_memory: int | None  # bytes; None off CUDA
    peak_flops: float  # the card's dense bf16 peak
    peak_source: str

    @property
    def positions_per_s(self) -> float:
        return self.batch * self.positions / self.step_s

    @property
    def flops_per_s(self) -> float:
        return self.flops / self.step_s

    @property
    def mfu(self) -> float:
        return self.flops_per_s / self.peak_flops


@dataclass(frozen=True)
class Measured:
    """Everything the GPU benchmark measures on one device."""

    device_name: str
    matmul_size: int
    matmul_flops_per_s: float  # the bf16 matmul baseline
    runs: list[Throughput]


def device_name(device: torch.device) -> str:
    """The card's name (torch.cuda.get_device_name), or the device type off CUDA."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else device.type


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _trainer(
    config: BenchConfig, layout: CanvasLayout, device: torch.device
) -> MaskedCanvasTrainer:
    """A masked trainer as a curriculum node builds it, on random field embeddings."""
    settings = config.settings
    torch.manual_seed(settings.seed)
    transformer = None
    if settings.backbone == "cogvideox":
        from training.backbones.cogvideox import random_transformer

        transformer = random_transformer(config.transformer_config, device=device)
    backbone = node_backbone(layout, settings, transformer=transformer)
    semantic = np.random.default_rng(settings.seed).standard_normal(
        (layout.n_fields, SEMANTIC_DIM), dtype=np.float32
    )
    return MaskedCanvasTrainer(
        layout,
        backbone,
        FieldEncoder(layout, semantic=semantic),
        FieldDecoder(layout),
        config=TrainConfig(lr=settings.lr, seed=settings.seed, progress=False),
        device=device,
    )


def measure_config(
    config: BenchConfig,
    device: torch.device,
    *,
    cap: int,
    max_step_s: float = math.inf,
    warmup: int = 2,
    steps: int = 10,
) -> list[Throughput]:
    """Timed steps of `config` at the largest batch that fits, then at the curriculum's
    batch when that is smaller (the last run is the one the tier table uses)."""
    layout = config.layout
    trainer = _trainer(config, layout, device)
    peak, source = bf16_peak_flops(device_name(device))
    canvas = f"{layout.T}x{layout.H}x{layout.W} canvas, {layout.n_fields} fields"
    frozen = getattr(trainer.backbone, "frozen_dtype", None)
    precision = (
        f"frozen blocks {str(frozen).removeprefix('torch.')}, the rest float32"
        if frozen is not None
        else "float32 without autocast, as the curriculum trains"
    )

    def run_steps(batches: BatchSource, n: int) -> None:
        for _ in range(n):
            trainer.train_step(batches, TOTAL_STEPS)
        _sync(device)

    def one_step(batch: int) -> float:
        batches = BatchSource([random_batch(layout, batch)])
        _sync(device)
        return timed(lambda: run_steps(batches, 1))[0]

    one_step(1)  # first-use costs (kernels, allocator) stay out of the search's step times
    search = largest_batch(one_step, cap=cap, max_step_s=max_step_s)
    chosen = [(search.batch, f"largest that fits: {search.stopped}")]
    if config.settings.batch_size < search.batch:
        chosen.append((config.settings.batch_size, "the curriculum's batch"))
    out = []
    for batch, why in chosen:
        batches = BatchSource([random_batch(layout, batch)])
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        run_steps(batches, warmup)
        seconds = timed(lambda batches=batches: run_steps(batches, steps))[0] / steps
        settings = config.settings.override(batch_size=batch)
        out.append(
            Throughput(
                config=config,
                batch=batch,
                search=why,
                step_s=seconds,
                canvas=canvas,
                precision=precision,
                positions=layout.n_positions,
                flops=step_flops(
                    layout, settings, transformer_config=config.transformer_config
                ).total,
                peak_memory=(
                    torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
                ),
                peak_flops=peak,
                peak_source=source,
            )
        )
    return out


def matmul_flops_per_s(device: torch.device, n: int, repeat: int) -> float:
    """FLOP/s of an n x n x n bfloat16 matmul on `device` (best of `repeat`)."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)

    def product() -> None:
        a @ b
        _sync(device)

    product()
    return 2 * n**3 / timed(product, repeat=repeat)[0]


def measure(device: torch.device, *, tiny: bool = False, quick: bool = False) -> Measured:
    """Every run of the benchmark on `device` (`tiny`: the CPU test's sizes)."""
    if tiny:
        limits = dict(cap=TINY_MAX_BATCH, warmup=1, steps=2)
        matmul = (256, 3)
    elif quick:
        limits = dict(cap=256, max_step_s=MAX_STEP_S, warmup=1, steps=3)
        matmul = (8192, 5)
    else:
        limits = dict(cap=MAX_BATCH, max_step_s=MAX_STEP_S, warmup=2, steps=10)
        matmul = (8192, 20)
    runs = []
    for config in configs(device, tiny=tiny):
        runs += measure_config(config, device, **limits)
        gc.collect()  # the graft's transformer goes before the next model is built
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return Measured(device_name(device), matmul[0], matmul_flops_per_s(device, *matmul), runs)


def tier_estimates(run: Throughput) -> tuple[ComputeEstimate, ComputeEstimate]:
    """The standard curriculum's compute at `run`'s measured utilisation on its card, and
    at the estimate's assumed utilisation of the H100."""
    config = run.config
    args = (standard_dag(), config.settings)
    kwargs = dict(transformer_config=config.transformer_config)
    measured = estimate_compute(
        *args, utilisation=min(1.0, run.mfu), peak_flops=run.peak_flops, **kwargs
    )
    return measured, estimate_compute(*args, **kwargs)


def to_result(measured: Measured) -> BenchResult:
    """The report rows: per run step time, positions/s, peak memory and MFU; per config
    the tier table at the utilisation of its last run (the curriculum's batch, or the
    largest that fits when that is smaller)."""
    result = BenchResult("gpu")
    card = measured.device_name
    for run in measured.runs:
        label = f"{run.config.label}, batch {run.batch}"
        memory = "" if run.peak_memory is not None else "; peak memory: not applicable"
        result.add(
            f"{label}: step time",
            run.step_s,
            "s",
            note=f"{run.search}; {run.canvas}; forward, backward, AdamW on {card}; "
            f"{run.precision}{memory}",
        )
        result.add(
            f"{label}: canvas positions/s",
            run.positions_per_s,
            "positions/s",
            note=f"{run.batch} x {run.positions:,} positions (T x H x W) per step",
        )
        if run.peak_memory is not None:
            result.add(
                f"{label}: peak GPU memory",
                run.peak_memory / GIB,
                "GiB",
                note="torch.cuda.max_memory_allocated over warm-up and timed steps",
            )
        result.add(
            f"{label}: MFU",
            100 * run.mfu,
            "%",
            f"bf16 matmul {measured.matmul_size}^3",
            100 * measured.matmul_flops_per_s / run.peak_flops,
            note=f"{run.flops:.3g} analytic FLOPs/step (training.compute), "
            f"{run.flops_per_s / 1e12:.3g} TFLOP/s of {run.peak_flops / 1e12:,.0f} "
            f"({run.peak_source})",
        )
    last = {run.config.label: run for run in measured.runs}
    for run in last.values():
        _tier_rows(result, run, card)
    return result


def _tier_rows(result: BenchResult, run: Throughput, card: str) -> None:
    measured, assumed = tier_estimates(run)
    label = run.config.label
    baseline = f"{assumed.utilisation:.0%} of H100 (the estimate's assumption)"
    where = (
        f"at the {100 * run.mfu:.3g}% MFU of batch {run.batch} on {card}; "
        f"curriculum batch {run.config.settings.batch_size}"
    )
    for (tier, rows), base in zip(
        measured.by_tier().items(), assumed.by_tier().values(), strict=True
    ):
        hours = [r["h100_hours"] for r in rows]
        span = f"{min(hours):.3g}-{max(hours):.3g}" if len(rows) > 1 else f"{hours[0]:.3g}"
        result.add(
            f"{label}: tier {tier} GPU-hours/node (slowest)",
            max(hours),
            "h",
            baseline,
            max(r["h100_hours"] for r in base),
            note=f"{len(rows)} node(s), {rows[0]['steps']:,} steps/node, {span} h/node {where}",
        )
    result.add(
        f"{label}: standard curriculum GPU-hours",
        measured.total_gpu_hours,
        "h",
        baseline,
        assumed.total_gpu_hours,
        note=f"{measured.total_steps:,} steps, {measured.wall_clock_hours:.3g} h wall-clock "
        f"with tier-parallelism, {where}",
    )


def run(*, quick: bool = False) -> BenchResult:
    """The GPU benchmark on cuda:0, or the skip row without a CUDA device."""
    if not torch.cuda.is_available():
        result = BenchResult("gpu")
        result.add(
            "skipped: no CUDA device",
            0,
            "CUDA devices",
            note="run `python -m bench --only gpu` on a machine with one",
        )
        return result
    return to_result(measure(torch.device("cuda"), quick=quick))
