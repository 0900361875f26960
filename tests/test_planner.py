"""Dataset profiles and curriculum planning: deterministic, and through a loopback LLM."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import polars as pl
import pytest

from ingest.synthetic import SyntheticWorldConfig, generate_world
from training import Curriculum, DatasetProfile, build_curriculum
from training.dag import CurriculumError, load_dag, tiers, validate_dag
from training.llm import LLMError, LLMProvider
from training.planner import CURRICULUM_SCHEMA, MAX_GROUP_FIELDS
from training.profile import ProfileError
from training.settings import CurriculumSettings, node_layout
from warehouse.fields import Period
from warehouse.schema import default_schema
from warehouse.spec import DatasetSpec
from warehouse.store import Warehouse

KEY = "sk-SENTINEL-KEY-4242"
MODEL = "fake-model"
GOAL = "Nowcast US inflation from markets and surveys"
CPI = "country_us.macro.inflation.headline_cpi"
CORE = "country_us.macro.inflation.core_cpi"
FED = "country_us.macro.rates.fed_funds"
SP500 = "financial.equities.sp500"
VIX = "financial.equities.vix"
LLM_VARIABLES = (
    "GUWM_LLM_PROVIDER",
    "GUWM_LLM_MODEL",
    "GUWM_LLM_BASE_URL",
    "GUWM_LLM_API_KEY",
    "GUWM_LLM_TIMEOUT",
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
)


@pytest.fixture(autouse=True)
def _no_llm_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in LLM_VARIABLES:
        monkeypatch.delenv(name, raising=False)


# -- profiles ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world():
    return generate_world(SyntheticWorldConfig(start="2018-01-01", end="2020-12-31"))


@pytest.fixture(scope="module")
def warehouse(world, tmp_path_factory) -> Warehouse:
    wh = Warehouse(tmp_path_factory.mktemp("planner") / "wh.duckdb")
    for source, frame in world.sources.items():
        wh.ingest(frame, source=f"synthetic_{source}")
    return wh


@pytest.fixture(scope="module")
def profiles(warehouse) -> list[DatasetProfile]:
    return DatasetProfile.from_warehouse(warehouse)


def test_warehouse_profiles_one_per_source(profiles, warehouse, world):
    by_name = {p.name: p for p in profiles}
    assert sorted(by_name) == [f"synthetic_{s}" for s in sorted(world.sources)]
    expected = {"fred": "monthly", "yahoo": "daily", "pmi": "monthly", "earnings": "quarterly"}
    for source, frequency in expected.items():
        profile, frame = by_name[f"synthetic_{source}"], world.sources[source]
        assert profile.frequency == frequency
        assert set(profile.fields) == set(frame["field_path"])
        assert profile.rows == frame.select("field_path", "observed_at").n_unique()
        assert profile.start == frame["observed_at"].min().date().isoformat()
        assert profile.end == frame["observed_at"].max().date().isoformat()
    fred = by_name["synthetic_fred"].field_frequencies
    assert fred["country_us.macro.labor.initial_claims"] == "weekly"
    assert fred["country_us.macro.output.gdp_nowcast"] == "quarterly"
    assert by_name["synthetic_pmi"].domain == "country_us.surveys"
    assert by_name["synthetic_earnings"].domain == "firm"
    assert by_name["synthetic_yahoo"].domain == "financial"


def test_warehouse_profiles_of_named_sources(warehouse):
    (pmi,) = DatasetProfile.from_warehouse(warehouse.path, sources=["synthetic_pmi"])
    assert pmi.name == "synthetic_pmi"
    with pytest.raises(ProfileError, match=r"'fred'.*synthetic_earnings"):
        DatasetProfile.from_warehouse(warehouse, sources=["fred"])


def test_source_profile_matches_the_warehouse_profile(world, profiles):
    frame = world.sources["pmi"]
    spec = DatasetSpec.from_fields("ISM", {p: p for p in frame["field_path"].unique()})
    profile = DatasetProfile.from_source(spec, frame)
    stored = next(p for p in profiles if p.name == "synthetic_pmi")
    assert profile.name == "ISM"
    for key in ("fields", "frequency", "start", "end", "rows", "domain", "field_frequencies"):
        assert getattr(profile, key) == getattr(stored, key), key
    empty = DatasetProfile.from_source(spec, frame.clear())
    assert (empty.rows, set(empty.fields)) == (0, set(spec.field_paths))


def test_profile_validation_names_the_dataset_and_the_attribute():
    with pytest.raises(ProfileError, match=r"'Claims'.*frequency 'fortnightly'"):
        DatasetProfile(name="Claims", frequency="fortnightly")
    with pytest.raises(ProfileError, match=r"'Claims'.*start '2020-13-01'"):
        DatasetProfile(name="Claims", start="2020-13-01")
    with pytest.raises(ProfileError, match=r"'Claims'.*after end"):
        DatasetProfile(name="Claims", start="2021-01-01", end="2020-01-01")
    with pytest.raises(ProfileError, match=r"'Claims'.*rows"):
        DatasetProfile(name="Claims", rows=-1)
    with pytest.raises(ProfileError, match=r"'Claims'.*field ' x'"):
        DatasetProfile(name="Claims", fields=[" x"])
    with pytest.raises(ProfileError, match="needs a name"):
        DatasetProfile(name=" ")
    typo = DatasetProfile(name="Claims", fields=["country_us.macro.inflation.headlin_cpi"])
    with pytest.raises(ProfileError, match=r"'Claims'.*headlin_cpi.*did you mean.*headline_cpi"):
        typo.validate()


def test_profile_normalises_and_round_trips():
    profile = DatasetProfile(
        name="Claims",
        fields="country_us.macro.labor.initial_claims",
        frequency="Yearly",
        start="2020-01-31T10:00:00",
        rows=12,
    )
    assert profile.fields == ("country_us.macro.labor.initial_claims",)
    assert (profile.frequency, profile.start, profile.domain) == (
        "annual",
        "2020-01-31",
        "country_us.macro",
    )
    assert DatasetProfile(**profile.to_dict()) == profile
    assert profile.validate() is profile
    assert {f.value for f in Period} >= {"daily", "weekly", "monthly", "quarterly"}


# -- the deterministic planner ------------------------------------------------------------


def covered(profiles: list[DatasetProfile]) -> set[str]:
    return {path for p in profiles for path in p.resolve()[0]}


def check_plan(curriculum: Curriculum, usable: set[str]) -> None:
    """A valid, trainable DAG whose last node holds every usable field."""
    nodes = validate_dag(list(curriculum))
    assert [n.name for n in nodes] == [n.name for n in curriculum]
    assert len(set(tiers(nodes).values())) >= 2
    assert set(curriculum[-1].fields) == usable
    assert set(curriculum.fields) == usable
    settings = CurriculumSettings()
    for node in curriculum:
        layout = node_layout(node, settings)
        assert set(node.fields) <= set(layout.paths)
        assert node.n_steps >= 1


def test_deterministic_plan_of_the_synthetic_world(profiles):
    curriculum = build_curriculum(GOAL, profiles)
    assert curriculum.planner == "deterministic"
    assert curriculum.datasets == tuple(p.name for p in profiles)
    check_plan(curriculum, covered(profiles))
    roots = [n for n in curriculum if not n.parents]
    assert all(n.description for n in curriculum)
    # every field trains in exactly one root
    assert sum(len(n.fields) for n in roots) == len(covered(profiles))
    # quarterly earnings over three years are too thin to train alone
    assert not any(all(f.startswith("firm_") for f in n.fields) for n in roots)
    # the same profiles give the same DAG, in any order
    assert build_curriculum(GOAL, profiles) == curriculum
    assert build_curriculum(GOAL, profiles[::-1]).nodes == curriculum.nodes


def test_plan_of_recorded_data(shared_data):
    from ingest.adapters import earnings_adapter, fred_adapter, pmi_adapter, yahoo_finance_adapter

    pairs = [
        fred_adapter(recorded_dir=shared_data, start_date="2005-01-01"),
        yahoo_finance_adapter(recorded_dir=shared_data),
        pmi_adapter(recorded_dir=shared_data),
        earnings_adapter(recorded_dir=shared_data),
    ]
    profiles = [DatasetProfile.from_source(spec, data) for spec, data in pairs]
    assert [p.frequency for p in profiles] == ["monthly", "daily", "monthly", "quarterly"]
    assert all(p.rows and p.rows > 500 for p in profiles)
    curriculum = build_curriculum("Nowcast the US economy", profiles)
    check_plan(curriculum, covered(profiles))
    assert len(set(curriculum.tiers.values())) >= 3
    assert build_curriculum("Nowcast the US economy", profiles) == curriculum


def test_a_daily_canvas_merges_slow_groups_into_fast_ones(profiles):
    settings = CurriculumSettings(step="1d", T=12)
    curriculum = build_curriculum(GOAL, profiles, settings=settings)
    check_plan(curriculum, covered(profiles))
    schema = default_schema()
    for root in (n for n in curriculum if not n.parents):
        assert any(schema.field(f).period == Period.DAILY for f in root.fields), root.name


def test_steps_grow_with_data_and_can_be_budgeted():
    def plan(rows: int, **kwargs: Any) -> Curriculum:
        datasets = [
            DatasetProfile(name="prices", fields=["country_us.macro.inflation"], rows=rows),
            DatasetProfile(name="markets", fields=["financial.equities"], rows=rows),
        ]
        return build_curriculum(GOAL, datasets, **kwargs)

    small, large = plan(2_000), plan(200_000)
    assert [n.name for n in small] == [n.name for n in large]
    assert all(a.n_steps < b.n_steps for a, b in zip(small, large, strict=True))
    budget = plan(200_000, total_steps=10_000)
    assert budget.total_steps == 10_000
    for scaled, node in zip(budget, large, strict=True):
        assert abs(scaled.n_steps - node.n_steps * 10_000 / large.total_steps) <= 1
    with pytest.raises(CurriculumError, match="total_steps=2 is fewer than the 3 nodes"):
        plan(2_000, total_steps=2)


def test_huge_groups_are_split():
    tickers = [f"T{chr(65 + i)}X" for i in range(15)]  # 15 firms x 4 earnings fields
    earnings = DatasetProfile(
        name="eps", fields=[f"firm_{t}.earnings" for t in tickers], rows=60_000
    )
    curriculum = build_curriculum(GOAL, [earnings])
    roots = [n for n in curriculum if not n.parents]
    assert len(roots) == 2
    assert all(len(n.fields) <= MAX_GROUP_FIELDS for n in roots)
    assert len(curriculum[-1].fields) == 60


def test_unusable_datasets_are_skipped_with_the_reason(profiles):
    ehr = DatasetProfile(name="Hospital EHR", frequency="daily", rows=10_000)
    claims = DatasetProfile(
        name="Insurance Claims",
        fields=["health.claims.admissions", "country_us.macro.inflation.headlin_cpi"],
    )
    curriculum = build_curriculum(GOAL, [ehr, claims, *profiles])
    assert set(curriculum.skipped) == {"Hospital EHR", "Insurance Claims"}
    assert "declares no fields" in curriculum.skipped["Hospital EHR"]
    assert "did you mean" in curriculum.skipped["Insurance Claims"]
    check_plan(curriculum, covered(profiles))
    markdown = curriculum.to_markdown()
    assert "Hospital EHR" in markdown and "Skipped" in markdown

    mixed = DatasetProfile(name="CPI", fields=[CPI, "regime.growth", "firm_*.earnings.*"])
    partial = build_curriculum(GOAL, [mixed, *profiles])
    assert partial.skipped == {}
    assert any("regime.growth" in w and "latent" in w for w in partial.warnings)
    assert any("names no ticker" in w for w in partial.warnings)


def test_no_usable_dataset_explains_how_to_add_fields():
    with pytest.raises(CurriculumError) as caught:
        build_curriculum(
            goal="Fine-tune to learn cardiovascular patient health",
            datasets=[
                DatasetProfile(name="Hospital EHR", frequency="daily", rows=120_000),
                DatasetProfile(name="Insurance Claims", fields=["health.cardio.claims"]),
            ],
        )
    message = str(caught.value)
    for text in ("cardiovascular", "Hospital EHR", "Insurance Claims", "health.cardio.claims"):
        assert text in message
    assert "warehouse/catalog.py" in message and "schema=Schema" in message
    with pytest.raises(CurriculumError, match="at least one DatasetProfile"):
        build_curriculum(GOAL, [])
    with pytest.raises(CurriculumError, match="unique"):
        build_curriculum(GOAL, [DatasetProfile(name="a"), DatasetProfile(name="a")])


def test_curriculum_is_a_sequence_of_nodes_with_yaml_and_markdown(profiles, tmp_path):
    curriculum = build_curriculum(GOAL, profiles)
    assert list(curriculum) == list(curriculum.nodes)
    assert len(curriculum) == len(curriculum.nodes) and curriculum[0] is curriculum.nodes[0]
    assert curriculum[-1] in curriculum
    assert load_dag(curriculum.to_yaml(tmp_path / "plan.yaml")) == list(curriculum.nodes)
    markdown = curriculum.to_markdown()
    assert "| tier | node | parents | fields | steps |" in markdown
    assert all(f"| {n.name} |" in markdown for n in curriculum)
    assert json.loads(json.dumps(curriculum.to_dict()))["nodes"][0]["name"] == curriculum[0].name
    with pytest.raises(CurriculumError, match="unknown parent"):
        Curriculum(goal=GOAL, nodes=(replace(curriculum[0], parents=("nowhere",)),))


# -- a loopback LLM ----------------------------------------------------------------------


@dataclass
class Scripted:
    """One canned HTTP answer."""

    body: Any = None  # a dict (sent as JSON) or text
    status: int = 200
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: str

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


class FakeLLM:
    """Answers POSTs from a script, recording every request."""

    def __init__(self) -> None:
        self.script: list[Scripted] = []
        self.seen: list[Seen] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 -- http.server's name
                body = self.rfile.read(int(self.headers["content-length"])).decode()
                headers = {k.lower(): v for k, v in self.headers.items()}
                fake.seen.append(Seen(self.path, headers, body))
                answer = fake.script.pop(0) if fake.script else Scripted("no answer left", 599)
                time.sleep(answer.delay)
                raw = answer.body if isinstance(answer.body, str) else json.dumps(answer.body)
                try:
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(raw.encode())))
                    self.end_headers()
                    self.wfile.write(raw.encode())
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def provider(self, kind: str, **overrides: Any) -> LLMProvider:
        settings = {"timeout": 5.0, "attempts": 2, "backoff": 0.01, **overrides}
        base = f"{self.url}/v1" if kind == "openai" else self.url
        return LLMProvider(kind, model=MODEL, base_url=base, api_key=KEY, **settings)


@pytest.fixture
def llm() -> Iterator[FakeLLM]:
    fake = FakeLLM()
    thread = threading.Thread(target=fake.server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()
    thread.join(timeout=5)


def answer(kind: str, content: dict[str, Any] | str) -> Scripted:
    """A chat answer holding `content` the way each API style delivers it."""
    if kind == "openai":
        text = content if isinstance(content, str) else json.dumps(content)
        message = {"role": "assistant", "content": text}
        return Scripted({"choices": [{"index": 0, "message": message, "finish_reason": "stop"}]})
    block = (
        {"type": "text", "text": content}
        if isinstance(content, str)
        else {"type": "tool_use", "id": "toolu_01", "name": "submit", "input": content}
    )
    return Scripted({"type": "message", "role": "assistant", "content": [block]})


def plan(*nodes: tuple[str, list[str], list[str], int]) -> dict[str, Any]:
    return {
        "rationale": "Prices and markets apart first, then together.",
        "nodes": [
            {"name": n, "fields": f, "parents": p, "n_steps": s, "description": f"stage {n}"}
            for n, f, p, s in nodes
        ],
    }


VALID = plan(
    ("prices", [CPI, CORE, FED], [], 400),
    ("Market Moves", [SP500, VIX], [], 400),
    ("integration", [], ["prices", "Market Moves"], 800),
)
UNKNOWN_FIELD = plan(
    ("prices", [CPI, "country_us.macro.inflation.headline_pce"], [], 400),
    ("integration", [], ["prices"], 800),
)
CYCLE = plan(("prices", [CPI], ["markets"], 400), ("markets", [SP500], ["prices"], 400))
KINDS = ("openai", "anthropic")


def last_user_text(kind: str, request: Seen) -> str:
    content = request.json["messages"][-1]["content"]
    if kind == "anthropic" and isinstance(content, list):
        (result,) = content
        assert result["type"] == "tool_result" and result["is_error"] is True
        assert result["tool_use_id"] == "toolu_01"
        return result["content"]
    return content


def assert_key_only_in_its_header(kind: str, requests: list[Seen]) -> None:
    assert requests
    header = "authorization" if kind == "openai" else "x-api-key"
    for request in requests:
        expected = f"Bearer {KEY}" if kind == "openai" else KEY
        assert request.headers[header] == expected
        others = {k: v for k, v in request.headers.items() if k != header}
        assert KEY not in json.dumps(others)
        assert KEY not in request.body and KEY not in request.path


@pytest.mark.parametrize("kind", KINDS)
def test_llm_plans_a_valid_curriculum(kind, llm, profiles):
    llm.script = [answer(kind, VALID)]
    curriculum = build_curriculum(GOAL, profiles, provider=llm.provider(kind))
    assert curriculum.planner == f"llm:{MODEL}"
    assert [n.name for n in curriculum] == ["prices", "market_moves", "integration"]
    assert curriculum[-1].parents == ("prices", "market_moves")
    assert set(curriculum[-1].fields) == {CPI, CORE, FED, SP500, VIX}
    assert curriculum.rationale == VALID["rationale"]
    assert any("not in any node" in w for w in curriculum.warnings)
    validate_dag(list(curriculum))
    for node in curriculum:
        node_layout(node, CurriculumSettings())

    (request,) = llm.seen
    assert request.path == ("/v1/chat/completions" if kind == "openai" else "/v1/messages")
    body = request.json
    assert body["model"] == MODEL
    if kind == "openai":
        assert body["response_format"]["type"] == "json_schema"
        assert body["response_format"]["json_schema"]["strict"] is True
        assert body["response_format"]["json_schema"]["schema"] == CURRICULUM_SCHEMA
        prompt = body["messages"][1]["content"]
    else:
        assert request.headers["anthropic-version"]
        assert body["tools"][0]["input_schema"] == CURRICULUM_SCHEMA
        assert body["tool_choice"] == {"type": "tool", "name": body["tools"][0]["name"]}
        prompt = body["messages"][0]["content"]
    payload = json.loads(prompt)
    assert payload["goal"] == GOAL
    assert {d["name"] for d in payload["datasets"]} == {p.name for p in profiles}
    rows = "\n".join(payload["available_fields"]["rows"])
    assert CPI in rows and "synthetic_fred" in rows and "consumer price index" in rows
    assert_key_only_in_its_header(kind, llm.seen)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("invalid", "error"),
    [
        (UNKNOWN_FIELD, "headline_pce'] that no dataset covers"),
        (CYCLE, "the DAG has a cycle: prices -> markets -> prices"),
    ],
)
def test_an_invalid_answer_is_repaired(kind, invalid, error, llm, profiles):
    llm.script = [answer(kind, invalid), answer(kind, VALID)]
    curriculum = build_curriculum(GOAL, profiles, provider=llm.provider(kind))
    assert [n.name for n in curriculum] == ["prices", "market_moves", "integration"]
    first, second = llm.seen
    assert error not in first.body
    assert error in last_user_text(kind, second)
    assert second.json["messages"][-2]["role"] == "assistant"
    assert_key_only_in_its_header(kind, llm.seen)


@pytest.mark.parametrize("kind", KINDS)
def test_garbage_twice_is_a_curriculum_error(kind, llm, profiles):
    garbage = "Sure! Here is my plan: " + "train everything " * 200
    llm.script = [answer(kind, garbage), answer(kind, garbage)]
    with pytest.raises(CurriculumError) as caught:
        build_curriculum(GOAL, profiles, provider=llm.provider(kind))
    message = str(caught.value)
    assert "not valid JSON" in message and "Sure! Here is my plan" in message
    assert len(message) < 1000
    assert KEY not in message
    assert len(llm.seen) == 2


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("status", [500, 429])
def test_transient_http_errors_are_retried(kind, status, llm, profiles):
    llm.script = [
        Scripted({"error": {"message": "overloaded"}}, status, headers={"retry-after": "0"}),
        answer(kind, VALID),
    ]
    curriculum = build_curriculum(GOAL, profiles, provider=llm.provider(kind))
    assert len(curriculum) == 3 and len(llm.seen) == 2


@pytest.mark.parametrize("kind", KINDS)
def test_a_timeout_is_a_clear_error(kind, llm, profiles):
    llm.script = [Scripted({}, delay=1.0), Scripted({}, delay=1.0)]
    provider = llm.provider(kind, timeout=0.2)
    with pytest.raises(LLMError, match=r"gave up after 2 attempt\(s\): timed out after 0.2s"):
        build_curriculum(GOAL, profiles, provider=provider)


def test_refused_requests_and_connection_errors_are_clear(llm, profiles, caplog):
    caplog.set_level(logging.DEBUG)
    echo = {"error": {"message": f"Incorrect API key provided: {KEY}"}}
    llm.script = [Scripted(echo, 401)]
    with pytest.raises(LLMError, match=r"HTTP 401: Incorrect API key provided: \*\*\*") as caught:
        build_curriculum(GOAL, profiles, provider=llm.provider("openai"))
    assert KEY not in str(caught.value) and len(llm.seen) == 1
    llm.script = [Scripted(echo, 503), Scripted(echo, 503)]
    with pytest.raises(LLMError, match="gave up after 2") as caught:
        build_curriculum(GOAL, profiles, provider=llm.provider("anthropic"))
    assert KEY not in str(caught.value)
    closed = LLMProvider(
        "openai", MODEL, base_url="http://127.0.0.1:9", api_key=KEY, backoff=0.01, attempts=2
    )
    with pytest.raises(LLMError, match="connection failed") as caught:
        build_curriculum(GOAL, profiles, provider=closed)
    assert KEY not in str(caught.value)
    assert KEY not in caplog.text and "retrying" in caplog.text


@pytest.mark.parametrize("kind", KINDS)
def test_the_api_key_stays_out_of_the_result(kind, llm, profiles):
    llm.script = [answer(kind, CYCLE), answer(kind, VALID)]
    provider = llm.provider(kind)
    curriculum = build_curriculum(GOAL, profiles, provider=provider)
    for text in (repr(provider), str(provider), repr(curriculum), curriculum.to_markdown()):
        assert KEY not in text
    assert KEY not in json.dumps(curriculum.to_dict())
    assert_key_only_in_its_header(kind, llm.seen)


def test_the_environment_configures_the_provider(llm, profiles, monkeypatch):
    assert LLMProvider.from_env() is None
    monkeypatch.setenv("GUWM_LLM_PROVIDER", "anthropic")
    with pytest.raises(LLMError, match="GUWM_LLM_MODEL"):
        LLMProvider.from_env()
    monkeypatch.setenv("GUWM_LLM_MODEL", MODEL)
    monkeypatch.setenv("GUWM_LLM_BASE_URL", llm.url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    provider = LLMProvider.from_env()
    assert (provider.kind, provider.model, provider.api_key) == ("anthropic", MODEL, KEY)
    assert KEY not in repr(provider)
    llm.script = [answer("anthropic", VALID)]
    assert build_curriculum(GOAL, profiles).planner == f"llm:{MODEL}"
    assert build_curriculum(GOAL, profiles, provider=False).planner == "deterministic"
    assert_key_only_in_its_header("anthropic", llm.seen)
    monkeypatch.setenv("GUWM_LLM_PROVIDER", "gemini")
    with pytest.raises(LLMError, match="openai, anthropic"):
        LLMProvider.from_env()
    environ = {"GUWM_LLM_PROVIDER": "openai", "GUWM_LLM_MODEL": "m", "GUWM_LLM_API_KEY": "k"}
    provider = LLMProvider.from_env(environ)
    assert (provider.base_url, provider.api_key) == ("https://api.openai.com/v1", "k")


def test_frames_without_observations_columns_are_refused():
    spec = DatasetSpec.from_fields("x", {"cpi": CPI})
    with pytest.raises(ProfileError, match="observed_at"):
        DatasetProfile.from_source(spec, pl.DataFrame({"field_path": [CPI]}))
