"""Hard-negative mining: sentence-transformers' miner fed from the studio's embedding cache, plus random
negatives and a false-negative risk per candidate, stored as rows the Review page works through."""

from core.mining.encoder import CachedEncoder
from core.mining.miner import library_mine, mine
from core.mining.params import (
    CROSS_ENCODER_PAIRS_PER_SECOND,
    PRESETS,
    MiningError,
    MiningParams,
    preset,
)
from core.mining.plan import Plan, cross_encoder_cost, plan
from core.mining.results import fetch_negatives, latest_completed_stats, latest_run, score_distributions
from core.mining.risk import risk_scores, z_against_reference
from core.mining.stale import close_stale_runs

__all__ = [
    "CROSS_ENCODER_PAIRS_PER_SECOND",
    "PRESETS",
    "CachedEncoder",
    "MiningError",
    "MiningParams",
    "Plan",
    "close_stale_runs",
    "cross_encoder_cost",
    "fetch_negatives",
    "latest_completed_stats",
    "latest_run",
    "library_mine",
    "mine",
    "plan",
    "preset",
    "risk_scores",
    "score_distributions",
    "z_against_reference",
]
