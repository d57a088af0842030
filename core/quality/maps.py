"""The 2-D embedding maps: a deterministic projection and the sample of rows a map draws."""

from __future__ import annotations

import numpy as np

MAP_SAMPLE = 5000


def project_2d(vectors: np.ndarray) -> np.ndarray:
    """PCA to two dimensions (eigenvectors of the d x d scatter): deterministic, fast, honest about layout."""
    if len(vectors) < 3:
        return np.zeros((len(vectors), 2), dtype=np.float32)
    centred = (vectors - vectors.mean(axis=0, keepdims=True)).astype(np.float64)
    _, vecs = np.linalg.eigh(centred.T @ centred)  # d x d: cheap even for 100k rows
    components = vecs[:, ::-1][:, :2].T.copy()
    components *= np.sign(components[:, [int(np.argmax(np.abs(c))) for c in components]].diagonal())[:, None]
    return (centred @ components.T).astype(np.float32)


def map_sample(group: np.ndarray, size: int = MAP_SAMPLE, seed: int = 0) -> np.ndarray:
    """Rows drawn on the map: all when few, else a stratified sample where small groups keep a fair share."""
    n = len(group)
    if n <= size:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    labels, counts = np.unique(group, return_counts=True)
    quota = {lab: max(min(c, size // (2 * len(labels))), int(size * c / n)) for lab, c in zip(labels, counts)}
    picked = []
    for lab in labels:
        rows = np.flatnonzero(group == lab)
        picked.append(rng.choice(rows, size=min(len(rows), quota[lab]), replace=False))
    out = np.concatenate(picked)
    if len(out) > size:
        out = rng.choice(out, size=size, replace=False)
    return np.sort(out)
