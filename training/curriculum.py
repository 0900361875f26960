"""The sequential curriculum: phases over growing canvases.

    config = CurriculumConfig(phases=[
        PhaseConfig(domains=["country_us.macro", "financial"], canvas_size=64, n_steps=2000),
        PhaseConfig(domains=[["country_us.macro", "country_us.surveys"], "financial"],
                    canvas_size=128, n_steps=2000),
        PhaseConfig(domains=["country_us", "financial"], canvas_size=256, n_steps=4000),
    ])
    CurriculumTrainer(config).run()

Each entry of a phase's `domains` is a field pattern or a list of patterns. How the
entries become canvases is the phase's `coupling` (default by position):

* ``independent`` (first phase): every entry trains alone on its own small canvas;
* ``adjacent`` (middle phases): entries linked by a causal channel (`CAUSAL_LINKS`, or
  sharing fields) are merged onto one canvas, the rest stay alone;
* ``joint`` (last phase): every entry on one canvas.

A list entry is always one canvas. The phases compile to a DAG (`phases_to_dag`): a
canvas of phase k starts from the canvases of phase k-1 it shares fields with (all of
them when it shares none), so weights carry across phases while the canvas grows:
encoders and decoders of known fields are reused (averaged when several parents know
a field), new fields start fresh, the backbone is averaged (see `training.merge`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from training.dag import CurriculumError, DAGNode, resolve_fields, validate_dag
from training.dag_trainer import CurriculumResult, DAGCurriculumTrainer, default_curriculum_dir
from training.settings import CurriculumSettings
from warehouse.schema import Schema, default_schema

COUPLINGS = ("independent", "adjacent", "joint")

# Causal channels between domains: (cause, effect) patterns. Two phase entries are
# adjacent when one selects fields of a link's cause and the other of its effect.
CAUSAL_LINKS: tuple[tuple[str, str], ...] = (
    ("country_us.surveys", "country_us.macro.output"),
    ("country_us.surveys", "country_us.macro.labor"),
    ("country_us.macro.inflation", "country_us.macro.rates"),
    ("country_us.macro.rates", "financial.yield_curves"),
    ("country_us.macro.rates", "financial.money_markets"),
    ("country_us.macro.credit", "financial.credit"),
    ("financial.commodities", "country_us.macro.inflation"),
    ("financial.yield_curves", "financial.equities"),
    ("financial.fx", "financial.commodities"),
    ("financial.equities", "financial.large_caps"),
    ("financial.equities", "financial.crypto"),
    ("narratives.news", "financial.equities"),
    ("firm_*.earnings.*", "financial.large_caps"),
)

Domain = str | Sequence[str]


@dataclass
class PhaseConfig:
    """One phase: which domains, on how large a canvas, for how many steps per canvas."""

    domains: list[Domain]
    canvas_size: int | None = None
    n_steps: int = 1000
    coupling: str | None = None  # "independent" | "adjacent" | "joint"; None: by position
    name: str | None = None

    def __post_init__(self) -> None:
        if not self.domains:
            raise CurriculumError("a phase needs at least one domain")
        self.domains = [d if isinstance(d, str) else list(d) for d in self.domains]
        for d in self.domains:
            if not isinstance(d, str) and not (d and all(isinstance(p, str) for p in d)):
                raise CurriculumError(f"a domain is a pattern or a list of patterns, got {d!r}")
        if self.coupling is not None and self.coupling not in COUPLINGS:
            raise CurriculumError(f"coupling must be one of {COUPLINGS}, got {self.coupling!r}")
        if self.n_steps < 1:
            raise CurriculumError(f"n_steps must be >= 1, got {self.n_steps}")


@dataclass
class CurriculumConfig:
    """Phases plus the settings every canvas shares (backbone, grid, optimiser)."""

    phases: list[PhaseConfig]
    settings: CurriculumSettings = field(default_factory=CurriculumSettings)

    def __post_init__(self) -> None:
        if not self.phases:
            raise CurriculumError("a curriculum needs at least one phase")

    @classmethod
    def from_yaml(cls, path: str | Path) -> CurriculumConfig:
        """Read a YAML file with `phases` (list of PhaseConfig mappings) and `settings`."""
        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as error:
            raise CurriculumError(f"{path}: not valid YAML: {error}") from None
        return cls.from_dict(raw, where=str(path))

    @classmethod
    def from_dict(cls, raw: Any, where: str = "curriculum") -> CurriculumConfig:
        if not isinstance(raw, Mapping) or not isinstance(raw.get("phases"), list):
            raise CurriculumError(f"{where}: expected a mapping with a 'phases' list")
        unknown = sorted(set(raw) - {"phases", "settings"})
        if unknown:
            raise CurriculumError(f"{where}: unknown keys {unknown}; expected phases, settings")
        phases = []
        known = set(PhaseConfig.__dataclass_fields__)
        for i, phase in enumerate(raw["phases"], 1):
            if not isinstance(phase, Mapping) or set(phase) - known:
                extra = sorted(set(phase) - known) if isinstance(phase, Mapping) else phase
                raise CurriculumError(f"{where}: phase {i}: unexpected {extra}")
            phases.append(PhaseConfig(**phase))
        settings = CurriculumSettings.from_dict(raw.get("settings"), f"{where}: settings")
        return cls(phases=phases, settings=settings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "settings": self.settings.to_dict(),
            "phases": [{k: v for k, v in vars(p).items() if v is not None} for p in self.phases],
        }

    def to_dag(self, schema: Schema | None = None) -> list[DAGNode]:
        """The DAG these phases compile to (see the module doc)."""
        return phases_to_dag(self.phases, schema)


def phases_to_dag(phases: Sequence[PhaseConfig], schema: Schema | None = None) -> list[DAGNode]:
    """Compile phases into DAG nodes named ``p<phase>_<domains>``."""
    schema = schema or default_schema()
    nodes: list[DAGNode] = []
    previous: list[tuple[DAGNode, set[str]]] = []
    for k, phase in enumerate(phases, 1):
        coupling = phase.coupling or (
            "independent" if k == 1 else "joint" if k == len(phases) else "adjacent"
        )
        current = []
        for group in _canvases(phase.domains, coupling, schema):
            paths = _paths(group, schema)
            sharing = [node.name for node, known in previous if known & paths]
            parents = sharing or [node.name for node, _ in previous]
            node = DAGNode(
                name=_node_name(k, group, {n.name for n in nodes}),
                fields=tuple(group),
                parents=tuple(parents),
                n_steps=phase.n_steps,
                canvas_size=phase.canvas_size,
                description=f"phase {k}"
                + (f" ({phase.name})" if phase.name else "")
                + f", {coupling}",
            )
            nodes.append(node)
            current.append((node, paths))
        previous = current
    return validate_dag(nodes, schema)


def _paths(patterns: Sequence[str], schema: Schema) -> set[str]:
    """Concrete paths plus template paths a pattern keeps (firm_* earnings)."""
    projected = schema.project(*patterns)
    return set(resolve_fields(patterns, schema)) | {t.path for t in projected.templates}


def _canvases(domains: Sequence[Domain], coupling: str, schema: Schema) -> list[list[str]]:
    entries = [[d] if isinstance(d, str) else list(d) for d in domains]
    if coupling == "joint":
        return [list(dict.fromkeys(p for e in entries for p in e))]
    if coupling == "independent":
        return entries
    # adjacent: connected components of "shares a field or a causal link"
    paths = [_paths(e, schema) for e in entries]
    links = [(_paths([a], schema), _paths([b], schema)) for a, b in CAUSAL_LINKS]
    parent = list(range(len(entries)))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i in range(len(entries)):
        for j in range(i + 1, len(entries)):
            linked = paths[i] & paths[j] or any(
                (paths[i] & a and paths[j] & b) or (paths[i] & b and paths[j] & a) for a, b in links
            )
            if linked:
                parent[root(j)] = root(i)
    groups: dict[int, list[str]] = {}
    for i, entry in enumerate(entries):
        groups.setdefault(root(i), []).extend(entry)
    return [list(dict.fromkeys(g)) for g in groups.values()]


def _node_name(phase: int, patterns: Sequence[str], taken: set[str]) -> str:
    slug = "_".join(re.sub(r"[^a-z0-9]+", "_", p.lower()).strip("_") for p in patterns)
    slug = re.sub(r"country_us_", "us_", slug)
    base = f"p{phase}_{slug}"[:56].rstrip("_")
    name, i = base, 2
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    return name


class CurriculumTrainer:
    """Trains a CurriculumConfig's phases in order; weights carry from phase to phase.

    `data_sources` as in `DAGCurriculumTrainer` (default: the default warehouse).
    """

    def __init__(
        self,
        config: CurriculumConfig,
        data_sources: Any = None,
        *,
        out_dir: str | Path | None = None,
        transformer: Any = None,
        progress: bool = True,
    ) -> None:
        self.config = config
        self.trainer = DAGCurriculumTrainer(
            config.to_dag(),
            data_sources,
            settings=config.settings,
            out_dir=out_dir or default_curriculum_dir("phases"),
            transformer=transformer,
            progress=progress,
        )
        self.nodes = self.trainer.nodes

    def run(self) -> CurriculumResult:
        """Train every phase; returns each canvas's result (nodes named p<phase>_...)."""
        return self.trainer.run()
