"""Length-grouped batches: rows of similar length share a batch, so less of each batch is padding.

Checkpoints pickle the TrainingArguments, which name this class: it lives at module level here, and
`core.training.LengthGroupedBatchSampler` (where older checkpoints look for it) still finds it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from typing import Any

from sentence_transformers.base.sampler import DefaultBatchSampler


class LengthGroupedBatchSampler(DefaultBatchSampler):
    """Shuffle, then sort chunks of 50 batches by length: similar lengths share a batch (less padding)."""

    def __init__(
        self,
        dataset: Any,
        batch_size: int,
        drop_last: bool,
        valid_label_columns: Any = None,
        generator: Any = None,
        seed: int = 0,
    ) -> None:
        super().__init__(
            dataset,
            batch_size=batch_size,
            drop_last=drop_last,
            valid_label_columns=valid_label_columns,
            generator=generator,
            seed=seed,
        )
        cols = [c for c in dataset.column_names if c not in ("label", "labels")]
        self.lengths = [sum(len(str(row[c])) for c in cols) for row in dataset]
        self.epoch = 0

    def __iter__(self) -> Iterator[list[int]]:
        """Batches of row indices: a fresh shuffle each epoch, lengths grouped within chunks, batches shuffled."""
        rng = random.Random(self.seed + self.epoch)
        self.epoch += 1
        idx = list(range(len(self.lengths)))
        rng.shuffle(idx)
        chunk = self.batch_size * 50
        batches = []
        for s in range(0, len(idx), chunk):
            part = sorted(idx[s : s + chunk], key=lambda i: -self.lengths[i])
            batches += [part[b : b + self.batch_size] for b in range(0, len(part), self.batch_size)]
        if self.drop_last:
            batches = [b for b in batches if len(b) == self.batch_size]
        rng.shuffle(batches)
        yield from batches

    def __len__(self) -> int:
        """Batches per epoch."""
        n = len(self.lengths)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)
