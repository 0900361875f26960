"""What a data source provides (InputSpec) and where the model is trained on it (OutputSpec).

A DatasetSpec names a source and maps its keys (column names, series ids) to schema
field paths. Inputs are placed on the canvas; outputs receive loss, each with its own
weight. Validation happens at construction against the default schema (or the one
passed to `validate`), so a typo in a field path fails early with suggestions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from warehouse.schema import Schema, default_schema


@dataclass(frozen=True)
class InputSpec:
    """A column the source provides to the canvas."""

    key: str
    semantic_type: str
    field_path: str
    encoder: object | None = None  # a torch module replacing the default per-field encoder
    transform: Callable | None = None  # applied to the raw values before normalisation
    frequency: str | None = None  # hint, e.g. "daily", "monthly"


@dataclass(frozen=True)
class OutputSpec:
    """A field the model predicts for this source and receives gradient on."""

    key: str
    semantic_type: str
    field_path: str
    loss_weight: float = 1.0
    decoder: object | None = None  # a torch module replacing the default per-field decoder
    loss: Callable | None = None  # elementwise loss(prediction, target); default squared error


@dataclass
class DatasetSpec:
    """A named source with its input and output specs."""

    name: str
    input_specs: list[InputSpec] = field(default_factory=list)
    output_specs: list[OutputSpec] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.input_specs = list(self.input_specs)
        self.output_specs = list(self.output_specs)
        self.validate()

    def validate(self, schema: Schema | None = None) -> None:
        """Raise ValueError on duplicate keys, bad weights, or unknown/latent field paths."""
        if not self.name:
            raise ValueError("DatasetSpec needs a name")
        schema = schema or default_schema()
        for kind, specs in (("input", self.input_specs), ("output", self.output_specs)):
            seen: set[str] = set()
            for spec in specs:
                if spec.key in seen:
                    raise ValueError(f"dataset '{self.name}': duplicate {kind} key '{spec.key}'")
                seen.add(spec.key)
                field_def = schema.field(spec.field_path)  # UnknownFieldError with suggestions
                if field_def.latent:
                    raise ValueError(
                        f"dataset '{self.name}', {kind} '{spec.key}': {spec.field_path} is a "
                        "latent regime field; no source can provide or supervise it"
                    )
        for spec in self.output_specs:
            if not spec.loss_weight > 0:
                raise ValueError(
                    f"dataset '{self.name}', output '{spec.key}': loss_weight must be > 0, "
                    f"got {spec.loss_weight}"
                )

    @property
    def field_paths(self) -> list[str]:
        """Every field path this source touches, inputs first, without repeats."""
        paths = [s.field_path for s in self.input_specs] + [s.field_path for s in self.output_specs]
        return list(dict.fromkeys(paths))

    @property
    def key_to_path(self) -> dict[str, str]:
        """Source key -> field path, over inputs and outputs."""
        return {s.key: s.field_path for s in [*self.input_specs, *self.output_specs]}

    @classmethod
    def from_fields(
        cls,
        name: str,
        keys_to_paths: dict[str, str] | Iterable[tuple[str, str]],
        *,
        schema: Schema | None = None,
    ) -> DatasetSpec:
        """A spec whose every key is both input and output, typed and weighted by the schema."""
        schema = schema or default_schema()
        pairs = list(keys_to_paths.items() if isinstance(keys_to_paths, dict) else keys_to_paths)
        fields = [(key, schema.field(path)) for key, path in pairs]
        return cls(
            name=name,
            input_specs=[
                InputSpec(key, f.semantic_type, f.path, frequency=f.period.value)
                for key, f in fields
            ],
            output_specs=[
                OutputSpec(key, f.semantic_type, f.path, loss_weight=f.loss_weight)
                for key, f in fields
            ],
        )
