"""The backbone contract and a small from-scratch transformer over canvas positions.

Every backbone maps canvas tokens to tokens of the same shape::

    out = backbone(tokens, timestep=None)   # (B, T, H*W, d_model) -> (B, T, H*W, d_model)

`timestep` is the diffusion time, a (B,) float in [0, 1]; None (plain regression) means
0. Padding positions (>= the layout's `n_slots` in each time step) arrive as zero
tokens, never influence the real positions and come back as zeros.

`ScratchBackbone` is a pre-norm transformer over the real positions only (T * n_slots
tokens are gathered, the padding is added back at the end). Its parameters depend on
d_model alone, not on the grid: field and time identity come with the tokens (see
`training.fields`), so its weights carry over to a larger canvas with the same d_model.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from canvas.layout import CanvasLayout
from training.backbones.base import TIME_FREQUENCIES, Backbone, timestep_embedding

__all__ = ["ScratchBackbone"]


def _modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """adaLN: LayerNorm without affine, then a per-sample scale and shift."""
    return F.layer_norm(x, x.shape[-1:]) * (1 + scale) + shift


class _Attention(nn.Module):
    """Multi-head self-attention over the middle axis of (N, L, d).

    Queries and values have a bias, keys none: a key bias adds the same score to every
    key of a query, which the softmax cancels. Such a weight never changes an output, and
    its exact gradient of 0 would reach an optimiser as rounding noise.
    """

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(d_model))
        self.v_bias = nn.Parameter(torch.zeros(d_model))
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x: Tensor) -> Tensor:
        n, length, d = x.shape
        bias = torch.cat([self.q_bias, torch.zeros_like(self.q_bias), self.v_bias])
        qkv = F.linear(x, self.qkv.weight, bias)
        q, k, v = qkv.view(n, length, 3, self.n_heads, d // self.n_heads).unbind(2)
        y = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return self.out(y.transpose(1, 2).reshape(n, length, d))


class _Block(nn.Module):
    """Pre-norm block: attention over one axis, then an MLP, each behind an adaLN LayerNorm.

    `axis` is "all" (the T * S real tokens), "space" (the S positions of one time step)
    or "time" (one position across the T steps). The modulation is zero-initialised: at
    start every timestep gives plain LayerNorm.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        mlp_ratio: int,
        dropout: float,
        axis: Literal["all", "space", "time"],
    ) -> None:
        super().__init__()
        self.axis = axis
        self.attn = _Attention(d_model, n_heads)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, mlp_ratio * d_model),
            nn.GELU(),
            nn.Linear(mlp_ratio * d_model, d_model),
        )
        self.dropout = nn.Dropout(dropout)
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(d_model, 4 * d_model))
        nn.init.zeros_(self.modulation[1].weight)
        nn.init.zeros_(self.modulation[1].bias)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        """x (B, T, S, d) real tokens, cond (B, d) timestep embedding."""
        shift1, scale1, shift2, scale2 = self.modulation(cond)[:, None, None].chunk(4, dim=-1)
        x = x + self.dropout(self._attend(_modulate(x, shift1, scale1)))
        return x + self.dropout(self.mlp(_modulate(x, shift2, scale2)))

    def _attend(self, h: Tensor) -> Tensor:
        b, t, s, d = h.shape
        if self.axis == "all":
            return self.attn(h.reshape(b, t * s, d)).view(b, t, s, d)
        if self.axis == "space":
            return self.attn(h.reshape(b * t, s, d)).view(b, t, s, d)
        y = self.attn(h.transpose(1, 2).reshape(b * s, t, d))
        return y.view(b, s, t, d).transpose(1, 2)


class ScratchBackbone(Backbone):
    """Small pre-norm transformer over the real canvas positions with adaLN timestep input.

    `attention="full"` attends over all T * n_slots real tokens in every layer;
    `"factorized"` follows the canvas topology, alternating layers of spatial attention
    (within each time step) and temporal attention (each position across time steps):
    from two layers on, every position sees every other. Both have the same parameters.
    """

    name = "scratch"

    def __init__(
        self,
        bound: CanvasLayout,
        n_layers: int = 2,
        n_heads: int = 4,
        mlp_ratio: int = 4,
        dropout: float = 0.0,
        attention: Literal["full", "factorized"] = "full",
    ) -> None:
        super().__init__(bound)
        if attention not in ("full", "factorized"):
            raise ValueError(f"attention must be 'full' or 'factorized', got {attention!r}")
        if bound.d_model % n_heads:
            raise ValueError(f"d_model {bound.d_model} is not divisible by n_heads {n_heads}")
        d = bound.d_model
        self.attention = attention
        self.time_mlp = nn.Sequential(nn.Linear(TIME_FREQUENCIES, d), nn.SiLU(), nn.Linear(d, d))
        axes = [
            ("space", "time")[i % 2] if attention == "factorized" else "all"
            for i in range(n_layers)
        ]
        self.blocks = nn.ModuleList(_Block(d, n_heads, mlp_ratio, dropout, a) for a in axes)
        self.final_modulation = nn.Sequential(nn.SiLU(), nn.Linear(d, 2 * d))
        nn.init.zeros_(self.final_modulation[1].weight)
        nn.init.zeros_(self.final_modulation[1].bias)

    def forward(self, tokens: Tensor, *, timestep: Tensor | float | None = None) -> Tensor:
        """(B, T, H*W, d) -> (B, T, H*W, d); padding positions are ignored and return 0."""
        cond = self.time_mlp(timestep_embedding(self._timestep(tokens, timestep)))
        x = tokens[:, :, : self.n_slots]
        for block in self.blocks:
            x = block(x, cond)
        shift, scale = self.final_modulation(cond)[:, None, None].chunk(2, dim=-1)
        x = _modulate(x, shift, scale)
        return F.pad(x, (0, 0, 0, self.n_positions - self.n_slots))

    def describe(self) -> dict[str, object]:
        """The base description plus the attention kind and depth."""
        return {**super().describe(), "attention": self.attention, "layers": len(self.blocks)}
