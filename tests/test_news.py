"""News: real offline embeddings, sentiment, daily fields, the cache, recorded files."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from ingest import embeddings, news
from ingest.embeddings import DIMENSION, embed_texts, embedding_stats
from ingest.news import (
    EMBEDDING_FIELD,
    NEWS_SCHEMA,
    SENTIMENT_FIELD,
    VOLUME_FIELD,
    daily_news_fields,
    news_adapter,
    read_recorded_news,
    sentiment_scores,
)
from ingest.tables import TabularError
from warehouse.store import Warehouse


@pytest.fixture(scope="module")
def model():
    """The sentence-transformers model, loaded once for this module (a few seconds)."""
    return embeddings.get_model()


@pytest.fixture
def encode_calls(model, monkeypatch) -> list[int]:
    """Sizes of the texts lists passed to the model's encode()."""
    calls: list[int] = []
    original = model.encode

    def spy(texts, *args, **kwargs):
        calls.append(len(texts))
        return original(texts, *args, **kwargs)

    monkeypatch.setattr(model, "encode", spy)
    return calls


def t(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2024, 3, day, hour, minute)


HEADLINES = pl.DataFrame(
    {
        "published_at": [t(4, 9), t(4, 9), t(4, 15, 30), t(4, 21, 5), t(5, 8), t(5, 23, 59)],
        "headline": [
            "Stocks soar to a record high as investors cheer strong earnings",
            "Stocks soar to a record high as investors cheer strong earnings",  # duplicate
            "Company reports a huge loss and cuts thousands of jobs",
            "Stocks soar to a record high as investors cheer strong earnings",  # same, later
            "Economy shrinks as demand collapses",
            "Company posts record profits and raises its dividend",
        ],
        "sentiment_truth": [0.9, 0.9, -0.8, 0.9, -0.9, 0.8],
    }
)


# -- embeddings and sentiment ------------------------------------------------------------


def test_embeddings_are_real_unit_vectors_with_meaning(model, tmp_path):
    texts = [
        "Fed raises interest rates to fight inflation",
        "Central bank hikes borrowing costs as prices climb",
        "Apple unveils a new iPhone with a better camera",
    ]
    vectors = embed_texts(texts, cache_dir=tmp_path)
    assert vectors.shape == (3, DIMENSION) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similar, unrelated = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert similar > unrelated + 0.3
    # Normalised text: the same hash and vector whatever the whitespace.
    again = embed_texts(["  Fed raises   interest rates\nto fight inflation "], tmp_path)
    np.testing.assert_array_equal(again[0], vectors[0])


def test_sentiment_signs(model, tmp_path):
    positive = [
        "Stocks soar to a record high as investors cheer strong earnings",
        "Company posts record profits and raises its dividend",
        "Economy grows faster than expected as consumer spending booms",
    ]
    negative = [
        "Stocks plunge as recession fears grip markets",
        "Company reports a huge loss and cuts thousands of jobs",
        "Economy shrinks as demand collapses",
    ]
    scores = sentiment_scores(embed_texts(positive + negative, tmp_path))
    assert (np.abs(scores) <= 1).all()
    assert (scores[:3] > 0.2).all(), scores
    assert (scores[3:] < -0.2).all(), scores


# -- daily fields ------------------------------------------------------------------------


def test_daily_aggregation(model, tmp_path):
    frame = daily_news_fields(HEADLINES, cache_dir=tmp_path)
    assert frame.schema == pl.Schema(NEWS_SCHEMA)
    by_field = {p: frame.filter(pl.col("field_path") == p) for p in news.FIELDS.values()}
    days = [dt.datetime(2024, 3, 4), dt.datetime(2024, 3, 5)]
    for part in by_field.values():
        assert part["observed_at"].to_list() == days
        # known_at: the last text of the day, not the day's end.
        assert part["known_at"].to_list() == [t(4, 21, 5), t(5, 23, 59)]
    # The 09:00 duplicate counts once; the same text at 21:05 is a separate item.
    assert by_field[VOLUME_FIELD]["value"].to_list() == [3.0, 2.0]
    assert by_field[EMBEDDING_FIELD]["value"].is_null().all()
    assert by_field[VOLUME_FIELD]["vector"].is_null().all()

    texts = HEADLINES["headline"].to_list()
    vectors = embed_texts(texts, tmp_path)
    scores = sentiment_scores(vectors)
    day1 = vectors[[0, 2, 3]].astype(np.float64).sum(axis=0)
    got = np.array(by_field[EMBEDDING_FIELD]["vector"][0].to_list())
    np.testing.assert_allclose(got, day1 / np.linalg.norm(day1), atol=1e-6)
    assert np.linalg.norm(got) == pytest.approx(1.0, abs=1e-5)
    assert by_field[SENTIMENT_FIELD]["value"].to_list() == pytest.approx(
        [scores[[0, 2, 3]].mean(), scores[[4, 5]].mean()]
    )


def test_timezones_empty_input_and_bad_timestamps(model, tmp_path):
    new_york = pl.DataFrame(
        {
            "published_at": [dt.datetime(2024, 3, 4, 21, 30)],
            "headline": ["Stocks soar to a record high as investors cheer strong earnings"],
        }
    ).with_columns(pl.col("published_at").dt.replace_time_zone("America/New_York"))
    frame = daily_news_fields(new_york, cache_dir=tmp_path)
    assert frame["observed_at"].unique().to_list() == [dt.datetime(2024, 3, 5)]  # 02:30 UTC
    assert frame["known_at"].unique().to_list() == [dt.datetime(2024, 3, 5, 2, 30)]

    empty = daily_news_fields(HEADLINES.head(0), cache_dir=tmp_path)
    assert empty.is_empty() and empty.schema == pl.Schema(NEWS_SCHEMA)

    bad = pl.DataFrame({"when": ["2024-03-04T10:00:00Z", None, "yesterday"], "title": list("abc")})
    with pytest.raises(TabularError) as info:
        news_adapter(bad, text_column="title", time_column="when", cache_dir=tmp_path)
    assert "headlines frame, row 2, column 'when': timestamp is missing" in str(info.value)
    assert "row 3, column 'when': cannot parse timestamp 'yesterday'" in str(info.value)
    with pytest.raises(TabularError, match="text column 'headline' not in the file"):
        news_adapter(bad, time_column="when", cache_dir=tmp_path)


# -- the cache ---------------------------------------------------------------------------


def test_second_run_embeds_nothing(model, tmp_path, encode_calls):
    cache = tmp_path / "cache"
    before = embedding_stats()
    first = daily_news_fields(HEADLINES, cache_dir=cache, batch_size=2)
    assert sum(encode_calls) == 4  # 4 distinct texts, in model calls of at most 2
    assert max(encode_calls) <= 2
    shards = list((cache / embeddings.MODEL_NAME).glob("part-*.parquet"))
    assert shards and not list((cache / embeddings.MODEL_NAME).glob(".*tmp"))
    encode_calls.clear()
    middle = embedding_stats()
    second = daily_news_fields(HEADLINES, cache_dir=cache)
    after = embedding_stats()
    assert encode_calls == []
    assert after.embedded == middle.embedded and middle.embedded - before.embedded == 4
    assert after.cache_hits - middle.cache_hits == 4
    assert second.equals(first)


def test_cache_shards_are_compacted(model, tmp_path, monkeypatch):
    monkeypatch.setattr(embeddings, "COMPACT_ABOVE", 2)
    texts = ["Oil prices rise", "Gold hits a record", "Bond yields fall", "The dollar weakens"]
    vectors = np.vstack([embed_texts([text], tmp_path) for text in texts])  # a shard each
    shards = list((tmp_path / embeddings.MODEL_NAME).glob("part-*.parquet"))
    assert len(shards) <= 2
    stored = pl.read_parquet(shards)
    assert stored["hash"].n_unique() == 4 == len(stored)
    np.testing.assert_array_equal(embed_texts(texts, tmp_path), vectors)


# -- recorded files and the warehouse ------------------------------------------------------


def test_recorded_files_parse_with_utc_timestamps(shared_data):
    frame = read_recorded_news(shared_data)
    counts = dict(frame.group_by("source").len().iter_rows())
    assert counts == {"bbc": 2656, "finnhub": 257}
    texts = dict(zip(frame["published_at"], frame["text"], strict=False))
    # BBC pubDate "Mon, 07 Mar 2022 00:14:42 GMT"; text = title + ". " + description.
    assert texts[dt.datetime(2022, 3, 7, 0, 14, 42)] == (
        "Ukraine war 'catastrophic for global food'. One of the world's biggest fertiliser "
        "firms says the conflict could deliver a shock to food supplies."
    )
    # Finnhub datetime 1771949587 (epoch seconds) = 2026-02-24 16:13:07 UTC.
    assert texts[dt.datetime(2026, 2, 24, 16, 13, 7)].startswith(
        "Spirit Airlines plans to slash flights, fleet in bid to emerge from bankruptcy as "
        "early as spring. Spirit Airlines said"
    )
    assert not frame["text"].str.ends_with(". ").any()  # empty summaries leave no ". "
    bbc = frame.filter(pl.col("source") == "bbc")["published_at"]
    assert (bbc.min(), bbc.max()) == (
        dt.datetime(2022, 3, 4, 22, 9, 49),
        dt.datetime(2024, 11, 19, 13, 4, 17),
    )


def test_recorded_finnhub_into_the_warehouse(model, shared_data, tmp_path):
    # The 60 oldest Finnhub items as a CSV file (epoch seconds read as text).
    source = shared_data / "news" / "finnhub_general_market_news_2026-02.csv"
    path = tmp_path / "finnhub.csv"
    oldest = pl.read_csv(source).sort("datetime").head(60)
    oldest.write_csv(path)
    spec, frame = news_adapter(path, time_column="datetime", cache_dir=tmp_path / "cache")
    assert spec.name == "news" and set(spec.field_paths) == set(news.FIELDS.values())
    volume = frame.filter(pl.col("field_path") == VOLUME_FIELD)
    expected = (
        oldest.group_by(pl.from_epoch("datetime").dt.truncate("1d").alias("day"))
        .agg(pl.len().cast(pl.Float64), pl.from_epoch("datetime").max().alias("last"))
        .sort("day")
    )
    assert volume["observed_at"].to_list()[0] == dt.datetime(2026, 2, 21)
    assert volume.select("observed_at", "value", "known_at").rows() == expected.rows()

    wh = Warehouse(tmp_path / "w.duckdb")
    report = wh.ingest(frame, source=spec.name)
    assert report.rows_inserted == len(frame)
    stored = wh.sql(
        "SELECT len(vector) AS n FROM observations WHERE field_path = $p", {"p": EMBEDDING_FIELD}
    )
    assert stored["n"].unique().to_list() == [DIMENSION]
    count, digest = wh.count(), wh.content_hash()
    again = wh.ingest(
        news_adapter(path, time_column="datetime", cache_dir=tmp_path / "cache")[1],
        source=spec.name,
    )
    assert (again.rows_inserted, again.rows_revised, again.rows_unchanged) == (0, 0, len(frame))
    assert (wh.count(), wh.content_hash()) == (count, digest)


def test_synthetic_headlines_frame(model, tmp_path):
    from ingest.synthetic import SyntheticWorldConfig, generate_world

    headlines = generate_world(SyntheticWorldConfig(start="2023-01-01", end="2023-03-31")).headlines
    spec, frame = news_adapter(headlines, cache_dir=tmp_path)
    volume = frame.filter(pl.col("field_path") == VOLUME_FIELD)
    days = headlines.group_by(pl.col("published_at").dt.truncate("1d").alias("observed_at")).agg(
        pl.col("published_at").max().alias("last"),
        pl.struct("published_at", "headline").n_unique().alias("n"),
    )
    check = volume.join(days, on="observed_at")
    assert len(check) == len(days) == len(volume)
    assert (check["value"] == check["n"]).all() and (check["known_at"] == check["last"]).all()
    # The sentiment follows the world's true tone (distinct headlines, 0.29 measured here;
    # 0.45 over 2000-2024).
    distinct = headlines.group_by("headline").agg(pl.col("sentiment_truth").mean())
    scores = sentiment_scores(embed_texts(distinct["headline"], tmp_path))
    assert np.corrcoef(scores, distinct["sentiment_truth"])[0, 1] > 0.2


def test_default_cache_dir_is_under_the_data_dir(monkeypatch, tmp_path):
    monkeypatch.setattr(embeddings, "data_dir", lambda: tmp_path)
    monkeypatch.delenv(embeddings.CACHE_ENV, raising=False)
    assert embeddings.EmbeddingCache().dir == tmp_path / "embedding_cache" / embeddings.MODEL_NAME
    monkeypatch.setenv(embeddings.CACHE_ENV, str(tmp_path / "env"))
    assert embeddings.EmbeddingCache().dir == tmp_path / "env" / embeddings.MODEL_NAME
    assert Path(embeddings.EmbeddingCache(tmp_path / "x").dir).parent == tmp_path / "x"
