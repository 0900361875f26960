"""Curricula: DAG validation, phases, fork/join merging, the DAG trainer end to end."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from canvas import DatasetSpec, compile_layout
from ingest.synthetic import SyntheticWorldConfig, generate_world
from tests.test_backbones import tiny_transformer
from training import (
    CurriculumConfig,
    CurriculumTrainer,
    DAGCurriculumTrainer,
    FieldDecoder,
    FieldEncoder,
    PhaseConfig,
    build_backbone,
)
from training.backbones import PretrainedWeightsNotFound
from training.checkpoint import trainable_state
from training.curriculum import phases_to_dag
from training.dag import (
    CurriculumError,
    DAGNode,
    dag_from_dict,
    dump_dag,
    load_dag,
    standard_dag,
    tiers,
    validate_dag,
)
from training.dag_trainer import NodeResult, default_curriculum_dir, parallel_seconds
from training.merge import ParentWeights, merge_parents
from training.settings import CurriculumSettings
from warehouse.store import Warehouse

TINY = CurriculumSettings(T=4, d_model=16, n_layers=1, batch_size=4, seed=0)


pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def world():
    return generate_world(SyntheticWorldConfig(start="2011-01-01", end="2016-12-31"))


@pytest.fixture(scope="module")
def pairs(world):
    """Every synthetic source as the (spec, data) pair an adapter returns."""
    out = []
    for name, frame in world.sources.items():
        paths = sorted(frame["field_path"].unique())
        out.append((DatasetSpec.from_fields(name, {p: p for p in paths}), frame))
    return out


# -- DAG definitions ---------------------------------------------------------------------


def test_standard_dag_has_twelve_nodes_in_four_tiers():
    nodes = standard_dag()
    depth = tiers(nodes)
    counts = [sum(1 for t in depth.values() if t == k) for k in range(4)]
    assert counts == [6, 3, 2, 1]
    assert sum(n.n_steps for n in nodes) == 176_000
    integration = nodes[-1]
    assert integration.name == "integration" and depth["integration"] == 3
    # the integration node holds every field of every foundation node, plus the news
    for node in nodes[:6]:
        assert set(node.fields) <= set(integration.fields)
    assert "narratives.news" in integration.fields


def test_cycle_is_rejected_and_named():
    nodes = [
        DAGNode("a", ("financial.fx",), parents=("c",)),
        DAGNode("b", ("financial.fx",), parents=("a",)),
        DAGNode("c", ("financial.fx",), parents=("b",)),
        DAGNode("root", ("financial.fx",)),
    ]
    with pytest.raises(CurriculumError, match=r"cycle: (a|b|c) -> .* -> \1"):
        validate_dag(nodes)


@pytest.mark.parametrize(
    ("nodes", "message"),
    [
        ([DAGNode("a", ("financial.fx",), parents=("ghost",))], "unknown parent.*ghost"),
        ([DAGNode("a", ("financial.fxx",))], "node 'a'.*financial.fx"),
        ([DAGNode("a", ("financial.fx",)), DAGNode("a", ("financial.fx",))], "two nodes"),
        ([DAGNode("Bad-Name", ("financial.fx",))], "lower-case"),
        ([DAGNode("a")], "neither fields nor parents"),
        ([DAGNode("a", ("financial.fx",), n_steps=0)], "n_steps"),
        ([], "no node"),
    ],
)
def test_malformed_dags_are_rejected(nodes, message):
    with pytest.raises(CurriculumError, match=message):
        validate_dag(nodes)


def test_yaml_dag_round_trip_and_errors(tmp_path: Path):
    path = tmp_path / "dag.yaml"
    path.write_text(
        "nodes:\n"
        "  - {name: prices, fields: [country_us.macro.inflation], n_steps: 5}\n"
        "  - {name: rates, fields: country_us.macro.rates}\n"
        "  - {name: policy, parents: [prices, rates], n_steps: 7}\n"
    )
    nodes = load_dag(path)
    assert [n.name for n in nodes] == ["prices", "rates", "policy"]
    # a join without fields gets the union of its parents'
    assert nodes[2].fields == ("country_us.macro.inflation", "country_us.macro.rates")
    assert load_dag(dump_dag(nodes, tmp_path / "again.yaml")) == nodes

    with pytest.raises(CurriculumError, match="unknown keys.*'stepz'"):
        dag_from_dict([{"name": "a", "fields": ["financial.fx"], "stepz": 3}])
    with pytest.raises(CurriculumError, match="n_steps must be an integer"):
        dag_from_dict([{"name": "a", "fields": ["financial.fx"], "n_steps": "many"}])
    path.write_text("nodes: [name: a\n")
    with pytest.raises(CurriculumError, match="not valid YAML"):
        load_dag(path)


# -- phases ------------------------------------------------------------------------------


def test_phases_compile_independent_adjacent_joint():
    domains = ["country_us.macro.inflation", "country_us.macro.rates", "country_us.surveys"]
    config = CurriculumConfig(
        phases=[
            PhaseConfig(domains=domains, canvas_size=32, n_steps=3),
            PhaseConfig(domains=domains, canvas_size=64, n_steps=4),
            PhaseConfig(domains=domains, canvas_size=128, n_steps=5),
        ]
    )
    nodes = config.to_dag()
    by_phase = {k: [n for n in nodes if n.name.startswith(f"p{k}_")] for k in (1, 2, 3)}
    assert len(by_phase[1]) == 3 and all(not n.parents for n in by_phase[1])
    # inflation -> rates is a causal channel; surveys lead output/labor, absent here
    assert sorted(n.fields for n in by_phase[2]) == [
        ("country_us.macro.inflation", "country_us.macro.rates"),
        ("country_us.surveys",),
    ]
    merged = next(n for n in by_phase[2] if len(n.fields) == 2)
    assert sorted(merged.parents) == ["p1_us_macro_inflation", "p1_us_macro_rates"]
    (joint,) = by_phase[3]
    assert set(joint.fields) == set(domains)
    assert sorted(joint.parents) == sorted(n.name for n in by_phase[2])
    assert {n.canvas_size for n in by_phase[3]} == {128}


def test_phase_yaml_and_bad_phases(tmp_path: Path):
    path = tmp_path / "phases.yaml"
    path.write_text(
        "settings: {T: 4, d_model: 16}\n"
        "phases:\n"
        "  - {domains: [financial.fx, financial.commodities], n_steps: 2}\n"
        "  - {domains: [[financial.fx, financial.commodities]], n_steps: 3}\n"
    )
    config = CurriculumConfig.from_yaml(path)
    assert config.settings.T == 4 and config.settings.d_model == 16
    nodes = config.to_dag()
    assert [len(n.parents) for n in nodes] == [0, 0, 2]
    with pytest.raises(CurriculumError, match="coupling"):
        PhaseConfig(domains=["financial.fx"], coupling="sideways")
    with pytest.raises(CurriculumError, match="unknown keys.*'lr_max'"):
        CurriculumConfig.from_dict({"phases": [], "settings": {"lr_max": 1}})
    with pytest.raises(CurriculumError, match="canvas_size=4"):
        from training.settings import node_layout

        node_layout(phases_to_dag([PhaseConfig(["financial.fx"], canvas_size=4)])[0], TINY)


# -- merging -----------------------------------------------------------------------------


def _parent(name: str, patterns: tuple[str, ...], seed: int, n_layers: int = 2) -> ParentWeights:
    torch.manual_seed(seed)
    layout = compile_layout(*patterns, T=4, d_model=16)
    modules = {
        "encoder": FieldEncoder(layout),
        "backbone": build_backbone("scratch", layout, n_layers=n_layers, attention="factorized"),
        "decoder": FieldDecoder(layout),
    }
    for module in modules.values():  # make every parameter non-trivial
        for p in module.parameters():
            torch.nn.init.normal_(p)
    return ParentWeights(name, layout, trainable_state(modules))


def _child(patterns: tuple[str, ...], n_layers: int = 2):
    torch.manual_seed(99)
    layout = compile_layout(*patterns, T=4, d_model=16)
    modules = {
        "encoder": FieldEncoder(layout),
        "backbone": build_backbone("scratch", layout, n_layers=n_layers, attention="factorized"),
        "decoder": FieldDecoder(layout),
    }
    return modules, layout


def _row(layout, weights, prefix, name, path):
    """The scalar row of `path` in a per-field parameter, straight from a state dict."""
    scalar = [p for p, f in zip(layout.paths, layout.fields, strict=True) if not f.is_vector]
    return weights[f"{prefix}.{name}"][scalar.index(path)]


def test_join_is_the_element_wise_mean_of_the_parents():
    a = _parent("a", ("financial.fx", "financial.commodities"), seed=1)
    b = _parent("b", ("financial.commodities", "financial.crypto"), seed=2)
    # the child adds a field neither parent has: the equities' VIX
    extra_modules, extra_layout = _child(
        ("financial.fx", "financial.commodities", "financial.crypto", "financial.equities.vix")
    )
    before = trainable_state(extra_modules)

    report = merge_parents(extra_modules, [a, b])
    after = trainable_state(extra_modules)

    shared = "financial.commodities.wti_crude"
    only_a, only_b = "financial.fx.audusd", "financial.crypto.btc"
    for prefix, name in (("encoder", "value_weight"), ("decoder", "value_weight")):
        want = (
            _row(a.layout, a.weights, prefix, name, shared)
            + _row(b.layout, b.weights, prefix, name, shared)
        ) / 2
        torch.testing.assert_close(_row(extra_layout, after, prefix, name, shared), want)
        torch.testing.assert_close(
            _row(extra_layout, after, prefix, name, only_a),
            _row(a.layout, a.weights, prefix, name, only_a),
        )
        torch.testing.assert_close(
            _row(extra_layout, after, prefix, name, only_b),
            _row(b.layout, b.weights, prefix, name, only_b),
        )
        new = "financial.equities.vix"
        assert torch.equal(
            _row(extra_layout, after, prefix, name, new),
            _row(extra_layout, before, prefix, name, new),
        )
    for key in (
        "backbone.blocks.0.attn.qkv.weight",
        "encoder.semantic_proj.weight",
        "encoder.temporal",
        "backbone.final_modulation.1.bias",
    ):
        torch.testing.assert_close(after[key], (a.weights[key] + b.weights[key]) / 2)
    assert report.fields_initialised == ["financial.equities.vix"]
    assert report.parameters_initialised == []
    assert {k for k in after if k.startswith("backbone.")} == {
        k for k in a.weights if k.startswith("backbone.")
    }


def test_fork_copies_and_depth_follows_the_documented_rule():
    parent = _parent("p", ("financial.fx",), seed=3, n_layers=2)
    deeper, _ = _child(("financial.fx",), n_layers=4)
    report = merge_parents(deeper, [parent])
    state = trainable_state(deeper)
    for i, source in ((0, 0), (1, 1), (2, 0), (3, 1)):  # same parity: space/time alternate
        key = f"backbone.blocks.{i}.mlp.0.weight"
        assert torch.equal(state[key], parent.weights[f"backbone.blocks.{source}.mlp.0.weight"])
    assert report.parameters_from_shallower["backbone.blocks.2.mlp.0.weight"].endswith(
        "blocks.0.mlp.0.weight"
    )
    assert torch.equal(state["encoder.present"], parent.weights["encoder.present"])

    shallower, _ = _child(("financial.fx",), n_layers=1)
    merge_parents(shallower, [parent])
    assert torch.equal(
        trainable_state(shallower)["backbone.blocks.0.mlp.0.weight"],
        parent.weights["backbone.blocks.0.mlp.0.weight"],
    )


def test_join_of_different_widths_is_an_error():
    parent = _parent("wide", ("financial.fx",), seed=4)
    torch.manual_seed(0)
    layout = compile_layout("financial.fx", T=4, d_model=32)
    modules = {
        "encoder": FieldEncoder(layout),
        "backbone": build_backbone("scratch", layout, n_layers=2),
        "decoder": FieldDecoder(layout),
    }
    with pytest.raises(CurriculumError, match="d_model 16.*32"):
        merge_parents(modules, [parent])


def test_frozen_backbone_is_never_merged_or_saved(tmp_path: Path, pairs):
    """The CogVideoX graft: only adapters, projections and conditioning move between nodes."""
    transformer = tiny_transformer()
    frozen_before = {k: v.clone() for k, v in transformer.state_dict().items()}
    nodes = [
        DAGNode("fx", ("financial.fx",), n_steps=2),
        DAGNode("commodities", ("financial.commodities",), n_steps=2),
        DAGNode("both", parents=("fx", "commodities"), n_steps=2),
    ]
    settings = CurriculumSettings(
        backbone="cogvideox", T=3, d_model=16, batch_size=2, adapter_rank=2
    )
    results = DAGCurriculumTrainer(
        nodes,
        pairs,
        settings=settings,
        out_dir=tmp_path,
        transformer=transformer,
        progress=False,
    ).run()
    for name in ("fx", "commodities", "both"):
        run = Path(results[name].run_dir) / "checkpoints"
        saved = load_file(str(sorted(run.glob("step_*"))[-1] / "weights.safetensors"))
        assert not [k for k in saved if k.startswith("backbone.transformer.")]
        assert any(k.startswith("backbone.adapters.") for k in saved)
        n_saved = sum(v.numel() for v in saved.values())
        assert n_saved < 0.5 * sum(v.numel() for v in frozen_before.values())
    for key, value in transformer.state_dict().items():
        assert torch.equal(value, frozen_before[key]), key
    assert results["both"].merged_from == ["fx", "commodities"]
    assert results["both"].merge["parameters_initialised"] == []


# -- the trainer end to end --------------------------------------------------------------


def test_standard_dag_trains_end_to_end_and_resumes(tmp_path: Path, pairs):
    nodes = standard_dag(steps=(3, 3, 3, 3))
    started = time.perf_counter()
    results = DAGCurriculumTrainer(
        nodes, pairs, settings=TINY, out_dir=tmp_path, progress=False
    ).run()
    assert time.perf_counter() - started < 60
    assert [r.status for r in results.nodes.values()] == ["trained"] * 12
    assert results["integration"].merged_from == ["macro_financial", "markets_policy"]
    assert results["global_markets"].merge["fields_initialised"] == [
        "narratives.news.embedding",
        "narratives.news.sentiment",
        "narratives.news.volume",
    ]
    for r in results.nodes.values():
        assert r.steps == 3 and r.final_loss is not None and r.final_loss > 0
        assert (Path(r.run_dir) / "loss.png").is_file()
    assert "| 3 | integration | trained |" in results.to_markdown()

    again = DAGCurriculumTrainer(
        nodes, pairs, settings=TINY, out_dir=tmp_path, progress=False
    ).run()
    assert [r.status for r in again.nodes.values()] == ["reused"] * 12
    assert again["integration"].key == results["integration"].key

    # a change upstream retrains that node and everything below it, nothing else
    changed = [
        DAGNode(**{**n.to_dict(), "n_steps": 4}) if n.name == "surveys" else n for n in nodes
    ]
    third = DAGCurriculumTrainer(
        changed, pairs, settings=TINY, out_dir=tmp_path, progress=False
    ).run()
    retrained = {name for name, r in third.nodes.items() if r.status == "trained"}
    assert retrained == {"surveys", "us_economy", "macro_financial", "integration"}


def test_node_without_data_is_skipped_and_reported(tmp_path: Path, pairs):
    fred_only = [(spec, data) for spec, data in pairs if spec.name == "fred"]
    nodes = [
        DAGNode("macro", ("country_us.macro.inflation",), n_steps=2),
        DAGNode("crypto", ("financial.crypto",), n_steps=2),
        DAGNode("joined", parents=("macro", "crypto"), n_steps=2),
    ]
    results = DAGCurriculumTrainer(
        nodes, fred_only, settings=TINY, out_dir=tmp_path, progress=False
    ).run()
    assert results["crypto"].status == "skipped"
    assert "no data source" in results["crypto"].reason
    assert results["joined"].status == "trained"
    assert results["joined"].merged_from == ["macro"]
    assert results["joined"].skipped_parents == ["crypto"]
    assert "skipped: no data source" in results.to_markdown()


def test_parallel_seconds_measures_overlap_between_processes():
    def result(name, pid, start, end):
        return NodeResult(
            name=name,
            status="trained",
            tier=0,
            pid=pid,
            started_at=f"2026-01-01T00:00:{start:02d}",
            finished_at=f"2026-01-01T00:00:{end:02d}",
        )

    assert parallel_seconds([result("a", 1, 0, 10), result("b", 2, 4, 20)]) == 6
    assert parallel_seconds([result("a", 1, 0, 10), result("b", 1, 4, 20)]) == 0
    assert parallel_seconds([result("a", 1, 0, 3), result("b", 2, 4, 20)]) == 0


# -- the seed's calls, as written --------------------------------------------------------


def test_seed_curriculum_trainer_reads_the_default_warehouse(world, tmp_path: Path, monkeypatch):
    """`CurriculumTrainer(config).run()`: the data are the warehouse the user ingested."""
    monkeypatch.setenv("GUWM_ARTIFACTS", str(tmp_path / "artifacts"))
    warehouse = Warehouse()  # $GUWM_WAREHOUSE, set to a temporary path by conftest
    for name in ("fred", "yahoo"):
        warehouse.ingest(world.sources[name], source=name)
    config = CurriculumConfig(
        phases=[
            PhaseConfig(domains=["country_us.macro.inflation", "financial.fx"], n_steps=2),
            PhaseConfig(domains=["country_us.macro.inflation", "financial.fx"], n_steps=2),
        ],
        settings=TINY,
    )
    trainer = CurriculumTrainer(config)
    results = trainer.run()
    assert [r.status for r in results.nodes.values()] == ["trained"] * 3
    # the sequential curriculum has its own folder: the DAG curriculum's stays untouched
    phases, dag = default_curriculum_dir("phases"), default_curriculum_dir()
    assert trainer.trainer.out_dir == phases != dag
    assert (phases / "p2_us_macro_inflation_financial_fx" / "latest.json").is_file()
    assert not dag.exists()
    assert results.nodes["p2_us_macro_inflation_financial_fx"].merged_from == [
        "p1_us_macro_inflation",
        "p1_financial_fx",
    ]


def test_seed_dag_trainer_with_cogvideox_fails_clearly_without_weights(pairs):
    dag, data_sources = standard_dag(), pairs
    trainer = DAGCurriculumTrainer(
        nodes=dag,
        data_sources=data_sources,
        backbone="cogvideox",
        pretrained_model_id="THUDM/CogVideoX-2b",
        device="cpu",
    )
    with pytest.raises(PretrainedWeightsNotFound, match="CogVideoX-2b"):
        trainer.run()


def test_diffusion_objective_carries_its_noise_embedding(tmp_path: Path, pairs):
    settings = CurriculumSettings(**{**TINY.to_dict(), "objective": "diffusion"})
    nodes = [
        DAGNode("fx", ("financial.fx",), n_steps=2),
        DAGNode("fx_more", ("financial.fx", "financial.commodities"), parents=("fx",), n_steps=2),
    ]
    results = DAGCurriculumTrainer(
        nodes, pairs, settings=settings, out_dir=tmp_path, progress=False
    ).run()
    child = results["fx_more"]
    assert child.status == "trained" and child.merged_from == ["fx"]
    assert child.merge["parameters_initialised"] == []
    saved = load_file(
        str(
            sorted((Path(child.run_dir) / "checkpoints").glob("step_*"))[-1] / "weights.safetensors"
        )
    )
    assert "noise_flag.flag" in saved
