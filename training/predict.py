"""One forward pass of a world model: tokens in, per-field predictions out.

Scalar predictions are residuals on a learned share of persistence: the decoder's output
is added to rho_f times the field's most recent visible value in the window (at or before
the step; 0, the training mean, when the field has none), rho_f = the decoder's
`persistence()`. It starts at 1 for fields modelled as levels (an untrained model is then
the persistence forecast) and 0 for changes (the training mean), and is learned like an
AR(1) coefficient; the backbone learns how the world departs from that.
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
    anchor = persistence_anchor(batch["values"], batch["presence"]) * decoder.persistence()
    prediction["values"] = prediction["values"] + anchor.to(prediction["values"].dtype)
    return prediction, tokens
