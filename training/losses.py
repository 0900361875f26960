"""The canvas loss: squared error where ground truth exists, weighted, normalised.

    L = sum((prediction - target)^2 * presence * loss_weight) / sum(presence * loss_weight)

Here `presence * loss_weight` is the batch's `target_weight`, restricted to what a step
scores. Vector fields count once per position: their squared error is the mean over
the vector's dimensions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor

ElementwiseLoss = Callable[[Tensor, Tensor], Tensor]


def masked_loss(
    prediction: Mapping[str, Tensor],
    batch: Mapping[str, Tensor],
    weight: Tensor,
    *,
    vector_fields: list[int] = (),
    output_losses: Mapping[int, ElementwiseLoss] | None = None,
) -> Tensor:
    """The normalised weighted loss; `weight` (B, T, F) is 0 wherever nothing is scored."""
    error = (prediction["values"] - batch["values"]) ** 2
    for f, loss_fn in (output_losses or {}).items():
        error[..., f] = loss_fn(prediction["values"][..., f], batch["values"][..., f])
    if vector_fields and "vectors" in prediction:
        vector_error = ((prediction["vectors"] - batch["vectors"]) ** 2).mean(dim=-1)
        error = error.index_copy(-1, torch.as_tensor(vector_fields), vector_error)
    return (error * weight).sum() / weight.sum().clamp_min(1e-8)
