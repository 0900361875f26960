"""One forward pass of a world model: tokens in, per-field predictions out.

Scalar predictions are residuals on an AR(1)-like carry-over: the decoder's output is
added to rho_f ** h times the field's most recent visible value in the window, h steps
back (h = 0 where the value itself is visible; nothing when the field has none), rho_f =
the decoder's `persistence()`. It starts at 1 for fields modelled as levels (an untrained
model is then the persistence forecast) and 0 for changes (the training mean), and is
learned; the backbone learns how the world departs from that.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn


def persistence_anchor(values: Tensor, presence: Tensor, rho: Tensor) -> Tensor:
    """(B, T, F): rho_f ** h times the latest visible value of each field at or before each
    step, h steps back (the AR(1) forecast h steps ahead, in normalised units); 0 when the
    field has no visible value yet."""
    T = values.shape[1]
    steps = torch.arange(T, device=values.device).view(1, T, 1)
    latest = torch.where(presence > 0, steps, torch.full_like(steps, -1)).cummax(dim=1).values
    last = torch.gather(values * presence, 1, latest.clamp(min=0)) * (latest >= 0)
    powers = torch.stack([rho**h for h in range(T)])  # (T, F); integer powers keep signs
    horizon = (steps - latest).clamp(max=T - 1).expand_as(values)
    return last * powers.gather(0, horizon.reshape(-1, horizon.shape[-1])).view_as(values)


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
    anchor = persistence_anchor(batch["values"], batch["presence"], decoder.persistence())
    prediction["values"] = prediction["values"] + anchor.to(prediction["values"].dtype)
    return prediction, tokens
