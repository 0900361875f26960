"""Curriculum DAGs: nodes, validation, the standard 12-node DAG and YAML files.

A node trains one canvas (the fields its patterns select, plus the latent regime
fields) for `n_steps`, starting from its parents' weights: none (fresh), one (fork: a
copy) or several (join: the element-wise average, see `training.merge`).

    from training.dag import standard_dag, load_dag
    dag = standard_dag()                 # 12 nodes in 4 tiers
    dag = load_dag("my_curriculum.yaml") # validated: names, parents, cycles, fields

A YAML DAG is a list of nodes (or a mapping with a `nodes` list):

    nodes:
      - name: prices
        fields: [country_us.macro.inflation, financial.commodities]
        n_steps: 2000
      - name: rates
        fields: [country_us.macro.rates, financial.yield_curves]
      - name: policy
        parents: [prices, rates]     # fields default to the union of the parents'
        n_steps: 4000
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from warehouse.schema import Schema, UnknownFieldError, default_schema

NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class CurriculumError(ValueError):
    """A curriculum (DAG or phases) that cannot be trained as written."""


@dataclass(frozen=True)
class DAGNode:
    """One training stage: a canvas of `fields`, started from its `parents`' weights.

    `fields` are schema patterns (exact paths, prefixes, globs); empty means the union of
    the parents' fields. `canvas_size` is the minimum number of spatial positions per
    time step (None: just enough for the fields). `n_layers` overrides the backbone
    depth of the scratch backbone for this node (see `training.merge` for how nodes of
    different depth merge).
    """

    name: str
    fields: tuple[str, ...] = ()
    parents: tuple[str, ...] = ()
    n_steps: int = 1000
    canvas_size: int | None = None
    n_layers: int | None = None
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", tuple(self.fields))
        object.__setattr__(self, "parents", tuple(self.parents))

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (YAML / JSON), omitting defaults."""
        out = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        defaults = DAGNode(name=self.name)
        return {k: v for k, v in out.items() if k == "name" or v != getattr(defaults, k)}


def node_from_dict(raw: Mapping[str, Any], where: str = "node") -> DAGNode:
    """A DAGNode from a mapping, with errors naming the node and the bad key."""
    if not isinstance(raw, Mapping):
        raise CurriculumError(f"{where}: expected a mapping, got {type(raw).__name__}")
    known = set(DAGNode.__dataclass_fields__)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise CurriculumError(f"{where}: unknown keys {unknown}; expected {sorted(known)}")
    if "name" not in raw:
        raise CurriculumError(f"{where}: every node needs a name")
    values = dict(raw)
    for key in ("fields", "parents"):
        value = values.get(key, ())
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise CurriculumError(f"{where} '{raw['name']}': {key} must be a list of strings")
        values[key] = tuple(value)
    for key in ("n_steps", "canvas_size", "n_layers"):
        value = values.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise CurriculumError(f"{where} '{raw['name']}': {key} must be an integer")
    return DAGNode(**values)


def resolve_fields(patterns: Iterable[str], schema: Schema | None = None) -> list[str]:
    """Sorted concrete field paths the patterns select (observable fields only).

    Templates (``firm_<TICKER>.*``) become concrete for the tickers of a schema made
    with `Schema.with_entities`; otherwise they select nothing here.
    """
    schema = schema or default_schema()
    patterns = list(patterns)
    if not patterns:
        return []
    return sorted(f.path for f in schema.project(*patterns) if not f.latent)


def validate_dag(nodes: Sequence[DAGNode], schema: Schema | None = None) -> list[DAGNode]:
    """Check a DAG and return its nodes in topological order, fields filled in.

    Raises CurriculumError for: bad or duplicate names, unknown parents, cycles (the
    cycle is named), unknown field patterns (with suggestions), nodes with no field,
    non-positive steps or sizes.
    """
    schema = schema or default_schema()
    if not nodes:
        raise CurriculumError("the curriculum has no node")
    by_name: dict[str, DAGNode] = {}
    for node in nodes:
        if not isinstance(node, DAGNode):
            raise CurriculumError(f"expected DAGNode, got {type(node).__name__}")
        if not NAME.match(node.name):
            raise CurriculumError(
                f"node name {node.name!r} must be lower-case letters, digits and _ "
                "(it names a Dagster asset and a directory)"
            )
        if node.name in by_name:
            raise CurriculumError(f"two nodes are named '{node.name}'")
        by_name[node.name] = node
    for node in nodes:
        missing = [p for p in node.parents if p not in by_name]
        if missing:
            raise CurriculumError(
                f"node '{node.name}': unknown parent(s) {missing}; nodes are {sorted(by_name)}"
            )
        if len(set(node.parents)) != len(node.parents):
            raise CurriculumError(f"node '{node.name}' lists a parent twice")
        if node.n_steps < 1:
            raise CurriculumError(f"node '{node.name}': n_steps must be >= 1, got {node.n_steps}")
        for key in ("canvas_size", "n_layers"):
            value = getattr(node, key)
            if value is not None and value < 1:
                raise CurriculumError(f"node '{node.name}': {key} must be >= 1, got {value}")
        if not node.fields and not node.parents:
            raise CurriculumError(f"node '{node.name}' has neither fields nor parents")
    order = _topological(by_name)
    filled: dict[str, DAGNode] = {}
    for name in order:
        node = by_name[name]
        patterns = node.fields or tuple(
            dict.fromkeys(p for parent in node.parents for p in filled[parent].fields)
        )
        try:
            projected = schema.project(*patterns)
        except UnknownFieldError as error:
            raise CurriculumError(f"node '{name}': {error}") from None
        if not [f for f in projected if not f.latent] and not projected.templates:
            raise CurriculumError(f"node '{name}': its patterns {list(patterns)} select no field")
        filled[name] = replace(node, fields=tuple(patterns))
    return [filled[name] for name in order]


def _topological(by_name: Mapping[str, DAGNode]) -> list[str]:
    """Kahn's order, stable in the given order; a cycle raises naming its nodes."""
    remaining = {name: set(node.parents) for name, node in by_name.items()}
    order: list[str] = []
    while remaining:
        ready = [name for name, parents in remaining.items() if not parents]
        if not ready:
            raise CurriculumError(f"the DAG has a cycle: {' -> '.join(_cycle(remaining))}")
        for name in ready:
            order.append(name)
            del remaining[name]
        for parents in remaining.values():
            parents.difference_update(ready)
    return order


def _cycle(remaining: Mapping[str, set[str]]) -> list[str]:
    """One cycle among nodes that all still wait for a parent."""
    path, seen = [], {}
    name = next(iter(remaining))
    while name not in seen:
        seen[name] = len(path)
        path.append(name)
        name = next(iter(sorted(remaining[name])))
    return [*path[seen[name] :], name]


def tiers(nodes: Sequence[DAGNode]) -> dict[str, int]:
    """Node name -> tier: 0 for roots, else 1 + the deepest parent's tier."""
    by_name = {node.name: node for node in nodes}
    depth: dict[str, int] = {}
    for name in _topological(by_name):
        depth[name] = 1 + max((depth[p] for p in by_name[name].parents), default=-1)
    return depth


def with_steps_per_tier(nodes: Sequence[DAGNode], steps: Sequence[int]) -> list[DAGNode]:
    """The nodes with their steps replaced by tier (the last entry covers deeper tiers)."""
    if not steps:
        return list(nodes)
    depth = tiers(nodes)
    return [replace(n, n_steps=steps[min(depth[n.name], len(steps) - 1)]) for n in nodes]


def load_dag(path: str | Path, schema: Schema | None = None) -> list[DAGNode]:
    """Read and validate a YAML DAG file (see the module doc for the format)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise CurriculumError(f"{path}: not valid YAML: {error}") from None
    return dag_from_dict(raw, schema=schema, where=str(path))


def dag_from_dict(
    raw: Any, schema: Schema | None = None, where: str = "curriculum"
) -> list[DAGNode]:
    """Validated nodes from a list of node mappings (or a mapping with `nodes`)."""
    if isinstance(raw, Mapping):
        raw = raw.get("nodes")
    if not isinstance(raw, list):
        raise CurriculumError(f"{where}: expected a list of nodes (or a mapping with 'nodes')")
    nodes = [node_from_dict(item, f"{where}: node {i + 1}") for i, item in enumerate(raw)]
    return validate_dag(nodes, schema)


def dump_dag(nodes: Sequence[DAGNode], path: str | Path) -> Path:
    """Write nodes as a YAML DAG file that `load_dag` reads back."""
    path = Path(path)
    path.write_text(yaml.safe_dump({"nodes": [n.to_dict() for n in nodes]}, sort_keys=False))
    return path


# -- the standard DAG ------------------------------------------------------------------

US = "country_us.macro"
FOUNDATION = {
    "real_economy": (
        "Output, labour, housing, the business cycle, trade, fiscal and sentiment series.",
        (
            f"{US}.output",
            f"{US}.labor",
            f"{US}.housing",
            f"{US}.cycle",
            f"{US}.trade",
            f"{US}.fiscal",
            f"{US}.sentiment",
        ),
    ),
    "prices_money": (
        "Inflation, money, policy rates and credit aggregates.",
        (f"{US}.inflation", f"{US}.money", f"{US}.rates", f"{US}.credit", f"{US}.commodities"),
    ),
    "surveys": ("ISM and regional Fed surveys (PMI).", ("country_us.surveys",)),
    "rates_credit": (
        "Treasury curve, money markets and credit spreads.",
        ("financial.yield_curves", "financial.money_markets", "financial.credit"),
    ),
    "equities": (
        "Equity indices, volatility, large caps and their quarterly earnings.",
        ("financial.equities", "financial.large_caps", "firm_*.earnings.*"),
    ),
    "fx_commodities": (
        "Currencies, commodities and crypto.",
        ("financial.fx", "financial.commodities", "financial.crypto"),
    ),
}
CROSS_DOMAIN = {
    "us_economy": ("Hard data with the surveys that lead it.", ("real_economy", "surveys")),
    "monetary_transmission": (
        "Policy and prices with the curve and spreads they move.",
        ("prices_money", "rates_credit"),
    ),
    "global_markets": (
        "Every market together, with the news that moves them.",
        ("equities", "fx_commodities"),
    ),
}
COMPLEX = {
    "macro_financial": (
        "The real economy through the monetary channel.",
        ("us_economy", "monetary_transmission"),
    ),
    "markets_policy": (
        "Markets through the monetary channel.",
        ("monetary_transmission", "global_markets"),
    ),
}
STANDARD_STEPS = (10_000, 12_000, 15_000, 50_000)


def standard_dag(steps: Sequence[int] = STANDARD_STEPS) -> list[DAGNode]:
    """The standard 12-node curriculum: foundation (6) -> cross-domain (3) -> complex (2)
    -> integration (1). `steps` gives the steps of a node in each tier."""
    if len(steps) != 4:
        raise CurriculumError(f"standard_dag needs 4 step counts (one per tier), got {steps}")
    nodes = [
        DAGNode(name, fields, n_steps=steps[0], description=text)
        for name, (text, fields) in FOUNDATION.items()
    ]
    nodes += [
        DAGNode(
            name,
            # news enters with the markets: its fields start fresh, the rest is merged
            fields=("narratives.news",) if name == "global_markets" else (),
            parents=parents,
            n_steps=steps[1],
            description=text,
        )
        for name, (text, parents) in CROSS_DOMAIN.items()
    ]
    nodes += [
        DAGNode(name, parents=parents, n_steps=steps[2], description=text)
        for name, (text, parents) in COMPLEX.items()
    ]
    nodes.append(
        DAGNode(
            "integration",
            parents=tuple(COMPLEX),
            n_steps=steps[3],
            description="Every domain on one canvas: the regime latent learns cross-domain "
            "structure.",
        )
    )
    return _with_parent_fields(validate_dag(nodes))


def _with_parent_fields(nodes: list[DAGNode]) -> list[DAGNode]:
    """Spell out each joined node's fields (its own plus the union of its parents')."""
    fields: dict[str, tuple[str, ...]] = {}
    out = []
    for node in nodes:
        inherited = [p for parent in node.parents for p in fields[parent]]
        own = tuple(dict.fromkeys([*inherited, *node.fields]))
        fields[node.name] = own
        out.append(replace(node, fields=own))
    return out


__all__ = [
    "CurriculumError",
    "DAGNode",
    "dag_from_dict",
    "dump_dag",
    "load_dag",
    "node_from_dict",
    "resolve_fields",
    "standard_dag",
    "tiers",
    "validate_dag",
    "with_steps_per_tier",
]
