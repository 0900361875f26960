"""Plan a curriculum DAG from a goal and dataset profiles: deterministic, or by an LLM.

    from training import build_curriculum, DatasetProfile
    curriculum = build_curriculum(
        goal="Nowcast US inflation from markets and surveys",
        datasets=DatasetProfile.from_warehouse(),
    )
    print(curriculum.to_markdown())
    DAGCurriculumTrainer(nodes=curriculum, ...)     # a Curriculum is a sequence of DAGNodes

Which datasets take part: a dataset enters through the schema fields it covers. Fields
the schema does not know (or latent ones) are ignored with a warning; a dataset with no
usable field is skipped (`Curriculum.skipped` says why); when no dataset is usable,
CurriculumError explains how to add fields to the schema.

The deterministic planner (no LLM configured, or ``provider=False``):

1. Tier 0: the usable fields grouped by sub-domain (the path without its last segment,
   at most three segments: ``country_us.macro.inflation``, ``financial.equities``; every
   firm's earnings form one group). A field covered by several datasets belongs to one
   group, trained on all of them. Groups above `MAX_GROUP_FIELDS` are split. Thin groups
   (fewer than `MIN_GROUP_FIELDS` fields, `MIN_GROUP_ROWS` observations or
   `MIN_FIELD_ROWS` per field, or every field too slow to be seen twice in a canvas
   window, such as quarterly fields on a daily canvas) are merged into their closest
   group, and so are the smallest ones while there are more than `MAX_ROOTS`.
2. Later tiers (nodes ``t<tier>_...``) join the closest pairs, tier by tier, until at
   most `MAX_INTEGRATION_PARENTS` nodes remain. Closeness: causal channels
   (`training.curriculum.CAUSAL_LINKS`) between their fields, a family of the standard
   DAG (`training.dag.FOUNDATION`) in common, shared datasets, a shared domain.
3. The last node, ``integration``, joins what is left: every usable field on one canvas.

Steps grow with the square root of a node's observations plus its field count, and are
rescaled to `total_steps` when given. The same profiles always give the same DAG.

With an LLM (`training.llm.LLMProvider`, passed or from the environment), the model gets
the goal, the profiles and the usable fields, and answers in a strict JSON schema. The
answer is checked (shape, names, `validate_dag`, every field covered by a dataset); an
invalid one gets one repair request listing the errors, then CurriculumError.
"""

from __future__ import annotations

import difflib
import fnmatch
import json
import math
import re
import textwrap
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any, Literal, overload

from canvas.layout import STEPS
from training.curriculum import CAUSAL_LINKS
from training.dag import (
    FOUNDATION,
    NAME,
    CurriculumError,
    DAGNode,
    dump_dag,
    tiers,
    validate_dag,
)
from training.llm import LLMProvider
from training.profile import DatasetProfile
from training.settings import CurriculumSettings
from warehouse.fields import Period
from warehouse.schema import Schema, UnknownFieldError, default_schema

# The deterministic planner's knobs (see the module doc).
DEFAULT_FIELD_ROWS = 120  # observations per field when a profile gives neither rows nor dates
MIN_GROUP_FIELDS = 3
MIN_GROUP_ROWS = 300
MIN_FIELD_ROWS = 40  # mean observations per field of a group
MIN_OBS_PER_WINDOW = 2.0  # observations of a group's fastest field in one canvas window
MAX_GROUP_FIELDS = 48
MAX_ROOTS = 8
MAX_INTEGRATION_PARENTS = 3
STEPS_PER_SQRT_ROW = 20  # n_steps = 20 * sqrt(observations) + 50 * fields, in 100s
STEPS_PER_FIELD = 50
MIN_STEPS, MAX_STEPS = 200, 50_000
MAX_LLM_STEPS = 10_000_000  # a sanity bound on a model's n_steps
DETERMINISTIC = "deterministic"

# The JSON an LLM answers with (strict: every key required, nothing else allowed).
CURRICULUM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["rationale", "nodes"],
    "properties": {
        "rationale": {"type": "string"},
        "nodes": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "fields", "parents", "n_steps", "description"],
                "properties": {
                    "name": {"type": "string"},
                    "fields": {"type": "array", "items": {"type": "string"}},
                    "parents": {"type": "array", "items": {"type": "string"}},
                    "n_steps": {"type": "integer"},
                    "description": {"type": "string"},
                },
            },
        },
    },
}
NODE_KEYS = tuple(CURRICULUM_SCHEMA["properties"]["nodes"]["items"]["required"])


@dataclass(frozen=True)
class Curriculum(Sequence[DAGNode]):
    """A planned curriculum: validated DAG nodes plus why and from what.

    Iterating yields the nodes in topological order, so a Curriculum goes wherever a
    list of DAGNodes does. `skipped` maps unusable datasets to the reason; `warnings`
    lists ignored fields and unused data.
    """

    goal: str
    nodes: tuple[DAGNode, ...]
    rationale: str = ""
    planner: str = DETERMINISTIC
    datasets: tuple[str, ...] = ()
    skipped: Mapping[str, str] = field(default_factory=dict, hash=False)
    warnings: tuple[str, ...] = ()
    schema: Schema | None = field(default=None, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "nodes", tuple(validate_dag(list(self.nodes), self.schema)))
        object.__setattr__(self, "datasets", tuple(self.datasets))
        object.__setattr__(self, "skipped", dict(self.skipped))
        object.__setattr__(self, "warnings", tuple(self.warnings))

    @overload
    def __getitem__(self, index: int) -> DAGNode: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[DAGNode]: ...
    def __getitem__(self, index: int | slice) -> DAGNode | Sequence[DAGNode]:
        return self.nodes[index]

    def __len__(self) -> int:
        return len(self.nodes)

    def __iter__(self) -> Iterator[DAGNode]:
        return iter(self.nodes)

    @property
    def tiers(self) -> dict[str, int]:
        """Node name -> tier (0 for roots)."""
        return tiers(self.nodes)

    @property
    def fields(self) -> list[str]:
        """Every field pattern some node trains, in first-use order."""
        return list(dict.fromkeys(f for node in self.nodes for f in node.fields))

    @property
    def total_steps(self) -> int:
        return sum(node.n_steps for node in self.nodes)

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (JSON / YAML)."""
        return {
            "goal": self.goal,
            "planner": self.planner,
            "rationale": self.rationale,
            "datasets": list(self.datasets),
            "skipped": dict(self.skipped),
            "warnings": list(self.warnings),
            "nodes": [node.to_dict() for node in self.nodes],
        }

    def to_yaml(self, path: str | Path) -> Path:
        """Write the DAG as a YAML file that `training.dag.load_dag` reads back."""
        return dump_dag(self.nodes, path)

    def to_markdown(self) -> str:
        """The plan as Markdown: a summary line, a table of nodes, rationale, skipped data."""
        depth = self.tiers
        lines = [
            f"## Curriculum: {_cell(self.goal)}",
            "",
            f"Planner: {self.planner}; {_count(len(self), 'node')} in "
            f"{_count(max(depth.values()) + 1, 'tier')}, "
            f"{self.total_steps:,} steps; datasets: {', '.join(self.datasets) or 'none'}.",
            "",
            "| tier | node | parents | fields | steps | description |",
            "|---:|---|---|---:|---:|---|",
        ]
        lines += [
            f"| {depth[n.name]} | {n.name} | {', '.join(n.parents) or '-'} | {len(n.fields)} "
            f"| {n.n_steps:,} | {_cell(n.description)} |"
            for n in self.nodes
        ]
        if self.rationale:
            lines += ["", f"**Rationale.** {self.rationale}"]
        if self.skipped:
            lines += ["", "**Skipped datasets.**", ""]
            lines += [f"- {name}: {why}" for name, why in self.skipped.items()]
        if self.warnings:
            lines += ["", "**Warnings.**", ""]
            lines += [f"- {w}" for w in self.warnings]
        return "\n".join(lines) + "\n"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


# -- what the datasets cover -----------------------------------------------------------


@dataclass
class _Coverage:
    """Usable fields with their estimated observations, period and datasets."""

    rows: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    period: dict[str, float] = field(default_factory=dict)
    datasets: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    used: list[DatasetProfile] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def fields(self) -> list[str]:
        return sorted(self.rows)


def _coverage(profiles: Sequence[DatasetProfile], schema: Schema) -> _Coverage:
    out = _Coverage()
    for profile in profiles:
        paths, problems = profile.resolve(schema)
        if not profile.fields:
            out.skipped[profile.name] = (
                "declares no fields; list the schema field paths it provides, "
                "e.g. DatasetProfile(..., fields=['country_us.macro.inflation'])"
            )
            continue
        if not paths:
            out.skipped[profile.name] = "no field of it is in the schema: " + "; ".join(
                f"{p!r}: {why}" for p, why in problems.items()
            )
            continue
        if profile.rows == 0:
            out.skipped[profile.name] = "it holds no observations (rows=0)"
            continue
        out.used.append(profile)
        out.warnings += [
            f"dataset '{profile.name}': ignored field {p!r}: {why}" for p, why in problems.items()
        ]
        periods = {p: _period_days(profile, p, schema) for p in paths}
        for path, rows in _field_rows(profile, periods).items():
            out.rows[path] += rows
            out.period[path] = min(out.period.get(path, math.inf), periods[path])
            out.datasets[path].append(profile.name)
    return out


def _period_days(profile: DatasetProfile, path: str, schema: Schema) -> float:
    """How often the dataset observes `path`: measured, else the dataset's, else declared."""
    frequency = profile.field_frequencies.get(path) or profile.frequency
    return Period(frequency).days if frequency else schema.field(path).period.days


def _field_rows(profile: DatasetProfile, periods: Mapping[str, float]) -> dict[str, float]:
    """Estimated observations per field: `rows` shared in proportion to each field's
    frequency, else the date range over its period, else DEFAULT_FIELD_ROWS."""
    if profile.rows is not None:
        weights = {p: 1 / days for p, days in periods.items()}
        total = sum(weights.values())
        return {p: profile.rows * w / total for p, w in weights.items()}
    if profile.start and profile.end:
        span = (date.fromisoformat(profile.end) - date.fromisoformat(profile.start)).days
        return {p: 1 + span / days for p, days in periods.items()}
    return dict.fromkeys(periods, float(DEFAULT_FIELD_ROWS))


def _no_usable_dataset(goal: str, coverage: _Coverage, schema: Schema) -> CurriculumError:
    reasons = "\n".join(f"  - {name}: {why}" for name, why in coverage.skipped.items())
    domains = sorted({f.domain for f in schema} | {t.domain for t in schema.templates})
    return CurriculumError(
        f"no dataset can be planned for the goal {goal!r}:\n{reasons}\n"
        "A dataset takes part through the schema fields it provides; this schema has "
        f"{len(schema)} fields in the domains {', '.join(domains)}. If your data is not "
        "there, declare its fields (Field(path, semantic_type, unit, period) rows in "
        "warehouse/catalog.py, or build_curriculum(..., schema=Schema([...]))) and list "
        "them in DatasetProfile(fields=[...])."
    )


# -- the deterministic planner ---------------------------------------------------------


@dataclass(frozen=True)
class _Group:
    """Fields trained together, with the sub-domain keys they come from."""

    keys: tuple[str, ...]
    fields: frozenset[str]


@dataclass(frozen=True)
class _Node:
    """A planned node while the DAG grows."""

    name: str
    fields: frozenset[str]
    tier: int = 0


class _Planner:
    """Grouping, affinities, names and steps over one coverage."""

    def __init__(self, coverage: _Coverage, settings: CurriculumSettings) -> None:
        self.coverage = coverage
        self.window_days = settings.T * STEPS.get(settings.step, STEPS["1mo"])
        self.window = f"{settings.T} x {settings.step}"
        self.links: dict[str, set[tuple[int, int]]] = defaultdict(set)
        self.family: dict[str, str] = {}
        for path in coverage.fields:
            for i, link in enumerate(CAUSAL_LINKS):
                for side, pattern in enumerate(link):
                    if _matches(pattern, path):
                        self.links[path].add((i, side))
            for name, (_, patterns) in FOUNDATION.items():
                if any(_matches(p, path) for p in patterns):
                    self.family.setdefault(path, name)
        slugs = _slugs(sorted({_group_key(p) for p in coverage.fields}))
        self.subdomain = {p: slugs[_group_key(p)] for p in coverage.fields}
        self.family_label = {p: self.family.get(p, self.subdomain[p]) for p in coverage.fields}
        self.taken = {"integration"}
        self.notes: list[str] = []

    # measures of a field set
    def rows(self, fields: frozenset[str]) -> float:
        return sum(self.coverage.rows[f] for f in fields)

    def datasets(self, fields: frozenset[str]) -> list[str]:
        return sorted({d for f in fields for d in self.coverage.datasets[f]})

    def families(self, a: frozenset[str], b: frozenset[str]) -> list[str]:
        """Standard-DAG families with fields in both sets."""
        return sorted({self.family.get(f) for f in a} & {self.family.get(f) for f in b} - {None})

    def channels(self, a: frozenset[str], b: frozenset[str]) -> list[str]:
        """Causal links with a cause in one set and its effect in the other."""
        sides_a = set().union(*(self.links[f] for f in a))
        sides_b = set().union(*(self.links[f] for f in b))
        return [
            " -> ".join(CAUSAL_LINKS[i])
            for i in range(len(CAUSAL_LINKS))
            if ((i, 0) in sides_a and (i, 1) in sides_b)
            or ((i, 1) in sides_a and (i, 0) in sides_b)
        ]

    def affinity(self, a: frozenset[str], b: frozenset[str]) -> int:
        """How related two field sets are: causal channels (3 each), a standard-DAG
        family in common (2), datasets in common (1 each), a shared domain (2, or 1 for
        the first segment only)."""
        shared_domain = {_domain(f, 2) for f in a} & {_domain(f, 2) for f in b}
        shared_root = {_domain(f, 1) for f in a} & {_domain(f, 1) for f in b}
        return (
            3 * len(self.channels(a, b))
            + 2 * bool(self.families(a, b))
            + len(set(self.datasets(a)) & set(self.datasets(b)))
            + (2 if shared_domain else 1 if shared_root else 0)
        )

    def why_joined(self, a: frozenset[str], b: frozenset[str]) -> str:
        channels = self.channels(a, b)
        if channels:
            return "causal channel(s) " + "; ".join(channels)
        families = self.families(a, b)
        if families:
            return "the standard DAG's " + ", ".join(families) + " group"
        shared = sorted(set(self.datasets(a)) & set(self.datasets(b)))
        if shared:
            return "shared dataset(s) " + ", ".join(shared)
        return "a shared domain"

    def thin(self, group: _Group) -> str | None:
        """Why a group is too thin to train alone, or None."""
        rows, n = self.rows(group.fields), len(group.fields)
        if n < MIN_GROUP_FIELDS:
            return f"{n} field(s)"
        if rows < MIN_GROUP_ROWS or rows / n < MIN_FIELD_ROWS:
            return f"~{rows:,.0f} observations of {n} fields"
        fastest = min(self.coverage.period[f] for f in group.fields)
        if self.window_days / fastest < MIN_OBS_PER_WINDOW:
            return f"too slow to be seen twice in a {self.window} canvas window"
        return None

    # tier 0
    def groups(self) -> list[_Group]:
        """Fields by sub-domain, huge groups split, thin groups merged."""
        by_key: dict[str, set[str]] = defaultdict(set)
        for path in self.coverage.fields:
            by_key[_group_key(path)].add(path)
        groups: list[_Group] = []
        for key in sorted(by_key):
            paths = sorted(by_key[key])
            size = math.ceil(len(paths) / math.ceil(len(paths) / MAX_GROUP_FIELDS))
            groups += [
                _Group((key,), frozenset(paths[i : i + size])) for i in range(0, len(paths), size)
            ]
        while len(groups) > 1:
            thin = [(g, why) for g in groups if (why := self.thin(g))]
            if not thin and len(groups) > MAX_ROOTS:
                thin = [(g, f"more than {MAX_ROOTS} groups") for g in groups]
            if not thin:
                break
            group, why = min(
                thin, key=lambda t: (len(t[0].fields), self.rows(t[0].fields), t[0].keys)
            )
            others = [g for g in groups if g is not group]
            target = min(
                others,
                key=lambda o: (
                    len(o.fields) + len(group.fields) > MAX_GROUP_FIELDS,
                    -self.affinity(group.fields, o.fields),
                    len(o.fields),
                    o.keys,
                ),
            )
            self.notes.append(f"{', '.join(group.keys)} ({why}) into {', '.join(target.keys)}")
            keys = tuple(dict.fromkeys(target.keys + group.keys))
            merged = _Group(keys, target.fields | group.fields)
            groups = [merged if g is target else g for g in others]
        return groups

    # nodes
    def node(self, fields: frozenset[str], tier: int = 0, name: str = "") -> _Node:
        """A node for `fields`, named after their sub-domains (tier 0) or ``t<tier>_`` and
        their standard-DAG families (joins), most fields first; the other kind of label
        when that name is taken."""
        if not name:
            kinds = (self.subdomain, self.family_label)
            prefix = f"t{tier}_" if tier else ""
            order = kinds[::-1] if tier else kinds
            candidates = [prefix + _name(fields, labels) for labels in order]
            name = next((n for n in candidates if n not in self.taken), candidates[0])
            base, i = name, 2
            while name in self.taken:
                name, i = f"{base}_{i}", i + 1
        self.taken.add(name)
        return _Node(name, fields, tier)

    def steps(self, fields: frozenset[str]) -> int:
        raw = STEPS_PER_SQRT_ROW * math.sqrt(self.rows(fields)) + STEPS_PER_FIELD * len(fields)
        return int(min(MAX_STEPS, max(MIN_STEPS, math.ceil(raw / 100) * 100)))

    def describe(self, fields: frozenset[str]) -> str:
        periods = {self.coverage.period[f] for f in fields}
        names = [p.value for p in Period if p.days in periods]
        return (
            f"{len(fields)} fields ({', '.join(names)}) from {', '.join(self.datasets(fields))}, "
            f"~{self.rows(fields):,.0f} observations"
        )

    def dag_node(self, node: _Node, parents: Sequence[_Node], text: str) -> DAGNode:
        return DAGNode(
            node.name,
            tuple(sorted(node.fields)),
            tuple(p.name for p in parents),
            self.steps(node.fields),
            description=f"{text}: {self.describe(node.fields)}.",
        )


def _matches(pattern: str, path: str) -> bool:
    if any(c in pattern for c in "*?["):
        return fnmatch.fnmatchcase(path, pattern)
    return path == pattern or path.startswith(pattern + ".")


def _domain(path: str, depth: int) -> str:
    segments = path.split(".")
    if segments[0].startswith("firm_"):
        segments[0] = "firm"
    return ".".join(segments[:depth])


def _group_key(path: str) -> str:
    """The sub-domain of a field: its path without the last segment, at most 3 segments."""
    segments = _domain(path, 99).split(".")
    return ".".join(segments[:-1][:3]) if len(segments) > 1 else segments[0]


def _slugs(keys: Sequence[str]) -> dict[str, str]:
    """Short unique names for sub-domain keys: the shortest unique tail of segments."""
    out = {}
    for key in keys:
        segments = key.split(".")
        for k in range(1, len(segments) + 1):
            tail = segments[-k:]
            if not any(o != key and o.split(".")[-k:] == tail for o in keys):
                break
        out[key] = re.sub(r"[^a-z0-9]+", "_", "_".join(tail).lower()).strip("_") or "fields"
    return out


def _name(fields: frozenset[str], labels: Mapping[str, str]) -> str:
    """A node name from the labels of its fields, most frequent first."""
    counts: dict[str, int] = defaultdict(int)
    for f in fields:
        counts[labels[f]] += 1
    parts = sorted(counts, key=lambda label: (-counts[label], label))
    name = "_".join(parts)
    if len(name) > 40:
        name = f"{parts[0]}_{parts[1]}_and_{len(parts) - 2}_more"
    name = name[:56].strip("_")
    return name if name[:1].isalpha() else f"n_{name}"


def _deterministic(coverage: _Coverage, settings: CurriculumSettings) -> tuple[list[DAGNode], str]:
    plan = _Planner(coverage, settings)
    nodes: list[DAGNode] = []
    frontier: list[_Node] = []
    for group in plan.groups():
        node = plan.node(group.fields)
        nodes.append(plan.dag_node(node, (), ", ".join(group.keys)))
        frontier.append(node)
    n_roots = len(frontier)
    while len(frontier) > MAX_INTEGRATION_PARENTS:
        pairs = sorted(
            (-plan.affinity(a.fields, b.fields), len(a.fields | b.fields), a.name, b.name, a, b)
            for i, a in enumerate(frontier)
            for b in frontier[i + 1 :]
            if plan.affinity(a.fields, b.fields) > 0
        )
        paired: set[str] = set()
        joined: list[_Node] = []
        for *_, a, b in pairs:
            if a.name in paired or b.name in paired:
                continue
            paired |= {a.name, b.name}
            node = plan.node(a.fields | b.fields, 1 + max(a.tier, b.tier))
            why = plan.why_joined(a.fields, b.fields)
            nodes.append(plan.dag_node(node, (a, b), f"Joins {a.name} and {b.name} ({why})"))
            joined.append(node)
        if not joined:
            break
        frontier = joined + [n for n in frontier if n.name not in paired]
    integrated = len(frontier) > 1
    if integrated:
        node = plan.node(frozenset(coverage.fields), name="integration")
        nodes.append(plan.dag_node(node, frontier, "Every usable field on one canvas"))
    joins = len(nodes) - n_roots - integrated
    rationale = (
        f"Deterministic plan from {len(coverage.used)} dataset(s) "
        f"({', '.join(p.name for p in coverage.used)}): {len(coverage.fields)} usable fields in "
        f"{n_roots} tier-0 group(s) by sub-domain, {joins} pairwise join(s) of the closest "
        "nodes (causal channels, standard-DAG families, shared datasets and domains)"
        + (", then one integration node with every field" if integrated else "")
        + ". Steps grow with the square root of a node's observations plus its field count. "
        "The goal is recorded but not interpreted: every usable field is trained."
    )
    if plan.notes:
        rationale += " Thin groups merged: " + "; ".join(plan.notes) + "."
    return nodes, rationale


# -- the LLM planner -------------------------------------------------------------------

SYSTEM_PROMPT = """\
You design training curricula for a world model that learns from a canvas of schema fields \
(economic, financial or other time series). A curriculum is a DAG of nodes. Each node trains \
one canvas holding its `fields` for `n_steps` optimiser steps, starting from its parents' \
weights: no parent = fresh weights, one parent = a copy (fork), several parents = the \
element-wise average of their weights (join).
A good curriculum starts with small coherent groups of related fields (tier 0), joins \
related groups along causal channels in later tiers, and ends with one integration node \
holding every field the goal needs. Give more steps to nodes with more data and fields.
Rules: node names match ^[a-z][a-z0-9_]{0,62}$ and are unique; parents are names of other \
nodes; no cycles; `fields` lists exact paths from `available_fields` only (no other path, no \
pattern); a join node lists its parents' fields plus any new ones; n_steps is a positive \
integer. Explain the design in `rationale`. Answer with JSON only, matching the schema."""


def _prompt(
    goal: str,
    coverage: _Coverage,
    schema: Schema,
    settings: CurriculumSettings,
    total_steps: int | None,
) -> str:
    lines = []
    for path in coverage.fields:
        spec = schema.field(path)
        semantic = textwrap.shorten(spec.semantic_type, 120, placeholder="…")
        datasets = ", ".join(coverage.datasets[path])
        lines.append(f"{path} | {spec.period.value} | {spec.unit} | {semantic} | {datasets}")
    channels = [
        f"{cause} -> {effect}"
        for cause, effect in CAUSAL_LINKS
        if any(_matches(cause, p) for p in coverage.fields)
        and any(_matches(effect, p) for p in coverage.fields)
    ]
    datasets = [
        {k: v for k, v in p.to_dict().items() if k not in ("fields", "field_frequencies")}
        | {"n_usable_fields": sum(p.name in coverage.datasets[f] for f in coverage.fields)}
        for p in coverage.used
    ]
    payload = {
        "goal": goal,
        "datasets": datasets,
        "available_fields": {
            "columns": "path | period | unit | meaning | datasets",
            "rows": lines,
        },
        "causal_channels": channels,
        "canvas": {"T": settings.T, "step": settings.step},
        "total_steps_budget": total_steps,
    }
    return json.dumps(payload, indent=1, ensure_ascii=False)


def _normalise_name(name: str) -> str:
    """A model's node name in the allowed form (lower case, [a-z0-9_], letter first)."""
    text = re.sub(r"[^a-z0-9_]+", "_", name.strip().lower()).strip("_")
    if text and not text[0].isalpha():
        text = f"n_{text}"
    return text[:63]


def _parse_answer(answer: Any, coverage: _Coverage, schema: Schema) -> tuple[list[DAGNode], str]:
    """DAG nodes and rationale from a model's JSON; CurriculumError lists every problem."""
    if not isinstance(answer, dict):
        raise CurriculumError(f"the answer must be a JSON object, got {type(answer).__name__}")
    errors = [f"unexpected key {k!r}" for k in sorted(set(answer) - {"rationale", "nodes"})]
    rationale, raw_nodes = answer.get("rationale"), answer.get("nodes")
    if not isinstance(rationale, str):
        errors.append("'rationale' must be a string")
    if not isinstance(raw_nodes, list) or not raw_nodes:
        raise CurriculumError("; ".join([*errors, "'nodes' must be a non-empty list"]))
    covered = set(coverage.fields)
    names = {
        raw["name"]: _normalise_name(raw["name"])
        for raw in raw_nodes
        if isinstance(raw, dict) and isinstance(raw.get("name"), str)
    }
    if len(set(names.values())) != len(names):
        errors.append(f"node names must be unique: {sorted(names)}")
    nodes = []
    for i, raw in enumerate(raw_nodes, 1):
        where = f"node {i}"
        if not isinstance(raw, dict):
            errors.append(f"{where} must be an object")
            continue
        missing = [k for k in NODE_KEYS if k not in raw]
        extra = sorted(set(raw) - set(NODE_KEYS))
        if missing or extra:
            errors.append(f"{where}: missing keys {missing}, unexpected keys {extra}")
            continue
        name = names.get(raw["name"]) if isinstance(raw["name"], str) else None
        if not name or not NAME.match(name):
            errors.append(f"{where}: name {raw['name']!r} must match {NAME.pattern}")
            continue
        where = f"node '{name}'"
        lists = [raw["fields"], raw["parents"]]
        if not all(isinstance(v, list) and all(isinstance(s, str) for s in v) for v in lists):
            errors.append(f"{where}: fields and parents must be lists of strings")
            continue
        steps = raw["n_steps"]
        if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_LLM_STEPS:
            errors.append(
                f"{where}: n_steps must be an integer in 1..{MAX_LLM_STEPS}, got {steps!r}"
            )
            continue
        problems = (_field_problem(where, p, covered, schema) for p in raw["fields"])
        errors += [problem for problem in problems if problem]
        parents = [names.get(p, _normalise_name(p)) for p in raw["parents"]]
        nodes.append(
            DAGNode(
                name=name,
                fields=tuple(raw["fields"]),
                parents=tuple(parents),
                n_steps=steps,
                description=str(raw["description"]),
            )
        )
    if errors:
        raise CurriculumError("\n".join(f"- {e}" for e in errors))
    return validate_dag(nodes, schema), rationale


def _field_problem(where: str, pattern: str, covered: set[str], schema: Schema) -> str | None:
    """Why `pattern` is not a field the datasets cover (None when it is)."""
    try:
        selected = {f.path for f in schema.project(pattern) if not f.latent}
    except UnknownFieldError:
        selected = set()
    if selected and selected <= covered:
        return None
    outside = sorted(selected - covered)
    close = difflib.get_close_matches(pattern, sorted(covered), n=3, cutoff=0.5)
    hint = f"; did you mean: {', '.join(close)}?" if close else ""
    what = f"selects {outside[:3]} that no dataset covers" if outside else "is not a field"
    return f"{where}: field {pattern!r} {what}; use paths from available_fields{hint}"


def _llm(
    goal: str,
    coverage: _Coverage,
    provider: LLMProvider,
    schema: Schema,
    settings: CurriculumSettings,
    total_steps: int | None,
) -> tuple[list[DAGNode], str]:
    return provider.ask_json(
        SYSTEM_PROMPT,
        _prompt(goal, coverage, schema, settings, total_steps),
        CURRICULUM_SCHEMA,
        lambda answer: _parse_answer(answer, coverage, schema),
        name="curriculum",
    )


# -- the entry point -------------------------------------------------------------------


def build_curriculum(
    goal: str,
    datasets: Sequence[DatasetProfile] | DatasetProfile,
    *,
    provider: LLMProvider | Literal[False] | None = None,
    schema: Schema | None = None,
    total_steps: int | None = None,
    settings: CurriculumSettings | None = None,
) -> Curriculum:
    """Plan a curriculum DAG for `goal` from dataset profiles (see the module doc).

    `provider`: an LLMProvider; None: `LLMProvider.from_env()` (the deterministic planner
    when the environment configures none); False: the deterministic planner.
    `total_steps`: rescale the nodes' steps to this sum. `settings`: the canvas grid the
    nodes will train on (T and step decide which slow fields are too sparse to train
    alone). Raises CurriculumError when no dataset is usable or the LLM's plan stays
    invalid, LLMError when the LLM endpoint fails.
    """
    if not isinstance(goal, str) or not goal.strip():
        raise CurriculumError("build_curriculum needs a goal (a sentence)")
    profiles = [datasets] if isinstance(datasets, DatasetProfile) else list(datasets)
    if not profiles:
        raise CurriculumError("build_curriculum needs at least one DatasetProfile")
    for i, profile in enumerate(profiles, 1):
        if not isinstance(profile, DatasetProfile):
            raise CurriculumError(
                f"dataset {i} must be a DatasetProfile, got {type(profile).__name__}"
            )
    names = [p.name for p in profiles]
    if len(set(names)) != len(names):
        raise CurriculumError(f"dataset names must be unique, got {names}")
    if total_steps is not None and (isinstance(total_steps, bool) or total_steps < 1):
        raise CurriculumError(f"total_steps must be a positive integer, got {total_steps!r}")
    schema = schema or default_schema()
    settings = settings or CurriculumSettings()
    coverage = _coverage(profiles, schema)
    if not coverage.used:
        raise _no_usable_dataset(goal, coverage, schema)
    if provider is None:
        provider = LLMProvider.from_env()
    if provider:
        nodes, rationale = _llm(goal, coverage, provider, schema, settings, total_steps)
        planner = provider.name
        unused = sorted(set(coverage.fields) - _trained(nodes, schema))
        if unused:
            coverage.warnings.append(f"{len(unused)} covered field(s) not in any node: {unused}")
    else:
        nodes, rationale = _deterministic(coverage, settings)
        planner = DETERMINISTIC
    if total_steps is not None:
        nodes = _rescale(nodes, total_steps)
    return Curriculum(
        goal=goal,
        nodes=tuple(nodes),
        rationale=rationale,
        planner=planner,
        datasets=tuple(p.name for p in coverage.used),
        skipped=coverage.skipped,
        warnings=tuple(coverage.warnings),
        schema=schema,
    )


def _trained(nodes: Sequence[DAGNode], schema: Schema) -> set[str]:
    return {f.path for n in nodes for f in schema.project(*n.fields) if not f.latent}


def _rescale(nodes: list[DAGNode], total: int) -> list[DAGNode]:
    """Steps scaled to sum to `total` (largest remainder; every node keeps >= 1 step)."""
    if total < len(nodes):
        raise CurriculumError(f"total_steps={total} is fewer than the {len(nodes)} nodes")
    spare = total - len(nodes)
    weights = [n.n_steps for n in nodes]
    shares = [spare * w / sum(weights) for w in weights]
    steps = [1 + math.floor(s) for s in shares]
    by_remainder = sorted(range(len(nodes)), key=lambda i: (steps[i] - 1 - shares[i], i))
    for i in by_remainder[: total - sum(steps)]:
        steps[i] += 1
    return [replace(n, n_steps=s) for n, s in zip(nodes, steps, strict=True)]


__all__ = ["CURRICULUM_SCHEMA", "Curriculum", "build_curriculum"]
