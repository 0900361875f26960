"""The main job on the offline default: materialize every asset, then query the warehouse."""

import difflib
import os
import time
from pathlib import Path

import dagster as dg

from dagster_defs.definitions import defs
from dagster_defs.metadata import print_table
from dagster_defs.resources import ArtifactsResource, SourcesResource, WarehouseResource
from dagster_defs.training_assets import beats_baselines_on_validation
from warehouse.paths import default_artifacts_dir, default_dagster_home

COVERAGE_SQL = """\
SELECT source,
       count(DISTINCT field_path)  AS fields,
       count(*)                    AS observations,
       min(observed_at)::DATE      AS first_observed,
       max(observed_at)::DATE      AS last_observed
FROM observations
GROUP BY source
ORDER BY source"""

REVISIONS_SQL = """\
SELECT observed_at::DATE              AS month,
       arg_min(value, known_at)       AS first_release,
       min(known_at)::DATE            AS released,
       arg_max(value, known_at)       AS latest,
       max(known_at)::DATE            AS revised
FROM observations
WHERE field_path = 'country_us.macro.labor.nonfarm_payrolls_change'
GROUP BY ALL
ORDER BY month DESC
LIMIT 6"""


def run_demo(
    warehouse_path: str | os.PathLike[str] | None = None,
    *,
    start: str | None = None,
    end: str | None = None,
    seed: int | None = None,
) -> dg.ExecuteInProcessResult:
    """Materialize every asset and its checks on the synthetic world (its window and seed:
    the source settings' defaults unless given); print two queries."""
    warehouse = WarehouseResource(
        path=str(warehouse_path) if warehouse_path else os.environ.get("GUWM_WAREHOUSE")
    )
    given = {"start_date": start, "end_date": end, "seed": seed}
    sources = SourcesResource(mode="synthetic", **{k: v for k, v in given.items() if v is not None})
    world = sources.settings().synthetic_config
    path = warehouse.open().path
    artifacts = ArtifactsResource(root=str(default_artifacts_dir(path)))
    home = default_dagster_home(path)
    print(
        f"materializing {len(defs.resolve_asset_graph().asset_nodes)} assets (synthetic world "
        f"{world.start} .. {world.end}, seed {world.seed}) into {path}\n"
        f"recording the run in the Dagster instance at {home} (guwm dev, make dev open it)"
    )
    started = time.perf_counter()
    result = materialize_selection(
        None, {"warehouse": warehouse, "sources": sources, "artifacts": artifacts}
    )
    checks = result.get_asset_check_evaluations()
    gate_key = beats_baselines_on_validation.check_key
    gate = next((c for c in checks if c.asset_check_key == gate_key), None)
    refused = gate is not None and not gate.passed
    if not result.success and not refused:  # a refused model is the gate at work
        raise dg.DagsterError(f"the main job failed; see the run's events ({result.run_id})")
    events = print_summary(result, time.perf_counter() - started)
    wh = warehouse.open(read_only=True)
    for title, query in (
        ("coverage by source", COVERAGE_SQL),
        ("payrolls: first release vs latest vintage", REVISIONS_SQL),
    ):
        print(f"\n-- {title}\n{query};")
        print_table(wh.sql(query))
    if gate is not None:
        _print_gate({k: v.value for k, v in gate.metadata.items()}, gate.passed)
    evaluation = events.get("world_model_evaluation")
    if evaluation is not None:
        _print_evaluation({k: v.value for k, v in evaluation.materialization.metadata.items()})
    curriculum = events.get("curriculum_summary")
    if curriculum is not None:
        metadata = {k: v.value for k, v in curriculum.materialization.metadata.items()}
        print("\n-- the standard curriculum DAG (fork: copy, join: average of the parents)")
        print(metadata["results"])
    model = events.get("world_model")
    if model is not None:
        run = model.materialization.metadata["checkpoint"].value
        _print_model(run, artifacts.path("canvas"), served=gate is not None and gate.passed)
    print(
        '\nnext: .venv/bin/guwm sql "SELECT * FROM fields WHERE n_observations > 0"  |  '
        ".venv/bin/guwm dev (the Dagster UI, showing this run)"
    )
    return result


def materialize_selection(
    selection: str | None,
    resources: dict[str, object] | None = None,
    config: dict[str, dict[str, object]] | None = None,
) -> dg.ExecuteInProcessResult:
    """Materialize `selection` (Dagster's selection syntax, e.g. "group:ingest" or
    "world_model+"; None: every asset) and its checks, recorded in the Dagster instance
    that `guwm dev` opens. `resources` replace the definitions' (which read GUWM_*);
    `config` maps an asset to its config (e.g. {"world_model": {"d_model": 128}}).
    A failed run is returned, not raised."""
    if selection is not None:
        _check_selection(selection)
    resources = {**defs.resources, **(resources or {})}
    home = default_dagster_home(resources["warehouse"].open().path)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return dg.materialize(
            [*defs.assets, *defs.asset_checks],
            selection=selection,
            resources=resources,
            raise_on_error=False,
            run_config={
                "loggers": {"console": {"config": {"log_level": "WARNING"}}},
                "ops": {asset: {"config": values} for asset, values in (config or {}).items()},
            },
            instance=instance,
        )


def _check_selection(selection: str) -> None:
    """A selection that names no asset is one clear error, with the nearest names."""
    graph = defs.resolve_asset_graph()
    try:
        chosen = dg.AssetSelection.from_string(selection).resolve(graph)
    except dg.DagsterInvalidSubsetError:
        chosen = set()
    if not chosen:
        names = sorted(k.to_user_string() for k in graph.get_all_asset_keys())
        groups = sorted({f"group:{graph.get(k).group_name}" for k in graph.get_all_asset_keys()})
        close = difflib.get_close_matches(selection, names + groups, n=3, cutoff=0.6)
        hint = f"; did you mean: {', '.join(close)}?" if close else f"; groups: {', '.join(groups)}"
        raise ValueError(f"no asset matches {selection!r}{hint}")


def print_summary(result: dg.ExecuteInProcessResult, seconds: float) -> dict:
    """A line per materialized asset and the checks' tally; the materialization events."""
    events = {e.asset_key.to_user_string(): e for e in result.get_asset_materialization_events()}
    for name, event in events.items():
        metadata = {k: v.value for k, v in event.materialization.metadata.items()}
        print(f"  {name:<34} {_describe(metadata)}")
    checks = result.get_asset_check_evaluations()
    failed = [f"{c.asset_key.to_user_string()}:{c.check_name}" for c in checks if not c.passed]
    print(
        f"  {len(checks) - len(failed)}/{len(checks)} asset checks passed"
        + (f" (failed: {', '.join(failed)})" if failed else "")
        + f"; {seconds:.1f}s"
    )
    return events


def _print_model(run: str, canvas: Path, served: bool) -> None:
    """Where the trained model and its canvas live, and the lines that load and query it."""
    print("\n-- the world model")
    print(f"  run     {run}" + ("  (served)" if served else "  (not served: the gate refused it)"))
    print(f"  canvas  {canvas}")
    print("  from training import WorldModel")
    if served:
        print("  model = WorldModel.load()  # the served run")
    print(f'  model = WorldModel.load("{run}", canvas_dir="{canvas}")  # this run')
    if served:
        print("  .venv/bin/guwm nowcast 2024-06-15 country_us.macro.inflation")


def _describe(metadata: dict) -> str:
    """One line about a materialization, from its metadata."""
    if "rows_in" in metadata:
        return (
            f"{metadata['rows_in']:>8,} rows: {metadata['rows_inserted']:,} new, "
            f"{metadata['rows_revised']:,} restated, {metadata['rows_unchanged']:,} unchanged"
        )
    if "shape" in metadata:
        return (
            f"{metadata['shape']}, coverage {metadata['coverage_pct']}% "
            f"({metadata['fields_observed']} fields observed)"
        )
    if "merge_sources" in metadata:
        if metadata["status"] == "skipped":
            return f"skipped: {metadata['reason']}"
        return (
            f"{metadata['status']}: {metadata['fields']} fields, {metadata['steps']} steps, "
            f"loss {metadata['final_loss']} (from {metadata['merge_sources']})"
        )
    if "tier0_parallel_seconds" in metadata:
        return (
            f"{metadata['nodes']} nodes: {metadata['trained']} trained, {metadata['reused']} "
            f"reused, {metadata['skipped']} skipped"
        )
    if "final_loss" in metadata:
        return (
            f"{metadata['steps']} steps, loss {metadata['final_loss']}, validation "
            f"{metadata['val_loss']} ({metadata['seconds']}s)"
        )
    if "summary" in metadata:
        return "evaluated on the held-out test period (below)"
    return ", ".join(f"{k}={v}" for k, v in metadata.items() if isinstance(v, int | float))


def _print_gate(metadata: dict, passed: bool) -> None:
    """The promotion gate's validation table and its verdict."""
    verdict = (
        "served (WorldModel.load(), guwm nowcast)"
        if passed
        else f"not served ({metadata['refused_because']}); served: {metadata['served']}"
    )
    print(f"\n-- promotion gate: MSE ratio to each baseline on the validation period: {verdict}")
    print(metadata["validation"])


def _print_evaluation(metadata: dict) -> None:
    """The error ratios against the baselines, and the regime probe."""
    summary = metadata["summary"]
    baselines = list(next(iter(summary.values()))["ratio"])
    header = " | ".join(f"vs {b:<11}" for b in baselines)
    print(
        "\n-- world model on the held-out test period: MSE ratio to each baseline "
        "(< 1: the model is better)"
    )
    print(f"  {'task':<10} {'cells':>6} | {header}")
    for task, row in summary.items():
        ratios = " | ".join(
            f"{ratio:<14.3f}" if isinstance(ratio, float) and ratio == ratio else f"{'n/a':<14}"
            for ratio in (row["ratio"][b] for b in baselines)
        )
        print(f"  {task:<10} {row['n']:>6} | {ratios}")
    intervals = metadata.get("intervals") or {}
    if intervals.get("cells"):
        print(
            f"\n-- 80% / 95% intervals (from validation errors) on {intervals['cells']} "
            f"held-out forecast cells: coverage {intervals['coverage_80']:.1%} / "
            f"{intervals['coverage_95']:.1%}, CRPS {intervals['crps']:.3f} (normalised)"
        )
        dfm, same = intervals.get("dfm") or {}, intervals.get("model_on_dfm_cells") or {}
        if dfm.get("cells"):
            print(
                f"   on the {dfm['cells']} cells the DFM covers: the DFM's Gaussian intervals "
                f"{dfm['coverage_80']:.1%} / {dfm['coverage_95']:.1%}, CRPS {dfm['crps']:.3f}; "
                f"the model's {same['coverage_80']:.1%} / {same['coverage_95']:.1%}, "
                f"CRPS {same['crps']:.3f}"
            )
    if "regime_probe_accuracy" in metadata:
        print(
            f"\n-- regime probe (linear, blocked over time): accuracy "
            f"{metadata['regime_probe_accuracy']:.1%} from the model's regime latent, "
            f"{metadata['regime_raw_input_accuracy']:.1%} from the raw inputs, "
            f"chance {metadata['regime_chance']:.1%}"
        )
