"""MaskedCanvasTrainer: learn to predict what a step hides, scored only where truth exists.

Each step: draw a batch, hide a random subset of observed positions (whole fields, field
groups, the most recent time steps, single positions), encode what is left (values
and presence of the visible positions only: a hidden target never reaches the input),
run the backbone, decode, and score the hidden positions with the masked loss.

Steps are deterministic given (seed, step): the batch indices, the hidden mask and
dropout are drawn from generators seeded by the step, so a run resumed from a
checkpoint continues exactly as the uninterrupted run would have.

Distributed (under torchrun, see `training.distributed`): every rank draws the same
global batch and the same random draws for step s (`draw`) and scores its contiguous
share of the rows, r*B/W .. (r+1)*B/W. The loss of the global batch is

    L = sum_r S_r / W,   S_r = sum(error * weight) over rank r's rows,   W = sum_r W_r

with W_r rank r's weight sum. Rank r backpropagates l_r = world_size * S_r / W (W
all-reduced before the backward pass), so the gradient DDP averages over the ranks,
(1 / world_size) * sum_r grad l_r, is exactly grad L: the single-process gradient of the
same global batch (up to float rounding; dropout, if any, differs per rank). The
reported loss is the mean of l_r over the ranks, which is L. Checkpoints hold the
unwrapped weights, the replicated optimiser state and the step, so a run resumes with
any number of ranks and continues the same sequence of global batches.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, WeightedRandomSampler

from canvas.layout import CanvasLayout
from training import distributed
from training.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    load_trainable_state,
    save_checkpoint,
    trainable_state,
)
from training.config import MaskingConfig, TrainConfig
from training.losses import ElementwiseLoss, masked_loss
from training.masking import field_groups, sample_hidden
from training.predict import forward_canvas

log = logging.getLogger("guwm.training")
STEP_SEED = 1_000_003
RANK_SEED = 2**40  # dropout seeds of rank r are offset by r * RANK_SEED
Scored = Callable[[Mapping[str, Tensor], Mapping[str, Tensor]], tuple[Tensor, Tensor]]


def step_generator(seed: int, step: int, stream: int) -> torch.Generator:
    """A generator owned by one (seed, step, purpose): reproducible, independent."""
    return torch.Generator().manual_seed((seed * STEP_SEED + step) * 7 + stream)


class BatchSource:
    """Batches by step from a DataLoader's map-style dataset, honouring weighted sampling."""

    def __init__(self, loader: DataLoader | Iterable[Mapping[str, Tensor]]) -> None:
        self.loader = loader
        dataset = getattr(loader, "dataset", None)
        self.dataset = dataset if hasattr(dataset, "__getitems__") else None
        sampler = getattr(loader, "sampler", None)
        self.weights = (
            torch.as_tensor(sampler.weights, dtype=torch.float64)
            if isinstance(sampler, WeightedRandomSampler)
            else None
        )
        self.batch_size = getattr(loader, "batch_size", None) or 32
        self._iterator = None

    def __call__(self, generator: torch.Generator) -> Mapping[str, Tensor]:
        if self.dataset is None:  # an iterable loader: not resumable step for step
            if self._iterator is None:
                self._iterator = iter(self.loader)
            try:
                return next(self._iterator)
            except StopIteration:
                self._iterator = iter(self.loader)
                return next(self._iterator)
        n = len(self.dataset)
        if self.weights is not None:
            index = torch.multinomial(
                self.weights, self.batch_size, replacement=True, generator=generator
            )
        else:
            index = torch.randint(n, (self.batch_size,), generator=generator)
        return self.dataset.__getitems__(index.tolist())


class MaskedCanvasTrainer:
    """Trains encoder, backbone and decoder on masked canvas prediction."""

    def __init__(
        self,
        bound_schema: CanvasLayout,
        backbone: nn.Module,
        encoder: nn.Module,
        decoder: nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        *,
        config: TrainConfig | None = None,
        output_losses: Mapping[int, ElementwiseLoss] | None = None,
        checkpoint_dir: str | Path | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        self.bound = bound_schema
        self.config = config or TrainConfig()
        self.world = distributed.init_from_env(device)
        self.device = distributed.local_device(device, self.world)
        self.backbone, self.encoder, self.decoder = backbone, encoder, decoder
        for module in self.modules.values():
            module.to(self.device)
        self.optimizer = optimizer or torch.optim.AdamW(
            self.parameters(),
            lr=self.config.lr,
            weight_decay=self.config.weight_decay,
            betas=self.config.betas,
        )
        self.base_lrs = [group["lr"] for group in self.optimizer.param_groups]
        self.output_losses = dict(output_losses or {})
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.groups = field_groups(self.bound)
        self.vector_fields = torch.as_tensor(self.bound.vector_fields, dtype=torch.long)
        self.step = 0
        self.history: list[dict[str, float]] = []
        self._ddp: nn.Module | None = None
        self._best: tuple[float, int, dict[str, Tensor]] | None = None  # val loss, step, weights
        self.stopped_at: int | None = None  # the step an early stop ended the run at

    # -- modules -----------------------------------------------------------------------

    @property
    def modules(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder, "backbone": self.backbone, "decoder": self.decoder}

    def parameters(self) -> list[nn.Parameter]:
        """Every trainable parameter (a frozen backbone contributes only its adapter)."""
        return [p for m in self.modules.values() for p in m.parameters() if p.requires_grad]

    def predict(
        self, batch: Mapping[str, Tensor], timestep: Tensor | None = None
    ) -> dict[str, Tensor]:
        """Decoder outputs for a batch as the model sees it."""
        return forward_canvas(self.encoder, self.backbone, self.decoder, batch, timestep)[0]

    # -- one step ----------------------------------------------------------------------

    def _to_device(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return {k: v.to(self.device) if isinstance(v, Tensor) else v for k, v in batch.items()}

    def loss(
        self,
        batch: Mapping[str, Tensor],
        generator: torch.Generator,
        masking: MaskingConfig | None = None,
    ) -> Tensor:
        """The masked loss on one batch with a hidden set drawn from `generator` (by
        `masking`, default the training mix)."""
        draws = self._to_device(self.draw(batch, generator, masking))
        return self.scored(self._to_device(batch), draws)[0]

    def draw(
        self,
        batch: Mapping[str, Tensor],
        generator: torch.Generator,
        masking: MaskingConfig | None = None,
    ) -> dict[str, Tensor]:
        """A step's random draws for `batch`, one row per sample (CPU): the hidden set."""
        presence = batch["presence"].cpu()
        masking = masking or self.config.masking
        return {"hidden": sample_hidden(presence, self.groups, masking, generator)}

    def scored(
        self, batch: Mapping[str, Tensor], draws: Mapping[str, Tensor]
    ) -> tuple[Tensor, Tensor]:
        """(masked loss, its weight sum) on a batch and its draws, both on the device."""
        hidden = draws["hidden"]
        seen = self._hide(batch, hidden)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.config.amp):
            prediction = self.predict(seen)
        prediction = {k: v.float() for k, v in prediction.items()}
        return self._masked_loss(prediction, batch, batch["target_weight"] * hidden)

    def _masked_loss(
        self, prediction: Mapping[str, Tensor], batch: Mapping[str, Tensor], weight: Tensor
    ) -> tuple[Tensor, Tensor]:
        loss = masked_loss(
            prediction,
            batch,
            weight,
            vector_fields=self.bound.vector_fields,
            output_losses=self.output_losses,
        )
        return loss, weight.sum()

    def global_loss(
        self,
        batch: Mapping[str, Tensor],
        generator: torch.Generator,
        scored: Scored,
        masking: MaskingConfig | None = None,
    ) -> tuple[Tensor, float]:
        """(loss to backpropagate, loss of the global batch) with this rank's rows.

        In a single process both are the masked loss of the batch. Distributed, `scored`
        (DDP's forward in training) scores this rank's rows of the batch and the draws,
        and the first is world_size * S_r / W (see the module doc).
        """
        if not self.world.active:
            loss = self.loss(batch, generator, masking)
            return loss, float(loss.detach())
        n = len(batch["values"])
        rows = self.world.rows(n)
        draws = self.draw(batch, generator, masking)
        local, weight = scored(
            self._to_device(_take(batch, rows, n)), self._to_device(_take(draws, rows, n))
        )
        total = distributed.all_reduce_sum(weight).clamp_min(1e-8)
        loss = local * (weight.detach() * self.world.size / total)
        return loss, float(distributed.all_reduce_mean(loss))

    def _hide(self, batch: Mapping[str, Tensor], hidden: Tensor) -> dict[str, Tensor]:
        visible = batch["presence"] * (~hidden)
        seen = {**batch, "presence": visible, "values": batch["values"] * visible}
        if "vectors" in batch and len(self.vector_fields):
            seen["vectors"] = batch["vectors"] * visible[..., self.vector_fields, None]
        return seen

    def _lr_scale(self, step: int, total: int) -> float:
        warmup = max(1, self.config.warmup_steps)
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        floor = self.config.min_lr_ratio
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    def train_step(self, batches: BatchSource, total_steps: int) -> float:
        """One optimisation step on the global batch; returns its loss."""
        seed, step = self.config.seed, self.step
        torch.manual_seed(seed * STEP_SEED + step + self.world.rank * RANK_SEED)  # dropout
        batch = batches(step_generator(seed, step, 0))
        self.encoder.train(), self.backbone.train(), self.decoder.train()
        loss, value = self.global_loss(batch, step_generator(seed, step, 1), self._synced())
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.parameters(), self.config.grad_clip)
        scale = self._lr_scale(step, total_steps)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base * scale
        self.optimizer.step()
        self.step += 1
        return value

    def _synced(self) -> Scored:
        """`scored` under DDP when distributed (built on first use, after any resume or
        merge), so that `backward` averages the gradients over the ranks."""
        if not self.world.active:
            return self.scored
        if self._ddp is None:
            self._ddp = distributed.wrap(_Objective(self), self.device)
        return self._ddp

    @torch.no_grad()
    def evaluate(self, loader: DataLoader, n_batches: int = 8) -> float:
        """Mean loss over `n_batches` fixed batches with `config.val_masking`'s hidden
        sets (the same every call)."""
        self.encoder.eval(), self.backbone.eval(), self.decoder.eval()
        batches = BatchSource(loader)
        losses = [
            self.global_loss(
                batches(step_generator(10_000 + i, 0, 0)),
                step_generator(10_000 + i, 0, 1),
                self.scored,
                self.config.val_masking,
            )[1]
            for i in range(n_batches)
        ]
        return sum(losses) / len(losses)

    # -- the loop ----------------------------------------------------------------------

    def train(
        self,
        dataloader: DataLoader | Iterable[Mapping[str, Tensor]],
        n_steps: int,
        *,
        val_loader: DataLoader | None = None,
        resume: bool = True,
    ) -> list[dict[str, float]]:
        """Train until `n_steps` steps in total; resumes from the latest checkpoint.

        With `val_loader`, the validation loss is measured every `log_every` steps; the
        run stops early after `config.patience` measurements without improvement (if set)
        and, with `config.keep_best`, ends with the weights of its best measurement
        (`best_step`), which its last checkpoint then holds; a run that stopped early
        (`stopped_at`) is finished, also when resumed. Distributed, only rank 0
        writes checkpoints, metrics and the progress bar; every rank returns once rank 0's
        last checkpoint is written.
        """
        if resume and self.checkpoint_dir is not None and latest_checkpoint(self.checkpoint_dir):
            self.load(self.checkpoint_dir)
        batches = BatchSource(dataloader)
        if self.world.active and batches.dataset is None:
            raise ValueError(
                "distributed training draws each step's global batch by index: it needs a "
                "DataLoader over a dataset with __getitems__"
            )
        progress = _progress(
            self.config.progress and self.world.is_main, total=n_steps, initial=self.step
        )
        started, window = time.perf_counter(), []
        timed_from: tuple[int, float] | None = None  # (step, time) after the warm-up step
        while self.step < n_steps and self.stopped_at is None:
            window.append(self.train_step(batches, n_steps))
            if timed_from is None:
                timed_from = (self.step, time.perf_counter())
            elif self.step == timed_from[0] + ESTIMATE_AFTER_STEPS and self.world.is_main:
                per_step = (time.perf_counter() - timed_from[1]) / ESTIMATE_AFTER_STEPS
                announce_estimate(per_step, n_steps - self.step, self.device)
            at_log = self.step % self.config.log_every == 0 or self.step == n_steps
            if at_log:
                record = {
                    "step": self.step,
                    "loss": sum(window) / len(window),
                    "lr": self.optimizer.param_groups[0]["lr"],
                    "seconds": round(time.perf_counter() - started, 3),
                }
                if val_loader is not None:
                    record["val_loss"] = self.evaluate(val_loader)
                    if self._best is None or record["val_loss"] < self._best[0]:
                        self._best = (record["val_loss"], self.step, self._weights())
                self._log(record)
                window = []
                if progress is not None:
                    progress.set_postfix(loss=f"{record['loss']:.4f}")
            if progress is not None:
                progress.update(1)
            stop = self._patience_spent()
            if stop:
                self.stopped_at = self.step
                if self.config.keep_best:
                    self._restore_best()
            if (
                self.checkpoint_dir
                and self.world.is_main
                and (self.step % self.config.checkpoint_every == 0 or self.step == n_steps or stop)
            ):
                self.save()
            if stop:
                log.info("stopped early at step %d (best step %d)", self.step, self.best_step)
                break
        else:
            restored = self.config.keep_best and self._restore_best()
            if restored and self.checkpoint_dir and self.world.is_main:
                self.save()
        if progress is not None:
            progress.close()
        distributed.barrier()
        return self.history

    def _weights(self) -> dict[str, Tensor]:
        return {k: v.detach().clone() for k, v in trainable_state(self.modules).items()}

    def _patience_spent(self) -> bool:
        patience, best = self.config.patience, self._best
        return bool(patience and best and self.step - best[1] >= patience * self.config.log_every)

    def _restore_best(self) -> bool:
        """Load the best validation weights (True) unless they are the current ones."""
        if self._best is None or self._best[1] == self.step:
            return False
        load_trainable_state(self.modules, self._best[2])
        return True

    @property
    def best_step(self) -> int | None:
        """The step of the best validation loss seen in this process, if any."""
        return self._best[1] if self._best is not None else None

    def _log(self, record: dict[str, float]) -> None:
        self.history.append(record)
        if not self.world.is_main:
            return
        log.info("step %d: %s", record["step"], record)
        if self.checkpoint_dir:
            self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
            with (self.checkpoint_dir / "metrics.jsonl").open("a") as out:
                out.write(json.dumps(record) + "\n")

    # -- checkpoints -------------------------------------------------------------------

    def save(self, directory: str | Path | None = None) -> Path:
        """Write a checkpoint of the trainable weights and the optimiser state."""
        directory = Path(directory) if directory else self.checkpoint_dir
        if directory is None:
            raise ValueError("no checkpoint directory")
        return save_checkpoint(
            directory,
            step=self.step,
            layout_hash=self.bound.layout_hash(),
            modules=self.modules,
            state={
                "optimizer": self.optimizer.state_dict(),
                "step": self.step,
                "stopped_at": self.stopped_at,
                "history": self.history,
                "config": asdict(self.config),
            },
            meta=self.checkpoint_meta(),
        )

    def checkpoint_meta(self) -> dict[str, object]:
        """What a checkpoint records besides weights: objective, backbone, layout."""
        return {
            "objective": "masked",
            "backbone": getattr(self.backbone, "build_spec", {"name": "custom"}),
            "layout": self.bound.describe(),
        }

    def load(self, path: str | Path) -> None:
        """Restore weights, optimiser and step from a checkpoint (or a run directory)."""
        checkpoint = load_checkpoint(path, expect_layout=self.bound.layout_hash())
        load_trainable_state(self.modules, checkpoint.weights)
        self.optimizer.load_state_dict(checkpoint.state["optimizer"])
        self.step = int(checkpoint.state["step"])
        self.stopped_at = checkpoint.state.get("stopped_at")
        self.history = list(checkpoint.state.get("history", []))
        log.info("resumed from %s at step %d", checkpoint.path, self.step)


class _Objective(nn.Module):
    """A trainer's modules as one module whose forward is the trainer's `scored`: what
    DDP wraps (a forward through it is what lets `backward` synchronise gradients)."""

    def __init__(self, trainer: MaskedCanvasTrainer) -> None:
        super().__init__()
        self.parts = nn.ModuleDict(trainer.modules)
        self.scored = trainer.scored

    def forward(
        self, batch: Mapping[str, Tensor], draws: Mapping[str, Tensor]
    ) -> tuple[Tensor, Tensor]:
        return self.scored(batch, draws)


def _take(tensors: Mapping[str, Tensor], rows: slice, n: int) -> dict[str, Tensor]:
    """`rows` of every tensor with a leading batch dimension of `n`; the rest as is."""
    return {
        k: v[rows] if isinstance(v, Tensor) and v.dim() and len(v) == n else v
        for k, v in tensors.items()
    }


ESTIMATE_AFTER_STEPS = 3  # steps timed (after the first) before the run's length is estimated
LONG_RUN_SECONDS = 3600.0  # a run longer than this is announced as a warning


def announce_estimate(seconds_per_step: float, remaining_steps: int, device: torch.device) -> str:
    """Log how long the rest of a run will take: a warning when it is hours, with what
    shortens it. Returns the message."""
    remaining = seconds_per_step * remaining_steps
    finish = time.strftime("%H:%M", time.localtime(time.time() + remaining))
    message = (
        f"training: {seconds_per_step:.2f} s/step on {device}; {remaining_steps} more steps "
        f"take about {_duration(remaining)} (until ~{finish})"
    )
    if remaining > LONG_RUN_SECONDS:
        message += "; fewer steps, a smaller canvas or batch, or a GPU (device='cuda') shorten it"
        log.warning(message)
    else:
        log.info(message)
    return message


def _duration(seconds: float) -> str:
    """'2 h 05 min', '14 min', '40 s'."""
    if seconds >= 3600:
        hours, rest = divmod(round(seconds / 60), 60)
        return f"{hours} h {rest:02d} min"
    if seconds >= 60:
        return f"{round(seconds / 60)} min"
    return f"{round(seconds)} s"


def _progress(enabled: bool, *, total: int, initial: int):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="train", unit="step", leave=False)
