"""Backbones: canvas tokens (B, T, H*W, d_model) -> tokens of the same shape.

    backbone = build_backbone("scratch", bound)              # small CPU transformer
    backbone = build_backbone("cogvideox", bound, device="cuda")  # frozen CogVideoX-2b graft
    out = backbone(tokens, timestep=t)                       # t: (B,) in [0, 1] or None

Both follow the `Backbone` contract: `d_model`, `layout_hash`, `trainable_parameters()`,
`frozen_parameters()` and `describe()`. The CogVideoX module (and diffusers, whose import
takes several seconds) is imported only when it is asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from canvas.layout import CanvasLayout
from training.backbones.base import Backbone
from training.backbones.scratch import ScratchBackbone
from training.settings import BACKBONES

if TYPE_CHECKING:
    from training.backbones.cogvideox import (
        CogVideoXGraft,
        PretrainedWeightsNotFound,
        cogvideox_2b_trainable_fraction,
        random_transformer,
    )

__all__ = [
    "BACKBONES",
    "Backbone",
    "CogVideoXGraft",
    "PretrainedWeightsNotFound",
    "ScratchBackbone",
    "build_backbone",
    "cogvideox_2b_trainable_fraction",
    "random_transformer",
]

_LAZY = (
    "CogVideoXGraft",
    "PretrainedWeightsNotFound",
    "cogvideox_2b_trainable_fraction",
    "random_transformer",
)


def build_backbone(name: str, bound: CanvasLayout, **kwargs: Any) -> Backbone:
    """The backbone `name` ("scratch" or "cogvideox") for `bound`; kwargs go to its class.

    The name and the plain (JSON-able) kwargs are kept on the module as `build_spec`, so
    a checkpoint can rebuild the same backbone.
    """
    if name == "scratch":
        backbone = ScratchBackbone(bound, **kwargs)
    elif name == "cogvideox":
        from training.backbones.cogvideox import CogVideoXGraft

        backbone = CogVideoXGraft(bound, **kwargs)
    else:
        raise ValueError(f"unknown backbone {name!r}; expected one of {', '.join(BACKBONES)}")
    plain = {k: v for k, v in kwargs.items() if isinstance(v, str | int | float | bool)}
    backbone.build_spec = {"name": name, "kwargs": plain}
    return backbone


def __getattr__(name: str) -> Any:
    """Lazy access to the CogVideoX names (importing diffusers is slow)."""
    if name in _LAZY:
        from training.backbones import cogvideox

        return getattr(cogvideox, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
