"""Data-parallel training under torchrun: 2 CPU ranks (gloo) equal one process on the same
global batches; rank 0 alone writes; checkpoints resume with another world size."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
import torch

from dagster_defs.curriculum_assets import CurriculumResource, build_curriculum_assets
from dagster_defs.resources import ArtifactsResource, SourcesResource, WarehouseResource
from ingest import embeddings
from ingest.synthetic import SyntheticWorldConfig, generate_world
from tests.distributed_worker import N_STEPS, STOP, tiny_setup, tiny_trainer
from training.checkpoint import load_checkpoint, trainable_state
from training.dag import DAGNode, load_dag
from training.dag_trainer import DAGCurriculumTrainer, NodeResult
from training.settings import CurriculumSettings
from warehouse.store import Warehouse

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TINY = CurriculumSettings(T=4, d_model=16, n_layers=1, batch_size=4)
DAG = """nodes:
  - {name: prices, fields: [country_us.macro.inflation], n_steps: 3}
  - {name: fx, fields: [financial.fx], n_steps: 3}
  - {name: both, parents: [prices, fx], n_steps: 3}
"""


pytestmark = pytest.mark.usefixtures("single_thread")


def stand_in_encode(texts: list[str], batch_size: int) -> np.ndarray:
    """Unit vectors seeded by the texts: field identities without the sentence model."""
    seeds = [int(hashlib.sha256(t.encode()).hexdigest()[:8], 16) for t in texts]
    vectors = np.stack(
        [np.random.default_rng(s).standard_normal(embeddings.DIMENSION) for s in seeds]
    )
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(autouse=True, scope="module")
def field_embeddings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A private embedding cache filled in this process by `stand_in_encode`, which the
    torchrun ranks inherit: no process loads the sentence model."""
    patch = pytest.MonkeyPatch()
    patch.setenv("GUWM_EMBEDDING_CACHE", str(tmp_path_factory.mktemp("embeddings")))
    patch.setattr(embeddings, "encode", stand_in_encode)
    yield
    patch.undo()


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic FRED and Yahoo data stored as the synthetic-mode ingest assets store them."""
    path = tmp_path_factory.mktemp("distributed") / "wh.duckdb"
    world = generate_world(SyntheticWorldConfig(start="2012-01-01", end="2015-12-31"))
    store = Warehouse(path)
    for name in ("fred", "yahoo"):
        store.ingest(world.sources[name], source=f"synthetic_{name}")
    return path


def torchrun(*args: str) -> subprocess.CompletedProcess[str]:
    """`torchrun --standalone --nproc_per_node=2 ARGS` from the repository; must succeed."""
    command = [str(BIN / "torchrun"), "--standalone", "--nproc_per_node=2", *args]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def assert_close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    """Equal up to float32 summation order, which is all that differs between the runs.

    Two ranks average their half-batch gradients; one process sums the whole batch: the
    gradients differ by a relative delta <= n * u (n <= 8 windows x 4 steps x 25
    positions = 800 summed terms, u = 2**-24), so delta <= 4.8e-5. AdamW's step
    lr * m / (sqrt(v) + eps) is scale-free in the gradient, so it moves by at most
    2 * lr * delta ~ 1e-7 per step, 8e-7 over the 8 steps; the weights' own float32
    rounding adds 8 * u * |w| <= 4.8e-7 for |w| <= 1. Hence atol = 2e-6. (No weight has
    an exact gradient of 0, where AdamW would turn rounding noise into steps of ~lr: the
    scratch backbone has no attention key bias.)"""
    assert a.keys() == b.keys()
    for key, value in a.items():
        assert torch.allclose(value, b[key], rtol=0, atol=2e-6), key


def test_two_ranks_train_like_one_process_and_resume_in_one(tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    torchrun("-m", "tests.distributed_worker", str(out))
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    bound, loader = tiny_setup()
    reference = tiny_trainer(bound, tmp_path / "reference")
    reference.train(loader, N_STEPS)
    losses = [r["loss"] for r in reference.history]

    # synchronised: the ranks hold the same weights, bit for bit
    for key, value in ranks[0]["weights"].items():
        assert torch.equal(value, ranks[1]["weights"][key]), key
    # the same global batches: losses and weights of the single-process run
    assert [r["loss"] for r in ranks[0]["history"]] == pytest.approx(losses[:STOP], rel=1e-4)
    at_stop = load_checkpoint(tmp_path / "reference" / f"step_{STOP:07d}")
    assert_close(ranks[0]["weights"], at_stop.weights)
    # rank 0 alone wrote checkpoints and metrics (one line per step)
    assert not (out / "rank1").exists()
    metrics = (out / "rank0" / "checkpoints" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in metrics] == list(range(1, STOP + 1))

    # the 2-rank checkpoint resumed by one process continues the uninterrupted run
    resumed = tiny_trainer(bound, out / "rank0" / "checkpoints")
    resumed.train(loader, N_STEPS)
    assert resumed.step == N_STEPS
    assert [r["loss"] for r in resumed.history] == pytest.approx(losses, rel=1e-4)
    assert_close(trainable_state(resumed.modules), trainable_state(reference.modules))

    # a frozen part (as the CogVideoX transformer): the trainable weights (initialised
    # differently per rank) end equal; each rank's frozen weights are neither broadcast
    # nor changed nor saved
    for key, value in ranks[0]["mixed"].items():
        assert torch.equal(value, ranks[1]["mixed"][key]), key
    assert "noise_flag.flag" in ranks[0]["mixed"]
    assert all(r["frozen_kept"] and r["frozen_saved"] == [] for r in ranks)


def test_guwm_curriculum_run_under_torchrun(tmp_path: Path, warehouse: Path) -> None:
    """`torchrun ... $(which guwm) curriculum run`: a fork/join DAG, rank 0 writes once."""
    dag = tmp_path / "dag.yaml"
    dag.write_text(DAG)
    reference = DAGCurriculumTrainer(
        load_dag(dag), str(warehouse), settings=TINY, out_dir=tmp_path / "one", progress=False
    ).run()
    out = tmp_path / "two"
    done = torchrun(
        str(BIN / "guwm"),
        "--warehouse",
        str(warehouse),
        "curriculum",
        "run",
        "--dag",
        str(dag),
        *("--T", "4", "--d-model", "16", "--n-layers", "1", "--batch-size", "4"),
        *("--out-dir", str(out)),
    )
    assert done.stdout.count("| tier | node |") == 1  # rank 0 prints the table
    for name, one in reference.nodes.items():
        two = NodeResult.load(out / name / "latest.json")
        assert (two.status, two.key, two.steps) == ("trained", one.key, 3)
        assert two.final_loss == pytest.approx(one.final_loss, rel=1e-4)
        assert two.val_loss == pytest.approx(one.val_loss, rel=1e-4)
        run = Path(two.run_dir)
        assert (run / "result.json").is_file() and (run / "loss.png").is_file()
        # one writer: a line per step, not one per rank
        assert len((run / "checkpoints" / "metrics.jsonl").read_text().splitlines()) == 3
    assert NodeResult.load(out / "both" / "latest.json").merged_from == ["prices", "fx"]


def test_dagster_node_asset_with_nproc_per_node_2(tmp_path: Path, warehouse: Path) -> None:
    """`CurriculumResource(nproc_per_node=2)`: the node asset trains under torchrun."""
    node = DAGNode("fx", ("financial.fx",), n_steps=2)
    (asset,) = (a for a in build_curriculum_assets([node]) if a.key.path == ["curriculum_fx"])

    def materialize(nproc: int) -> dict[str, object]:
        resources = {
            "warehouse": WarehouseResource(path=str(warehouse)),
            "sources": SourcesResource(start_date="2012-01-01", end_date="2015-12-31"),
            "artifacts": ArtifactsResource(root=str(tmp_path / f"nproc{nproc}")),
            "curriculum": CurriculumResource(
                T=4, d_model=16, n_layers=1, batch_size=4, nproc_per_node=nproc
            ),
        }
        result = dg.materialize([asset], resources=resources)
        assert result.success
        (event,) = result.get_asset_materialization_events()
        return {k: v.value for k, v in event.materialization.metadata.items()}

    one, two = materialize(1), materialize(2)
    assert (two["status"], two["steps"]) == ("trained", 2)
    assert two["pid"] != one["pid"]  # rank 0 of the torchrun launch wrote the result
    assert two["final_loss"] == pytest.approx(one["final_loss"], rel=1e-3)
    assert two["val_loss"] == pytest.approx(one["val_loss"], rel=1e-3)
