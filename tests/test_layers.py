"""The layer rule of DESIGN.md ("Layers") and no import cycle, checked on the source.

    warehouse/                 imports nothing of the others
    ingest/, canvas/           import warehouse only (not each other)
    training/                  imports canvas, ingest, warehouse
    dagster_defs/              on top: imported by none of the others

Every import counts: at module level or inside a function, absolute or relative,
`importlib.import_module("...")` with a literal name, and the modules named in a
package's table of names it loads on first use (`canvas._LAZY`, `training._WHERE`).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ALLOWED = {
    "warehouse": {"warehouse"},
    "ingest": {"ingest", "warehouse"},
    "canvas": {"canvas", "warehouse"},
    "training": {"training", "canvas", "ingest", "warehouse"},
    "dagster_defs": {"dagster_defs", "training", "canvas", "ingest", "warehouse"},
}


@dataclass(frozen=True)
class Import:
    """One import statement of `module` that reaches `target`, a module of the layers."""

    module: str
    target: str
    line: int
    text: str

    def __str__(self) -> str:
        return f"{self.module} (line {self.line}: {self.text})"


def module_files(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the layers under `root`."""
    modules = {}
    for package in ALLOWED:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module an ImportFrom names (resolving `from .x import y`)."""
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of `name` that is a module of the layers."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        if prefix in modules:
            return prefix
    return None


def _imported_names(module: str, path: Path) -> list[tuple[str, int, str]]:
    """(absolute name, line, source text) of every import in the file at `path`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno, ast.unparse(node)) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, is_package, node)
            # `from package import name` imports the submodule when `name` is one
            found += [(f"{base}.{a.name}", node.lineno, ast.unparse(node)) for a in node.names]
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", getattr(node.func, "attr", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.args[0].value, node.lineno, ast.unparse(node)))
    if is_package:  # a table of names loaded on first use: {name: "package.module"}
        for node in tree.body:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
                values = node.value.values
                if values and all(
                    isinstance(v, ast.Constant) and isinstance(v.value, str) for v in values
                ):
                    text = ast.unparse(node.targets[0])
                    found += [(v.value, v.lineno, f"{text}: {v.value!r}") for v in values]
    return found


def collect_imports(root: Path) -> list[Import]:
    """Every import between modules of the layers under `root`, self-imports left out."""
    modules = module_files(root)
    imports: dict[tuple[str, str, int], Import] = {}
    for module, path in modules.items():
        for name, line, text in _imported_names(module, path):
            target = _resolve(name, modules)
            if target is not None and target != module:
                imports.setdefault((module, target, line), Import(module, target, line, text))
    return list(imports.values())


def layer_violations(imports: list[Import]) -> list[str]:
    """Each import that goes up or sideways against ALLOWED."""
    return [
        f"{i} imports {i.target}: {i.module.split('.')[0]}/ may import only "
        f"{', '.join(sorted(ALLOWED[i.module.split('.')[0]]))}"
        for i in imports
        if i.target.split(".")[0] not in ALLOWED[i.module.split(".")[0]]
    ]


def import_cycles(imports: list[Import]) -> list[str]:
    """One cycle (each step with its import) per strongly connected group of modules."""
    edges: dict[str, dict[str, Import]] = {}
    for i in imports:
        edges.setdefault(i.module, {}).setdefault(i.target, i)
    # Tarjan's strongly connected components, iteratively
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, {}))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    if len(group) > 1:
                        groups.append(sorted(group))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(edges.get(child, {})))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return [_describe_cycle(group, edges) for group in sorted(groups)]


def _describe_cycle(group: list[str], edges: dict[str, dict[str, Import]]) -> str:
    """A shortest cycle through the group's first module, as its chain of imports, and
    the group's other modules."""
    members = set(group)
    start = group[0]
    previous: dict[str, str] = {}
    frontier = [start]
    while start not in previous:  # breadth first within the group, back to `start`
        following = []
        for node in frontier:
            for child in sorted(edges.get(node, {})):
                if child in members and child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    chain = [start]
    while len(chain) == 1 or chain[-1] != start:
        chain.append(previous[chain[-1]])
    chain.reverse()
    steps = [f"{edges[a][b]}" for a, b in zip(chain, chain[1:], strict=False)]
    others = f" (and {', '.join(sorted(members - set(chain)))})" if members - set(chain) else ""
    return f"import cycle {' -> '.join(chain)}{others}:\n    " + "\n    ".join(steps)


def test_every_import_follows_the_layer_rule() -> None:
    problems = layer_violations(collect_imports(REPO))
    assert not problems, "imports against the layer rule:\n" + "\n".join(problems)


def test_no_import_cycle_between_modules() -> None:
    cycles = import_cycles(collect_imports(REPO))
    assert not cycles, "\n".join(cycles)


def test_the_checks_catch_a_bad_import_and_a_cycle(tmp_path: Path) -> None:
    files = {
        "warehouse/__init__.py": "",
        "warehouse/store.py": "def export():\n    from .lake import write\n",
        "warehouse/lake.py": "from warehouse.store import export\n",
        "ingest/__init__.py": "",
        "ingest/fred.py": "import importlib\nimportlib.import_module('canvas.spec')\n",
        "canvas/__init__.py": "_LAZY = {\n    'Source': 'ingest.fred',\n}\n",
        "canvas/spec.py": "from warehouse import store\n",
        "training/__init__.py": "",
        "training/cli.py": "def main():\n    from dagster_defs import defs\n",
        "dagster_defs/__init__.py": "from training import cli\ndefs = None\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    imports = collect_imports(tmp_path)
    problems = layer_violations(imports)
    assert len(problems) == 3
    assert problems[0].startswith("ingest.fred (line 2: importlib.import_module('canvas.spec'))")
    assert problems[1].startswith("canvas (line 2: _LAZY: 'ingest.fred')")
    assert problems[2].startswith("training.cli (line 2: from dagster_defs import defs)")
    cycles = import_cycles(imports)
    assert len(cycles) == 2
    assert cycles[0].startswith("import cycle dagster_defs -> training.cli -> dagster_defs:")
    assert cycles[1].startswith("import cycle warehouse.lake -> warehouse.store -> warehouse.lake:")
    assert "warehouse.store (line 2: from .lake import write)" in cycles[1]
