"""Evaluation: metrics against pytrec_eval on real SciFact runs, statistics, realistic vs oracle, CLI, exports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core import evaluation as ev
from core import models, store
from core.runs.run_row import Run
from core.scoring import first_stage, metrics
from tests.conftest import load_scifact, seed_scifact

pytrec_eval = pytest.importorskip("pytrec_eval")


# --- real SciFact runs --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scifact_runs(tmp_path_factory):
    """BM25 and embedding rankings (top 30) of 60 SciFact test queries over a 450-passage corpus subset,
    with graded qrels: SciFact-relevant = 2, passages both systems put in their top 3 (not relevant) = 1,
    and the next such passages judged 0."""
    sf = load_scifact()
    qids = sorted(sf["qrels"]["test"], key=int)[:60]
    rel = {d for q in qids for d in sf["qrels"]["test"][q]}
    corpus_ids = (
        sorted(rel, key=int) + [d for d in sorted(sf["corpus"], key=int) if d not in rel][: 450 - len(rel)]
    )
    corpus = {d: sf["corpus"][d] for d in corpus_ids}
    texts = [sf["queries"][q] for q in qids]
    bm25 = first_stage.bm25_search(corpus, texts, 30)
    emb = first_stage.embedding_search(corpus, texts, 30, workspace=tmp_path_factory.mktemp("emb"))
    graded = {}
    for q, b, e in zip(qids, bm25, emb):
        g = {d: 2.0 for d in sf["qrels"]["test"][q]}
        both = [d for d, _ in b[:3] if d in {x for x, _ in e[:3]} and d not in g]
        for d in both:
            g[d] = 1.0
        for d, _ in b[3:6]:
            g.setdefault(d, 0.0)
        graded[q] = g
    binary = {q: {d: float(s) for d, s in sf["qrels"]["test"][q].items()} for q in qids}
    return {
        "qids": qids,
        "bm25": dict(zip(qids, bm25)),
        "embedding": dict(zip(qids, emb)),
        "binary": binary,
        "graded": graded,
    }


def _trec(
    run: dict[str, list[tuple[str, float]]],
    qrels: dict[str, dict[str, float]],
    measures: set[str],
    depth=None,
):
    # strictly decreasing scores by rank: trec_eval's own tie-breaking never applies
    trun = {
        q: {d: float(len(r) - i) for i, (d, _) in enumerate(r[:depth] if depth else r)}
        for q, r in run.items()
    }
    tq = {q: {d: int(g) for d, g in v.items()} for q, v in qrels.items()}
    return pytrec_eval.RelevanceEvaluator(tq, measures).evaluate(trun)


@pytest.mark.parametrize("system", ["bm25", "embedding"])
@pytest.mark.parametrize("labels", ["binary", "graded"])
def test_metrics_match_pytrec_eval(scifact_runs, system, labels):
    run, qrels = scifact_runs[system], scifact_runs[labels]
    assert sum(1 for v in qrels.values() for g in v.values() if g == 1.0) > (0 if labels == "binary" else 5)
    ref = _trec(run, qrels, {"ndcg_cut.10", "map", "recall.10", "recall.20"})
    rr = _trec(run, qrels, {"recip_rank"}, depth=10)
    for q in scifact_runs["qids"]:
        ranking = [d for d, _ in run[q]]
        assert metrics.ndcg_at(ranking, qrels[q], 10) == pytest.approx(ref[q]["ndcg_cut_10"], abs=1e-6)
        assert metrics.average_precision(ranking, qrels[q]) == pytest.approx(ref[q]["map"], abs=1e-6)
        assert metrics.recall_at(ranking, qrels[q], 10) == pytest.approx(ref[q]["recall_10"], abs=1e-6)
        assert metrics.recall_at(ranking, qrels[q], 20) == pytest.approx(ref[q]["recall_20"], abs=1e-6)
        assert metrics.mrr_at(ranking, qrels[q], 10) == pytest.approx(rr[q]["recip_rank"], abs=1e-6)
    mean = np.mean([metrics.ndcg_at([d for d, _ in run[q]], qrels[q]) for q in scifact_runs["qids"]])
    assert 0.4 < mean < 0.95  # real retrieval on a small corpus, not a degenerate run


def test_bootstrap_is_seeded_and_contains_the_mean(scifact_runs):
    values = [
        metrics.ndcg_at([d for d, _ in scifact_runs["bm25"][q]], scifact_runs["binary"][q])
        for q in scifact_runs["qids"]
    ]
    lo, hi = ev.bootstrap_ci(values, seed=3)
    assert lo < np.mean(values) < hi and hi - lo < 0.3
    assert (lo, hi) == ev.bootstrap_ci(values, seed=3)
    assert (lo, hi) != ev.bootstrap_ci(values, seed=4)
    lo2, hi2 = ev.bootstrap_ci(values * 4, seed=3)  # four times the queries: a narrower interval
    assert hi2 - lo2 < (hi - lo) * 0.7


def test_paired_test_is_sane(scifact_runs):
    qids, qrels = scifact_runs["qids"], scifact_runs["binary"]
    bm25 = [metrics.ndcg_at([d for d, _ in scifact_runs["bm25"][q]], qrels[q]) for q in qids]
    same = ev.paired_test(bm25, list(bm25))
    assert same["p_value"] == 1.0 and same["mean_diff"] == 0.0
    # a clearly better system: the relevant passages moved to the top of the BM25 list
    ideal = []
    for q in qids:
        ranking = [d for d, _ in scifact_runs["bm25"][q]]
        ideal.append(metrics.ndcg_at(sorted(ranking, key=lambda d: -qrels[q].get(d, 0)), qrels[q]))
    better = ev.paired_test(bm25, ideal)
    # (the bundled sample corpus is small: BM25 already ranks most relevant passages first, few queries can gain)
    assert (
        better["mean_diff"] > 0.05
        and better["p_value"] < 0.01
        and better["losses"] == 0
        and better["wins"] >= 5
    )
    assert ev.paired_test(ideal, bm25)["mean_diff"] == pytest.approx(-better["mean_diff"])
    # two real systems: p is a probability and the direction matches the means
    emb = [metrics.ndcg_at([d for d, _ in scifact_runs["embedding"][q]], qrels[q]) for q in qids]
    t = ev.paired_test(bm25, emb, n=2000)
    assert 0 < t["p_value"] <= 1 and np.sign(t["mean_diff"]) == np.sign(np.mean(emb) - np.mean(bm25))


def test_threshold_maximizes_f1():
    t = ev.best_threshold([0.9, 0.8, 0.7], [0.6, 0.2, 0.75])
    # cut at 0.7: 3 of 4 above are relevant, all relevant found -> F1 6/7 beats the 0.8 cut (F1 0.8)
    assert t["threshold"] == 0.7 and t["f1"] == pytest.approx(6 / 7)
    assert "test labels" in t["chosen_on"]
    assert ev.best_threshold([], [0.1]) is None


# --- runs, realistic vs oracle, CLI, exports ----------------------------------------------------------


def save_cross_encoder(folder: Path, max_length: int = 128) -> Path:
    """A CrossEncoder folder as sentence-transformers saves it (bundled encoder + seeded head)."""
    import torch

    torch.manual_seed(0)
    model = models.load_cross_encoder(models.BUNDLED, max_length=max_length)
    model.save_pretrained(str(folder))
    return folder


def insert_run(
    conn,
    project: int,
    model_dir: Path,
    *,
    fusion: dict | None = None,
    run_id: str = "run-a",
    metrics: dict | None = None,
) -> str:
    """A completed run as training leaves it: the model folder under the workspace's runs/RUN_ID/model."""
    import shutil

    metrics = {**(metrics or {}), **({"fusion": fusion} if fusion else {})}
    placed = store.runs_dir(store.workspace_of(conn)) / run_id / "model"
    if not placed.exists():
        shutil.copytree(model_dir, placed)
    model_dir = placed
    with store.transaction(conn):
        conn.execute(
            "INSERT INTO runs (id, project_id, created_at, updated_at, status, config, metrics, model_dir) "
            "VALUES (?, ?, ?, ?, 'completed', ?, ?, ?)",
            (
                run_id,
                project,
                store.now(),
                store.now(),
                json.dumps({"max_length": 128, "base_model": models.BUNDLED}),
                json.dumps(metrics),
                str(model_dir),
            ),
        )
    return run_id


@pytest.fixture(scope="module")
def ce_folder(tmp_path_factory):
    return save_cross_encoder(tmp_path_factory.mktemp("ce") / "model")


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, ce_folder):
    """One evaluation shared by the read-only tests below (its own workspace)."""
    db = store.connect(tmp_path_factory.mktemp("eval-ws"))
    pid = seed_scifact(db, n_train=5, n_test=12, n_extra=150)
    fusion = {
        "alpha": 0.5,
        "first_stage": f"embedding:{models.BUNDLED}",
        "method": "alpha*z(ce)+(1-alpha)*z(cos)",
    }
    run_id = insert_run(db, pid, ce_folder, fusion=fusion)
    res = ev.evaluate(db, pid, [run_id], first_stage="bm25", top_k=5, include_base=True, n_bootstrap=200)
    yield db, pid, run_id, res
    db.close()


def test_realistic_and_oracle_stay_separate(evaluated):
    db, pid, run_id, res = evaluated
    key = f"run:{run_id}"
    assert set(res["realistic"]) == {"first_stage", "base", key, f"{key}:fused"}
    assert "first_stage" not in res["oracle"] and key in res["oracle"]
    fs = res["rankings"]["first_stage"]
    missed = 0
    for q, info in res["queries"].items():
        relevant = {d for d, g in info["relevant"].items() if g > 0}
        for k in ("base", key, f"{key}:fused"):  # realistic lists hold exactly the first stage's candidates
            assert sorted(d for d, _ in res["rankings"][k][q]) == sorted(d for d, _ in fs[q])
        missed += len(relevant - {d for d, _ in fs[q]})
        # the oracle adds every relevant passage: its recall@5 can only go up
        assert res["per_query"]["oracle"][key][q]["recall@10"] == 1.0
        assert (
            res["per_query"]["oracle"][key][q]["recall@5"]
            >= res["per_query"]["realistic"][key][q]["recall@5"]
        )
        assert (
            res["per_query"]["realistic"][key][q]["recall@5"]
            == res["per_query"]["realistic"]["first_stage"][q]["recall@5"]
        )
    assert missed > 0  # with top-5 BM25 some relevant passages are out of reach, so oracle != realistic
    assert res["oracle"][key]["mean"]["recall@10"] > res["realistic"][key]["mean"]["recall@10"]
    base = ev.system(res, "base")
    assert base["random_head"] and ev.RANDOM_HEAD_NOTE in base["notes"]
    fused = ev.system(res, f"{key}:fused")
    assert "blended with first stage" in fused["label"] and fused["fusion"]["alpha"] == 0.5
    # stored, and loads back the same
    again = ev.load_evaluation(db, res["evaluation_id"])
    assert again["realistic"] == json.loads(json.dumps(res["realistic"]))
    assert ev.list_evaluations(db, pid)[0]["params"]["run_ids"] == [run_id]
    # per-query views agree with the stored figures
    deltas = ev.per_query_deltas(res, key)
    assert len(deltas) == res["params"]["queries"] == 12
    wins, losses = ev.wins_and_losses(res, key)
    assert all(w["delta"] > 0 for w in wins) and all(x["delta"] < 0 for x in losses)
    q = deltas[0]["query_key"]
    moves = ev.query_movement(res, q, key)
    assert [m["rank"] for m in moves] == list(range(1, len(moves) + 1))
    before = {d: i + 1 for i, (d, _) in enumerate(fs[q])}
    assert all(
        m["before"] == before[m["passage_key"]] and m["moved"] == m["before"] - m["rank"] for m in moves
    )
    dist = res["score_distributions"][key]
    assert len(dist["relevant"]) + len(dist["non_relevant"]) == 12 * 5


def test_exports(evaluated):
    db, pid, run_id, res = evaluated
    report = ev.report_markdown(res)
    assert "Realistic figures" in report and "Oracle figures" in report and "random" in report
    assert report.index("Realistic figures") < report.index("Oracle figures")
    rows = ev.per_query_csv(res).strip().splitlines()
    assert (
        len(rows) == 13 and "realistic:first_stage:ndcg@10" in rows[0] and "oracle:first_stage" not in rows[0]
    )
    ws = store.workspace_of(db)
    for bad in ("../escape", "a/../../escape", "/etc/passwd", "", "sub/../../x"):
        with pytest.raises(ev.EvaluationError, match="not allowed|outside"):
            ev.write_export(db, bad, "report")
    assert ev.write_export(db, "report.md", "x").parent == (ws / "exports").resolve()
    from core.export import bundle, onnx

    with pytest.raises(store.UnsafePathError):
        bundle.destination(db, "../../stolen", run_id, explicit=False)
    dest = bundle.destination(db, "my-model", run_id, explicit=False)
    out = bundle.export_bundle(db, run_id, dest)
    assert dest.parent == (ws / "exports").resolve() and (dest / "model.safetensors").is_file()
    assert out["check"]["max_abs_score_diff"] < 1e-4
    with pytest.raises(bundle.BundleError, match="already exists"):
        bundle.export_bundle(db, run_id, dest)
    info = onnx.export_onnx(db, run_id, bundle.destination(db, "my-onnx", run_id, explicit=False))
    assert Path(info["path"]).is_dir() and info["max_abs_score_diff"] < 1e-3
    _onnx_is_no_bundle_and_loads(Path(info["path"]), dest)


def _onnx_is_no_bundle_and_loads(folder: Path, torch_bundle: Path) -> None:
    """Issue 26: the ONNX export is in a layout no bundle loader mistakes for a bundle, and scores like one."""
    from core import bases
    from core.export import onnx
    from core.scoring.reranker import Reranker, RerankerError

    assert not (folder / "rerank_spec.json").exists() and (folder / onnx.ONNX_SPEC_FILE).is_file()
    with pytest.raises(RerankerError, match="not a model folder or bundle"):
        Reranker.load(folder)  # what `core serve --model` and the Evaluate page call
    assert bases.describe_folder(folder).kind != "bundle"
    assert "not a torch bundle" in (folder / "README.md").read_text()
    groups = [("what causes cancer", ["cells divide without control", "a recipe for bread"])]
    want = Reranker.load(torch_bundle, device="cpu").score_groups(groups)
    got = onnx.load(folder).score_groups(groups)
    assert np.abs(np.concatenate(got) - np.concatenate(want)).max() < 1e-3


def test_markdown_report_escapes_user_text(evaluated):
    import copy

    res = copy.deepcopy(evaluated[3])
    q = next(iter(res["queries"]))
    res["queries"][q]["text"] = "<script>alert(1)</script> | *x*"
    res["params"]["test_set"] = "<img src=x onerror=alert(1)>.csv"
    res["systems"][0]["label"] = "[click](http://evil.example) ![x](http://evil.example/i.png)"
    report = ev.report_markdown(res, n=50)
    assert "<script>" not in report
    # every markup character of user text is backslash-escaped (one rule: core.markdown.escape_markdown)
    for raw in ("[click](", "![x](", "*x*", "](http"):
        assert raw not in report, raw
    assert "\\<img" in report and "\\[click\\]" in report and "\\!\\[x\\]" in report


def test_cli_prints_realistic_figures(db, workspace, ce_folder, capsys):
    from core.__main__ import main

    pid = seed_scifact(db, name="cli", n_train=3, n_test=8, n_extra=80)
    insert_run(
        db,
        pid,
        ce_folder,
        run_id="run-cli",
        fusion={"alpha": 0.3, "first_stage": f"embedding:{models.BUNDLED}"},
    )
    assert (
        main(
            [
                "evaluate",
                "--project",
                "cli",
                "--run",
                "run-cli",
                "--first-stage",
                "bm25",
                "--top-k",
                "4",
                "--bootstrap",
                "200",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in (
        "run_id",
        "first_stage",
        "top_k",
        "queries",
        "first_stage_ndcg10",
        "reranked_ndcg10",
        "reranked_mrr10",
        "reranked_map",
        "first_stage_ndcg10_ci",
        "reranked_ndcg10_ci",
        "reranked_mrr10_ci",
        "reranked_map_ci",
        "fused_ndcg10",
        "fused_ndcg10_ci",
        "oracle_reranked_ndcg10",
    ):
        assert key in out, key
    assert (
        out["run_id"] == "run-cli"
        and out["top_k"] == 4
        and out["queries"] == 8
        and out["first_stage"] == "bm25"
    )
    lo, hi = out["reranked_ndcg10_ci"]
    assert lo <= out["reranked_ndcg10"] <= hi
    assert out["figures"].startswith("realistic")
    # a run that is not completed is refused with a clear message
    with store.transaction(db):
        db.execute("UPDATE runs SET status = 'running' WHERE id = 'run-cli'")
    assert main(["evaluate", "--project", "cli", "--run", "run-cli"]) == 2
    assert "only a completed run" in capsys.readouterr().err


def test_uploaded_test_set_gives_candidates_and_clear_errors(db, workspace):
    pid = seed_scifact(db, name="up", n_train=2, n_test=0, n_extra=30)
    sf = load_scifact()
    q = sorted(sf["qrels"]["test"], key=int)[0]
    rel = next(iter(sf["qrels"]["test"][q]))
    others = [d for d in sorted(sf["corpus"], key=int) if d != rel][:3]
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["query", "passage", "label", "score"])
    w.writerow([sf["queries"][q], sf["corpus"][others[0]], 0, 0.9])
    w.writerow([sf["queries"][q], sf["corpus"][rel], 1, 0.5])
    w.writerow([sf["queries"][q], sf["corpus"][others[1]], 0, 0.7])
    ts = ev.read_test_file(buf.getvalue().encode(), "mine.csv", db, pid)
    assert list(ts.queries.values()) == [sf["queries"][q]]
    cands = next(iter(ts.candidates.values()))
    assert [ts.corpus[d] for d, _ in cands] == [
        sf["corpus"][others[0]],
        sf["corpus"][others[1]],
        sf["corpus"][rel],
    ]
    res = ev.evaluate(db, pid, [], test_set=ts, first_stage="file", top_k=10, include_base=False, save=False)
    assert res["realistic"]["first_stage"]["mean"]["mrr@10"] == pytest.approx(1 / 3)
    bad = b"query,passage,label\nwhat,some passage,high\n"
    with pytest.raises(ev.EvaluationError, match=r"bad\.csv, row 2, column 'label'"):
        ev.read_test_file(bad, "bad.csv", db, pid)
    with pytest.raises(ev.EvaluationError, match="no passage column"):
        ev.read_test_file(b"query,foo\na,b\n", "cols.csv", db, pid)


# --- issue 14: figures you can trust ------------------------------------------------------------------


def _rows_csv(rows: list[list], header=("query", "passage", "label")) -> bytes:
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(list(header))
    w.writerows(rows)
    return buf.getvalue().encode()


def test_file_candidates_without_score_or_rank_are_oracle_figures(db, workspace, ce_folder):
    """Every row of the file (positives included, in file order) is not a first stage: oracle, kept apart."""
    pid = seed_scifact(db, name="file-oracle", n_train=2, n_test=0, n_extra=30)
    sf = load_scifact()
    qs = sorted(sf["qrels"]["test"], key=int)[:3]
    filler = [d for d in sorted(sf["corpus"], key=int) if all(d not in sf["qrels"]["test"][q] for q in qs)][
        :6
    ]
    rows = []
    for i, q in enumerate(qs):
        rows.append([sf["queries"][q], sf["corpus"][filler[2 * i]], 0])
        rows.append([sf["queries"][q], sf["corpus"][next(iter(sf["qrels"]["test"][q]))], 1])
        rows.append([sf["queries"][q], sf["corpus"][filler[2 * i + 1]], 0])
    ts = ev.read_test_file(_rows_csv(rows), "no-scores.csv", db, pid)
    assert ts.candidates_are_oracle
    run_id = insert_run(db, pid, ce_folder, run_id="run-file")
    res = ev.evaluate(
        db, pid, [run_id], test_set=ts, first_stage="file", top_k=10, include_base=False, n_bootstrap=50
    )
    assert res["params"]["figures"] == "oracle" and ev.figures_kind(res) == "oracle"
    assert res["realistic"] == {} and res["per_query"]["realistic"] == {}
    assert {"first_stage", f"run:{run_id}"} <= set(res["oracle"])
    assert all(c["figures"] == "oracle" for c in res["comparisons"])
    assert ev.results_table(res, "realistic") == [] and ev.results_table(res)[0]["figures"] == "oracle"
    lines = ev.headline(res)
    assert "No realistic verdict" in lines[0] and all("realistic NDCG" not in x for x in lines)
    report = ev.report_markdown(res)
    assert "Realistic figures" not in report and "Oracle figures" in report and "Figures: oracle" in report
    assert ev.per_query_deltas(res, f"run:{run_id}")  # per-query views read the oracle figures
    # with a score column the same file is a real first stage: realistic figures
    scored = _rows_csv([r + [float(-j)] for j, r in enumerate(rows)], ("query", "passage", "label", "score"))
    ts2 = ev.read_test_file(scored, "scored.csv", db, pid)
    res2 = ev.evaluate(
        db, pid, [], test_set=ts2, first_stage="file", include_base=False, n_bootstrap=50, save=False
    )
    assert not ts2.candidates_are_oracle and res2["params"]["figures"] == "realistic" and res2["realistic"]


def test_uploaded_test_set_leaves_out_training_queries(db, workspace):
    """The same overlap rule as the project split: a training query is not a test query."""
    pid = seed_scifact(db, name="overlap", n_train=3, n_test=0, n_extra=20)
    sf = load_scifact()
    train_q = sorted(sf["qrels"]["train"], key=int)[0]
    test_q = sorted(sf["qrels"]["test"], key=int)[0]
    rows = [
        [sf["queries"][train_q], sf["corpus"][next(iter(sf["qrels"]["train"][train_q]))], 1],
        [sf["queries"][test_q], sf["corpus"][next(iter(sf["qrels"]["test"][test_q]))], 1],
    ]
    ts = ev.read_test_file(_rows_csv(rows), "overlap.csv", db, pid)
    assert list(ts.queries.values()) == [sf["queries"][test_q]]
    assert any("also training queries" in n for n in ts.notes)


def test_runs_that_used_test_labels_carry_the_label_everywhere(db, workspace, ce_folder, capsys):
    from core.__main__ import main

    pid = seed_scifact(db, name="leaky", n_train=3, n_test=6, n_extra=40)
    used = ["checkpoint", "early stopping", "fusion weight"]
    insert_run(
        db,
        pid,
        ce_folder,
        run_id="run-leak",
        metrics={"test_labels_used_for": used},
        fusion={"alpha": 0.4, "first_stage": "bm25", "chosen_on": "test"},
    )
    res = ev.evaluate(db, pid, ["run-leak"], first_stage="bm25", top_k=4, include_base=False, n_bootstrap=50)
    assert res["params"]["test_labels_used_for"] == used
    for key in ("run:run-leak", "run:run-leak:fused"):
        s = ev.system(res, key)
        assert s["test_labels_used_for"] == used and "test labels used" in s["label"]
        assert any("optimistic" in n for n in s["notes"])
    assert "test_labels_used_for" not in ev.system(res, "first_stage")
    assert all(c["test_labels_used_for"] == used for c in res["comparisons"])
    assert all("Optimistic" in line for line in ev.headline(res))
    rows = {r["system"]: r for r in ev.results_table(res)}
    assert rows[ev.system(res, "run:run-leak")["label"]]["test labels used for"] == ", ".join(used)
    report = ev.report_markdown(res)
    assert "Test labels used" in report and "early stopping" in report
    stored = ev.load_evaluation(db, res["evaluation_id"])
    assert stored["params"]["test_labels_used_for"] == used
    assert (
        main(["evaluate", "--project", "leaky", "--run", "run-leak", "--top-k", "4", "--bootstrap", "50"])
        == 0
    )
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["test_labels_used_for"] == used and "optimistic" in out["figures"]


def test_older_runs_that_validated_on_the_test_set_are_labelled():
    old = Run(
        "old",
        "completed",
        config={"keep_best": True, "early_stopping_patience": 3},
        metrics={"evaluation": "test"},
    )
    assert ev.run_test_labels(old) == ["checkpoint", "early stopping"]
    assert ev.run_test_labels(Run("split", "completed", metrics={"evaluation": "split"})) == []
