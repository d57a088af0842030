"""One side of the data (queries or passages) as the Quality page sees it: neighbours, map and text figures."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.progress import Progress
from core.quality.maps import map_sample, project_2d
from core.quality.neighbours import nearest
from core.quality.text_stats import text_stats

KNN_K = 32
MIN_THRESHOLD = 0.70  # the slider's floor: neighbours below this are not kept


@dataclass
class TextSide:
    """Embeddings, neighbours, map and text statistics of one side (queries or passages)."""

    ids: np.ndarray  # store ids
    texts: list[str]
    group: np.ndarray  # str labels used for colouring and filtering
    neighbours: np.ndarray  # (n, K) indices into this side, -1 where none
    similarity: np.ndarray  # (n, K) cosine similarities, descending
    map_index: np.ndarray  # which rows are drawn on the map
    map_xy: np.ndarray  # (len(map_index), 2)
    chars: np.ndarray
    words: np.ndarray
    vocabulary: int
    cross_neighbour: np.ndarray | None = None  # queries: nearest train query of each row
    cross_similarity: np.ndarray | None = None


def _graph(vectors: np.ndarray, base_rows: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The k-NN graph among the base rows (indices into the whole side), neighbours below the floor dropped."""
    neighbours = np.full((n, KNN_K), -1, dtype=np.int64)
    similarity = np.full((n, KNN_K), -1.0, dtype=np.float32)
    if len(base_rows) > 1:
        idx, sim = nearest(vectors[base_rows], vectors[base_rows], KNN_K, exclude_self=True)
        mapped = np.where(idx >= 0, base_rows[np.clip(idx, 0, None)], -1)
        sim = np.where(sim >= MIN_THRESHOLD, sim, -1.0)
        mapped = np.where(sim >= MIN_THRESHOLD, mapped, -1)
        neighbours[base_rows], similarity[base_rows] = mapped, sim
    return neighbours, similarity


def _cross(
    vectors: np.ndarray, base_rows: np.ndarray, cross_from: np.ndarray | None, n: int
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """For each row of `cross_from` (test queries), its nearest base row (training query) and the similarity."""
    if cross_from is None or not len(cross_from) or not len(base_rows):
        return None, None
    idx, sim = nearest(vectors[cross_from], vectors[base_rows], 1)
    cross_n = np.full(n, -1, dtype=np.int64)
    cross_s = np.full(n, -1.0, dtype=np.float32)
    cross_n[cross_from] = np.where(idx[:, 0] >= 0, base_rows[np.clip(idx[:, 0], 0, None)], -1)
    cross_s[cross_from] = sim[:, 0]
    return cross_n, cross_s


def build_side(
    ids: np.ndarray,
    texts: list[str],
    group: np.ndarray,
    vectors: np.ndarray,
    *,
    base_mask: np.ndarray,
    cross_from: np.ndarray | None,
    progress: Progress,
    label: str,
) -> TextSide:
    """Neighbours within the base rows (train), optional nearest-base lookup for other rows, and the map."""
    n = len(texts)
    progress(0.0, f"Finding near-duplicate {label}")
    base_rows = np.flatnonzero(base_mask)
    neighbours, similarity = _graph(vectors, base_rows, n)
    cross_n, cross_s = _cross(vectors, base_rows, cross_from, n)
    progress(0.7, f"Drawing the {label} map")
    sample = map_sample(group)
    xy = project_2d(vectors[sample]) if n else np.zeros((0, 2), dtype=np.float32)
    progress(0.85, f"Counting {label} words")
    chars, words, vocab = text_stats(texts)
    progress(1.0, f"{label.capitalize()} done")
    return TextSide(
        ids, texts, group, neighbours, similarity, sample, xy, chars, words, vocab, cross_n, cross_s
    )
