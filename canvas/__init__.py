"""Canvas: layouts, dataset specs and presence-masked tensors.

The datasets and loaders need torch; they are imported on first use, so importing
`canvas` stays light.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from canvas.layout import CanvasLayout, compile_layout
from warehouse.spec import DatasetSpec, InputSpec, OutputSpec

_LAZY = {
    "HeterogeneousDataset": "canvas.dataset",
    "build_mixed_dataloader": "canvas.dataset",
    "collate_batch": "canvas.dataset",
    "ShardDataset": "canvas.shards",
    "LayoutMismatchError": "canvas.shards",
    "build_shard_dataloader": "canvas.shards",
    "denormalise": "canvas.shards",
}

__all__ = ["CanvasLayout", "DatasetSpec", "InputSpec", "OutputSpec", "compile_layout", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'canvas' has no attribute {name!r}")
