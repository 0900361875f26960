"""Training speed: steps/s per backbone on a ~700-position canvas, and shard loading rate.

Baseline for the step time: torch's own nn.TransformerEncoder (2 layers, d_model 64,
4 heads) over the same tokens and batch, forward + backward + AdamW, in the same run.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from bench.common import BenchResult
from canvas import compile_layout
from canvas.materialize import materialize_canvas
from canvas.shards import ShardDataset, build_shard_dataloader
from ingest.synthetic import SyntheticWorldConfig, generate_world
from training import FieldDecoder, FieldEncoder, MaskedCanvasTrainer, TrainConfig, build_backbone
from training.masked import BatchSource
from warehouse.schema import default_schema
from warehouse.store import Warehouse

TINY_COGVIDEOX = dict(
    num_attention_heads=2,
    attention_head_dim=16,
    in_channels=4,
    out_channels=4,
    num_layers=2,
    sample_width=16,
    sample_height=16,
    sample_frames=9,
    patch_size=2,
    text_embed_dim=32,
    time_embed_dim=32,
    max_text_seq_length=8,
    temporal_compression_ratio=4,
)


def _steps_per_second(trainer: MaskedCanvasTrainer, batches: BatchSource, n: int) -> float:
    trainer.train_step(batches, n + 1)  # warm-up
    started = time.perf_counter()
    for _ in range(n):
        trainer.train_step(batches, n + 1)
    return n / (time.perf_counter() - started)


def _reference_steps_per_second(tokens: int, batch: int, n: int) -> float:
    layer = nn.TransformerEncoderLayer(64, 4, 256, dropout=0.0, batch_first=True, norm_first=True)
    model = nn.TransformerEncoder(layer, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(batch, tokens, 64)

    def step() -> None:
        optimizer.zero_grad()
        model(x).pow(2).mean().backward()
        optimizer.step()

    step()
    started = time.perf_counter()
    for _ in range(n):
        step()
    return n / (time.perf_counter() - started)


def run(*, quick: bool = False) -> BenchResult:
    """Scratch (full and factorized) and a tiny CogVideoX graft at T=7 x 100 positions."""
    n = 5 if quick else 20
    result = BenchResult("training")
    with tempfile.TemporaryDirectory() as tmp:
        wh = Warehouse(Path(tmp) / "w.duckdb")
        world = generate_world(SyntheticWorldConfig(start="2000-01-01", end="2024-12-31"))
        for name, frame in world.sources.items():
            wh.ingest(frame, source=name, now=dt.datetime(2025, 6, 1))
        # 100 occupied positions: the observed fields plus unobserved schema fields
        observed = sorted({p for f in world.sources.values() for p in f["field_path"].unique()})
        extra = [p for p in default_schema().paths if p not in observed and "news" not in p]
        fields = (observed + extra)[: 100 - 6]  # six regime fields are added
        bound = compile_layout(*fields, T=7, d_model=64, step="1mo")
        assert bound.n_slots == 100, bound.n_slots
        materialize_canvas(wh, bound, Path(tmp) / "canvas", start="2000-01-01", end="2024-12-31")
        dataset = ShardDataset(Path(tmp) / "canvas", split="train", layout=bound)
        reps = 200 if quick else 2000
        started = time.perf_counter()
        for i in range(reps):
            dataset.__getitems__([(i * 7 + k) % len(dataset) for k in range(16)])
        loader_rate = reps * 16 / (time.perf_counter() - started)
        loader = build_shard_dataloader(Path(tmp) / "canvas", bound, "train", 16)
        reference = _reference_steps_per_second(bound.T * bound.n_slots, 16, n)
        rates = {}
        for name, kwargs in (
            ("scratch factorized", {"attention": "factorized"}),
            ("scratch full", {"attention": "full"}),
        ):
            backbone = build_backbone("scratch", bound, n_layers=2, **kwargs)
            rates[name] = _steps_per_second(_trainer(bound, backbone), BatchSource(loader), n)
        from diffusers import CogVideoXTransformer3DModel

        graft = build_backbone(
            "cogvideox", bound, transformer=CogVideoXTransformer3DModel(**TINY_COGVIDEOX)
        )
        rates["tiny CogVideoX graft"] = _steps_per_second(
            _trainer(bound, graft), BatchSource(loader), n
        )
    tokens = bound.T * bound.n_slots
    for name, rate in rates.items():
        result.add(
            f"{name} step time",
            1 / rate,
            "s",
            "torch TransformerEncoder step",
            1 / reference,
            note=f"{tokens} positions, 2 layers, d_model 64, batch 16; {rate * 16:,.0f} samples/s",
        )
    result.add(
        "shard loader samples/s",
        loader_rate,
        "samples/s",
        "training consumption (scratch factorized)",
        rates["scratch factorized"] * 16,
        note="memory-mapped shards, batched gather; ratio > 1: loading outpaces training",
    )
    return result


def _trainer(bound, backbone) -> MaskedCanvasTrainer:
    torch.manual_seed(0)
    return MaskedCanvasTrainer(
        bound,
        backbone,
        FieldEncoder(bound),
        FieldDecoder(bound),
        config=TrainConfig(progress=False),
    )
