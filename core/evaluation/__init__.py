"""Honest before/after evaluation of rerankers: first stage alone, base model, fine-tuned runs, per query.

Realistic figures (the reranker sees only the first stage's top-k) and oracle figures (every relevant passage among
the candidates) are kept apart everywhere; a run that used test labels for a choice carries that label on every
figure it touches. Metrics follow trec_eval (core.scoring.metrics). `from core import evaluation; evaluation.X`
names core.evaluation's own public API, grouped by the file that defines it.
"""

from core.evaluation.common import (
    EMBEDDED,
    FILE_ORACLE_NOTE,
    FIRST_STAGES,
    ORACLE,
    ORACLE_NOTE,
    RANDOM_HEAD_NOTE,
    REALISTIC,
    REALISTIC_NOTE,
    SEARCHED,
    EvaluationError,
    Ranking,
    figures_kind,
    test_labels_note,
)
from core.evaluation.evaluate import evaluate, first_stage_lists
from core.evaluation.figures import Comparison, Results, System
from core.evaluation.report import per_query_csv, report_markdown, write_export
from core.evaluation.rerank import predict_pairs, score_run
from core.evaluation.results import (
    headline,
    main_figures,
    missed_relevant,
    per_query_deltas,
    query_movement,
    results_table,
    system,
    wins_and_losses,
)
from core.evaluation.statistics import best_threshold, bootstrap_ci, paired_test
from core.evaluation.stored import list_evaluations, load_evaluation, save_evaluation
from core.evaluation.systems import base_is_random, evaluable_runs, run_fusion, run_test_labels
from core.evaluation.testsets import TestSet, project_test_set, read_test_file
from core.evaluation.verdict import ALPHA, BEATS, LOSES, NOT_SIGNIFICANT, Verdict, format_p, verdict

__all__ = [
    "ALPHA",
    "BEATS",
    "EMBEDDED",
    "FILE_ORACLE_NOTE",
    "FIRST_STAGES",
    "LOSES",
    "NOT_SIGNIFICANT",
    "ORACLE",
    "ORACLE_NOTE",
    "RANDOM_HEAD_NOTE",
    "REALISTIC",
    "REALISTIC_NOTE",
    "SEARCHED",
    "Comparison",
    "EvaluationError",
    "Ranking",
    "Results",
    "System",
    "TestSet",
    "Verdict",
    "base_is_random",
    "best_threshold",
    "bootstrap_ci",
    "evaluable_runs",
    "evaluate",
    "figures_kind",
    "first_stage_lists",
    "format_p",
    "headline",
    "list_evaluations",
    "load_evaluation",
    "main_figures",
    "missed_relevant",
    "paired_test",
    "per_query_csv",
    "per_query_deltas",
    "predict_pairs",
    "project_test_set",
    "query_movement",
    "read_test_file",
    "report_markdown",
    "results_table",
    "run_fusion",
    "run_test_labels",
    "save_evaluation",
    "score_run",
    "system",
    "test_labels_note",
    "verdict",
    "wins_and_losses",
    "write_export",
]
