"""Dataset quality: query and document diversity, token lengths against the context, and the field's health
rules. Plain functions over the store's rows; the Quality page only draws what these return."""

from core.quality.cache import data_fingerprint
from core.quality.checklist import DEFAULT_THRESHOLD, Check, checklist
from core.quality.maps import MAP_SAMPLE, map_sample, project_2d
from core.quality.neighbours import clusters, effective_count, nearest
from core.quality.report import (
    DEFAULT_MAX_LENGTH,
    QualityReport,
    TokenTable,
    analyse,
    forget_memo,
    model_choice,
    report_key,
    settings_models,
)
from core.quality.sides import KNN_K, MIN_THRESHOLD, TextSide
from core.quality.snippets import (
    Snippet,
    accept_snippets,
    propose_snippets,
    revert_snippets,
    snippet_origins,
    split_sentences,
    windows,
)
from core.quality.text_stats import text_stats
from core.quality.tokens import special_tokens, token_counts
from core.quality.views import (
    cluster_table,
    diversity_summary,
    leakage,
    passage_clusters,
    query_clusters,
    truncated,
    truncated_table,
)

__all__ = [
    "DEFAULT_MAX_LENGTH",
    "DEFAULT_THRESHOLD",
    "KNN_K",
    "MAP_SAMPLE",
    "MIN_THRESHOLD",
    "Check",
    "QualityReport",
    "Snippet",
    "TextSide",
    "TokenTable",
    "accept_snippets",
    "analyse",
    "checklist",
    "cluster_table",
    "clusters",
    "data_fingerprint",
    "diversity_summary",
    "effective_count",
    "forget_memo",
    "leakage",
    "map_sample",
    "model_choice",
    "nearest",
    "passage_clusters",
    "project_2d",
    "propose_snippets",
    "query_clusters",
    "report_key",
    "revert_snippets",
    "settings_models",
    "snippet_origins",
    "special_tokens",
    "split_sentences",
    "text_stats",
    "token_counts",
    "truncated",
    "truncated_table",
    "windows",
]
