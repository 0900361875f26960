"""Helpers of the fault suite (test_faults_*.py, test_security.py): a scriptable loopback
HTTP server, FRED's XML answers, warehouse snapshots and small long-format batches."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import polars as pl

from tests.test_warehouse import batch
from warehouse.reader import observations_hash
from warehouse.store import Warehouse

UNRATE = "country_us.macro.labor.unemployment_rate"
CPI = "country_us.macro.inflation.headline_cpi"
TBILL = "country_us.macro.rates.treasury_3m"
VIX = "financial.equities.vix"
PMI = "country_us.surveys.ism_manufacturing.pmi"
NOW = dt.datetime(2025, 6, 1)


# -- a loopback HTTP server ----------------------------------------------------------------


@dataclass
class Reply:
    """One answer: status, body, an optional delay before it (a slow or dead server)."""

    status: int = 200
    body: bytes | str = b""
    delay: float = 0.0
    content_type: str = "text/plain; charset=utf-8"


@dataclass
class Request:
    """What the server saw: method, path, query, headers, body."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def text(self) -> str:
        """Everything about the request as one string (to look for a secret in it)."""
        return f"{self.method} {self.path} {self.query} {self.headers} {self.body!r}"


Responder = Callable[[Request], Reply]


@dataclass
class Loopback:
    """A threading HTTP server on 127.0.0.1 answering every request with `respond`."""

    respond: Responder
    requests: list[Request] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"


def _handler(loop: Loopback) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # request lines may hold a key
            pass

        def _serve(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("content-length") or 0)
            request = Request(
                self.command,
                url.path,
                {k: v[0] for k, v in parse_qs(url.query).items()},
                {k.lower(): v for k, v in self.headers.items()},
                self.rfile.read(length) if length else b"",
            )
            loop.requests.append(request)
            reply = loop.respond(request)
            time.sleep(reply.delay)
            body = reply.body.encode() if isinstance(reply.body, str) else reply.body
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:  # the client gave up (a timeout test)
                pass

        do_GET = do_POST = _serve  # noqa: N815 -- http.server's names

    return Handler


@contextmanager
def loopback(respond: Responder) -> Iterator[Loopback]:
    """A running Loopback server (port 0), shut down on exit."""
    loop = Loopback(respond)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(loop))
    server.daemon_threads = True
    loop.server = server
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield loop
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# -- FRED's API answers --------------------------------------------------------------------


def observations_xml(rows: list[tuple[str, str]]) -> str:
    """A /fred/series/observations answer in FRED's XML format (one page)."""
    items = "".join(
        f'<observation realtime_start="2025-01-01" realtime_end="2025-01-01" '
        f'date="{date}" value="{value}"/>'
        for date, value in rows
    )
    return (
        '<?xml version="1.0" encoding="utf-8" ?><observations realtime_start="2025-01-01" '
        'realtime_end="2025-01-01" units="lin" output_type="1" file_type="xml" '
        f'order_by="observation_date" sort_order="asc" count="{len(rows)}" offset="0" '
        f'limit="100000">{items}</observations>'
    )


def fred_error_xml(code: int, message: str) -> str:
    return f'<?xml version="1.0" encoding="utf-8" ?><error code="{code}" message="{message}"/>'


def monthly_rows(series_id: str, start: int = 2004, end: int = 2020) -> list[tuple[str, str]]:
    """Deterministic monthly values of a series (level near 5 to 8, a slow cycle): within
    the plausible range of every series they stand for, rates in percent included."""
    seed = sum(map(ord, series_id)) % 17
    return [
        (f"{y}-{m:02d}-01", f"{5 + seed / 10 + 0.05 * ((y * 12 + m) % 23) - 0.01 * m:.2f}")
        for y in range(start, end + 1)
        for m in range(1, 13)
    ]


# -- warehouse --------------------------------------------------------------------------------


def prior_data() -> pl.DataFrame:
    """A few months of unemployment rate, the data a warehouse holds before a test."""
    months = [dt.datetime(2010, m, 1) for m in range(1, 7)]
    return batch([(UNRATE, m, 9.0 + m.month / 10, m + dt.timedelta(days=40)) for m in months])


@dataclass(frozen=True)
class Snapshot:
    """What must not change when an ingest fails: rows, content and the run log."""

    count: int
    content_hash: str
    runs: int

    @classmethod
    def of(cls, wh: Warehouse) -> Snapshot:
        with wh.connect() as con:  # one connection: what count() and content_hash() read
            count = con.execute("SELECT count(*) FROM observations").fetchone()[0]
            runs = con.execute("SELECT count(*) FROM ingest_runs").fetchone()[0]
            return cls(count, observations_hash(con), runs)


def warehouse_with_prior_data(path, sources: tuple[str, ...] = ("fred",)) -> Warehouse:
    wh = Warehouse(path)
    for source in sources:
        wh.ingest(prior_data(), source=source, now=NOW)
    return wh


# -- processes ---------------------------------------------------------------------------------


def wait_for_line(proc, word: str, timeout: float = 120.0) -> str:
    """The first stdout line of `proc` (text mode) starting with `word`; fails on timeout."""
    import selectors

    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not selector.select(timeout=max(0.0, deadline - time.monotonic())):
                continue
            line = proc.stdout.readline()
            if not line:
                raise AssertionError(f"process exited before '{word}' (code {proc.poll()})")
            if line.startswith(word):
                return line.strip()
    finally:
        selector.close()
    raise AssertionError(f"no '{word}' from the process within {timeout}s")


# -- a trainer with large weights, the same in the test and in a child process ----------------

TRAIN_PATHS = (UNRATE, CPI, TBILL)


def train_source():
    """(DatasetSpec, long frame): 25 years of three monthly fields, a fixed random walk."""
    import numpy as np

    from canvas import DatasetSpec

    rng = np.random.default_rng(0)
    months = pl.datetime_range(dt.datetime(2000, 1, 1), dt.datetime(2024, 12, 1), "1mo", eager=True)
    frames = [
        pl.DataFrame(
            {
                "field_path": path,
                "observed_at": months,
                "value": np.cumsum(rng.standard_normal(len(months))),
                "known_at": months.dt.offset_by("1mo"),
            }
        )
        for path in TRAIN_PATHS
    ]
    return DatasetSpec.from_fields("walk", {p: p for p in TRAIN_PATHS}), pl.concat(frames)


def make_trainer(run_dir, *, d_model: int = 256, n_layers: int = 4):
    """A MaskedCanvasTrainer checkpointing every step (about 30 MB a checkpoint), and its
    loader. Random field embeddings: no sentence model is loaded."""
    import numpy as np
    import torch

    from canvas import build_mixed_dataloader, compile_layout
    from training import FieldDecoder, FieldEncoder
    from training.backbones import build_backbone
    from training.config import TrainConfig
    from training.masked import MaskedCanvasTrainer

    bound = compile_layout(*TRAIN_PATHS, T=6, d_model=d_model)
    loader = build_mixed_dataloader(bound, [train_source()], batch_size=4)
    torch.manual_seed(0)
    semantic = np.random.default_rng(0).standard_normal((bound.n_fields, 384)).astype(np.float32)
    trainer = MaskedCanvasTrainer(
        bound_schema=bound,
        backbone=build_backbone("scratch", bound, n_layers=n_layers),
        encoder=FieldEncoder(bound, semantic=semantic),
        decoder=FieldDecoder(bound),
        config=TrainConfig(progress=False, warmup_steps=2, checkpoint_every=1, log_every=1, seed=0),
        checkpoint_dir=run_dir,
    )
    return trainer, loader
