"""Frozen field identity: the sentence embedding of each field's semantic type.

Every field (latent regime fields included) is identified by the all-MiniLM-L6-v2
embedding of its plain-English `semantic_type`. The embedding goes through the same
on-disk cache as news texts (:func:`ingest.embeddings.embed_texts`, keyed by the SHA-256
of the normalised text), so each sentence is run through the model once per cache directory.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np

from canvas.layout import CanvasLayout
from ingest.embeddings import embed_texts
from warehouse.fields import Field

__all__ = ["semantic_embeddings"]


def semantic_embeddings(
    layout_or_fields: CanvasLayout | Iterable[Field],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
) -> np.ndarray:
    """(F, 384) float32 unit-norm embeddings of the fields' semantic types, in field order.

    `cache_dir` defaults to embed_texts' default: ``$GUWM_EMBEDDING_CACHE``, else
    ``warehouse.paths.data_dir() / "embedding_cache"``.
    """
    fields = (
        layout_or_fields.fields
        if isinstance(layout_or_fields, CanvasLayout)
        else tuple(layout_or_fields)
    )
    return embed_texts([f.semantic_type for f in fields], cache_dir)
