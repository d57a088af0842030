"""The evaluation: first stage alone, the base model and each run on one test set; realistic and oracle apart."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core import models, store
from core.evaluation.common import (
    EMBEDDED,
    FILE_ORACLE_NOTE,
    FIRST_STAGES,
    ORACLE,
    ORACLE_NOTE,
    REALISTIC,
    REALISTIC_NOTE,
    SEARCHED,
    EvaluationError,
    Ranking,
)
from core.evaluation.rerank import cross_encoder_scores, fusion_first_stage, order, rank, score_run
from core.evaluation.stored import save_evaluation
from core.evaluation.summary import Scores, Work, summarize
from core.evaluation.systems import (
    base_systems,
    evaluable_runs,
    run_system,
    run_test_labels,
    with_test_labels,
)
from core.evaluation.testsets import TestSet, project_test_set
from core.progress import Progress, counted, noop, scaled
from core.runs.run_row import Run
from core.scoring.first_stage import search
from core.scoring.metrics import GAIN, GAIN_NOTE
from core.scoring.reranker import Reranker, as_run


def first_stage_lists(
    ts: TestSet,
    first_stage: str,
    top_k: int,
    embedding_model: str | None,
    workspace: Path,
    progress: Progress | None = None,
) -> dict[str, Ranking]:
    """Each query's top-k candidates from the chosen first stage."""
    qkeys = list(ts.queries)
    texts = [ts.queries[q] for q in qkeys]
    if first_stage in SEARCHED:
        if not ts.corpus:
            raise EvaluationError("The corpus is empty: nothing to retrieve from.")
        lists = search(
            first_stage,
            ts.corpus,
            texts,
            top_k,
            embedding_model,
            workspace=workspace,
            progress=counted(progress, "embedding passages"),
        )
    else:
        if not ts.candidates:
            raise EvaluationError(
                "This test set gives no candidates; choose BM25, the embedding model or the hybrid."
            )
        lists = [ts.candidates.get(q, [])[:top_k] for q in qkeys]
    return dict(zip(qkeys, lists))


def _as_scores(groups: list[tuple[str, list[str]]], arrays: list[np.ndarray]) -> Scores:
    return {q: dict(zip(ds, np.asarray(a, float).tolist())) for (q, ds), a in zip(groups, arrays)}


def _add(work: Work, sysinfo: dict[str, Any], per_query: Scores) -> None:
    """Record one system: its scores and its rankings (main and oracle)."""
    key = sysinfo["key"]
    work.systems.append({k: v for k, v in sysinfo.items() if k not in ("spec", "run", "fusion")})
    work.ce_scores[key] = per_query
    work.rankings[key], work.oracle_rankings[key] = rank(work.groups, work.fs_lists, per_query)


def _texts(work: Work) -> list[tuple[str, list[str]]]:
    """(query text, candidate passage texts) for every evaluated query, in the groups' order."""
    return [(work.ts.queries[q], [work.ts.corpus[d] for d in ds]) for q, ds in work.groups]


def _score_base(work: Work, sysinfo: dict[str, Any], seed: int, progress: Progress) -> Scores:
    """A base model's cross-encoder scores on every candidate (a model by name, not a run: no formula)."""
    import torch

    torch.manual_seed(seed)  # the same random head on every evaluation, still arbitrary
    return _as_scores(
        work.groups,
        cross_encoder_scores(
            sysinfo["spec"],
            sysinfo["max_length"],
            _texts(work),
            progress,
            f"reranking with {sysinfo['label']}",
        ),
    )


def _add_run(work: Work, sysinfo: dict[str, Any], progress: Progress) -> None:
    """One run scored by its Reranker (the ONE path to a run's score), with its parts shown apart."""
    reranker, parts = score_run(
        sysinfo["run"], _texts(work), progress, f"reranking with {sysinfo['label']}", work.workspace
    )
    fusion = sysinfo.get("fusion") or {}
    if reranker.kind == "residual":
        _add_residual(work, sysinfo, parts, float(reranker.spec["beta"]), fusion)
        return
    _add(work, sysinfo, _as_scores(work.groups, [p["cross_encoder"] for p in parts]))
    if reranker.kind == "blended":
        _add_fused(work, sysinfo, reranker, [(p["cross_encoder"], p["cosine"]) for p in parts], fusion)
    elif (
        "alpha" in fusion
    ):  # a blend only the run's record carries (e.g. with BM25): its inputs from the record
        first = fusion_first_stage(
            work.ts, work.groups, fusion, work.first_stage, work.fs_lists, work.workspace
        )
        blend = Reranker({"kind": "blended", "alpha": float(fusion["alpha"])}, None)
        _add_fused(
            work,
            sysinfo,
            blend,
            [(p["cross_encoder"], first[q]) for (q, _), p in zip(work.groups, parts)],
            fusion,
        )


def _add_residual(
    work: Work,
    sysinfo: dict[str, Any],
    parts: list[dict[str, np.ndarray]],
    beta: float,
    fusion: dict[str, Any],
) -> None:
    """A residual run as trained (the Reranker's score), its cross-encoder part and its prior alone apart."""
    key, run_id = sysinfo["key"], sysinfo["run_id"]
    sysinfo.update(
        label=f"Fine-tuned run {run_id} (as trained: cross-encoder + {beta:g} x embedding cosine)",
        residual_beta=beta,
        notes=[
            f"residual run: {fusion.get('formula', 'score = logit + beta x cosine')}; "
            f"embedding model {fusion.get('first_stage', '?')}"
        ],
    )
    _add(work, sysinfo, _as_scores(work.groups, [p["score"] for p in parts]))
    _add(
        work,
        {
            "key": f"{key}:cross-encoder",
            "kind": "component",
            "run_id": run_id,
            "notes": [],
            "label": f"Run {run_id}: its cross-encoder part alone (a correction, not a ranker on its own)",
        },
        _as_scores(work.groups, [p["cross_encoder"] for p in parts]),
    )
    pkey = f"prior:{fusion.get('first_stage')}"
    if work.first_stage != "embedding" and pkey not in work.rankings:
        # what the run's prior alone does to these candidates: the cross-encoder's share is the rest
        _add(
            work,
            {
                "key": pkey,
                "kind": "component",
                "run_id": None,
                "notes": [],
                "label": "Embedding cosine alone reranking these candidates (a residual run's prior, "
                "no cross-encoder)",
            },
            _as_scores(work.groups, [p["cosine"] for p in parts]),
        )


def _add_fused(
    work: Work,
    sysinfo: dict[str, Any],
    blend: Reranker,
    inputs: list[tuple[np.ndarray, np.ndarray]],
    fusion: dict[str, Any],
) -> None:
    """The run blended with its first stage by the Reranker's `combine`, shown beside the cross-encoder alone."""
    key, alpha = f"{sysinfo['key']}:fused", blend.spec["alpha"]
    # main and oracle lists are blended separately: z-scores are taken over each candidate list
    main, oracle = {}, {}
    for (q, ds), (ce, first) in zip(work.groups, inputs):
        oracle[q] = order(ds, blend.combine(ce, first))
        n = len(work.fs_lists[q])  # the first stage's candidates come first in each group
        main[q] = order(ds[:n], blend.combine(ce[:n], first[:n]))
    work.rankings[key], work.oracle_rankings[key] = main, oracle
    work.systems.append(
        {
            "key": key,
            "kind": "fused",
            "run_id": sysinfo["run_id"],
            "fusion": fusion,
            "label": f"Fine-tuned run {sysinfo['run_id']} fused (blended with first stage, alpha={alpha})",
            "notes": [
                f"score fusion: {fusion.get('method', 'alpha*z(ce)+(1-alpha)*z(first stage)')}; "
                f"alpha={alpha} chosen on {fusion.get('chosen_on', 'validation')}, "
                f"first stage of the blend: {fusion.get('first_stage', '?')}"
            ],
        }
    )


def _check(first_stage: str, top_k: int) -> int:
    if first_stage not in FIRST_STAGES:
        raise EvaluationError(
            f"Unknown first stage {first_stage!r}; choose one of {', '.join(FIRST_STAGES)}."
        )
    if not 1 <= int(top_k) <= 1000:
        raise EvaluationError(f"top-k must be between 1 and 1000, got {top_k}.")
    return int(top_k)


def _mark_test_labels(work: Work, runs: list[Run]) -> list[str]:
    """Every system a run touched carries the run's `test_labels_used_for`; returns them all, in order."""
    used = {r.id: run_test_labels(r) for r in runs}
    for s in work.systems:
        if used.get(s.get("run_id") or ""):
            with_test_labels(s, used[s["run_id"]])
    return list(dict.fromkeys(u for r in runs for u in used[r.id]))


def _groups(ts: TestSet, fs_lists: dict[str, Any], oracle: bool) -> list[tuple[str, list[str]]]:
    """Each query's candidates: the first stage's list, plus (oracle) the relevant passages it missed."""
    out = []
    for q, c in fs_lists.items():
        seen = {d for d, _ in c}
        missed = [d for d, g in ts.qrels[q].items() if g > 0 and d not in seen] if oracle else []
        out.append((q, [d for d, _ in c] + missed))
    return out


def evaluate(
    conn: sqlite3.Connection,
    project: int,
    run_ids: Sequence[str] = (),
    *,
    test_set: TestSet | None = None,
    first_stage: str = "bm25",
    top_k: int = 20,
    include_base: bool = True,
    oracle: bool = True,
    embedding_model: str | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
    progress: Progress | None = None,
    save: bool = True,
    model_dirs: Sequence[str] = (),
) -> dict[str, Any]:
    """First stage alone, the base model and each run on one test set; realistic and oracle kept apart.

    `model_dirs`: exported bundles (or model folders) evaluated like runs, under the key `run:model:<name>`."""
    started, top_k, report = time.time(), _check(first_stage, top_k), progress or noop
    ts = test_set or project_test_set(conn, project)
    runs = evaluable_runs(conn, project, run_ids) + [as_run(m) for m in model_dirs]
    which = ORACLE if first_stage == "file" and ts.candidates_are_oracle else REALISTIC
    oracle = oracle and which == REALISTIC  # oracle candidates already hold every relevant passage
    workspace = store.workspace_of(conn)
    report(0.0, "first stage")
    fs_lists = first_stage_lists(ts, first_stage, top_k, embedding_model, workspace, scaled(report, 0.0, 0.1))
    work = Work(ts, first_stage, workspace, fs_lists, _groups(ts, fs_lists, oracle))
    fs_label = FIRST_STAGES[first_stage] + (
        f" ({models.model_key(embedding_model)})" if first_stage in EMBEDDED else ""
    )
    work.systems.append(
        {
            "key": "first_stage",
            "label": f"First stage alone: {fs_label}",
            "kind": "first_stage",
            "run_id": None,
            "notes": [FILE_ORACLE_NOTE] if which == ORACLE else [],
        }
    )
    work.rankings["first_stage"] = fs_lists
    todo = (base_systems(runs) if include_base else []) + [run_system(r) for r in runs]
    for i, sysinfo in enumerate(todo):
        part = scaled(report, 0.1 + 0.9 * i / len(todo), 0.1 + 0.9 * (i + 1) / len(todo))
        if sysinfo["kind"] == "run":
            _add_run(work, sysinfo, part)
        else:
            _add(work, sysinfo, _score_base(work, sysinfo, seed, part))
    used = _mark_test_labels(work, runs)
    results = summarize(work, top_k, n_bootstrap, seed, which)
    results["params"] = {
        "first_stage": first_stage,
        "first_stage_label": fs_label,
        "top_k": top_k,
        "test_set": ts.name,
        "queries": len(fs_lists),
        "run_ids": list(run_ids),
        "models": [r.bundle for r in runs if r.bundle],
        "include_base": include_base,
        "oracle": oracle,
        "seed": seed,
        "n_bootstrap": n_bootstrap,
        "embedding_model": models.model_key(embedding_model) if first_stage in EMBEDDED else None,
        "notes": ts.notes + ([FILE_ORACLE_NOTE] if which == ORACLE else []),
        "figures": which,
        "realistic_note": REALISTIC_NOTE,
        "oracle_note": ORACLE_NOTE,
        "test_labels_used_for": used,
        "gain": GAIN,
        "gain_note": GAIN_NOTE,
    }
    results["wall_s"] = round(time.time() - started, 2)
    report(1.0, "done")
    if save:
        results["evaluation_id"] = save_evaluation(conn, project, results)
    return results
