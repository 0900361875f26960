"""Training: field encoders/decoders, backbones, trainers, checkpoints, evaluation.

from training import FieldEncoder, FieldDecoder, MaskedCanvasTrainer, build_backbone
"""

from training.backbones import Backbone, build_backbone
from training.config import MaskingConfig, TrainConfig
from training.diffusion import CosineNoiseSchedule, DiffusionWorldModelTrainer, frequency_scale
from training.fields import FieldDecoder, FieldEncoder, FieldTransfer
from training.masked import MaskedCanvasTrainer
from training.semantic import semantic_embeddings

__all__ = [
    "Backbone",
    "CosineNoiseSchedule",
    "DiffusionWorldModelTrainer",
    "FieldDecoder",
    "FieldEncoder",
    "FieldTransfer",
    "MaskedCanvasTrainer",
    "MaskingConfig",
    "TrainConfig",
    "build_backbone",
    "frequency_scale",
    "semantic_embeddings",
]
