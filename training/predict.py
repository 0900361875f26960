"""One forward pass of a world model: tokens in, per-field predictions out.

Scalar predictions are residuals on persistence: the decoder's output is added to the
field's most recent visible value in the window (at or before the step; 0, the
training mean, when the field has none). An untrained model therefore starts as the
persistence forecast and learns how the world departs from it, which is what keeps
level series that drift out of their training range predictable.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn


def persistence_anchor(values: Tensor, presence: Tensor) -> Tensor:
    """(B, T, F): the latest visible value of each field at or before each step, else 0."""
    T = values.shape[1]
    steps = torch.arange(T, device=values.device).view(1, T, 1)
    latest = torch.where(presence > 0, steps, torch.full_like(steps, -1)).cummax(dim=1).values
    anchor = torch.gather(values * presence, 1, latest.clamp(min=0))
    return anchor * (latest >= 0)


def forward_canvas(
    encoder: nn.Module,
    backbone: nn.Module,
    decoder: nn.Module,
    batch: Mapping[str, Tensor],
    timestep: Tensor | None = None,
) -> tuple[dict[str, Tensor], Tensor]:
    """(predictions, backbone tokens) for a batch as the model may see it."""
    tokens = backbone(encoder(batch), timestep=timestep)
    prediction = dict(decoder(tokens))
    prediction["values"] = prediction["values"] + persistence_anchor(
        batch["values"], batch["presence"]
    ).to(prediction["values"].dtype)
    return prediction, tokens
