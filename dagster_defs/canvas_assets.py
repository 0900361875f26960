"""The canvas asset: point-in-time, presence-masked tensor shards from the warehouse."""

import dagster as dg

from canvas.layout import compile_layout
from canvas.materialize import materialize_canvas
from canvas.plots import coverage_by_window, plot_coverage
from canvas.settings import CanvasSettings
from canvas.verify import verify_windows
from dagster_defs.ingest_assets import OWNERS, ingest_assets
from dagster_defs.metadata import image_markdown
from dagster_defs.resources import (
    ArtifactsResource,
    SourcesResource,
    WarehouseResource,
    settings_model,
    settings_of,
)
from ingest.registry import SOURCES
from warehouse.lake import LakeReader


class CanvasConfig(settings_model(CanvasSettings, dg.Config)):
    """The canvas settings (`canvas.settings.CanvasSettings`), and where to read from."""

    lake_url: str | None = None  # read the Parquet export here (any fsspec URL), not DuckDB

    def settings(self) -> CanvasSettings:
        """The library's settings of this configuration."""
        return settings_of(self, CanvasSettings)


@dg.asset(
    group_name="canvas",
    kinds={"numpy", "polars"},
    owners=OWNERS,
    deps=[a.key for a in ingest_assets],
    description="Point-in-time canvas windows (values, presence masks, news vectors) in "
    "memory-mapped shards with a manifest: layout hash, field order, training-period "
    "normalisation, train/val/test split by date.",
)
def canvas_tensors(
    context: dg.AssetExecutionContext,
    config: CanvasConfig,
    warehouse: WarehouseResource,
    sources: SourcesResource,
    artifacts: ArtifactsResource,
) -> dg.MaterializeResult:
    settings, canvas = sources.settings(), config.settings()
    source_names = [settings.warehouse_source(s) for s in SOURCES]
    wh = LakeReader(config.lake_url) if config.lake_url else warehouse.open()
    end = canvas.end or str(
        wh.sql(
            "SELECT max(observed_at) AS t FROM observations WHERE list_contains($s, source)",
            {"s": source_names},
        )["t"][0]
    )
    fields = canvas.fields or sorted(
        wh.sql(
            "SELECT DISTINCT field_path FROM observations WHERE list_contains($s, source)",
            {"s": source_names},
        )["field_path"]
    )
    # the model's width is the world model's setting: the canvas does not depend on it
    layout = compile_layout(*fields, schema=wh.schema, T=canvas.T, step=canvas.step)
    out = artifacts.path("canvas")
    manifest = materialize_canvas(
        wh,
        layout,
        out,
        start=canvas.start or settings.start_date,
        end=end,
        train_end=canvas.train_end,
        val_end=canvas.val_end,
        sources=source_names,
        cutoffs_per_step=canvas.cutoffs_per_step,
    )
    coverage = coverage_by_window(out, manifest)
    layout_png = layout.render_png(artifacts.path("canvas_layout.png"))
    coverage_png = plot_coverage(out, manifest, artifacts.path("canvas_coverage.png"))
    observed = int((coverage.sum(axis=0) > 0).sum())
    context.log.info(
        f"canvas {manifest.n_windows} windows x {layout.T} x {layout.n_fields} "
        f"from {manifest.observations:,} observations"
    )
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(out)),
            "layout_hash": manifest.layout_hash,
            "shape": f"{manifest.n_windows} windows x {layout.T} steps x {layout.n_fields} fields",
            "grid": f"T={layout.T} x H={layout.H} x W={layout.W}",
            "windows": manifest.n_windows,
            "fields_observed": observed,
            "coverage_pct": round(100 * float(coverage.mean()), 2),
            "observed_field_coverage_pct": round(
                100 * float(coverage[:, coverage.sum(axis=0) > 0].mean()), 2
            )
            if observed
            else 0,
            "splits": dg.MetadataValue.json(manifest.splits),
            "date_range": f"{manifest.start} .. {manifest.end}",
            "layout": dg.MetadataValue.md(image_markdown(layout_png, alt="canvas layout")),
            "coverage": dg.MetadataValue.md(image_markdown(coverage_png, alt="coverage")),
        }
    )


@dg.asset_check(
    asset=canvas_tensors,
    name="presence_matches_warehouse",
    description="For a sample of windows, presence is 1 exactly where the warehouse holds a "
    "value observed in that step and known by the window's cutoff (no leakage, no fill).",
)
def presence_matches_warehouse(
    warehouse: WarehouseResource, sources: SourcesResource, artifacts: ArtifactsResource
) -> dg.AssetCheckResult:
    settings = sources.settings()
    problems, checked = verify_windows(
        warehouse.open(),
        artifacts.path("canvas"),
        sources=[settings.warehouse_source(s) for s in SOURCES],
    )
    return dg.AssetCheckResult(
        passed=not problems,
        metadata={"windows_checked": checked, "problems": "; ".join(problems[:20]) or "none"},
    )
