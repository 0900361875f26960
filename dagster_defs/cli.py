"""The `guwm` command line: query the warehouse, list fields, run the demo, curricula.

A thin layer over the libraries that composes their subcommands. Each subcommand
imports what it needs when it runs, so `guwm sql` or `guwm fields` pays for neither
torch nor Dagster. Errors print one line and exit non-zero; `--debug` shows the traceback.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from training.cli import add_parser as add_curriculum_parser
from warehouse.paths import WAREHOUSE_ENV

if TYPE_CHECKING:
    import polars as pl


def _warehouse(args: argparse.Namespace, *, read_only: bool, file_access: bool = True):
    from warehouse.store import Warehouse

    return Warehouse(args.warehouse, read_only=read_only, file_access=file_access)


def _write(frame: pl.DataFrame, fmt: str, output: str | None, max_rows: int) -> None:
    from dagster_defs.metadata import print_table

    if fmt == "table":
        print_table(frame, max_rows=max_rows)
        return
    if fmt == "parquet":
        if not output:
            raise ValueError("--format parquet needs --output FILE")
        frame.write_parquet(output)
        print(f"wrote {len(frame)} rows to {output}")
        return
    buffer = io.StringIO()
    if fmt == "csv":
        frame.write_csv(buffer)
    else:
        json.dump(frame.to_dicts(), buffer, default=str)
        buffer.write("\n")
    text = buffer.getvalue()
    if output:
        Path(output).write_text(text)
    else:
        sys.stdout.write(text)


def cmd_sql(args: argparse.Namespace) -> None:
    """Run a read-only SQL query against the warehouse. It sees the warehouse only: files
    are neither read (read_csv, read_parquet, ATTACH) nor written (COPY TO) unless
    --allow-files is given (--output writes the result, always)."""
    import duckdb

    warehouse = _warehouse(args, read_only=True, file_access=args.allow_files)
    try:
        frame = warehouse.sql(args.query)
    except duckdb.PermissionException as err:
        raise PermissionError(
            f"{str(err).removeprefix('Permission Error: ')}: guwm sql reads the warehouse "
            "only; pass --allow-files to read or write files from SQL"
        ) from None
    _write(frame, args.format, args.output, args.max_rows)


def cmd_fields(args: argparse.Namespace) -> None:
    """List schema fields, optionally under a prefix or glob."""
    from warehouse.schema import default_schema

    schema = default_schema()
    if args.prefix:
        schema = schema.project(*args.prefix)
    frame = schema.to_polars().select(
        "path", "unit", "period", "dimension", "loss_weight", "latent", "semantic_type"
    )
    _write(frame, args.format, None, max_rows=max(len(frame), 1))
    if args.format == "table":
        templates = [t.path for t in schema.templates]
        suffix = f"; templates: {', '.join(templates)}" if templates else ""
        print(f"{len(frame)} fields{suffix}")


def cmd_info(args: argparse.Namespace) -> None:
    """Warehouse size, row counts, sources and date ranges."""
    from dagster_defs.metadata import print_table

    info = _warehouse(args, read_only=True).info()
    sources = info.pop("sources")
    if args.format == "json":
        info["sources"] = sources.to_dicts()
        print(json.dumps(info, default=str, indent=2))
        return
    for key, value in info.items():
        print(f"{key:>16}: {value}")
    print_table(sources)


def cmd_export(args: argparse.Namespace) -> None:
    """Export every table to a Parquet lake: a directory or any fsspec URL (s3://, gs://, …)."""
    dest = _warehouse(args, read_only=False).export_parquet(args.dest, keep=args.keep)
    print(f"exported to {dest}")


def cmd_demo(args: argparse.Namespace) -> None:
    """The main job on the offline synthetic world: ingest every source into the
    warehouse, materialize the canvas, train the world model (served only when it beats
    its baselines on validation), evaluate it on the test period and train the curriculum
    DAG; then print the checks, the gate, the evaluation and two queries."""
    from dagster_defs.demo import run_demo

    run_demo(args.warehouse, start=args.start, end=args.end, seed=args.seed)


def cmd_materialize(args: argparse.Namespace) -> None:
    """Materialize assets and their checks, e.g. 'group:ingest', 'world_model+' or
    'fred_observations' (Dagster's selection syntax), with the sources and warehouse of
    the environment (GUWM_*), recorded in the Dagster instance that `guwm dev` shows.
    `--set` sets an asset's config or a resource's (`sources.seed=3`) for this run."""
    import time

    import dagster as dg
    import pydantic

    from dagster_defs.definitions import defs
    from dagster_defs.demo import materialize_selection, print_summary
    from dagster_defs.resources import WarehouseResource

    started = time.perf_counter()
    resources = {"warehouse": WarehouseResource(path=args.warehouse)} if args.warehouse else {}
    config = asset_config(args.set)
    for name in [n for n in config if n in defs.resources]:
        resource, values = resources.get(name, defs.resources[name]), config.pop(name)
        unknown = sorted(set(values) - set(type(resource).model_fields))
        if unknown:
            expected = ", ".join(sorted(type(resource).model_fields))
            raise ValueError(f"--set {name}: unknown {unknown}; expected one of {expected}")
        # the resource as configured (secrets stay EnvVars, read at run time) with `values`
        configured = resource._get_non_default_public_field_values()
        try:
            resources[name] = type(resource)(**{**configured, **values})
        except pydantic.ValidationError as err:
            problem = err.errors()[0]
            raise ValueError(f"--set {name}.{problem['loc'][0]}: {problem['msg']}") from None
    try:
        result = materialize_selection(args.selection, resources, config)
    except dg.DagsterInvalidConfigError as err:  # say which setting, not only "config"
        problems = "; ".join(e.message.splitlines()[0] for e in err.errors)
        raise ValueError(f"--set: {problems}") from err
    print_summary(result, time.perf_counter() - started)
    if not result.success:
        raise RuntimeError(f"run {result.run_id} failed: `guwm dev` shows its events")


def asset_config(settings: Sequence[str]) -> dict[str, dict[str, object]]:
    """`ASSET.SETTING=VALUE` items as each asset's config; a value is read as YAML (128,
    1e-4, [a, b], text; a date stays text)."""
    import yaml

    config: dict[str, dict[str, object]] = {}
    for item in settings:
        key, equals, value = item.partition("=")
        asset, dot, name = key.partition(".")
        if not (equals and dot and asset and name):
            raise ValueError(
                f"--set {item!r}: expected ASSET.SETTING=VALUE, e.g. world_model.d_model=128"
            )
        parsed = yaml.safe_load(value)
        # a date stays text, as the settings hold dates
        config.setdefault(asset, {})[name] = value if isinstance(parsed, dt.date) else parsed
    return config


def cmd_dev(args: argparse.Namespace) -> None:
    """The Dagster UI (`dagster dev`, on 127.0.0.1) on the instance the main job records
    into: after `guwm demo` it shows every asset's latest materialization, metadata,
    plots and check results."""
    import os

    from warehouse.paths import DAGSTER_HOME_ENV, default_dagster_home

    env = dict(os.environ)
    if args.warehouse:
        env[WAREHOUSE_ENV] = str(Path(args.warehouse).resolve())
    env[DAGSTER_HOME_ENV] = str(default_dagster_home(env.get(WAREHOUSE_ENV)))
    # dagster's notice that `dagster dev` has a successor in the `dg` tool: not ours to act on
    env.setdefault("PYTHONWARNINGS", "ignore:Function `dev_command` is superseded")
    dagster = Path(sys.executable).with_name("dagster")
    command = [str(dagster), "dev", "-m", "dagster_defs", "-h", "127.0.0.1", "-p", str(args.port)]
    print(f"dagster dev on http://127.0.0.1:{args.port} (DAGSTER_HOME={env[DAGSTER_HOME_ENV]})")
    sys.stdout.flush()
    os.execve(command[0], command, env)


def cmd_nowcast(args: argparse.Namespace) -> None:
    """Nowcast fields for a date from what the warehouse had released by then, with the
    served world model (or --run/--canvas): each field in its own units with an 80%
    interval, beside its latest released value and when that was released."""
    import polars as pl

    from training.inference import WorldModel
    from training.serving import world_model_root
    from warehouse.paths import default_artifacts_dir

    wh = _warehouse(args, read_only=True)
    if args.run:
        model = WorldModel.load(args.run, canvas_dir=args.canvas or Path(args.run) / "canvas")
    else:
        model = WorldModel.load(served_root=world_model_root(default_artifacts_dir(wh.path)))
    frame = model.predict_date(wh, args.date, fields=args.fields or None)
    released = (
        wh.as_of(args.date, frame["field_path"].to_list())
        .sort("observed_at")
        .group_by("field_path")
        .agg(
            pl.col("value").last().alias("latest"),
            pl.col("observed_at").last().dt.date().alias("latest_for"),
            pl.col("known_at").last().alias("released_at"),
        )
    )
    frame = frame.drop("observed").join(released, on="field_path", how="left")
    _write(frame, args.format, None, args.max_rows)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="guwm",
        description="guwm: the field warehouse and world-model trainer.",
    )
    parser.add_argument(
        "--warehouse",
        metavar="PATH",
        help=f"warehouse DuckDB file (default: ${WAREHOUSE_ENV} or the user data directory)",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("sql", help="run a read-only SQL query", description=cmd_sql.__doc__)
    p.add_argument("query")
    p.add_argument("--format", choices=["table", "csv", "json", "parquet"], default="table")
    p.add_argument("--output", "-o", help="write to this file instead of stdout")
    p.add_argument("--max-rows", type=int, default=50, help="rows shown in table format")
    p.add_argument(
        "--allow-files",
        action="store_true",
        help="let the query read and write files (COPY TO, read_csv, ATTACH)",
    )
    p.set_defaults(func=cmd_sql)

    p = sub.add_parser("fields", help="list schema fields", description=cmd_fields.__doc__)
    p.add_argument("prefix", nargs="*", help="path prefixes or globs, e.g. country_us.macro")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.set_defaults(func=cmd_fields)

    p = sub.add_parser("info", help="warehouse summary", description=cmd_info.__doc__)
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("export", help="export tables to Parquet", description=cmd_export.__doc__)
    p.add_argument(
        "dest",
        nargs="?",
        help="directory or fsspec URL: file://, s3:// (pip install s3fs), gs:// (gcsfs), … "
        "(default: beside the database)",
    )
    p.add_argument(
        "--keep", type=int, default=2, help="snapshots kept on object stores (default: 2)"
    )
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "demo",
        help="the main job: ingest, canvas, train, gate, evaluate (synthetic world)",
        description=cmd_demo.__doc__,
    )
    p.add_argument("--start", help="first day of the synthetic world (default: the sources')")
    p.add_argument("--end", help="last day of the synthetic world (default: the world's own)")
    p.add_argument("--seed", type=int, help="the synthetic world's seed (default: the sources')")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "materialize",
        help="materialize assets and their checks",
        description=cmd_materialize.__doc__,
    )
    p.add_argument("selection", help="e.g. 'group:ingest', 'world_model+', 'fred_observations'")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="ASSET.SETTING=VALUE",
        help="an asset's or a resource's setting, e.g. world_model.d_model=128, "
        "canvas_tensors.T=24 or sources.seed=3 (repeatable; the names are those of the "
        "Dagster config, which are the library settings')",
    )
    p.set_defaults(func=cmd_materialize)

    p = sub.add_parser(
        "dev", help="the Dagster UI on the main job's instance", description=cmd_dev.__doc__
    )
    p.add_argument("--port", type=int, default=3000)
    p.set_defaults(func=cmd_dev)

    p = sub.add_parser(
        "nowcast", help="nowcast fields for a date (served model)", description=cmd_nowcast.__doc__
    )
    p.add_argument("date", help="the moment: YYYY-MM-DD[THH:MM]")
    p.add_argument("fields", nargs="*", help="paths, prefixes or globs (default: all)")
    p.add_argument("--run", help="a run directory instead of the served model")
    p.add_argument("--canvas", help="the run's canvas directory (default: RUN/canvas)")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.add_argument("--max-rows", type=int, default=50, help="rows shown in table format")
    p.set_defaults(func=cmd_nowcast)

    add_curriculum_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `guwm` command."""
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except BrokenPipeError:
        return 0
    except Exception as err:  # one clear line for the user; --debug for the traceback
        if args.debug:
            raise
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"guwm: error: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
