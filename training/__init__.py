"""Training: field encoders/decoders, backbones, trainers, checkpoints, evaluation.

from training import FieldEncoder, FieldDecoder, MaskedCanvasTrainer, build_backbone
from training import CurriculumTrainer, CurriculumConfig, PhaseConfig, DAGCurriculumTrainer
from training import build_curriculum, DatasetProfile, estimate_compute, standard_dag
"""

from training.backbones import Backbone, build_backbone
from training.compute import ComputeEstimate, estimate_compute
from training.config import MaskingConfig, TrainConfig
from training.curriculum import CurriculumConfig, CurriculumTrainer, PhaseConfig
from training.dag import DAGNode, load_dag, standard_dag
from training.dag_trainer import DAGCurriculumTrainer
from training.diffusion import CosineNoiseSchedule, DiffusionWorldModelTrainer, frequency_scale
from training.fields import FieldDecoder, FieldEncoder, FieldTransfer
from training.inference import WorldModel
from training.masked import MaskedCanvasTrainer
from training.planner import Curriculum, build_curriculum
from training.profile import DatasetProfile
from training.semantic import semantic_embeddings
from training.settings import CurriculumSettings

__all__ = [
    "Backbone",
    "ComputeEstimate",
    "CosineNoiseSchedule",
    "Curriculum",
    "CurriculumConfig",
    "CurriculumSettings",
    "CurriculumTrainer",
    "DAGCurriculumTrainer",
    "DAGNode",
    "DatasetProfile",
    "DiffusionWorldModelTrainer",
    "FieldDecoder",
    "FieldEncoder",
    "FieldTransfer",
    "MaskedCanvasTrainer",
    "MaskingConfig",
    "PhaseConfig",
    "TrainConfig",
    "WorldModel",
    "build_backbone",
    "build_curriculum",
    "estimate_compute",
    "frequency_scale",
    "load_dag",
    "semantic_embeddings",
    "standard_dag",
]
