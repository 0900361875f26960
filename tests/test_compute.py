"""Compute estimates: analytic FLOPs per step against torch's FlopCounterMode, DAG totals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from diffusers import CogVideoXTransformer3DModel
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from canvas.layout import CanvasLayout
from tests.test_backbones import TINY as TINY_COGVIDEOX
from training import (
    ComputeEstimate,
    FieldDecoder,
    FieldEncoder,
    MaskedCanvasTrainer,
    TrainConfig,
    build_backbone,
    estimate_compute,
)
from training.compute import step_flops
from training.dag import DAGNode, standard_dag
from training.fields import random_batch
from training.masked import BatchSource
from training.settings import CurriculumSettings, node_layout

# FlopCounterMode counts matmuls, convolutions and attention, as the estimate does; the
# one analytic term it misses is the decoder's per-position dot product (linalg.vecdot,
# elementwise in ATen), well under 1% here.
TOLERANCE = 0.02
# scalar fields plus the news embedding (a vector field): every encoder/decoder path
TINY_NODE = DAGNode("tiny", fields=("financial.fx", "narratives.news"))


pytestmark = pytest.mark.usefixtures("single_thread")


def measured_step(
    layout: CanvasLayout, backbone: torch.nn.Module, batch: int
) -> tuple[MaskedCanvasTrainer, FlopCounterMode]:
    """One real training step (forward, backward, AdamW) under FlopCounterMode.

    SDPA runs on its math backend: FlopCounterMode does not count CPU flash attention.
    """
    semantic = np.random.default_rng(0).standard_normal((layout.n_fields, 384))
    trainer = MaskedCanvasTrainer(
        layout,
        backbone,
        FieldEncoder(layout, semantic=semantic.astype(np.float32)),
        FieldDecoder(layout),
        config=TrainConfig(progress=False, warmup_steps=1),
    )
    counter = FlopCounterMode(display=False)
    with sdpa_kernel(SDPBackend.MATH), counter:
        trainer.train_step(BatchSource([random_batch(layout, batch)]), total_steps=10)
    return trainer, counter


@pytest.mark.parametrize("attention", ["full", "factorized"])
def test_scratch_step_flops_match_flop_counter(attention: str) -> None:
    settings = CurriculumSettings(T=4, d_model=32, batch_size=3, n_layers=3, attention=attention)
    layout = node_layout(TINY_NODE, settings)
    assert layout.vector_fields and layout.n_slots < layout.H * layout.W  # padding too
    backbone = build_backbone("scratch", layout, n_layers=3, attention=attention)
    _, counter = measured_step(layout, backbone, batch=3)
    estimate = step_flops(layout, settings)
    assert estimate.sequence == layout.T * layout.n_slots
    assert estimate.total == pytest.approx(counter.get_total_flops(), rel=TOLERANCE)


def test_cogvideox_step_flops_match_flop_counter_with_frozen_weights() -> None:
    settings = CurriculumSettings(
        backbone="cogvideox", T=4, d_model=32, batch_size=3, adapter_rank=4
    )
    layout = node_layout(TINY_NODE, settings)
    torch.manual_seed(0)
    transformer = CogVideoXTransformer3DModel(**TINY_COGVIDEOX)
    graft = build_backbone("cogvideox", layout, transformer=transformer, adapter_rank=4)
    _, counter = measured_step(layout, graft, batch=3)

    assert all(p.grad is None for p in graft.frozen_parameters())
    assert all(p.grad is not None for p in graft.trainable_parameters())
    # a frozen layer's backward is its input gradient only: as many FLOPs as its forward
    ff = counter.get_flop_counts()["CogVideoXGraft.transformer.transformer_blocks.0.ff"]
    forward, backward = ff[torch.ops.aten.addmm], ff[torch.ops.aten.mm]
    assert forward == backward > 0

    estimate = step_flops(layout, settings, transformer_config=transformer.config)
    patches = layout.T * -(-layout.H // 2) * -(-layout.W // 2)
    assert estimate.sequence == TINY_COGVIDEOX["max_text_seq_length"] + patches
    assert estimate.total == pytest.approx(counter.get_total_flops(), rel=TOLERANCE)


@pytest.fixture(scope="module")
def standard_2b() -> ComputeEstimate:
    return estimate_compute(standard_dag(), CurriculumSettings(backbone="cogvideox", batch_size=8))


def test_standard_dag_on_cogvideox_2b(standard_2b: ComputeEstimate) -> None:
    rows = standard_2b.rows
    assert len(rows) == 12 and sorted({r["tier"] for r in rows}) == [0, 1, 2, 3]
    assert standard_2b.total_steps == sum(r["steps"] for r in rows) == 176_000
    surveys = standard_2b.node_metadata("surveys")  # a 12 x 5 x 5 canvas: 3 x 3 patches
    assert surveys["positions"] == 12 * 5 * 5
    assert surveys["sequence_length"] == 226 + 12 * 3 * 3
    assert surveys["h100_hours"] == pytest.approx(
        surveys["steps"] * surveys["flops_per_step"] / (989e12 * 0.4 * 3600)
    )
    json.dumps(surveys)
    for row in rows:
        assert row["total_flops"] == row["steps"] * row["flops_per_step"]
    assert standard_2b.total_gpu_hours == pytest.approx(sum(r["h100_hours"] for r in rows))
    slowest = [max(r["h100_hours"] for r in rows if r["tier"] == t) for t in range(4)]
    assert standard_2b.wall_clock_hours == pytest.approx(sum(slowest))
    assert standard_2b.wall_clock_hours < standard_2b.total_gpu_hours

    table = standard_2b.tier_table()
    assert [line[:4] for line in table.splitlines() if line[2:3].isdigit()] == [
        f"| {t} " for t in range(4)
    ]
    assert "| 0 | 6 |" in table and "| 3 | 1 |" in table
    assert "Total: 176,000 training steps across 12 nodes" in table
    assert all(f"| {r['node']} |" in standard_2b.to_markdown() for r in rows)
    with pytest.raises(KeyError, match="surveys"):
        standard_2b.node_metadata("nope")


def test_gpu_hours_scale_with_steps_and_utilisation(standard_2b: ComputeEstimate) -> None:
    settings = CurriculumSettings(backbone="cogvideox", batch_size=8)
    doubled = estimate_compute(standard_dag(steps=(20_000, 24_000, 30_000, 100_000)), settings)
    assert doubled.total_steps == 2 * standard_2b.total_steps
    assert doubled.total_gpu_hours == pytest.approx(2 * standard_2b.total_gpu_hours)
    half = estimate_compute(standard_dag(), settings, utilisation=0.2)
    assert half.total_gpu_hours == pytest.approx(2 * standard_2b.total_gpu_hours)
    with pytest.raises(ValueError, match="utilisation"):
        estimate_compute(standard_dag(), settings, utilisation=0.0)


@pytest.mark.parametrize("backbone", ["scratch", "cogvideox"])
def test_twice_the_fields_costs_more(backbone: str) -> None:
    nodes = [
        DAGNode("rates", fields=("country_us.macro.rates",)),
        DAGNode("wide", fields=("country_us.macro.rates", "financial.yield_curves")),
    ]
    rows = estimate_compute(nodes, CurriculumSettings(backbone=backbone)).rows
    small, wide = rows
    assert wide["fields"] >= 2 * small["fields"]
    assert wide["flops_per_step"] > small["flops_per_step"]
    assert wide["h100_hours"] > small["h100_hours"]
