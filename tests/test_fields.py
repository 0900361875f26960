"""FieldEncoder / FieldDecoder (batch <-> canvas tokens) and the semantic field identity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from canvas.layout import CanvasLayout, compile_layout
from training import FieldDecoder, FieldEncoder, semantic_embeddings
from warehouse.schema import default_schema

PATTERNS = ("narratives", "financial.equities")
NEWS = "narratives.news.embedding"


pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("embedding_cache")


@pytest.fixture(scope="module")
def layout() -> CanvasLayout:
    return compile_layout(*PATTERNS, T=6, d_model=32)


@pytest.fixture(scope="module")
def semantic(layout: CanvasLayout, cache_dir: Path) -> np.ndarray:
    """The sentence-transformer runs once for this module; later calls hit the cache."""
    return semantic_embeddings(layout, cache_dir=cache_dir)


def make_batch(
    layout: CanvasLayout, batch_size: int = 8, seed: int = 0, rank: int = 8
) -> dict[str, torch.Tensor]:
    """Random batch: half the values present; unit vectors from a rank-`rank` subspace."""
    g = torch.Generator().manual_seed(seed)
    shape = (batch_size, layout.T, layout.n_fields)
    presence = (torch.rand(shape, generator=g) < 0.5).float()
    values = torch.randn(shape, generator=g) * presence
    values[..., layout.vector_fields] = 0.0
    basis = torch.randn(rank, 384, generator=torch.Generator().manual_seed(99))
    mix = torch.randn(batch_size, layout.T, len(layout.vector_fields), rank, generator=g)
    vectors = torch.nn.functional.normalize(mix @ basis, dim=-1)
    vectors = vectors * presence[..., layout.vector_fields, None]
    return {"values": values, "presence": presence, "vectors": vectors}


def scalar_row(layout: CanvasLayout, path: str) -> int:
    """Row of a scalar field in the per-scalar-field parameters."""
    return [f.path for f in layout.fields if not f.is_vector].index(path)


def masked_loss(
    out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], vector_fields: list[int]
) -> torch.Tensor:
    """Squared error where the batch has ground truth (vectors: summed over dims)."""
    presence = batch["presence"]
    loss = ((out["values"] - batch["values"]) ** 2 * presence).sum() / presence.sum().clamp(min=1)
    vec_presence = presence[..., vector_fields, None]
    vec_err = ((out["vectors"] - batch["vectors"]) ** 2 * vec_presence).sum(-1)
    return loss + vec_err.sum() / vec_presence.sum().clamp(min=1)


# -- semantic identity -------------------------------------------------------------------


def test_semantic_embeddings_are_unit_norm_and_deterministic(
    layout: CanvasLayout, semantic: np.ndarray, cache_dir: Path, tmp_path: Path
) -> None:
    assert semantic.shape == (layout.n_fields, 384) and semantic.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(semantic, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(semantic_embeddings(layout, cache_dir=cache_dir), semantic)
    fresh = semantic_embeddings(layout, cache_dir=tmp_path)  # recomputed by the model
    np.testing.assert_allclose(fresh, semantic, atol=1e-6)
    latent = semantic[layout.latent_mask]  # regime fields have distinct identities too
    assert len(latent) == 6 and np.abs(latent @ latent.T - np.eye(len(latent))).max() < 0.9


def test_similar_semantic_types_are_closer(cache_dir: Path) -> None:
    schema = default_schema()
    paths = [
        "financial.yield_curves.two_year",
        "financial.yield_curves.ten_year",
        "narratives.news.volume",
    ]
    two, ten, volume = semantic_embeddings([schema.field(p) for p in paths], cache_dir=cache_dir)
    assert two @ ten > 0.8
    assert two @ ten > ten @ volume + 0.3


def test_semantic_buffer_is_saved_not_trained(layout: CanvasLayout, semantic: np.ndarray) -> None:
    enc = FieldEncoder(layout, semantic=semantic)
    assert "semantic" in enc.state_dict()
    assert all(p is not enc.semantic for p in enc.parameters())
    assert "semantic" not in dict(enc.named_parameters())
    assert not enc.semantic.requires_grad
    np.testing.assert_array_equal(enc.semantic.numpy(), semantic)


def test_encoder_defaults_to_cached_semantic_embeddings(
    layout: CanvasLayout, semantic: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GUWM_EMBEDDING_CACHE", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))  # the user data dir: tmp_path/guwm
    enc = FieldEncoder(layout)
    assert any((tmp_path / "guwm" / "embedding_cache").rglob("*.parquet"))
    np.testing.assert_allclose(enc.semantic.numpy(), semantic, atol=1e-6)
    assert enc.d_model == layout.d_model


# -- shapes and tokens -----------------------------------------------------------------


def test_shapes_with_news_embedding(layout: CanvasLayout, semantic: np.ndarray) -> None:
    enc, dec = FieldEncoder(layout, semantic=semantic), FieldDecoder(layout)
    assert enc.field_paths == dec.field_paths == layout.paths
    assert NEWS in layout.paths and len(layout.vector_fields) == 1
    batch = make_batch(layout, batch_size=3)
    tokens = enc(batch)
    assert tokens.shape == (3, 6, layout.H * layout.W, 32)
    out = dec(tokens)
    assert out["values"].shape == (3, 6, layout.n_fields)
    assert out["vectors"].shape == (3, 6, 1, 384)
    assert (out["values"][..., layout.vector_fields] == 0).all()
    with pytest.raises(KeyError, match="vectors"):
        enc({"values": batch["values"], "presence": batch["presence"]})
    with pytest.raises(ValueError, match="values/presence"):
        enc({**batch, "values": batch["values"][:, :5]})


def test_runs_under_bfloat16_autocast(layout: CanvasLayout, semantic: np.ndarray) -> None:
    enc, dec = FieldEncoder(layout, semantic=semantic), FieldDecoder(layout)
    batch = make_batch(layout, batch_size=2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = dec(enc(batch))
    masked_loss({k: v.float() for k, v in out.items()}, batch, layout.vector_fields).backward()
    assert enc.vector_weight.grad.abs().sum() > 0 and dec.value_weight.grad.abs().sum() > 0


def test_scalar_only_layout_has_no_vector_output() -> None:
    layout = compile_layout("financial.equities", T=4, d_model=16, include_latent=False)
    enc = FieldEncoder(layout, semantic=np.eye(layout.n_fields, 384, dtype=np.float32))
    batch = make_batch(layout, batch_size=2)
    out = FieldDecoder(layout)(enc({"values": batch["values"], "presence": batch["presence"]}))
    assert set(out) == {"values"} and out["values"].shape == (2, 4, layout.n_fields)


def test_padding_positions_are_zero(semantic: np.ndarray) -> None:
    layout = compile_layout(*PATTERNS, T=6, d_model=32, width=7)
    assert layout.n_slots < layout.H * layout.W
    tokens = FieldEncoder(layout, semantic=semantic)(make_batch(layout))
    assert (tokens[:, :, layout.n_slots :] == 0).all()
    assert (tokens[:, :, : layout.n_slots].abs().sum(-1) > 0).all()


def test_absent_and_present_zero_give_different_tokens(
    layout: CanvasLayout, semantic: np.ndarray
) -> None:
    enc = FieldEncoder(layout, semantic=semantic)
    shape = (1, layout.T, layout.n_fields)
    absent = {
        "values": torch.zeros(shape),
        "presence": torch.zeros(shape),
        "vectors": torch.zeros(1, layout.T, 1, 384),
    }
    vix = layout.index["financial.equities.vix"]
    present = {**absent, "presence": absent["presence"].clone()}
    present["presence"][..., vix] = 1.0
    a, p = enc(absent), enc(present)
    pos = int(layout.slot_offset[vix])
    assert ((a[:, :, pos] - p[:, :, pos]).norm(dim=-1) > 0.1).all()
    others = [i for i in range(a.shape[2]) if i != pos]
    assert torch.equal(a[:, :, others], p[:, :, others])


# -- gradients and training ---------------------------------------------------------------


def test_round_trip_trains_every_field(layout: CanvasLayout, semantic: np.ndarray) -> None:
    torch.manual_seed(0)
    enc, dec = FieldEncoder(layout, semantic=semantic), FieldDecoder(layout)
    # the persistence weights are trained through training.predict (see the test below)
    params = [
        *enc.parameters(),
        *(p for n, p in dec.named_parameters() if n != "value_persistence"),
    ]
    batch = make_batch(layout, 32)
    loss = masked_loss(dec(enc(batch)), batch, layout.vector_fields)
    loss.backward()
    per_field = {
        "enc.value_weight": enc.value_weight,
        "enc.present": enc.present,
        "enc.absent": enc.absent,
        "dec.value_weight": dec.value_weight,
        "dec.value_bias": dec.value_bias,
    }
    for name, p in per_field.items():
        assert (p.grad.reshape(len(p), -1).abs().sum(1) > 0).all(), name
    for p in (enc.vector_weight, dec.vector_weight, dec.vector_bias):  # every (field, slot)
        assert (p.grad.flatten(2).abs().sum(-1) > 0).all()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in params)

    optimizer = torch.optim.Adam(params, lr=1e-2)
    for step in range(300):
        batch = make_batch(layout, 32, seed=step + 1)
        optimizer.zero_grad()
        masked_loss(dec(enc(batch)), batch, layout.vector_fields).backward()
        optimizer.step()
    test = make_batch(layout, 64, seed=10_000)
    with torch.no_grad():
        out = dec(enc(test))
    presence = test["presence"]
    value_mse = ((out["values"] - test["values"]) ** 2 * presence).sum() / presence.sum()
    assert value_mse < 1e-3  # the values have unit variance
    news = presence[..., layout.index[NEWS]] > 0
    vector_err = (out["vectors"][..., 0, :][news] - test["vectors"][..., 0, :][news]).norm(dim=-1)
    assert vector_err.mean() < 0.05  # unit-norm targets


def test_absent_field_gets_no_decoder_gradient(layout: CanvasLayout, semantic: np.ndarray) -> None:
    enc, dec = FieldEncoder(layout, semantic=semantic), FieldDecoder(layout)
    batch = make_batch(layout, 16)
    vix, news = layout.index["financial.equities.vix"], layout.index[NEWS]
    batch["presence"][..., [vix, news]] = 0.0
    masked_loss(dec(enc(batch)), batch, layout.vector_fields).backward()
    row = scalar_row(layout, "financial.equities.vix")
    assert torch.count_nonzero(dec.value_weight.grad[row]) == 0
    assert dec.value_bias.grad[row] == 0
    assert torch.count_nonzero(enc.value_weight.grad[row]) == 0
    assert torch.count_nonzero(dec.vector_weight.grad) == 0
    assert torch.count_nonzero(dec.vector_bias.grad) == 0
    assert torch.count_nonzero(enc.vector_weight.grad) == 0
    sp500 = scalar_row(layout, "financial.equities.sp500")
    assert torch.count_nonzero(dec.value_weight.grad[sp500]) > 0


# -- transfer across layouts -------------------------------------------------------------


def test_load_fields_from_copies_shared_fields(
    layout: CanvasLayout, semantic: np.ndarray, cache_dir: Path
) -> None:
    torch.manual_seed(1)
    small = compile_layout("narratives", T=6, d_model=32)
    old_enc = FieldEncoder(small, semantic=semantic_embeddings(small, cache_dir=cache_dir))
    old_dec = FieldDecoder(small)
    new_enc, new_dec = FieldEncoder(layout, semantic=semantic), FieldDecoder(layout)
    init_enc = {k: v.clone() for k, v in new_enc.state_dict().items()}
    init_dec = {k: v.clone() for k, v in new_dec.state_dict().items()}

    copied, initialised = new_enc.load_fields_from(old_enc)
    assert copied == small.paths
    assert initialised == [p for p in layout.paths if p.startswith("financial.")]
    assert new_dec.load_fields_from(old_dec) == (copied, initialised)

    for path in copied:  # exact copies
        if path == NEWS:
            assert torch.equal(new_enc.vector_weight, old_enc.vector_weight)
            assert torch.equal(new_dec.vector_weight, old_dec.vector_weight)
            continue
        new_row, old_row = scalar_row(layout, path), scalar_row(small, path)
        assert torch.equal(new_enc.value_weight[new_row], old_enc.value_weight[old_row])
        assert torch.equal(new_dec.value_weight[new_row], old_dec.value_weight[old_row])
        assert torch.equal(new_dec.value_bias[new_row], old_dec.value_bias[old_row])
    for path in initialised:  # untouched
        row = scalar_row(layout, path)
        assert torch.equal(new_enc.value_weight[row], init_enc["value_weight"][row])
        assert torch.equal(new_dec.value_weight[row], init_dec["value_weight"][row])
        pos = layout.positions(path)
        assert torch.equal(new_enc.present[pos], init_enc["present"][pos])
        assert torch.equal(new_enc.absent[pos], init_enc["absent"][pos])

    # The same data gives the same tokens and predictions on the shared fields.
    batch = make_batch(layout, 4)
    shared = [layout.index[p] for p in small.paths]
    small_batch = {
        "values": batch["values"][..., shared],
        "presence": batch["presence"][..., shared],
        "vectors": batch["vectors"],
    }
    new_pos = np.concatenate([layout.positions(p) for p in small.paths])
    old_pos = np.concatenate([small.positions(p) for p in small.paths])
    with torch.no_grad():
        new_tokens, old_tokens = new_enc(batch), old_enc(small_batch)
        torch.testing.assert_close(new_tokens[:, :, new_pos], old_tokens[:, :, old_pos])
        new_out, old_out = new_dec(new_tokens), old_dec(old_tokens)
    torch.testing.assert_close(new_out["values"][..., shared], old_out["values"])
    torch.testing.assert_close(new_out["vectors"], old_out["vectors"])

    with pytest.raises(ValueError, match="d_model"):
        FieldDecoder(layout, d_model=16).load_fields_from(old_dec)


def test_predictions_carry_each_fields_latest_value_as_an_ar1_forecast(layout, semantic):
    """A prediction is the decoded residual plus rho_f ** h x the field's latest visible
    value h steps back: rho_f starts at 1 for fields modelled as levels and at 0 for
    changes, and learns."""
    from training.backbones import build_backbone
    from training.predict import forward_canvas

    torch.manual_seed(0)
    enc, dec = FieldEncoder(layout, semantic=semantic), FieldDecoder(layout)
    backbone = build_backbone("scratch", layout, n_layers=1)
    levels = [f.transform == "level" and not f.is_vector for f in layout.fields]
    assert dec.persistence().tolist() == [float(x) for x in levels]
    batch = make_batch(layout, 8)
    batch["presence"] = torch.zeros_like(batch["presence"])
    batch["presence"][:, 0] = 1.0  # only the first step is visible
    batch["values"] = batch["values"] * batch["presence"]
    plain = dec(backbone(enc(batch)))["values"]
    with torch.no_grad():
        dec.value_persistence.fill_(0.5)
    prediction, _ = forward_canvas(enc, backbone, dec, batch)
    scalar = [not f.is_vector for f in layout.fields]
    h = torch.arange(layout.T, dtype=torch.float32).view(1, -1, 1)
    expected = plain + 0.5**h * batch["values"][:, :1]
    assert torch.allclose(prediction["values"][..., scalar], expected[..., scalar], atol=1e-6)
    prediction["values"].sum().backward()
    assert (dec.value_persistence.grad != 0).all()


def test_a_decoder_started_as_ar1_forecasts_like_it(layout, semantic):
    from training.backbones import build_backbone
    from training.predict import forward_canvas

    torch.manual_seed(0)
    enc, dec = FieldEncoder(layout, semantic=semantic), FieldDecoder(layout)
    backbone = build_backbone("scratch", layout, n_layers=1)
    b = np.linspace(-0.9, 1.4, layout.n_fields)  # one coefficient past 1: clipped
    fitted = np.arange(layout.n_fields) % 3 != 0  # the others keep their start
    before = dec.persistence().detach().numpy()
    dec.start_as_ar1(b, fitted)
    scalar = [not f.is_vector for f in layout.fields]
    rho = np.where(fitted, np.clip(b, -1, 1), before)[scalar]
    assert np.allclose(dec.persistence().detach().numpy()[scalar], rho)
    batch = make_batch(layout, 4)
    batch["presence"] = torch.zeros_like(batch["presence"])
    batch["presence"][:, 0] = 1.0
    batch["values"] = batch["values"] * batch["presence"]
    prediction = forward_canvas(enc, backbone, dec, batch)[0]["values"][..., scalar]
    h = np.arange(layout.T).reshape(1, -1, 1)
    expected = rho**h * batch["values"][:, :1, scalar].numpy()
    assert np.allclose(prediction.detach().numpy(), expected, atol=1e-6)
