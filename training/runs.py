"""A training run's backbone and trainer, built from its settings (`training.settings`):
the one factory of every run, the world model's and each curriculum node's.

    backbone = node_backbone(layout, settings, n_layers=node.n_layers)
    trainer = build_trainer(layout, settings, TrainConfig(), checkpoint_dir)
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from canvas.layout import CanvasLayout
from training.backbones import Backbone, build_backbone
from training.config import TrainConfig
from training.diffusion import DiffusionWorldModelTrainer
from training.fields import FieldDecoder, FieldEncoder
from training.masked import MaskedCanvasTrainer
from training.settings import ModelSettings


def node_backbone(
    layout: CanvasLayout,
    settings: ModelSettings,
    *,
    n_layers: int | None = None,
    transformer: nn.Module | None = None,
) -> Backbone:
    """The backbone a run trains on `layout`, as `settings` describe it.

    `n_layers` overrides the scratch depth (a node's `n_layers`); `transformer` is the
    CogVideoX transformer to graft onto (None: `settings.pretrained_model_id`, loaded
    offline, on `settings.device`).
    """
    if settings.backbone == "cogvideox":
        return build_backbone(
            "cogvideox",
            layout,
            pretrained_model_id=settings.pretrained_model_id,
            transformer=transformer,
            adapter_rank=settings.adapter_rank,
            device=settings.device,
        )
    return build_backbone(
        "scratch",
        layout,
        n_layers=n_layers or settings.n_layers,
        attention=settings.attention,
    )


def build_trainer(
    layout: CanvasLayout,
    settings: ModelSettings,
    config: TrainConfig,
    checkpoint_dir: str | Path | None,
    *,
    n_layers: int | None = None,
    transformer: nn.Module | None = None,
) -> MaskedCanvasTrainer:
    """Encoder, backbone and decoder for `layout` in the trainer of `settings.objective`
    (masked or diffusion), seeded with `settings.seed`: every run's trainer.

    `n_layers` overrides the scratch depth; `transformer` is a CogVideoX transformer to
    graft onto (None: `settings.pretrained_model_id`)."""
    torch.manual_seed(settings.seed)
    backbone = node_backbone(layout, settings, n_layers=n_layers, transformer=transformer)
    cls = DiffusionWorldModelTrainer if settings.objective == "diffusion" else MaskedCanvasTrainer
    return cls(
        layout,
        backbone,
        FieldEncoder(layout),
        FieldDecoder(layout),
        config=config,
        checkpoint_dir=checkpoint_dir,
        device=settings.device,
    )
