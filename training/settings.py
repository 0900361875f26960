"""What every curriculum node shares: canvas grid, backbone, objective, optimiser, data split.

settings = CurriculumSettings(backbone="scratch", T=12, step="1mo", n_layers=2)
layout = node_layout(node, settings)   # the node's canvas: its fields + regime latents
backbone = node_backbone(layout, settings, n_layers=node.n_layers)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import TYPE_CHECKING, Any

from canvas.layout import CanvasLayout, compile_layout
from training.backbones import Backbone, build_backbone
from training.dag import CurriculumError, DAGNode
from warehouse.schema import Schema, default_schema

if TYPE_CHECKING:
    from torch import nn

OBJECTIVES = ("masked", "diffusion")
DEFAULT_MODEL = "THUDM/CogVideoX-2b"


@dataclass(frozen=True)
class CurriculumSettings:
    """Settings shared by every node of a curriculum (a node may override depth)."""

    backbone: str = "scratch"  # "scratch" or "cogvideox"
    pretrained_model_id: str = DEFAULT_MODEL
    adapter_rank: int = 8  # cogvideox graft
    n_layers: int = 2  # scratch
    attention: str = "factorized"  # scratch: "full" or "factorized"
    objective: str = "masked"  # or "diffusion"
    T: int = 12
    step: str = "1mo"
    d_model: int = 64
    batch_size: int = 16
    lr: float = 1e-3
    seed: int = 0
    device: str = "cpu"
    start: str | None = None  # data window; default: all the data
    end: str | None = None
    train_end: str | None = None  # default: 70% / 15% / 15% of the windows by date
    val_end: str | None = None

    def __post_init__(self) -> None:
        if self.backbone not in ("scratch", "cogvideox"):
            raise CurriculumError(
                f"backbone must be 'scratch' or 'cogvideox', got {self.backbone!r}"
            )
        if self.objective not in OBJECTIVES:
            raise CurriculumError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        for key in ("n_layers", "T", "d_model", "batch_size", "adapter_rank"):
            if getattr(self, key) < 1:
                raise CurriculumError(f"{key} must be >= 1, got {getattr(self, key)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(
        cls, raw: Mapping[str, Any] | None, where: str = "settings"
    ) -> CurriculumSettings:
        """Settings from a mapping; unknown keys are an error naming them."""
        raw = dict(raw or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise CurriculumError(f"{where}: unknown keys {unknown}; expected {sorted(known)}")
        return cls(**raw)

    def override(self, **changes: Any) -> CurriculumSettings:
        """A copy with the non-None `changes` applied."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def node_layout(
    node: DAGNode, settings: CurriculumSettings, schema: Schema | None = None
) -> CanvasLayout:
    """The canvas of `node`: its fields plus the regime latents on a near-square grid of at
    least `node.canvas_size` positions (error when the fields need more)."""
    schema = schema or default_schema()
    layout = compile_layout(
        *node.fields, schema=schema, T=settings.T, step=settings.step, d_model=settings.d_model
    )
    if node.canvas_size is None:
        return layout
    if node.canvas_size < layout.n_slots:
        raise CurriculumError(
            f"node '{node.name}': its {layout.n_fields} fields need {layout.n_slots} "
            f"positions, more than canvas_size={node.canvas_size}"
        )
    if node.canvas_size <= layout.H * layout.W:
        return layout
    width = math.ceil(math.sqrt(node.canvas_size))
    return replace(layout, W=width, H=math.ceil(node.canvas_size / width))


def node_backbone(
    layout: CanvasLayout,
    settings: CurriculumSettings,
    *,
    n_layers: int | None = None,
    transformer: nn.Module | None = None,
) -> Backbone:
    """The backbone a curriculum node trains on `layout`, as `settings` describe it.

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
