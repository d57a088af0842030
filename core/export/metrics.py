"""The server's counters in Prometheus text format (GET /metrics), with no client library to install."""

from __future__ import annotations

import threading
from collections import Counter

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


class Histogram:
    """Cumulative buckets, a sum and a count: the Prometheus histogram type."""

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets, self.counts, self.sum, self.count = buckets, [0] * len(buckets), 0.0, 0

    def observe(self, value: float) -> None:
        for i, upper in enumerate(self.buckets):
            if value <= upper:
                self.counts[i] += 1
        self.sum += value
        self.count += 1

    def lines(self, name: str) -> list[str]:
        out = [f'{name}_bucket{{le="{upper:g}"}} {n}' for upper, n in zip(self.buckets, self.counts)]
        return out + [
            f'{name}_bucket{{le="+Inf"}} {self.count}',
            f"{name}_sum {self.sum:.6f}",
            f"{name}_count {self.count}",
        ]


class Metrics:
    """Requests by route and status, latency, and how many requests and pairs each model batch held."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[tuple[str, int]] = Counter()
        self.latency = Histogram(LATENCY_BUCKETS)
        self.batch_requests = Histogram(BATCH_BUCKETS)
        self.batch_pairs = Histogram(tuple(b * 20 for b in BATCH_BUCKETS))
        self.pairs = 0

    def request(self, route: str, status: int, seconds: float) -> None:
        """One answered request (any status)."""
        with self._lock:
            self.requests[(route, status)] += 1
            if route == "/v1/rerank":
                self.latency.observe(seconds)

    def batch(self, n_requests: int, n_pairs: int) -> None:
        """One model call over n_requests requests' pairs."""
        with self._lock:
            self.batch_requests.observe(n_requests)
            self.batch_pairs.observe(n_pairs)
            self.pairs += n_pairs

    def render(self) -> str:
        """The exposition text."""
        with self._lock:
            out = [
                "# HELP rerank_requests_total Requests answered, by route and HTTP status.",
                "# TYPE rerank_requests_total counter",
            ]
            out += [
                f'rerank_requests_total{{route="{r}",status="{s}"}} {n}'
                for (r, s), n in sorted(self.requests.items())
            ]
            errors = sum(n for (_, s), n in self.requests.items() if s >= 400)
            out += [
                "# HELP rerank_errors_total Requests answered with a 4xx or 5xx status.",
                "# TYPE rerank_errors_total counter",
                f"rerank_errors_total {errors}",
                "# HELP rerank_request_seconds Time to answer POST /v1/rerank, body read to response.",
                "# TYPE rerank_request_seconds histogram",
                *self.latency.lines("rerank_request_seconds"),
                "# HELP rerank_batch_requests Requests scored together in one model call.",
                "# TYPE rerank_batch_requests histogram",
                *self.batch_requests.lines("rerank_batch_requests"),
                "# HELP rerank_batch_pairs (query, passage) pairs scored in one model call.",
                "# TYPE rerank_batch_pairs histogram",
                *self.batch_pairs.lines("rerank_batch_pairs"),
                "# HELP rerank_pairs_total (query, passage) pairs scored.",
                "# TYPE rerank_pairs_total counter",
                f"rerank_pairs_total {self.pairs}",
            ]
        return "\n".join(out) + "\n"
