"""The ranks of tests/test_distributed.py:

    torchrun --standalone --nproc_per_node=2 -m tests.distributed_worker OUT

Every rank (one thread, gloo) trains the tiny masked trainer of `tiny_trainer` for the
first STOP of N_STEPS steps, checkpointing to OUT/rank<r>/checkpoints, then a diffusion
trainer with a partly frozen backbone whose frozen and initial trainable weights differ
by rank, and writes what it ended with to OUT/rank<r>.pt.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from canvas import DatasetSpec, build_mixed_dataloader, compile_layout
from canvas.layout import CanvasLayout
from ingest.synthetic import SyntheticWorldConfig, generate_world
from training import FieldDecoder, FieldEncoder, distributed
from training.backbones import build_backbone
from training.checkpoint import trainable_state
from training.config import TrainConfig
from training.diffusion import DiffusionWorldModelTrainer
from training.masked import MaskedCanvasTrainer

N_STEPS, STOP = 8, 4


class Interrupted(Exception):
    """The run stops here, as if killed after its checkpoint."""


def tiny_setup() -> tuple[CanvasLayout, DataLoader]:
    """FRED and PMI of the synthetic world on a 4-step canvas, global batches of 8."""
    world = generate_world(SyntheticWorldConfig(start="2012-01-01", end="2015-12-31"))
    sources = []
    for name in ("fred", "pmi"):
        frame = world.sources[name]
        paths = sorted(frame["field_path"].unique())
        sources.append((DatasetSpec.from_fields(name, {p: p for p in paths}), frame))
    bound = compile_layout(*(p for spec, _ in sources for p in spec.field_paths), T=4, d_model=16)
    return bound, build_mixed_dataloader(bound, sources, batch_size=8)


def tiny_trainer(bound: CanvasLayout, checkpoint_dir: Path | None) -> MaskedCanvasTrainer:
    """A 1-layer d_model=16 masked trainer, seeded (random field embeddings: no model)."""
    torch.manual_seed(0)
    semantic = np.random.default_rng(0).standard_normal((bound.n_fields, 8)).astype(np.float32)
    return MaskedCanvasTrainer(
        bound,
        build_backbone("scratch", bound, n_layers=1),
        FieldEncoder(bound, semantic=semantic),
        FieldDecoder(bound),
        config=TrainConfig(progress=False, warmup_steps=2, log_every=1, checkpoint_every=STOP),
        checkpoint_dir=checkpoint_dir,
    )


def frozen_mix_run(bound: CanvasLayout, loader: DataLoader, rank: int) -> dict[str, object]:
    """Two diffusion steps with the first backbone block frozen (as the CogVideoX graft
    freezes its transformer). Frozen values and initial trainable ones differ by rank:
    DDP must broadcast and synchronise the trainable ones only."""
    torch.manual_seed(100 + rank)
    backbone = build_backbone("scratch", bound, n_layers=2)
    frozen_block = backbone.blocks[0].requires_grad_(False)
    frozen = {k: v.clone() for k, v in frozen_block.state_dict().items()}
    trainer = DiffusionWorldModelTrainer(
        bound,
        backbone,
        FieldEncoder(bound, semantic=np.ones((bound.n_fields, 8), dtype=np.float32)),
        FieldDecoder(bound),
        config=TrainConfig(progress=False, warmup_steps=1, log_every=1),
    )
    trainer.train(loader, 2)
    trained = trainable_state(trainer.modules)
    return {
        "mixed": trained,
        "frozen_kept": all(torch.equal(v, frozen[k]) for k, v in frozen_block.state_dict().items()),
        "frozen_saved": [k for k in trained if k.startswith("backbone.blocks.0.")],
    }


def main(out: Path) -> None:
    torch.set_num_threads(1)
    bound, loader = tiny_setup()
    rank = int(os.environ["RANK"])
    trainer = tiny_trainer(bound, out / f"rank{rank}" / "checkpoints")
    step = trainer.train_step

    def stop_at(*args: object) -> float:
        if trainer.step == STOP:
            raise Interrupted
        return step(*args)

    trainer.train_step = stop_at
    with contextlib.suppress(Interrupted):
        trainer.train(loader, N_STEPS)
    assert trainer.world.size == 2 and trainer.world.rank == rank
    record = {"weights": trainable_state(trainer.modules), "history": trainer.history}
    torch.save({**record, **frozen_mix_run(bound, loader, rank)}, out / f"rank{rank}.pt")
    distributed.cleanup()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
