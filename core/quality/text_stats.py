"""Plain text statistics of one side: characters, words and vocabulary size."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_PUNCTUATION = str.maketrans({c: " " for c in "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"})


def text_stats(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, int]:
    """Characters, words per text and the vocabulary size (distinct lower-cased words, punctuation removed)."""
    chars = np.fromiter((len(t) for t in texts), dtype=np.int32, count=len(texts))
    vocab: set[str] = set()
    words = np.zeros(len(texts), dtype=np.int32)
    for i, t in enumerate(texts):
        tokens = t.lower().translate(_PUNCTUATION).split()
        words[i] = len(tokens)
        vocab.update(tokens)
    return chars, words, len(vocab)
