"""The backbone contract every backbone follows, and the diffusion-time embedding."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import ClassVar

import torch
from torch import Tensor, nn

from canvas.layout import CanvasLayout

TIME_FREQUENCIES = 128


def timestep_embedding(t: Tensor, dim: int = TIME_FREQUENCIES) -> Tensor:
    """(B,) times in [0, 1] -> (B, dim) sinusoidal embedding (t scaled to 0..1000 steps)."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(10_000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half
    )
    angles = 1000.0 * t.float()[:, None] * freqs[None]
    return torch.cat([angles.cos(), angles.sin()], dim=-1)


class Backbone(nn.Module):
    """The contract every backbone implements; subclasses define `name` and `forward`."""

    name: ClassVar[str]

    def __init__(self, bound: CanvasLayout) -> None:
        super().__init__()
        self.d_model = bound.d_model
        self.layout_hash = bound.layout_hash()
        self.T = bound.T
        self.n_positions = bound.H * bound.W
        self.n_slots = bound.n_slots

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters the optimizer updates."""
        return (p for p in self.parameters() if p.requires_grad)

    def frozen_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters that never change (pretrained weights)."""
        return (p for p in self.parameters() if not p.requires_grad)

    def describe(self) -> dict[str, object]:
        """Name, layout and parameter counts (total, trainable and their fraction)."""
        total = sum(p.numel() for p in self.parameters())
        trainable = sum(p.numel() for p in self.trainable_parameters())
        return {
            "name": self.name,
            "layout_hash": self.layout_hash,
            "d_model": self.d_model,
            "parameters_total": total,
            "parameters_trainable": trainable,
            "trainable_fraction": trainable / total if total else 0.0,
        }

    def _timestep(self, tokens: Tensor, timestep: Tensor | float | None) -> Tensor:
        """Check the tokens' shape; return the (B,) float32 timestep (zeros for None)."""
        expected = (self.T, self.n_positions, self.d_model)
        if tokens.dim() != 4 or tuple(tokens.shape[1:]) != expected:
            raise ValueError(
                f"{self.name} backbone expects tokens (B, {', '.join(map(str, expected))}) "
                f"for layout {self.layout_hash}, got {tuple(tokens.shape)}"
            )
        batch = tokens.shape[0]
        if timestep is None:
            return tokens.new_zeros(batch, dtype=torch.float32)
        return torch.as_tensor(timestep, dtype=torch.float32, device=tokens.device).expand(batch)
