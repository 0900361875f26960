"""Training: field encoders/decoders, backbones, trainers, checkpoints, evaluation.

from training import FieldEncoder, FieldDecoder, MaskedCanvasTrainer, build_backbone
from training import CurriculumTrainer, CurriculumConfig, PhaseConfig, DAGCurriculumTrainer
from training import build_curriculum, DatasetProfile, estimate_compute, standard_dag

The names load on first use (PEP 562), so reading settings (the `guwm` CLI, Dagster
config) does not import torch.
"""

from importlib import import_module
from typing import Any

_WHERE = {
    "Backbone": "training.backbones",
    "build_backbone": "training.backbones",
    "ComputeEstimate": "training.compute",
    "estimate_compute": "training.compute",
    "MaskingConfig": "training.config",
    "TrainConfig": "training.config",
    "CurriculumConfig": "training.curriculum",
    "CurriculumTrainer": "training.curriculum",
    "PhaseConfig": "training.curriculum",
    "DAGNode": "training.dag",
    "load_dag": "training.dag",
    "standard_dag": "training.dag",
    "DAGCurriculumTrainer": "training.dag_trainer",
    "CosineNoiseSchedule": "training.diffusion",
    "DiffusionWorldModelTrainer": "training.diffusion",
    "frequency_scale": "training.diffusion",
    "FieldDecoder": "training.fields",
    "FieldEncoder": "training.fields",
    "FieldTransfer": "training.fields",
    "WorldModel": "training.inference",
    "MaskedCanvasTrainer": "training.masked",
    "Curriculum": "training.planner",
    "build_curriculum": "training.planner",
    "DatasetProfile": "training.profile",
    "semantic_embeddings": "training.semantic",
    "CurriculumSettings": "training.settings",
    "ModelSettings": "training.settings",
    "WorldModelSettings": "training.settings",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_WHERE[name]), name)


def __dir__() -> list[str]:
    return __all__
