"""Canvas: layouts, dataset specs and presence-masked tensors."""

from canvas.spec import DatasetSpec, InputSpec, OutputSpec

__all__ = ["DatasetSpec", "InputSpec", "OutputSpec"]
