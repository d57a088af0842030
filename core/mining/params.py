"""What a mining run is asked to do: every knob of sentence-transformers' miner plus the studio's additions,
the named presets, and the errors a request can raise before any work starts."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from core import models
from core.errors import UserError

CROSS_ENCODER_PAIRS_PER_SECOND = 35.0  # bundled-size cross-encoder on 2 CPU threads


class MiningError(UserError):
    """A mining request that cannot run, said before any work starts."""


@dataclass
class MiningParams:
    """Every knob of `sentence_transformers.util.mine_hard_negatives`, plus the studio's additions.

    Library parameters (same names, same meaning):
      num_negatives: hard negatives per query (library default 3; 10 or fewer recommended).
      range_min: skip this many of the most similar candidates first (they are the likeliest false negatives).
      range_max: look no further than this rank; None derives it like the library does
        (range_min + num_negatives [x10 when a margin or score filter is set] + positives per query).
      max_score / min_score: drop candidates whose similarity to the query is above / below this.
      absolute_margin: drop candidates with similarity + margin > the positive's similarity.
      relative_margin: drop candidates above positive - |positive| * margin (0.05 = NV-Retriever's TopK-PercPos 95%).
      sampling_strategy: "top" takes the best surviving candidates, "random" samples among them.
      batch_size: embedding (and cross-encoder) batch size; faiss_batch_size: queries per search batch.
      use_faiss: search with a faiss IndexFlatIP (exact) instead of a torch matrix product.
      cross_encoder_rescoring: pass the cross-encoder to the miner, which rescores every candidate in the range
        before filtering (only when a margin or score filter is set, as in the library). Costs
        queries x (range_max + positives) predictions.
    Studio additions:
      model: embedding model (bundled default, local folder or hub id); embeddings are cached on disk.
      random_negatives: N random pool passages per query on top of the hard ones (keeps easy cases easy).
      cross_encoder: a cross-encoder (e.g. a trained run's folder) that gives each mined negative a second
        opinion (ce_score) which joins the false-negative risk.
      cross_encoder_max_length: tokens per pair for the cross-encoder.
      seed: makes random sampling repeatable.
    """

    num_negatives: int = 3
    range_min: int = 0
    range_max: int | None = None
    max_score: float | None = None
    min_score: float | None = None
    absolute_margin: float | None = None
    relative_margin: float | None = None
    sampling_strategy: str = "top"
    batch_size: int = 32
    faiss_batch_size: int = 16384
    use_faiss: bool = True
    cross_encoder_rescoring: bool = False
    model: str = models.BUNDLED
    random_negatives: int = 0
    cross_encoder: str | None = None
    cross_encoder_max_length: int = 256
    seed: int = 12

    @property
    def has_filter(self) -> bool:
        """The library widens the range and (optionally) rescores only when a filter is set."""
        return any(
            v is not None
            for v in (self.absolute_margin, self.relative_margin, self.max_score, self.min_score)
        )


PRESETS: dict[str, dict[str, Any]] = {
    # NV-Retriever's best: top-k with a positive-aware relative margin of 5% (TopK-PercPos 95%).
    "recommended": dict(
        num_negatives=5,
        range_min=0,
        range_max=None,
        relative_margin=0.05,
        absolute_margin=None,
        max_score=None,
        min_score=None,
        sampling_strategy="top",
    ),
    # The miner's own defaults: 3 negatives, top sampling, no margins.
    "library": {},
    # Fewer false negatives at the price of easier negatives: skip the 10 closest, wider margin, cap the score,
    # sample within ranks 10-100.
    "strict": dict(
        num_negatives=5,
        range_min=10,
        range_max=100,
        relative_margin=0.1,
        absolute_margin=None,
        max_score=0.85,
        min_score=None,
        sampling_strategy="random",
    ),
}


def preset(name: str, **overrides: Any) -> MiningParams:
    """A named preset with any parameter overridden."""
    if name not in PRESETS:
        raise MiningError(f"Unknown preset {name!r}: choose one of {', '.join(PRESETS)}.")
    return replace(MiningParams(**PRESETS[name]), **overrides)


def check_params(params: MiningParams) -> None:
    """Refuse parameters no run could satisfy, with the reason (MiningError), before anything loads."""
    if params.sampling_strategy not in ("top", "random"):
        raise MiningError(f"sampling_strategy must be 'top' or 'random', got {params.sampling_strategy!r}.")
    if params.num_negatives < 1:
        raise MiningError(f"num_negatives must be at least 1, got {params.num_negatives}.")
    if params.range_min < 0:
        raise MiningError(f"range_min must be 0 or more, got {params.range_min}.")
    if params.random_negatives < 0:
        raise MiningError(f"random_negatives must be 0 or more, got {params.random_negatives}.")
    if params.relative_margin is not None and params.relative_margin < 0:
        raise MiningError(f"relative_margin must be 0 or more, got {params.relative_margin}.")
    if params.max_score is not None and params.min_score is not None and params.min_score >= params.max_score:
        raise MiningError(
            f"min_score ({params.min_score}) must be below max_score ({params.max_score}): "
            "no candidate could satisfy both."
        )
    if params.range_max is not None:
        if params.range_max <= params.range_min:
            raise MiningError(
                f"range_max ({params.range_max}) must be larger than range_min ({params.range_min})."
            )
        if params.num_negatives > params.range_max - params.range_min:
            raise MiningError(
                f"Cannot pick {params.num_negatives} negatives per query from ranks {params.range_min}-"
                f"{params.range_max}: that range holds only {params.range_max - params.range_min}. Lower "
                "num_negatives or range_min, or raise range_max."
            )
    if params.cross_encoder_rescoring and not params.cross_encoder:
        raise MiningError(
            "Cross-encoder rescoring needs a cross-encoder: set cross_encoder to a model folder."
        )
