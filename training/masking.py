"""Choosing what a training step hides: fields, field groups, recent steps, positions."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from canvas.layout import CanvasLayout
from training.config import MaskingConfig


def field_groups(bound: CanvasLayout) -> Tensor:
    """(F,) group id per field: fields sharing a parent path (`financial.fx`) share one."""
    parents = [path.rsplit(".", 1)[0] for path in bound.paths]
    _, ids = np.unique(parents, return_inverse=True)
    return torch.as_tensor(ids, dtype=torch.long)


def sample_hidden(
    presence: Tensor, groups: Tensor, config: MaskingConfig, generator: torch.Generator
) -> Tensor:
    """(B, T, F) bool: observed positions hidden from the input and scored."""
    B, T, F = presence.shape
    observed = presence > 0

    def draw(*shape: int) -> Tensor:
        return torch.rand(*shape, generator=generator)

    hidden = (draw(B, 1, F) < config.p_field).expand(B, T, F)
    n_groups = int(groups.max()) + 1
    hidden = hidden | (draw(B, n_groups) < config.p_group)[:, None, groups]
    recent = torch.randint(1, config.max_recent + 1, (B,), generator=generator)
    recent = torch.where(draw(B) < config.p_recent, recent, torch.zeros_like(recent))
    hidden = hidden | (torch.arange(T)[None, :] >= T - recent[:, None])[..., None]
    hidden = (hidden | (draw(B, T, F) < config.p_position)) & observed
    # a sample with nothing hidden: hide one observed field entirely
    empty = ~hidden.flatten(1).any(dim=1) & observed.flatten(1).any(dim=1)
    if empty.any():
        scores = observed.any(dim=1).float() * draw(B, F)  # pick among observed fields
        pick = torch.zeros(B, F, dtype=torch.bool)
        pick[torch.arange(B), scores.argmax(dim=1)] = True
        hidden = hidden | (empty[:, None, None] & pick[:, None, :] & observed)
    return hidden
