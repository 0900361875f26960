"""Fork and join: a curriculum node's starting weights from its parents' checkpoints.

Only trainable parameters take part (a checkpoint holds nothing else): with the frozen
CogVideoX backbone that is the graft (projections, adapters, conditioning), so the
billions of frozen weights are never averaged, copied or stored per node.

The rules, applied to each trainable parameter of the child:

* **Per-field parameters** (encoder/decoder rows of one field): the mean over the
  parents that hold the field (`FieldEncoder.load_fields_from`); a field no parent has
  keeps its fresh initialisation and is reported. The frozen semantic embeddings come
  from the same sentence-transformer in every node, so a field's identity matches.
* **Shared parameters** (backbone, semantic projection, temporal embedding, objective
  extras): the element-wise mean over the parents that have the same name and shape.
  One parent (a fork) is a copy.
* **Depth**: a child deeper than a parent takes, for a layer the parent lacks, the
  parent's deepest layer of the same kind (same parity, so factorized space/time
  attention alternates as before); a shallower child takes the first layers.
* **Width** (`d_model`) must match across a join: a different shape is an error, never a
  silent re-initialisation.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from canvas.layout import CanvasLayout
from training.checkpoint import load_trainable_state
from training.dag import CurriculumError
from training.fields import FieldDecoder, FieldEncoder

FIELD_MODULES = {"encoder": FieldEncoder, "decoder": FieldDecoder}
LAYER = re.compile(r"^(?P<stack>.*?\.)(?P<index>\d+)(?P<rest>\..+)$")


@dataclass
class ParentWeights:
    """A finished parent: its name, canvas layout and trainable weights (by module.name)."""

    name: str
    layout: CanvasLayout
    weights: Mapping[str, Tensor]


@dataclass
class MergeReport:
    """What a merge did: averaged fields, fields and parameters left at initialisation."""

    parents: list[str]
    fields_merged: list[str] = field(default_factory=list)
    fields_initialised: list[str] = field(default_factory=list)
    parameters_averaged: list[str] = field(default_factory=list)
    parameters_from_shallower: dict[str, str] = field(default_factory=dict)
    parameters_initialised: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        return {
            "parents": self.parents,
            "fields_merged": len(self.fields_merged),
            "fields_initialised": self.fields_initialised,
            "parameters_averaged": len(self.parameters_averaged),
            "parameters_from_shallower": self.parameters_from_shallower,
            "parameters_initialised": self.parameters_initialised,
        }


def _prefixed(weights: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k: v for k, v in weights.items() if k.startswith(f"{prefix}.")}


@torch.no_grad()
def merge_parents(
    modules: Mapping[str, nn.Module], parents: Sequence[ParentWeights]
) -> MergeReport:
    """Initialise the child's trainable parameters from `parents` (see the module doc)."""
    report = MergeReport(parents=[p.name for p in parents])
    if not parents:
        return report
    for prefix, cls in FIELD_MODULES.items():
        child = modules.get(prefix)
        if child is None:
            continue
        loaded = []
        for parent in parents:
            module = _field_module(cls, parent, child)
            load_trainable_state({prefix: module}, _prefixed(parent.weights, prefix))
            loaded.append(module)
        transfer = child.load_fields_from(*loaded)
        report.fields_merged, report.fields_initialised = transfer.copied, transfer.initialised
    for prefix, module in modules.items():
        if prefix in FIELD_MODULES:
            continue
        for name, param in module.named_parameters():
            if param.requires_grad:
                _merge_parameter(f"{prefix}.{name}", param, parents, report)
    return report


def _field_module(cls: type, parent: ParentWeights, child: nn.Module) -> nn.Module:
    """An encoder/decoder on the parent's layout, ready to receive the parent's weights."""
    if parent.layout.d_model != child.d_model:
        raise CurriculumError(
            f"parent '{parent.name}' has d_model {parent.layout.d_model}, the child "
            f"{child.d_model}; a join needs one width"
        )
    module = (FieldEncoder if cls is FieldEncoder else FieldDecoder)(parent.layout, child.d_model)
    frozen = {name for name, p in child.named_parameters() if not p.requires_grad}
    for name, param in module.named_parameters():  # frozen as in the child (not saved)
        param.requires_grad_(name not in frozen)
    return module


def _merge_parameter(
    key: str, param: nn.Parameter, parents: Sequence[ParentWeights], report: MergeReport
) -> None:
    sources = []
    for parent in parents:
        source_key = key if key in parent.weights else _shallower(key, parent.weights)
        if source_key is None:
            continue
        tensor = parent.weights[source_key]
        if tensor.shape != param.shape:
            raise CurriculumError(
                f"parent '{parent.name}' has {source_key} of shape {tuple(tensor.shape)}, "
                f"the child {tuple(param.shape)}: a join needs the same width"
            )
        if source_key != key:
            report.parameters_from_shallower[key] = source_key
        sources.append(tensor.to(param.device, torch.float32))
    if not sources:
        report.parameters_initialised.append(key)
        return
    param.copy_(torch.stack(sources).mean(0).to(param.dtype))
    report.parameters_averaged.append(key)


def _shallower(key: str, weights: Mapping[str, Tensor]) -> str | None:
    """For layer i missing from a shallower parent: its deepest layer of the same parity."""
    match = LAYER.match(key)
    if match is None:
        return None
    stack, index, rest = match["stack"], int(match["index"]), match["rest"]
    depths = sorted(
        {
            int(m["index"])
            for k in weights
            if (m := LAYER.match(k)) and m["stack"] == stack and m["rest"] == rest
        }
    )
    if not depths:
        return None
    same_kind = [j for j in depths if (index - j) % 2 == 0]
    return f"{stack}{(same_kind or depths)[-1]}{rest}"
