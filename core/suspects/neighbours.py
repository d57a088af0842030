"""A proposer of missing positives: the passages a person labelled relevant for the query's most similar other
queries. Relevance sets reuse passages (about two thirds of SciFact's training queries share a positive with
another query), so a query that lost its positive often has a paraphrase or sibling claim that still names it. The
proposer reads only other queries' labels, never the pair it proposes, and it never judges a labelled pair (a
positive that no other query shares would look suspect to it)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.suspects.signals import Labelled, PoolVectors

NAME = "similar queries"
# a passage no other query labels relevant ranks after every one that is, in the embedding's order
BELOW = 3.0


@dataclass
class SimilarQueries:
    """The queries' vectors and the labelled positives they vote for; `rows` scores a chunk against the pool."""

    vectors: PoolVectors
    columns: np.ndarray  # pool columns some query labels relevant, each once, ascending
    starts: np.ndarray  # where each column's labelling queries start in `voters`
    voters: np.ndarray  # query rows labelling each column relevant, grouped by column

    def rows(self, chunk: list[int]) -> np.ndarray:
        """Per query of the chunk, each passage's best cosine to another query that labels it relevant."""
        out = self.vectors.cosine(chunk) - BELOW
        if not len(self.columns):
            return out
        q = self.vectors.query_vectors
        own = np.array([self.vectors.row_of[x] for x in chunk])
        sims = q[own] @ q.T
        sims[np.arange(len(chunk)), own] = -np.inf  # a query never votes for its own labels
        best = np.maximum.reduceat(sims[:, self.voters], self.starts, axis=1)
        out[:, self.columns] = np.maximum(out[:, self.columns], best)
        return out

    def source(self, query: int, passage: int) -> tuple[int, float] | None:
        """The most similar other query that labels the passage relevant, and its cosine (None: no such query)."""
        column = self.vectors.column_of.get(passage, -1)
        at = int(np.searchsorted(self.columns, column))
        if at == len(self.columns) or self.columns[at] != column:
            return None
        end = self.starts[at + 1] if at + 1 < len(self.starts) else len(self.voters)
        own = self.vectors.row_of[query]
        voters = self.voters[self.starts[at] : end]
        voters = voters[voters != own]
        if not len(voters):
            return None
        sims = self.vectors.query_vectors[voters] @ self.vectors.query_vectors[own]
        best = int(np.argmax(sims))
        return self.vectors.queries[int(voters[best])], float(sims[best])


def similar_queries(lab: Labelled, vectors: PoolVectors) -> SimilarQueries:
    """The proposer over the split's positive labels and the embedding model's query vectors."""
    column_of = vectors.column_of
    pairs = sorted(
        (column_of[p], vectors.row_of[q])
        for q, labels in lab.labels.items()
        for p, y in labels.items()
        if y > 0 and p in column_of and q in vectors.row_of
    )
    cols = np.array([c for c, _ in pairs], dtype=np.int64)
    voters = np.array([r for _, r in pairs], dtype=np.int64)
    columns, starts = np.unique(cols, return_index=True)
    return SimilarQueries(vectors, columns, starts, voters)
