"""`python -m core evaluate`: evaluate runs on the project's test set and print the main figures as one JSON line."""

from __future__ import annotations

from typing import Any

from core import store
from core.evaluation.common import ORACLE, REALISTIC, SEARCHED, figures_kind
from core.evaluation.evaluate import evaluate
from core.evaluation.figures import Comparison, Results
from core.evaluation.results import system
from core.evaluation.verdict import ALPHA
from core.scoring.metrics import GAIN
from core.scoring.reranker import as_run


def cli_arguments(parser: Any) -> None:
    """`python -m core evaluate --project NAME --run RUN_ID [--first-stage bm25|embedding|hybrid] [--top-k K]`."""
    parser.add_argument("--project", required=True, help="project name")
    parser.add_argument("--run", action="append", default=[], help="run id to evaluate (repeatable)")
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        help="an exported bundle (or model folder) to evaluate like a run (repeatable)",
    )
    parser.add_argument(
        "--first-stage",
        choices=SEARCHED,
        default="bm25",
        help="the candidates' first stage: BM25, the embedding model, or both fused by reciprocal rank (hybrid)",
    )
    parser.add_argument("--top-k", type=int, default=20, help="candidates reranked per query")
    parser.add_argument(
        "--embedding-model", default=None, help="embedding model of the embedding (or hybrid) first stage"
    )
    parser.add_argument("--base", action="store_true", help="also evaluate the base model")
    parser.add_argument("--no-oracle", action="store_true", help="skip the oracle figures")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the intervals")
    parser.add_argument("--seed", type=int, default=0)


def _r(x: float) -> float:
    return round(float(x), 6)


def _put(out: dict[str, Any], prefix: str, r: Results, key: str) -> None:
    for m, short in (("ndcg@10", "ndcg10"), ("mrr@10", "mrr10"), ("map", "map"), ("recall@10", "recall10")):
        out[f"{prefix}_{short}"] = _r(r.mean(key, m))
        out[f"{prefix}_{short}_ci"] = [_r(v) for v in r.ci(key, m)]
    judged = r.judged(key)
    out[f"{prefix}_judged10"] = None if judged is None else _r(judged)


def _test(out: dict[str, Any], name: str, c: Comparison | None) -> None:
    """A paired test's p (number and words) with its significance, side by side."""
    if c is None:
        return
    out[f"{name}_p"] = _r(c.p_value)
    out[f"{name}_p_text"] = c.p_text
    out[f"{name}_significant"] = c.significant


def _run_figures(out: dict[str, Any], r: Results, run_ids: list[str], pre: str) -> None:
    """The first run's figures (as trained, fused, its parts), the others' NDCG@10, each under `pre`."""
    key = f"run:{run_ids[0]}"
    _put(out, f"{pre}reranked", r, key)
    _test(out, f"{pre}reranked_vs_first_stage", r.comparison(key))
    v = r.verdict(key)
    # true only for a positive margin that is significant; an oracle figure gives no verdict
    out["beats_first_stage"] = v.beats if v is not None and not pre else None
    out["verdict"] = v.as_json() if v is not None else None
    if r.has(f"{key}:fused"):
        _put(out, f"{pre}fused", r, f"{key}:fused")
        _test(out, f"{pre}fused_vs_first_stage", r.comparison(f"{key}:fused"))
        fused = r.verdict(f"{key}:fused")
        out["fused_beats_first_stage"] = fused.beats if fused is not None and not pre else None
        out["fused_alpha"] = system(r.raw, f"{key}:fused")["fusion"]["alpha"]
    if r.has(f"{key}:cross-encoder"):
        _put(out, f"{pre}cross_encoder_part", r, f"{key}:cross-encoder")
        out["residual_beta"] = system(r.raw, key).get("residual_beta")
        prior = next((k for k in r.keys("component") if k.startswith("prior:") and r.has(k)), None)
        if prior:
            _put(out, f"{pre}prior_only", r, prior)
            _test(out, f"{pre}reranked_vs_prior_only", r.comparison(key, prior))
    if not pre and r.has(key, ORACLE):
        out["oracle_reranked_ndcg10"] = _r(r.mean(key, which=ORACLE))
    for extra in run_ids[1:]:
        out[f"{pre}reranked_ndcg10[{extra}]"] = _r(r.mean(f"run:{extra}"))
        _test(out, f"{pre}reranked_vs_first_stage[{extra}]", r.comparison(f"run:{extra}"))
    if r.best_of_n_note():
        out["best_of_n"] = r.best_of_n_note()


def cli_main(args: Any) -> dict[str, Any]:
    """Evaluate and summarize the first run's main figures (plus fused, base and oracle when present)."""
    conn = store.connect()
    try:
        project = store.project_id(conn, args.project)
        res = evaluate(
            conn,
            project,
            args.run,
            first_stage=args.first_stage,
            top_k=args.top_k,
            include_base=args.base,
            oracle=not args.no_oracle,
            embedding_model=args.embedding_model,
            n_bootstrap=args.bootstrap,
            seed=args.seed,
            model_dirs=args.model,
        )
    finally:
        conn.close()
    which = figures_kind(res)
    pre = "" if which == REALISTIC else "oracle_"
    used = res["params"].get("test_labels_used_for") or []
    figures = (
        "realistic (first-stage candidates only)"
        if which == REALISTIC
        else "oracle (the candidates hold every relevant passage; not realistic)"
    )
    if used:
        figures += f"; optimistic: the run used the test labels for {', '.join(used)}"
    out: dict[str, Any] = {
        "evaluation_id": res["evaluation_id"],
        "run_id": args.run[0] if args.run else None,
        "first_stage": args.first_stage,
        "top_k": args.top_k,
        "queries": res["params"]["queries"],
        "figures": figures,
        "test_labels_used_for": used,
    }
    r = Results.of(res)
    _put(out, f"{pre}first_stage", r, "first_stage")
    ids = args.run + [as_run(m).id for m in args.model]
    if args.model and not args.run:
        out["model"] = ids[0]
    if ids:
        _run_figures(out, r, ids, pre)
    if r.has("base"):
        _put(out, f"{pre}base", r, "base")
        _test(out, f"{pre}base_vs_first_stage", r.comparison("base"))
        out["base_random_head"] = system(res, "base").get("random_head", False)
    out["judged_notes"] = r.judged_notes()
    out["ndcg_gain"] = res["params"].get("gain", GAIN)
    out["significance"] = (
        f"paired randomization test on NDCG@10 over queries, two-sided; significant: p < {ALPHA}"
    )
    out["wall_s"] = res["wall_s"]
    return out
