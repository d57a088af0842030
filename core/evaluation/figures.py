"""Typed reading of an evaluation: systems, comparisons and their verdicts as dataclasses, not nested dicts.

An evaluation is stored as JSON (`stored.py`) in the shape `evaluate` returns; `Results.of(res)` reads any stored
one, old ones included (a comparison saved before `significant` and `draws` were recorded gets them from its p and
the default draws). Pages, the CLI, the report, the card and the overview read figures through it:
`r.mean(key)`, `r.per_query(key, metric)`, `r.comparison(key)`, `r.verdict(key)`, `r.judged(key)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.evaluation.common import ORACLE, figures_kind
from core.evaluation.verdict import ALPHA, DRAWS, Verdict, format_p, verdict
from core.scoring.metrics import GAIN_NOTE, JUDGED, LOW_JUDGED, judged_at

SHIPPABLE = ("run", "fused")  # the systems a verdict is given for: what a person could ship
PRIMARY = "ndcg@10"


@dataclass(frozen=True)
class System:
    """One evaluated system: its key, label, kind (first_stage, base, run, fused, component) and its notes."""

    key: str
    label: str
    kind: str
    run_id: str | None = None
    notes: tuple[str, ...] = ()
    test_labels_used_for: tuple[str, ...] = ()
    random_head: bool = False

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> System:
        """A stored system dict as a System."""
        return cls(
            key=str(d["key"]),
            label=str(d.get("label", d["key"])),
            kind=str(d.get("kind", "")),
            run_id=d.get("run_id"),
            notes=tuple(d.get("notes") or ()),
            test_labels_used_for=tuple(d.get("test_labels_used_for") or ()),
            random_head=bool(d.get("random_head", False)),
        )


@dataclass(frozen=True)
class Comparison:
    """A paired test of one system against a reference over the same queries (NDCG@10 unless said)."""

    system: str
    reference: str
    mean_diff: float
    p_value: float
    ci: tuple[float, float]
    metric: str = PRIMARY
    figures: str = "realistic"
    n: int = 0
    wins: int = 0
    losses: int = 0
    ties: int = 0
    draws: int = DRAWS
    test_labels_used_for: tuple[str, ...] = ()

    @property
    def significant(self) -> bool:
        """p < ALPHA."""
        return self.p_value < ALPHA

    @property
    def p_text(self) -> str:
        """'p < 0.0001' at the floor of the test, 'p = 0.0312' otherwise."""
        return format_p(self.p_value, self.draws)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Comparison:
        """A stored comparison (any age) as a Comparison."""
        lo, hi = (list(d.get("ci") or [0.0, 0.0]) + [0.0, 0.0])[:2]
        return cls(
            system=str(d["system"]),
            reference=str(d["reference"]),
            mean_diff=float(d["mean_diff"]),
            p_value=float(d["p_value"]),
            ci=(float(lo), float(hi)),
            metric=str(d.get("metric", PRIMARY)),
            figures=str(d.get("figures", "realistic")),
            n=int(d.get("n", 0)),
            wins=int(d.get("wins", 0)),
            losses=int(d.get("losses", 0)),
            ties=int(d.get("ties", 0)),
            draws=int(d.get("draws") or DRAWS),
            test_labels_used_for=tuple(d.get("test_labels_used_for") or ()),
        )


def optimistic_note(used: tuple[str, ...] | list[str]) -> str:
    """What a figure chosen with test labels carries, appended to its verdict ('' when none)."""
    if not used:
        return ""
    return (
        f" Optimistic: the run used the test labels for {', '.join(used)}, so this is not a realistic figure."
    )


@dataclass
class Results:
    """An evaluation's results (the stored dict under `raw`), read through types."""

    raw: dict[str, Any]
    systems: list[System] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)

    @classmethod
    def of(cls, raw: dict[str, Any] | Results) -> Results:
        """Read a results dict as `evaluate` returns it or as `load_evaluation` loads it (old ones too)."""
        if isinstance(raw, Results):
            return raw
        return cls(
            raw,
            [System.from_dict(s) for s in raw.get("systems", [])],
            [Comparison.from_dict(c) for c in raw.get("comparisons", [])],
        )

    @property
    def which(self) -> str:
        """'realistic', or 'oracle' when the candidates already held every relevant passage."""
        return figures_kind(self.raw)

    @property
    def params(self) -> dict[str, Any]:
        """The evaluation's parameters (first stage, top k, test set, seed, test-label use, ...)."""
        return dict(self.raw.get("params") or {})

    @property
    def queries(self) -> list[str]:
        """The evaluated query keys, in order."""
        return list(self.raw.get("queries") or {})

    @property
    def gain(self) -> str:
        """How NDCG's gains were computed (older evaluations used the same linear gains, unsaid)."""
        return str(self.params.get("gain_note") or GAIN_NOTE)

    @property
    def metrics(self) -> list[str]:
        """The figures measured per query (NDCG@10, MRR@10, MAP, Recall@k, judged@10 in newer evaluations)."""
        return list(self.raw.get("metrics") or [])

    def passage(self, key: str) -> str:
        """A passage's stored snippet (its key when none was kept)."""
        return str((self.raw.get("passages") or {}).get(key, key))

    def query_id(self, query_key: str) -> int | None:
        """The store's id of an evaluated query (None for an uploaded test set's own queries)."""
        qid = self.raw["queries"][query_key].get("query_id")
        return None if qid is None else int(qid)

    def distribution(self, key: str) -> dict[str, Any] | None:
        """Scores of relevant vs non-relevant candidates of one model, with the F1-best threshold (test labels)."""
        return (self.raw.get("score_distributions") or {}).get(key)

    def system(self, key: str) -> System:
        """One system by key."""
        return next(s for s in self.systems if s.key == key)

    def keys(self, *kinds: str) -> list[str]:
        """System keys, of the given kinds only when any are given."""
        return [s.key for s in self.systems if not kinds or s.kind in kinds]

    def has(self, key: str, which: str | None = None) -> bool:
        """True when the system has figures of this kind (main figures by default)."""
        return key in (self.raw.get(which or self.which) or {})

    def mean(self, key: str, metric: str = PRIMARY, which: str | None = None) -> float:
        """The mean of one metric over the queries."""
        return float(self.raw[which or self.which][key]["mean"][metric])

    def ci(self, key: str, metric: str = PRIMARY, which: str | None = None) -> tuple[float, float]:
        """The 95% bootstrap interval of that mean."""
        lo, hi = self.raw[which or self.which][key]["ci"][metric]
        return float(lo), float(hi)

    def per_query(self, key: str, metric: str = PRIMARY, which: str | None = None) -> list[float]:
        """One metric per query (in query order) for one system."""
        pq = self.raw["per_query"][which or self.which][key]
        return [float(pq[q][metric]) for q in self.queries]

    def judged(self, key: str, which: str | None = None) -> float | None:
        """judged@10: the mean share of the system's top 10 that has a label (computed afresh from the stored
        rankings for older evaluations; None where they are not stored)."""
        fig = self.raw[which or self.which][key]["mean"]
        if JUDGED in fig:
            return float(fig[JUDGED])
        if (which or self.which) != self.which:
            return None  # only the main rankings are stored
        qs = self.raw["queries"]
        lists = self.raw.get("rankings", {}).get(key, {})
        shares = [judged_at([d for d, _ in lists.get(q, [])], qs[q]["relevant"], 10) for q in self.queries]
        return sum(shares) / len(shares) if shares else 0.0

    def comparison(self, system: str, reference: str = "first_stage") -> Comparison | None:
        """The paired test of a system against a reference, if one was made."""
        return next((c for c in self.comparisons if c.system == system and c.reference == reference), None)

    def verdict(self, key: str, reference: str = "first_stage") -> Verdict | None:
        """The one verdict rule applied to a system against a reference (main NDCG@10 figures)."""
        c = self.comparison(key, reference)
        if c is None or not self.has(key) or not self.has(reference):
            return None
        s = self.system(key)
        ref = "first stage" if reference == "first_stage" else self.system(reference).label
        return verdict(
            s.label,
            self.mean(key),
            self.mean(reference),
            c.p_value,
            reference=ref,
            where=f"on {self.which} figures",
            figures=ORACLE if self.which == ORACLE else self.which,
            draws=c.draws,
            note=optimistic_note(c.test_labels_used_for or s.test_labels_used_for),
        )

    def verdicts(self) -> list[Verdict]:
        """A verdict for every shippable system (a run as trained, a run's blend) against the first stage."""
        out = [self.verdict(k) for k in self.keys(*SHIPPABLE)]
        return [v for v in out if v is not None]

    def runs_compared(self) -> list[str]:
        """The runs (and exported models) evaluated side by side on these test labels."""
        return [s.run_id or s.key for s in self.systems if s.kind == "run"]

    def best_of_n_note(self) -> str:
        """Said when several runs are compared on the test set: the best of them on test is an optimistic pick."""
        n = len(self.runs_compared())
        if n < 2:
            return ""
        return (
            f"{n} runs are compared on the same test labels: the best of {n} on these figures is an optimistic "
            "pick (chance favours whichever is highest). Choose between runs on their validation figures (Train "
            "page, Overview) and use these test figures to confirm the one chosen."
        )

    def judged_notes(self, which: str | None = None) -> list[str]:
        """One sentence naming every system whose top 10 is less than LOW_JUDGED labelled (none when all are)."""
        low = []
        for s in self.systems:
            share = self.judged(s.key, which) if self.has(s.key, which) else None
            if share is not None and share < LOW_JUDGED:
                low.append(f"{s.label} {share:.0%}")
        if not low:
            return []
        return [
            f"Only part of each top 10 has a label (judged@10: {'; '.join(low)}): an unjudged passage counts as "
            "not relevant, so NDCG@10 may understate a system that surfaces relevant passages nobody judged. "
            "Judge those top 10s (Review page) or read the figures as lower bounds."
        ]
