"""The curriculum as Dagster assets: one asset per node, wired to its parents."""

from __future__ import annotations

import dagster as dg

from dagster_defs import defs
from dagster_defs.curriculum_assets import CurriculumResource, build_curriculum_assets
from dagster_defs.ingest_assets import ingest_assets
from dagster_defs.resources import (
    ArtifactsResource,
    LLMResource,
    SourcesResource,
    WarehouseResource,
)
from training.dag import DAGNode, load_dag, standard_dag


def test_every_standard_node_is_an_asset_depending_on_its_parents():
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    for node in standard_dag():
        key = dg.AssetKey(f"curriculum_{node.name}")
        assert key.to_user_string() in keys
        parents = {k.to_user_string() for k in graph.get(key).parent_keys}
        if node.parents:
            assert parents == {f"curriculum_{p}" for p in node.parents}
        else:  # foundation nodes wait for the data
            assert parents == {a.key.to_user_string() for a in ingest_assets}
        assert graph.get(key).group_name == "curriculum"
    summary = graph.get(dg.AssetKey("curriculum_summary"))
    assert len(summary.parent_keys) == 12


def test_curriculum_assets_train_join_and_reuse(tmp_path):
    nodes = [
        DAGNode("macro", ("country_us.macro.inflation",), n_steps=2),
        DAGNode("markets", ("financial.fx",), n_steps=2),
        DAGNode("crypto_news", ("narratives.news",), n_steps=2),  # no news source: skipped
        DAGNode("joined", parents=("macro", "markets", "crypto_news"), n_steps=3),
    ]
    fred, yahoo = (
        a for a in ingest_assets if a.key.path[0] in ("fred_observations", "yahoo_observations")
    )
    resources = {
        "warehouse": WarehouseResource(path=str(tmp_path / "wh.duckdb")),
        "sources": SourcesResource(start_date="2012-01-01", end_date="2016-12-31"),
        "artifacts": ArtifactsResource(root=str(tmp_path / "artifacts")),
        "curriculum": CurriculumResource(T=4, d_model=16, n_layers=1, batch_size=4),
        "llm": LLMResource(),  # none configured: the deterministic planner
    }
    assert dg.materialize([fred, yahoo], resources=resources).success
    assets = build_curriculum_assets(nodes)
    result = dg.materialize(assets, resources=resources)
    assert result.success
    events = {
        e.asset_key.to_user_string(): {k: v.value for k, v in e.materialization.metadata.items()}
        for e in result.get_asset_materialization_events()
    }
    joined = events["curriculum_joined"]
    assert joined["status"] == "trained" and joined["steps"] == 3
    assert joined["merge_sources"] == "macro, markets"
    assert joined["fields"] == 10 + 9 + 3  # inflation, fx and (no data yet) news
    assert joined["compute_estimate"]["steps"] == 3
    assert joined["compute_estimate"]["flops_per_step"] > 0
    assert "data:image/png;base64" in joined["loss_curve"]
    assert events["curriculum_crypto_news"]["status"] == "skipped"
    summary = events["curriculum_summary"]
    assert (summary["trained"], summary["skipped"]) == (3, 1)
    assert "| 1 | joined | trained" in summary["results"]
    assert "H100-hrs/node" in summary["compute_estimate_cogvideox_2b"]
    plan = events["curriculum_plan"]
    assert plan["planner"] == "deterministic" and plan["nodes"] >= 2
    assert load_dag(plan["path"])[-1].name == "integration"

    again = dg.materialize(assets, resources=resources)
    statuses = {
        e.asset_key.to_user_string(): e.materialization.metadata["status"].value
        for e in again.get_asset_materialization_events()
        if "status" in e.materialization.metadata
    }
    assert statuses == {
        "curriculum_macro": "reused",
        "curriculum_markets": "reused",
        "curriculum_crypto_news": "skipped",
        "curriculum_joined": "reused",
    }
