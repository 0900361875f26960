"""MaskedCanvasTrainer: the masked loss, what the model may see, gradients, resuming."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from canvas import DatasetSpec, build_mixed_dataloader, compile_layout
from ingest.synthetic import SyntheticWorldConfig, generate_world
from training import FieldDecoder, FieldEncoder
from training.backbones import build_backbone
from training.config import MaskingConfig, TrainConfig
from training.losses import masked_loss
from training.masked import BatchSource, MaskedCanvasTrainer, step_generator
from training.masking import field_groups, sample_hidden

SEMANTIC_DIM = 384


@pytest.fixture(scope="module")
def world():
    return generate_world(SyntheticWorldConfig(start="2010-01-01", end="2016-12-31"))


@pytest.fixture(scope="module")
def setup(world):
    sources = []
    for name in ("fred", "pmi"):
        frame = world.sources[name]
        paths = sorted(frame["field_path"].unique())
        sources.append((DatasetSpec.from_fields(name, {p: p for p in paths}), frame))
    paths = [p for spec, _ in sources for p in spec.field_paths]
    bound = compile_layout(*paths, T=6, d_model=32)
    loader = build_mixed_dataloader(bound, sources, batch_size=8)
    return bound, loader


def make_trainer(bound, tmp_path=None, *, seed=0, every=1000):
    torch.manual_seed(seed)
    semantic = np.random.default_rng(0).standard_normal((bound.n_fields, SEMANTIC_DIM))
    semantic /= np.linalg.norm(semantic, axis=1, keepdims=True)
    return MaskedCanvasTrainer(
        bound_schema=bound,
        backbone=build_backbone("scratch", bound, n_layers=1),
        encoder=FieldEncoder(bound, semantic=semantic.astype(np.float32)),
        decoder=FieldDecoder(bound),
        config=TrainConfig(
            progress=False, warmup_steps=2, checkpoint_every=every, seed=seed, log_every=1
        ),
        checkpoint_dir=tmp_path,
    )


def test_loss_is_the_weighted_masked_mean_by_hand():
    prediction = {"values": torch.tensor([[[1.0, 2.0, 3.0]]])}
    batch = {"values": torch.tensor([[[0.0, 0.0, 1.0]]])}
    weight = torch.tensor([[[2.0, 0.0, 1.0]]])  # field 1 missing: weight 0
    # (1-0)^2*2 + (3-1)^2*1 over 2+1
    assert float(masked_loss(prediction, batch, weight)) == pytest.approx((2 + 4) / 3)
    custom = masked_loss(prediction, batch, weight, output_losses={2: lambda p, t: (p - t).abs()})
    assert float(custom) == pytest.approx((2 + 2) / 3)


def test_hidden_positions_are_observed_and_never_reach_the_input(setup):
    bound, loader = setup
    trainer = make_trainer(bound)
    batch = BatchSource(loader)(step_generator(0, 0, 0))
    hidden = sample_hidden(
        batch["presence"], field_groups(bound), MaskingConfig(), step_generator(0, 0, 1)
    )
    assert hidden.any()
    assert not (hidden & (batch["presence"] == 0)).any()
    seen = trainer._hide(batch, hidden)
    assert (seen["presence"][hidden] == 0).all() and (seen["values"][hidden] == 0).all()
    untouched = (~hidden) & (batch["presence"] > 0)
    assert torch.equal(seen["values"][untouched], batch["values"][untouched])


def test_recent_steps_are_hidden_when_asked():
    presence = torch.ones(4, 6, 5)
    config = MaskingConfig(p_field=0, p_group=0, p_position=0, p_recent=1.0, max_recent=1)
    hidden = sample_hidden(
        presence, torch.zeros(5, dtype=torch.long), config, torch.Generator().manual_seed(0)
    )
    assert hidden[:, -1].all() and not hidden[:, :-1].any()


def test_the_validation_loss_is_the_one_step_forecast_loss_by_hand(setup):
    """By default early stopping watches the task the promotion gate scores: every field's
    last step hidden, the rest of the window visible, MSE on the hidden cells."""
    bound, loader = setup
    trainer = make_trainer(bound)
    trainer.train(loader, 3)
    trainer.decoder.eval(), trainer.backbone.eval(), trainer.encoder.eval()
    batches = BatchSource(loader)
    by_hand = []
    for i in range(2):
        batch = batches(step_generator(10_000 + i, 0, 0))
        hidden = torch.zeros_like(batch["presence"], dtype=torch.bool)
        hidden[:, -1] = batch["presence"][:, -1] > 0
        with torch.no_grad():
            prediction = trainer.predict(trainer._hide(batch, hidden))
        weight = batch["target_weight"] * hidden
        by_hand.append(float(masked_loss(prediction, batch, weight)))
    assert trainer.evaluate(loader, n_batches=2) == pytest.approx(np.mean(by_hand), rel=1e-5)
    training_mix = replace(trainer.config, val_masking=trainer.config.masking)
    trainer.config = training_mix
    assert trainer.evaluate(loader, n_batches=2) != pytest.approx(np.mean(by_hand), rel=1e-5)


def test_a_field_without_truth_gets_no_gradient(setup):
    bound, loader = setup
    trainer = make_trainer(bound)
    batch = dict(BatchSource(loader)(step_generator(0, 0, 0)))
    f = 0
    batch["presence"] = batch["presence"].clone()
    batch["presence"][..., f] = 0
    batch["target_weight"] = batch["target_weight"] * batch["presence"]
    loss = trainer.loss(batch, step_generator(0, 0, 1))
    loss.backward()
    column = trainer.decoder.scalar_fields.tolist().index(f)
    assert trainer.decoder.value_weight.grad[column].abs().sum() == 0
    assert trainer.decoder.value_weight.grad.abs().sum() > 0


def test_training_lowers_the_loss_and_trains_encoder_and_decoder(setup):
    bound, loader = setup
    trainer = make_trainer(bound)
    before = {k: v.clone() for k, v in trainer.encoder.state_dict().items()}
    dec_before = trainer.decoder.value_weight.detach().clone()
    first = trainer.evaluate(loader, n_batches=4)
    trainer.train(loader, 120)
    assert trainer.evaluate(loader, n_batches=4) < first * 0.8
    assert not torch.equal(trainer.decoder.value_weight, dec_before)
    changed = [k for k, v in trainer.encoder.state_dict().items() if not torch.equal(v, before[k])]
    assert "value_weight" in changed and "semantic" not in changed


def die_after_first_checkpoint(trainer: MaskedCanvasTrainer, loader, n_steps: int) -> None:
    """Train until the first checkpoint is written, then die as a killed process would."""
    save = trainer.save

    def save_then_die(*args, **kwargs):
        save(*args, **kwargs)
        raise KeyboardInterrupt

    trainer.save = save_then_die
    with pytest.raises(KeyboardInterrupt):
        trainer.train(loader, n_steps)


def test_resume_continues_exactly_like_the_uninterrupted_run(setup, tmp_path):
    bound, loader = setup
    straight = make_trainer(bound)
    straight.train(loader, 8)
    interrupted = make_trainer(bound, tmp_path, every=4)
    die_after_first_checkpoint(interrupted, loader, 8)
    assert interrupted.step == 4
    resumed = make_trainer(bound, tmp_path, every=4)
    resumed.train(loader, 8)
    assert resumed.step == 8
    for a, b in zip(straight.parameters(), resumed.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    assert [r["loss"] for r in resumed.history] == pytest.approx(
        [r["loss"] for r in straight.history], rel=1e-5
    )


def test_a_checkpoint_from_another_layout_is_refused(setup, tmp_path):
    bound, loader = setup
    trainer = make_trainer(bound, tmp_path, every=2)
    trainer.train(loader, 2)
    other = compile_layout("country_us.macro.inflation", T=6, d_model=32)
    with pytest.raises(ValueError, match="trained on layout"):
        make_trainer(other, tmp_path).load(tmp_path)


def test_early_stopping_ends_with_the_best_validation_weights_and_stays_finished(setup, tmp_path):
    """A learning rate of 0.3 makes the validation loss worse after a few steps: the run
    stops `patience` checks after its best one, ends with that check's weights (also in
    its last checkpoint) and a resumed run with more steps trains no further."""
    from training.checkpoint import load_checkpoint, trainable_state

    bound, loader = setup
    trainer = make_trainer(bound, tmp_path)
    trainer.config = replace(trainer.config, patience=3, log_every=2)
    for group in trainer.optimizer.param_groups:
        group["lr"] = 0.3
    trainer.base_lrs = [0.3] * len(trainer.base_lrs)
    trainer.train(loader, 60, val_loader=loader)
    val = [r["val_loss"] for r in trainer.history]
    best = min(range(len(val)), key=val.__getitem__)
    assert trainer.stopped_at is not None and trainer.stopped_at < 60
    assert trainer.best_step == trainer.history[best]["step"]
    assert trainer.stopped_at == trainer.best_step + 3 * 2
    assert trainer.evaluate(loader) == pytest.approx(val[best], rel=1e-6)
    saved = load_checkpoint(tmp_path)
    for key, value in trainable_state(trainer.modules).items():
        assert torch.equal(saved.weights[key], value), key
    resumed = make_trainer(bound, tmp_path)
    resumed.train(loader, 100, val_loader=loader)
    assert (resumed.step, resumed.stopped_at) == (trainer.step, trainer.stopped_at)


class _SlowClock:
    """perf_counter for a run whose every call is 5 s later: a step of seconds, simulated."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 5.0
        return self.now


def test_a_run_of_hours_is_announced_after_its_first_steps(setup, monkeypatch, caplog):
    import training.masked as masked

    bound, loader = setup
    trainer = make_trainer(bound)
    monkeypatch.setattr(masked.time, "perf_counter", _SlowClock())
    with caplog.at_level("INFO", logger="guwm.training"):
        trainer.train(loader, 6)
    (estimate,) = [r for r in caplog.records if "s/step" in r.getMessage()]
    # 6 steps: the estimate comes after step 1 + 3 timed steps, for the 2 left; short: info
    assert estimate.levelname == "INFO" and "2 more steps" in estimate.getMessage()


def test_the_estimate_says_hours_and_what_shortens_them(caplog):
    from training.masked import announce_estimate

    with caplog.at_level("INFO", logger="guwm.training"):
        message = announce_estimate(3.0, 10_000, torch.device("cpu"))
    assert "3.00 s/step on cpu; 10000 more steps take about 8 h 20 min" in message
    assert "a GPU (device='cuda')" in message
    assert caplog.records[-1].levelname == "WARNING"
