"""`python -m core evaluate`: evaluate runs on the project's test set and print the main figures as one JSON line."""

from __future__ import annotations

from typing import Any

from core import store
from core.evaluation.common import ORACLE, REALISTIC, figures_kind
from core.evaluation.evaluate import evaluate
from core.evaluation.results import system
from core.scoring.reranker import as_run


def cli_arguments(parser: Any) -> None:
    """`python -m core evaluate --project NAME --run RUN_ID [--first-stage bm25|embedding] [--top-k K]`."""
    parser.add_argument("--project", required=True, help="project name")
    parser.add_argument("--run", action="append", default=[], help="run id to evaluate (repeatable)")
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        help="an exported bundle (or model folder) to evaluate like a run (repeatable)",
    )
    parser.add_argument("--first-stage", choices=("bm25", "embedding"), default="bm25")
    parser.add_argument("--top-k", type=int, default=20, help="candidates reranked per query")
    parser.add_argument(
        "--embedding-model", default=None, help="embedding model of the embedding first stage"
    )
    parser.add_argument("--base", action="store_true", help="also evaluate the base model")
    parser.add_argument("--no-oracle", action="store_true", help="skip the oracle figures")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the intervals")
    parser.add_argument("--seed", type=int, default=0)


def _r(x: float) -> float:
    return round(float(x), 6)


def _put(out: dict[str, Any], prefix: str, fig: dict[str, Any]) -> None:
    for m, short in (("ndcg@10", "ndcg10"), ("mrr@10", "mrr10"), ("map", "map"), ("recall@10", "recall10")):
        out[f"{prefix}_{short}"] = _r(fig["mean"][m])
        out[f"{prefix}_{short}_ci"] = [_r(v) for v in fig["ci"][m]]


def _run_figures(out: dict[str, Any], res: dict[str, Any], run_ids: list[str], pre: str) -> None:
    """The first run's figures (as trained, fused, its parts), the others' NDCG@10, each under `pre`."""
    main, orc = res[figures_kind(res)], res[ORACLE]
    key = f"run:{run_ids[0]}"
    _put(out, f"{pre}reranked", main[key])
    p = next(c for c in res["comparisons"] if c["system"] == key and c["reference"] == "first_stage")
    out[f"{pre}reranked_vs_first_stage_p"] = _r(p["p_value"])
    out["beats_first_stage"] = (
        main[key]["mean"]["ndcg@10"] > main["first_stage"]["mean"]["ndcg@10"] if not pre else None
    )  # an oracle figure gives no verdict
    if f"{key}:fused" in main:
        _put(out, f"{pre}fused", main[f"{key}:fused"])
        out["fused_alpha"] = system(res, f"{key}:fused")["fusion"]["alpha"]
    if f"{key}:cross-encoder" in main:
        _put(out, f"{pre}cross_encoder_part", main[f"{key}:cross-encoder"])
        out["residual_beta"] = system(res, key).get("residual_beta")
        prior = next((k for k in main if k.startswith("prior:")), None)
        if prior:
            _put(out, f"{pre}prior_only", main[prior])
            c = next(c for c in res["comparisons"] if c["system"] == key and c["reference"] == prior)
            out[f"{pre}reranked_vs_prior_only_p"] = _r(c["p_value"])
    if not pre and key in orc:
        out["oracle_reranked_ndcg10"] = _r(orc[key]["mean"]["ndcg@10"])
    for extra in run_ids[1:]:
        out[f"{pre}reranked_ndcg10[{extra}]"] = _r(main[f"run:{extra}"]["mean"]["ndcg@10"])


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
    _put(out, f"{pre}first_stage", res[which]["first_stage"])
    ids = args.run + [as_run(m)["id"] for m in args.model]
    if args.model and not args.run:
        out["model"] = ids[0]
    if ids:
        _run_figures(out, res, ids, pre)
    if "base" in res[which]:
        _put(out, f"{pre}base", res[which]["base"])
        out["base_random_head"] = system(res, "base").get("random_head", False)
    out["wall_s"] = res["wall_s"]
    return out
