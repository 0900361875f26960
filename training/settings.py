"""The settings of a training run, declared once: the model and its optimiser
(`ModelSettings`), what a curriculum adds (`CurriculumSettings`: its canvases' grid and
data window) and what the single world model adds (`WorldModelSettings`: its length and
early stopping). Dagster's resource and config classes and the CLI flags are built from
these dataclasses, so a setting added here is settable everywhere.

settings = CurriculumSettings(backbone="scratch", T=12, step="1mo", n_layers=2)
layout = node_layout(node, settings)   # the node's canvas: its fields + regime latents

`training.runs` builds a run's backbone and trainer from them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Self

from canvas.layout import D_MODEL, CanvasLayout, compile_layout
from training.config import FORECAST_MASKING, MaskingConfig, TrainConfig
from training.dag import CurriculumError, DAGNode
from warehouse.schema import Schema, default_schema

DEFAULT_MODEL = "THUDM/CogVideoX-2b"
BACKBONES = ("scratch", "cogvideox")
ATTENTIONS = ("factorized", "full")
OBJECTIVES = ("masked", "diffusion")
# what the validation loss early stopping watches hides: every field's last step (the
# gate's task), or what training hides
STOP_ON = {"forecast": FORECAST_MASKING, "training_mix": MaskingConfig()}


def _choice(default: str, choices: tuple[str, ...]) -> Any:
    """A field whose value is one of `choices` (the CLI offers them)."""
    return field(default=default, metadata={"choices": choices})


@dataclass(frozen=True)
class ModelSettings:
    """The model and its optimiser: what every training run shares."""

    backbone: str = _choice("scratch", BACKBONES)
    pretrained_model_id: str = DEFAULT_MODEL  # cogvideox: a Hugging Face id or a directory
    adapter_rank: int = 8  # cogvideox graft
    n_layers: int = 2  # scratch
    attention: str = _choice("factorized", ATTENTIONS)  # scratch
    objective: str = _choice("masked", OBJECTIVES)
    d_model: int = D_MODEL  # width of a canvas position
    batch_size: int = 16
    lr: float = TrainConfig.lr
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        for f in fields(self):
            choices = f.metadata.get("choices")
            if choices and getattr(self, f.name) not in choices:
                raise CurriculumError(
                    f"{f.name} must be one of {choices}, got {getattr(self, f.name)!r}"
                )
        for key in ("n_layers", "d_model", "batch_size", "adapter_rank"):
            if getattr(self, key) < 1:
                raise CurriculumError(f"{key} must be >= 1, got {getattr(self, key)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def names(cls) -> list[str]:
        """Every setting's name, in declaration order."""
        return [f.name for f in fields(cls)]

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None, where: str = "settings") -> Self:
        """Settings from a mapping; unknown keys are an error naming them."""
        raw = dict(raw or {})
        unknown = sorted(set(raw) - set(cls.names()))
        if unknown:
            expected = sorted(cls.names())
            raise CurriculumError(f"{where}: unknown keys {unknown}; expected {expected}")
        return cls(**raw)

    def override(self, **changes: Any) -> Self:
        """A copy with the non-None `changes` applied."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


@dataclass(frozen=True)
class CurriculumSettings(ModelSettings):
    """Settings shared by every node of a curriculum (a node may override depth)."""

    T: int = 12  # time steps per canvas
    step: str = "1mo"
    start: str | None = None  # data window; default: all the data
    end: str | None = None
    train_end: str | None = None  # default: 70% / 85% of the data's date range
    val_end: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.T < 1:
            raise CurriculumError(f"T must be >= 1, got {self.T}")


@dataclass(frozen=True)
class WorldModelSettings(ModelSettings):
    """The world model trained on the materialized canvas."""

    n_steps: int = 900
    patience: int = 5  # validation checks (every n_steps / 20) without improvement
    stop_on: str = _choice("forecast", tuple(STOP_ON))


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
