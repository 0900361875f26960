"""Training configuration as plain dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class MaskingConfig:
    """Which observed positions a training step hides from the input and scores.

    Each sample hides: every field independently with `p_field`; every field group
    (a path's parent, e.g. `financial.fx`, a stand-in for a source) with `p_group`; with
    `p_recent` the last 1..`max_recent` time steps of all fields (nowcasting and
    forecasting); and single positions with `p_position`. A sample left with nothing
    hidden gets one random observed field hidden, so every step has a target.
    """

    p_field: float = 0.15
    p_group: float = 0.1
    p_recent: float = 0.5
    max_recent: int = 3
    p_position: float = 0.1


# The last step of every field hidden: the one-step forecast the promotion gate scores.
FORECAST_MASKING = MaskingConfig(p_field=0, p_group=0, p_recent=1, max_recent=1, p_position=0)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and bookkeeping of a training run."""

    lr: float = 1e-3
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = 50
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    amp: bool = False  # bfloat16 autocast
    seed: int = 0
    log_every: int = 25
    checkpoint_every: int = 200
    progress: bool = True
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    # what the validation loss hides (early stopping and the best weights are chosen on it)
    val_masking: MaskingConfig = FORECAST_MASKING
    # with a validation loader: stop after this many evaluations (every `log_every` steps)
    # without a better validation loss (0: never), and end with the best weights
    patience: int = 0
    keep_best: bool = True
