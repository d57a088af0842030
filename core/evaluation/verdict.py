"""The ONE verdict rule of the studio, and the one way a p-value is written.

Every page, the CLI, the report, the bundle's card, the overview and the training presenter call `verdict`: a
system *beats* a reference only when its margin is positive AND a paired test says it is significant
(p < ALPHA). A positive margin without significance is *not significant*; a margin of zero or less *loses*
(does not beat). With no test (a run's validation figures recorded without one) the outcome is *untested*, and
oracle figures give no verdict at all.

`format_p` writes a randomization test's p: at its floor, (0 + 1) / (draws + 1), the true p is smaller than
anything the draws can show, so it is an upper bound: "p < 0.0001" for 10,000 draws, never "p = 0.0001".
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

ALPHA = 0.05  # the significance level of every verdict
DRAWS = 10000  # the sign flips of `statistics.paired_test` (older stored comparisons did not record theirs)

BEATS = "beats"
NOT_SIGNIFICANT = "not significant"
LOSES = "loses"  # a margin of zero or less: does NOT beat the reference
UNTESTED = "untested"  # a positive margin with no paired test behind it
ORACLE = "oracle"  # oracle figures: an upper bound, no verdict
NO_FIGURES = "no figures"  # nothing measured to judge (a run trained without validation)

LEVELS = {
    BEATS: "success",
    NOT_SIGNIFICANT: "warning",
    LOSES: "error",
    UNTESTED: "info",
    ORACLE: "info",
    NO_FIGURES: "info",
}
HEADS = {
    BEATS: "Beats the {ref}.",
    NOT_SIGNIFICANT: "Better on average, but not significantly.",
    LOSES: "Does NOT beat the {ref}.",
    UNTESTED: "Higher on average; no significance test on these figures.",
    ORACLE: "Oracle upper bound only, no verdict.",
    NO_FIGURES: "Nothing measured yet.",
}


def is_floor(p: float, draws: int | None = None) -> bool:
    """True when p is the smallest value a randomization test with `draws` sign flips can give."""
    return float(p) <= 1.0 / ((draws or DRAWS) + 1) + 1e-12


def format_p(p: float | None, draws: int | None = None) -> str:
    """'p < 0.0001' at the floor of a randomization test with `draws` flips (an upper bound), else 'p = 0.0312'."""
    if p is None:
        return "no p-value"
    if is_floor(p, draws):
        return f"p < {1.0 / (draws or DRAWS):.2g}"
    return f"p = {float(p):.3g}"


def significant(p: float | None) -> bool | None:
    """p < ALPHA; None when there is no p."""
    return None if p is None else bool(float(p) < ALPHA)


@dataclass(frozen=True)
class Verdict:
    """One comparison judged by the one rule: what to do with a system, in figures and in plain words.

    Unpacks as (level, sentence), the two things a page shows: `level, text = verdict(...)`."""

    outcome: str  # BEATS | NOT_SIGNIFICANT | LOSES | UNTESTED | ORACLE | NO_FIGURES
    subject: str
    reference: str
    value: float
    reference_value: float
    margin: float
    p: float | None
    significant: bool | None
    figures: str  # 'realistic', 'oracle', 'validation', ...
    sentence: str
    draws: int | None = None

    @property
    def beats(self) -> bool:
        """Positive margin AND significant: the only case a script may read as 'better'."""
        return self.outcome == BEATS

    @property
    def level(self) -> str:
        """success / warning / error / info: how a page shows it."""
        return LEVELS[self.outcome]

    @property
    def head(self) -> str:
        """A short headline: 'Beats the first stage.', 'Better on average, but not significantly.', ..."""
        return HEADS[self.outcome].format(ref=self.reference)

    @property
    def p_text(self) -> str:
        """The p-value as `format_p` writes it."""
        return format_p(self.p, self.draws)

    def as_json(self) -> dict[str, object]:
        """The verdict's figures for a JSON line (`beats` true only when significant)."""
        return {
            "outcome": self.outcome,
            "beats": self.beats,
            "margin": round(self.margin, 6),
            "p_value": None if self.p is None else round(self.p, 6),
            "p": self.p_text,
            "significant": self.significant,
            "figures": self.figures,
            "sentence": self.sentence,
        }

    def __iter__(self) -> Iterator[str]:
        return iter((self.level, self.sentence))


def _outcome(margin: float, p: float | None, figures: str) -> str:
    if figures == ORACLE:
        return ORACLE
    if margin <= 0:
        return LOSES
    if p is None:
        return UNTESTED
    return BEATS if float(p) < ALPHA else NOT_SIGNIFICANT


def verdict(
    subject: str,
    value: float,
    reference_value: float,
    p: float | None,
    *,
    reference: str = "first stage",
    where: str = "on realistic figures",
    figures: str = "realistic",
    metric: str = "NDCG@10",
    draws: int | None = None,
    note: str = "",
) -> Verdict:
    """Judge `subject` against `reference` (both means of `metric` over the same queries, p from a paired test).

    `where` says on which figures ('on realistic figures', 'on validation', 'on the test set'); `note` is added
    to the sentence (e.g. that test labels made a choice)."""
    margin = float(value) - float(reference_value)
    outcome = _outcome(margin, p, figures)
    verb = {
        BEATS: f"beats the {reference}",
        NOT_SIGNIFICANT: f"is better on average but does not significantly beat the {reference}",
        LOSES: f"does NOT beat the {reference}",
        UNTESTED: f"is above the {reference} on average, with no significance test,",
        ORACLE: f"is compared with the {reference} as an oracle upper bound (no verdict)",
    }[outcome]
    sig = {True: "significant", False: "not significant", None: "not tested"}[significant(p)]
    stats = f"{margin:+.3f}, {format_p(p, draws)}, {sig}" if p is not None else f"{margin:+.3f}, {sig}"
    sentence = (
        f"{subject} {verb} {where}: {metric} {float(value):.3f} vs {reference} {float(reference_value):.3f} "
        f"({stats}).{note}"
    )
    return Verdict(
        outcome=outcome,
        subject=subject,
        reference=reference,
        value=float(value),
        reference_value=float(reference_value),
        margin=margin,
        p=None if p is None else float(p),
        significant=significant(p) if figures != ORACLE else None,
        figures=figures,
        sentence=sentence,
        draws=draws,
    )


def without_figures(subject: str, sentence: str, reference: str = "first stage") -> Verdict:
    """The verdict when nothing was measured: no outcome but NO_FIGURES, and the sentence saying what to do."""
    nan = float("nan")
    return Verdict(NO_FIGURES, subject, reference, nan, nan, nan, None, None, "none", sentence)
