"""`guwm curriculum …`: show, estimate, plan and train curricula from the command line.

guwm curriculum show                        # the standard DAG, validated, by tier
guwm curriculum estimate --backbone cogvideox --batch-size 8
guwm curriculum plan --goal "nowcast US inflation" --out my_dag.yaml
guwm curriculum run --dag my_dag.yaml --steps-per-tier 40,40,40,80
guwm curriculum run --config phases.yaml    # a sequential (phased) curriculum
torchrun --standalone --nproc_per_node=8 $(which guwm) curriculum run --device cuda …
                                            # every node data-parallel over 8 processes
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import fields
from typing import Any, get_args, get_type_hints

from training.dag import DAGNode, load_dag, standard_dag, tiers, with_steps_per_tier
from training.settings import CurriculumSettings, ModelSettings


def add_settings_arguments(parser: argparse.ArgumentParser, settings: type[ModelSettings]) -> None:
    """One flag per field of `settings` (`--d-model`, `--T`, ...) of the field's type; a
    flag left out leaves the setting as it is (`settings_from_args`)."""
    hints = get_type_hints(settings)
    for f in fields(settings):
        kind = next((t for t in get_args(hints[f.name]) if t is not type(None)), hints[f.name])
        parser.add_argument(
            f"--{f.name.replace('_', '-')}",
            dest=f.name,
            type=kind,
            choices=f.metadata.get("choices"),
            help=f"default: {f.default}",
        )


def settings_from_args(args: argparse.Namespace, base: ModelSettings) -> Any:
    """`base` with the settings flags given on the command line applied."""
    return base.override(**{name: getattr(args, name, None) for name in base.names()})


def _nodes(args: argparse.Namespace) -> tuple[list[DAGNode], CurriculumSettings]:
    """The DAG named by --dag or --config (default: the standard DAG) and its settings."""
    from training.curriculum import CurriculumConfig

    if args.config:
        config = CurriculumConfig.from_yaml(args.config)
        return config.to_dag(), config.settings
    nodes = load_dag(args.dag) if args.dag else standard_dag()
    return nodes, CurriculumSettings()


def _with_steps(nodes: list[DAGNode], per_tier: str | None) -> list[DAGNode]:
    """`--steps-per-tier 40,40,40,80` applied to the nodes."""
    return with_steps_per_tier(nodes, [int(s) for s in per_tier.split(",")] if per_tier else [])


def cmd_show(args: argparse.Namespace) -> None:
    """Validate a curriculum and print its nodes by tier."""
    nodes, _ = _nodes(args)
    depth = tiers(nodes)
    for node in nodes:
        origin = f" <- {', '.join(node.parents)}" if node.parents else ""
        print(f"tier {depth[node.name]}  {node.name:<24} {node.n_steps:>7,} steps{origin}")
        print(f"        fields: {', '.join(node.fields)}")


def cmd_estimate(args: argparse.Namespace) -> None:
    """Print the compute estimate (FLOPs, H100-hours) of a curriculum."""
    from training.compute import estimate_compute

    nodes, settings = _nodes(args)
    settings = settings_from_args(args, settings)
    estimate = estimate_compute(
        _with_steps(nodes, args.steps_per_tier), settings, utilisation=args.utilisation
    )
    print(estimate.tier_table())
    print()
    print(estimate.to_markdown())


def cmd_plan(args: argparse.Namespace) -> None:
    """Design a curriculum for a goal from the sources in the warehouse."""
    from training.planner import build_curriculum
    from training.profile import DatasetProfile
    from warehouse.store import Warehouse

    profiles = DatasetProfile.from_warehouse(Warehouse(args.warehouse, read_only=True))
    curriculum = build_curriculum(goal=args.goal, datasets=profiles)
    print(curriculum.to_markdown())
    if args.out:
        curriculum.to_yaml(args.out)
        print(f"\nwrote {args.out}: guwm curriculum run --dag {args.out}")


def cmd_run(args: argparse.Namespace) -> None:
    """Train a curriculum on the warehouse (or resume it; finished nodes are reused).

    Under torchrun every rank runs this: each node trains data-parallel and rank 0 writes
    the results and prints the table.
    """
    from training import distributed
    from training.dag_trainer import DAGCurriculumTrainer, default_curriculum_dir

    nodes, settings = _nodes(args)
    settings = settings_from_args(args, settings)
    ranks = distributed.init_from_env(settings.device)
    level = logging.INFO if ranks.is_main else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(message)s")
    logging.getLogger("guwm.training").setLevel(logging.WARNING)
    try:
        trainer = DAGCurriculumTrainer(
            _with_steps(nodes, args.steps_per_tier),
            args.warehouse,
            settings=settings,
            out_dir=args.out_dir or default_curriculum_dir("phases" if args.config else "dag"),
            progress=False,
        )
        result = trainer.run()
    finally:
        distributed.cleanup()
    if ranks.is_main:
        print(result.to_markdown())


def add_parser(sub: Any) -> None:
    """Register `curriculum` and its actions on the `guwm` subparsers."""
    parser = sub.add_parser(
        "curriculum",
        help="show, estimate, plan and train curricula",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", required=True)
    for name, func in (("show", cmd_show), ("estimate", cmd_estimate), ("run", cmd_run)):
        p = actions.add_parser(name, help=func.__doc__, description=func.__doc__)
        source = p.add_mutually_exclusive_group()
        source.add_argument("--dag", metavar="YAML", help="a DAG file (default: standard DAG)")
        source.add_argument("--config", metavar="YAML", help="a phased CurriculumConfig file")
        if name != "show":
            add_settings_arguments(p, CurriculumSettings)
            p.add_argument("--steps-per-tier", metavar="N,N,…", help="override node steps")
        p.set_defaults(func=func)
    estimate = actions.choices["estimate"]
    estimate.add_argument("--utilisation", type=float, default=0.4, help="of the H100 peak")
    estimate.set_defaults(backbone="cogvideox", batch_size=8)
    run = actions.choices["run"]
    run.add_argument("--out-dir", help="default: $GUWM_ARTIFACTS/curriculum")
    p = actions.add_parser("plan", help=cmd_plan.__doc__, description=cmd_plan.__doc__)
    p.add_argument("--goal", required=True)
    p.add_argument("--out", metavar="YAML", help="write the DAG here")
    p.set_defaults(func=cmd_plan)
