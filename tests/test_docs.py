"""The README and docs/*.md are tested where they show code.

- every relative link points at a file that exists, and an `#anchor` at one of its headings;
- every `guwm …` command parses with the real command line (found through the `guwm`
  console script, wherever the CLI lives), and every `make …` target is in the Makefile;
- every ```python block runs, in page order with one namespace per page, against a small
  warehouse in a temporary folder; a block that cannot run in a test is marked on the line
  before its fence with `<!-- not run: REASON -->` and must still compile;
- every ```yaml block parses.

docs/sql.md's SQL and Python blocks are run by tests/test_sql_examples.py against a
warehouse of the synthetic world; here they are compiled and their commands and links
checked.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
import tomllib
from dataclasses import dataclass
from importlib import import_module
from importlib.metadata import entry_points
from pathlib import Path
from unittest import mock

import polars as pl
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
EXPECTED_PAGES = {
    "warehouse",
    "sql",
    "sources",
    "canvas",
    "training",
    "world_model",
    "curricula",
    "operations",
    "benchmarks",
    "testing",
}
# pages whose python blocks another test runs (against the data they need)
RUN_ELSEWHERE = {"docs/sql.md": "tests/test_sql_examples.py"}

FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*([\w+-]*)\s*$")
NOT_RUN = re.compile(r"^\s*<!--\s*not run:(.*?)-->\s*$")
MARKER_ANYWHERE = re.compile(r"<!--\s*not run", re.IGNORECASE)
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)")
SHELL = {"bash", "sh", "shell", "console"}
ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=.*")


def _rel(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    body: str
    not_run: str | None  # the reason, when marked

    @property
    def id(self) -> str:
        return f"{_rel(self.page)}:{self.line}"


def _parse(page: Path) -> tuple[list[Block], list[tuple[int, str]]]:
    """A page's fenced blocks, and its prose lines (outside any fence) with their numbers."""
    blocks: list[Block] = []
    prose: list[tuple[int, str]] = []
    lines = page.read_text().splitlines()
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            prose.append((i + 1, lines[i]))
            i += 1
            continue
        fence, lang = match.group(1), match.group(2).lower()
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines):
            close = FENCE.match(lines[i])
            if close and not close.group(2) and close.group(1).startswith(fence[0] * len(fence)):
                break
            body.append(lines[i])
            i += 1
        i += 1  # the closing fence
        marker = NOT_RUN.match(lines[start - 1]) if start > 0 else None
        indent = len(lines[start]) - len(lines[start].lstrip())
        text = "\n".join(line[indent:] if line[:indent].isspace() else line for line in body)
        blocks.append(
            Block(page, start + 1, lang, text + "\n", marker.group(1).strip() if marker else None)
        )
    return blocks, prose


PARSED = {page: _parse(page) for page in PAGES}
BLOCKS = [block for blocks, _ in PARSED.values() for block in blocks]
PYTHON = [block for block in BLOCKS if block.lang == "python"]


def _without_code_spans(text: str) -> str:
    return CODE_SPAN.sub("", text)


# --- the pages ------------------------------------------------------------------------


def test_the_docs_pages_exist_and_the_readme_links_each():
    assert {page.stem for page in PAGES[1:]} >= EXPECTED_PAGES
    readme = (ROOT / "README.md").read_text()
    for page in PAGES[1:]:
        assert f"(docs/{page.name})" in readme, f"README.md does not link docs/{page.name}"


def test_readme_stays_short_and_in_order():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 260, "the README is a summary; details go to docs/"
    headings = [line[3:].strip() for line in readme.splitlines() if line.startswith("## ")]
    assert headings == [
        "Quick start",
        "How data flows",
        "Project layout",
        "Commands",
        "Documentation",
    ]
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert "```bash\nmake demo\nmake test\n```" in quick_start


# --- links ----------------------------------------------------------------------------


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`([^`]*)`", r"\1", heading.strip()).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    for _, line in PARSED[page][1] if page in PARSED else _parse(page)[1]:
        match = re.match(r"^#{1,6}\s+(.+?)\s*#*\s*$", line)
        if not match:
            continue
        slug = _slug(match.group(1))
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


def _links() -> list[tuple[Path, int, str]]:
    found = []
    for page, (_, prose) in PARSED.items():
        for number, line in prose:
            for target in LINK.findall(_without_code_spans(line)):
                found.append((page, number, target))
    return found


LINKS = _links()


def test_the_pages_have_links():
    assert len(LINKS) > 30


@pytest.mark.parametrize(
    ("page", "number", "target"),
    LINKS,
    ids=[f"{_rel(page)}:{number}:{target}" for page, number, target in LINKS],
)
def test_relative_link_resolves(page, number, target):
    if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:, …
        return
    path, _, anchor = target.partition("#")
    file = (page.parent / path).resolve() if path else page
    assert file.exists(), f"{_rel(page)}:{number}: {target} points at a missing file"
    assert file.is_relative_to(ROOT), f"{_rel(page)}:{number}: {target} leaves the repository"
    if anchor:
        assert file.suffix == ".md", f"{_rel(page)}:{number}: an anchor into a non-markdown file"
        anchors = _anchors(file)
        assert anchor in anchors, (
            f"{_rel(page)}:{number}: no heading '#{anchor}' in {_rel(file)} "
            f"(it has: {', '.join(sorted(anchors))})"
        )


# --- commands -------------------------------------------------------------------------


class _Parser(BaseException):
    def __init__(self, parser: argparse.ArgumentParser):
        super().__init__()
        self.parser = parser


def _guwm_main():
    """The function behind the `guwm` console script: the installed entry point, else the
    one pyproject.toml declares (an editable install made before the CLI moved)."""
    try:
        return entry_points(group="console_scripts")["guwm"].load()
    except (KeyError, ImportError, AttributeError):
        scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
        module, _, name = scripts["guwm"].partition(":")
        return getattr(import_module(module), name)


@pytest.fixture(scope="module")
def guwm_parser() -> argparse.ArgumentParser:
    """The ArgumentParser that `guwm`'s main parses with, caught as main starts parsing."""

    def catch(self, *args, **kwargs):
        raise _Parser(self)

    with (
        mock.patch.object(argparse.ArgumentParser, "parse_args", catch),
        mock.patch.object(argparse.ArgumentParser, "parse_known_args", catch),
    ):
        try:
            _guwm_main()(["--help"])
        except _Parser as caught:
            return caught.parser
    pytest.fail("the guwm entry point parsed no arguments with argparse")


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _make_targets() -> set[str]:
    targets = set()
    for line in (ROOT / "Makefile").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+(?:\s+[A-Za-z0-9_.-]+)*)\s*:(?!=)", line)
        if match:
            targets.update(match.group(1).split())
    return targets - {".PHONY"}


@dataclass(frozen=True)
class Command:
    where: str
    program: str  # guwm or make
    argv: tuple[str, ...]
    exact: bool  # a command to run as shown (else a synopsis: only its subcommands are checked)


def _split_commands(tokens: list[str]) -> list[list[str]]:
    commands: list[list[str]] = [[]]
    skip = False
    for token in tokens:
        if skip:
            skip = False
        elif token in {"|", "||", "&&", ";", "&", "(", ")"}:
            commands.append([])
        elif re.fullmatch(r"\d*[<>]+&?", token):  # a redirection and its target
            skip = True
        else:
            commands[-1].append(token)
    return [command for command in commands if command]


def _commands_in(text: str, where: str, *, exact: bool) -> list[Command]:
    text = text.replace("$(which guwm)", "guwm")
    found: list[Command] = []
    for nested in re.findall(r"\$\((guwm [^)]*)\)", text):
        found += _commands_in(nested, where, exact=exact)
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError as err:
        pytest.fail(f"{where}: cannot split {text!r}: {err}")
    for command in _split_commands(tokens):
        words = list(command)
        while words and ASSIGNMENT.fullmatch(words[0]):  # `GUWM_SOURCE_MODE=… guwm …`
            words.pop(0)
        if words and words[0] == "make":
            found.append(Command(where, "make", tuple(words[1:]), exact))
            continue
        for i, word in enumerate(words):  # guwm itself, or after torchrun and its options
            if word == "guwm" or word.endswith("/bin/guwm"):
                found.append(Command(where, "guwm", tuple(words[i + 1 :]), exact))
                break
    return found


def _commands() -> list[Command]:
    found: list[Command] = []
    for page, (blocks, prose) in PARSED.items():
        for block in blocks:
            if block.lang not in SHELL:
                continue
            text = re.sub(r"\\\n", " ", block.body)
            for offset, line in enumerate(text.splitlines()):
                where = f"{_rel(page)}:{block.line + 1 + offset}"
                found += _commands_in(line, where, exact=True)
        for number, line in prose:
            for _, span in CODE_SPAN.findall(line):
                span = span.strip().replace("\\|", "|")
                if not re.match(r"^(\.venv/bin/)?(guwm|make)\s+\S", span):
                    continue  # not a command line (the bare name, a path, `guwm: error`)
                # in prose a command is named, often with placeholders (`guwm sql QUERY
                # [--format …]`): only its subcommands are checked
                program, *rest = span.split()
                where = f"{_rel(page)}:{number}"
                found.append(Command(where, Path(program).name, tuple(rest), False))
    return found


COMMANDS = _commands()
GUWM = [c for c in COMMANDS if c.program == "guwm"]
MAKE = [c for c in COMMANDS if c.program == "make"]


def test_the_docs_show_commands():
    assert len(GUWM) > 40 and len(MAKE) > 10


def _check_subcommands(parser: argparse.ArgumentParser, argv: tuple[str, ...], where: str):
    """A synopsis such as `guwm curriculum show|estimate` or `guwm sql QUERY [--format …]`:
    its subcommand words must exist; options and placeholders are not checked."""
    words = list(argv)
    while True:
        choices = _subcommands(parser)
        if not choices:
            return
        # skip global options (and their values) before the subcommand
        while words and words[0].startswith("-"):
            option = parser._option_string_actions.get(words.pop(0).split("=")[0])
            if option is not None and option.nargs != 0 and words:
                words.pop(0)
        if not words or re.fullmatch(r"[A-Z][A-Z_]*|…|\.\.\.", words[0]):
            return  # a placeholder: `guwm COMMAND --help`, `guwm …`
        names = words.pop(0).split("|")
        for name in names:
            assert name in choices, (
                f"{where}: `{name}` is not a subcommand of `{parser.prog}` "
                f"(it has: {', '.join(choices)})"
            )
        if len(names) > 1:
            return
        parser = choices[names[0]]


@pytest.mark.parametrize("command", GUWM, ids=[f"{c.where}:{' '.join(c.argv[:3])}" for c in GUWM])
def test_guwm_command_is_real(guwm_parser, command):
    if not command.exact:
        _check_subcommands(guwm_parser, command.argv, command.where)
        return
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
        try:
            guwm_parser.parse_args(list(command.argv))
        except SystemExit as exit:
            if exit.code not in (0, None):  # --help exits 0
                pytest.fail(
                    f"{command.where}: `guwm {shlex.join(command.argv)}` does not parse: "
                    f"{errors.getvalue().strip()}"
                )


@pytest.mark.parametrize("command", MAKE, ids=[f"{c.where}:{' '.join(c.argv)}" for c in MAKE])
def test_make_target_exists(command):
    targets = [
        word
        for word in command.argv
        if not word.startswith("-") and not ASSIGNMENT.fullmatch(word) and word not in {"…", "..."}
    ]
    if not targets and not command.exact:
        return  # `make …`: a placeholder
    assert targets, f"{command.where}: `make` without a target"
    for target in targets:
        assert target in _make_targets(), f"{command.where}: no `{target}` target in the Makefile"


def test_readme_lists_every_subcommand_and_make_target(guwm_parser):
    readme = (ROOT / "README.md").read_text()
    commands = readme.split("## Commands", 1)[1].split("\n## ", 1)[0]
    for name in _subcommands(guwm_parser):
        assert f"`guwm {name}" in commands, f"README's command table lacks `guwm {name}`"
    for target in _make_targets():
        if not target.startswith(("$", ".")):
            assert f"`make {target}`" in commands, f"README's command table lacks `make {target}`"


# --- code blocks ----------------------------------------------------------------------


def test_every_not_run_marker_has_a_reason_and_a_python_block():
    python_markers = {(b.page, b.line - 1) for b in PYTHON if b.not_run is not None}
    for block in PYTHON:
        if block.not_run is not None:
            assert block.not_run, f"{block.id}: a `not run:` marker needs a reason"
    for page, (_, prose) in PARSED.items():
        for number, line in prose:
            if MARKER_ANYWHERE.search(_without_code_spans(line)):
                assert NOT_RUN.match(line) and (page, number) in python_markers, (
                    f"{_rel(page)}:{number}: a marker is `<!-- not run: REASON -->`, alone "
                    "on the line just before a ```python fence"
                )


@pytest.mark.parametrize("block", PYTHON, ids=[b.id for b in PYTHON])
def test_python_block_compiles(block):
    compile(block.body, block.id, "exec")


YAML = [block for block in BLOCKS if block.lang in {"yaml", "yml"}]


@pytest.mark.parametrize("block", YAML, ids=[b.id for b in YAML])
def test_yaml_block_parses(block):
    assert yaml.safe_load(block.body) is not None


def test_sql_md_examples_are_run_elsewhere():
    for page, test in RUN_ELSEWHERE.items():
        assert (ROOT / test).exists() and page in (ROOT / test).read_text()


RUNNABLE_PAGES = sorted(
    {b.page for b in PYTHON if b.not_run is None and _rel(b.page) not in RUN_ELSEWHERE}
)


@pytest.fixture
def small_warehouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh warehouse with a few synthetic months, where the examples will find it:
    $GUWM_WAREHOUSE, with artifacts and the Dagster instance beside it, the folder the cwd."""
    from warehouse.store import Warehouse

    path = tmp_path / "warehouse.duckdb"
    monkeypatch.setenv("GUWM_WAREHOUSE", str(path))
    monkeypatch.setenv("GUWM_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.chdir(tmp_path)
    months = pl.date_range(pl.date(2018, 1, 1), pl.date(2019, 12, 1), "1mo", eager=True)
    frame = pl.DataFrame(
        {
            "field_path": "country_us.macro.inflation.headline_cpi",
            "observed_at": months,
            "value": [2.0 + 0.05 * i for i in range(len(months))],
            "known_at": months.dt.offset_by("1mo").dt.offset_by("12d"),
        }
    )
    Warehouse(path).ingest(frame, source="synthetic_fred")
    return path


@pytest.mark.parametrize("page", RUNNABLE_PAGES, ids=[_rel(p) for p in RUNNABLE_PAGES])
def test_python_blocks_run(small_warehouse, page):
    namespace: dict[str, object] = {"__name__": f"docs:{_rel(page)}"}
    for block in PYTHON:
        if block.page == page and block.not_run is None:
            try:
                exec(compile(block.body, block.id, "exec"), namespace)
            except Exception as err:
                pytest.fail(f"{block.id}: the example raised {type(err).__name__}: {err}")
