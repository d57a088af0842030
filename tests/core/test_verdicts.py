"""Issue 26: verdicts a person can act on — significance in every output, one verdict rule, p at the floor as an
upper bound, judged@10, picking runs on validation never on test, one gain, beta on separable lists."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core import evaluation as ev
from core import overview, store
from core.evaluation.verdict import BEATS, LOSES, NOT_SIGNIFICANT, ORACLE, UNTESTED, verdict

N = 40


def _values(mean_diff: float, spread: float, seed: int = 0) -> tuple[list[float], list[float]]:
    """Per-query NDCG@10 of a first stage and of a system `mean_diff` above it on average, `spread` per query."""
    rng = np.random.default_rng(seed)
    first = rng.uniform(0.3, 0.6, N)
    noise = rng.normal(0.0, spread, N)
    noise += mean_diff - noise.mean()
    return first.tolist(), (first + noise).tolist()


def crafted(values: dict[str, list[float]], kinds: dict[str, str], judged: float = 0.5, old: bool = False):
    """A results dict in the shape `evaluate` returns (and older stored ones, with `old`)."""
    qs = [f"q{i}" for i in range(N)]
    labelled = int(round(judged * 10))
    metrics = ["ndcg@10", "mrr@10", "map", "recall@10"] + ([] if old else ["judged@10"])
    res = {
        "systems": [
            {
                "key": k,
                "label": f"System {k}",
                "kind": kinds[k],
                "run_id": k.split(":")[1] if ":" in k else None,
            }
            for k in values
        ],
        "metrics": metrics,
        "realistic": {},
        "oracle": {},
        "per_query": {"realistic": {}, "oracle": {}},
        "rankings": {k: {q: [[f"d{j}", 1.0 - j / 10] for j in range(10)] for q in qs} for k in values},
        "queries": {
            q: {"text": f"query {q}", "query_id": None, "relevant": {f"d{j}": 1.0 for j in range(labelled)}}
            for q in qs
        },
        "passages": {},
        "comparisons": [],
        "score_distributions": {},
        "params": {
            "first_stage": "bm25",
            "first_stage_label": "BM25",
            "top_k": 10,
            "test_set": "crafted",
            "queries": N,
            "run_ids": [s.split(":")[1] for s in values if kinds[s] == "run"],
            "seed": 0,
            "n_bootstrap": 10,
            "figures": "realistic",
            "notes": [],
            "test_labels_used_for": [],
        },
    }
    for k, v in values.items():
        per = {m: v for m in metrics if m != "judged@10"} | ({} if old else {"judged@10": [judged] * N})
        res["realistic"][k] = {
            "mean": {m: float(np.mean(x)) for m, x in per.items()},
            "ci": {m: [float(np.mean(x)) - 0.01, float(np.mean(x)) + 0.01] for m, x in per.items()},
        }
        res["per_query"]["realistic"][k] = {q: {m: per[m][i] for m in per} for i, q in enumerate(qs)}
        if k != "first_stage":
            c = {"system": k, "reference": "first_stage", "metric": "ndcg@10", "figures": "realistic"}
            c |= ev.paired_test(values["first_stage"], v)
            if old:
                c.pop("significant"), c.pop("draws")
            res["comparisons"].append(c)
    return res


# --- one rule, one p format --------------------------------------------------------------------------------------


def test_p_at_the_floor_of_the_randomization_test_is_an_upper_bound():
    first, far_better = _values(0.3, 0.01)
    t = ev.paired_test(first, far_better)
    assert t["p_value"] == pytest.approx(1 / 10001) and t["significant"] and t["draws"] == 10000
    assert ev.format_p(t["p_value"], t["draws"]) == "p < 0.0001"
    assert ev.format_p(1 / 2001, 2000) == "p < 0.0005"
    assert ev.format_p(0.0312) == "p = 0.0312" and ev.format_p(0.64) == "p = 0.64"


def test_one_verdict_rule_beats_only_when_positive_and_significant():
    assert verdict("Run", 0.700, 0.697, 0.64).outcome == NOT_SIGNIFICANT  # the issue's +0.003, p = 0.64
    assert not verdict("Run", 0.700, 0.697, 0.64).beats
    v = verdict("Run", 0.72, 0.66, 1 / 10001, draws=10000)
    assert v.outcome == BEATS and v.beats and v.significant and "p < 0.0001" in v.sentence
    assert verdict("Run", 0.60, 0.66, 0.001).outcome == LOSES  # significantly worse: does NOT beat
    assert verdict("Run", 0.66, 0.66, 1.0).outcome == LOSES
    assert verdict("Run", 0.70, 0.66, None).outcome == UNTESTED
    assert verdict("Run", 0.90, 0.66, 0.001, figures="oracle").outcome == ORACLE
    level, sentence = verdict("Run", 0.700, 0.697, 0.64)  # unpacks as a page shows it
    assert level == "warning" and "not significant" in sentence and "p = 0.64" in sentence
    assert verdict("Run", 0.700, 0.697, 0.64).as_json()["beats"] is False


def test_results_read_old_evaluations_and_give_every_comparison_its_significance():
    first, slightly = _values(0.003, 0.15)
    old = crafted(
        {"first_stage": first, "run:a": slightly}, {"first_stage": "first_stage", "run:a": "run"}, old=True
    )
    r = ev.Results.of(json.loads(json.dumps(old)))  # as stored: JSON, no 'significant', 'draws' or judged@10
    c = r.comparison("run:a")
    assert c is not None and c.p_value > 0.05 and not c.significant and c.draws == 10000
    assert r.mean("run:a") == pytest.approx(np.mean(slightly))
    assert r.per_query("run:a") == pytest.approx(slightly)
    assert r.judged("run:a") == pytest.approx(0.5)  # computed afresh from the stored rankings
    [v] = r.verdicts()
    assert v.outcome == NOT_SIGNIFICANT and not v.beats
    assert ev.headline(old) == [v.sentence]


def test_cli_beats_first_stage_only_when_significant(db, monkeypatch, capsys):
    from core.__main__ import main
    from core.evaluation import cli

    store.create_project(db, "json")
    first, slightly = _values(0.003, 0.15)
    res = crafted({"first_stage": first, "run:r1": slightly}, {"first_stage": "first_stage", "run:r1": "run"})
    res |= {"evaluation_id": 1, "wall_s": 0.1}
    monkeypatch.setattr(cli, "evaluate", lambda *a, **k: res)
    assert main(["evaluate", "--project", "json", "--run", "r1"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["reranked_ndcg10"] > out["first_stage_ndcg10"]  # higher on average ...
    assert out["reranked_vs_first_stage_significant"] is False  # ... but not significantly
    assert out["beats_first_stage"] is False and out["verdict"]["outcome"] == NOT_SIGNIFICANT
    assert out["reranked_vs_first_stage_p_text"].startswith("p = ")
    # judged@10 per system, and a sentence when it is low
    assert out["first_stage_judged10"] == 0.5 and out["reranked_judged10"] == 0.5
    assert any("judged@10" in n and "50%" in n for n in out["judged_notes"])
    assert out["ndcg_gain"] == "linear"

    _, far_better = _values(0.2, 0.02)
    res = crafted(
        {"first_stage": first, "run:r1": far_better}, {"first_stage": "first_stage", "run:r1": "run"}, 1.0
    )
    res |= {"evaluation_id": 2, "wall_s": 0.1}
    monkeypatch.setattr(cli, "evaluate", lambda *a, **k: res)
    assert main(["evaluate", "--project", "json", "--run", "r1"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["beats_first_stage"] is True and out["reranked_vs_first_stage_significant"] is True
    assert out["reranked_vs_first_stage_p_text"] == "p < 0.0001" and out["judged_notes"] == []


def test_report_writes_p_as_a_bound_says_significance_best_of_n_and_judged():
    first, a = _values(0.2, 0.02)
    _, b = _values(0.19, 0.02, seed=1)
    kinds = {"first_stage": "first_stage", "run:a": "run", "run:b": "run"}
    res = crafted({"first_stage": first, "run:a": a, "run:b": b}, kinds, judged=0.3)
    report = ev.report_markdown(res)
    assert "p < 0.0001" in report and "p = 0.0001" not in report and "| yes |" in report
    assert "best of 2" in report and "optimistic" in report
    assert "judged@10\\: System first\\_stage 30%; System run\\:a 30%" in report  # labels escaped
    assert "linear" in report  # which gains NDCG used


# --- judged@10 and the one gain -------------------------------------------------------------------------------


def test_judged_at_10_is_the_labelled_share_of_the_top_10():
    from core.scoring.metrics import judged_at, query_metrics

    qrels = {"a": 1.0, "b": 0.0, "c": 2.0}  # a label of 0 is a judgement too
    assert judged_at(["a", "x", "b", "y"], qrels) == pytest.approx(0.5)
    assert judged_at([f"d{i}" for i in range(20)] + ["a"], qrels) == 0.0  # only the top 10 counts
    assert query_metrics(["a", "b", "c", "x"], qrels, 10)["judged@10"] == pytest.approx(0.75)


def test_training_targets_and_reported_ndcg_use_one_gain():
    from core.scoring import metrics
    from core.training import beta, losses

    grades = [3.0, 1.0, 0.0, 2.0]
    shares = metrics.gain_targets(grades)
    assert shares == pytest.approx([0.5, 1 / 6, 0.0, 1 / 3])  # linear: not 2^g - 1 (7/11, 1/11, 0, 3/11)
    # the DCG contribution of each passage at a fixed position is proportional to its training share
    qrels = {f"d{i}": g for i, g in enumerate(grades)}
    ideal = metrics.ndcg_at(["d0", "d3", "d1", "d2"], qrels, 10)
    assert ideal == pytest.approx(1.0)
    alone = [metrics.ndcg_at([f"d{i}"], qrels, 1) for i in range(4)]
    assert np.array(alone) / alone[0] == pytest.approx(shares / shares[0])
    assert losses.gain_targets is metrics.gain_targets and beta.gain_targets is metrics.gain_targets
    assert metrics.gain_targets([1, 1, 0, 0]) == pytest.approx([0.5, 0.5, 0, 0])


# --- beta on separable lists ------------------------------------------------------------------------------------


def test_beta_on_separable_lists_is_the_search_limit_with_a_note():
    from core.training.beta import BETA_LIMIT, fit, fit_beta, log_likelihood

    separable = [
        {"priors": [0.9, 0.1, 0.2], "labels": [1.0, 0.0, 0.0]},
        {"priors": [0.8, 0.3], "labels": [1.0, 0.0]},
        {"priors": [0.95, 0.05, 0.5], "labels": [1.0, 0.0, 0.0]},
    ]
    got = fit(separable)
    assert got.beta == BETA_LIMIT and got.at_limit and "no maximum" in got.note
    assert (
        fit_beta(separable) == BETA_LIMIT
    )  # not an arbitrary point on the flat likelihood (79, 128, 256 before)
    # the likelihood keeps rising where it used to round to a flat 0
    assert log_likelihood(separable, 60) < log_likelihood(separable, 120) < log_likelihood(separable, 240)
    # one list where the positive trails: a real maximum inside the range, no note
    mixed = separable + [{"priors": [0.5, 0.6], "labels": [1.0, 0.0]}]
    inner = fit(mixed)
    assert 0 < inner.beta < BETA_LIMIT and inner.note == ""
    assert log_likelihood(mixed, inner.beta) >= max(
        log_likelihood(mixed, inner.beta * 0.9), log_likelihood(mixed, inner.beta * 1.1)
    )


# --- test labels: every choice named --------------------------------------------------------------------------


def test_every_choice_made_on_test_lists_is_named():
    from core.training.config import TrainConfig
    from core.training.results import test_labels_used_for

    cfg = TrainConfig(loss="residual", keep_best=True, early_stopping_patience=0, fusion=True)
    used = test_labels_used_for(cfg, "test", beta=20.0)
    assert "residual vs cross-encoder alone" in used and "checkpoint" in used and "validation figures" in used
    assert test_labels_used_for(cfg, "split", beta=20.0) == []


def test_the_run_record_verdict_has_significance():
    from core.training import presenters
    from core.training.results import vs_first_stage

    metrics = {
        "evaluation": "split",
        "validation": {"ndcg@10": 0.700, "first_stage_ndcg@10": 0.697},
        "validation_vs_first_stage": {"p_value": 0.64, "draws": 10000},
    }
    v = presenters.verdict(metrics)
    assert v.outcome == NOT_SIGNIFICANT and not v.beats and "p = 0.64" in v.sentence
    level, text = presenters.verdict({})  # no validation: said, not judged
    assert level == "info" and "No validation" in text
    # the paired test over validation lists: the reranker puts each list's positive first
    samples = [
        {
            "query": f"q{i}",
            "documents": ["a", "b", "c"],
            "first_stage_scores": [0.9, 0.8, 0.7],
            "positive": ["c"],
        }
        for i in range(12)
    ]
    test = vs_first_stage(samples, [np.array([0.0, 0.1, 0.9])] * 12)
    assert test["mean_diff"] == pytest.approx(0.5) and test["significant"] and test["p_value"] < 0.001


# --- the overview picks on validation, never on test ----------------------------------------------------------


def _run(db, pid, run_id, validation, **metrics):
    with store.transaction(db):
        db.execute(
            "INSERT INTO runs (id, project_id, created_at, updated_at, status, config, metrics, model_dir) "
            "VALUES (?, ?, ?, ?, 'completed', '{}', ?, NULL)",
            (
                run_id,
                pid,
                store.now(),
                store.now(),
                json.dumps({"evaluation": "split", "validation": validation, **metrics}),
            ),
        )


def test_the_overview_picks_the_best_run_on_validation_and_shows_its_test_figures(db):
    pid = store.create_project(db, "pick")
    _run(db, pid, "val-best", {"ndcg@10": 0.74, "first_stage_ndcg@10": 0.60})
    _run(db, pid, "test-best", {"ndcg@10": 0.68, "first_stage_ndcg@10": 0.60})
    _run(  # validated on the test set: its 'validation' figures are test figures, never a basis for the pick
        db,
        pid,
        "leaky",
        {"ndcg@10": 0.99, "first_stage_ndcg@10": 0.60},
        test_labels_used_for=["checkpoint", "validation figures"],
    )
    first, a = _values(0.05, 0.02)
    _, b = _values(0.15, 0.02, seed=1)
    kinds = {"first_stage": "first_stage", "run:val-best": "run", "run:test-best": "run"}
    res = crafted({"first_stage": first, "run:val-best": a, "run:test-best": b}, kinds)
    ev.save_evaluation(db, pid, res)
    best = overview.best_run(db, pid)
    assert best.run_id == "val-best" and best.validation == pytest.approx(0.74) and best.candidates == 2
    assert "picked on validation" in best.text and "never on test" in best.text
    assert best.verdict is not None and best.verdict.value == pytest.approx(
        np.mean(a)
    )  # its test figures shown
    assert "NDCG@10" in best.text and "vs first stage" in best.text
    # with no run validated on its own slice, there is no pick, and it says so
    pid2 = store.create_project(db, "nopick")
    _run(
        db,
        pid2,
        "only",
        {"ndcg@10": 0.9, "first_stage_ndcg@10": 0.6},
        test_labels_used_for=["validation figures"],
    )
    none = overview.best_run(db, pid2)
    assert none.run_id == "only" and none.validation is None and "no pick" in none.text


def test_results_say_picking_the_best_of_n_on_test_is_optimistic():
    first, a = _values(0.05, 0.02)
    kinds = {"first_stage": "first_stage", "run:a": "run", "run:b": "run"}
    r = ev.Results.of(crafted({"first_stage": first, "run:a": a, "run:b": a}, kinds))
    assert "best of 2" in r.best_of_n_note() and "validation" in r.best_of_n_note()
    assert any("best of 2" in line for line in ev.headline(r.raw))
    one = ev.Results.of(
        crafted({"first_stage": first, "run:a": a}, {"first_stage": "first_stage", "run:a": "run"})
    )
    assert one.best_of_n_note() == ""


# --- the bundle's card carries every test-label choice and the verdict ------------------------------------------


def test_the_bundle_card_carries_the_test_label_warning_and_the_verdict(db):
    from core.export.card import model_card
    from core.runs.run_row import Run

    pid = store.create_project(db, "card")
    _run(db, pid, "leaky", {"ndcg@10": 0.7, "first_stage_ndcg@10": 0.6})
    first, a = _values(0.2, 0.02)
    res = crafted({"first_stage": first, "run:leaky": a}, {"first_stage": "first_stage", "run:leaky": "run"})
    ev.save_evaluation(db, pid, res)
    used = ["checkpoint", "residual vs cross-encoder alone", "validation figures"]
    run = Run(
        "leaky",
        "completed",
        project_id=pid,
        metrics={
            "evaluation": "test",
            "test_labels_used_for": used,
            "validation": {"ndcg@10": 0.7, "first_stage_ndcg@10": 0.6},
        },
    )
    spec = {"kind": "cross-encoder", "formula": "score = cross-encoder", "activation": "sigmoid"}
    card = model_card(db, run, spec, {"pairs_checked": 4, "max_abs_score_diff": 0.0}, "bundle")
    assert (
        "## Test labels used" in card and "residual vs cross-encoder alone" in card and "optimistic" in card
    )
    assert card.index("Test labels used") < card.index("Measured test figures")
    assert "p < 0.0001" in card and "beats the first stage" in card and "judged@10" in card
    assert "Validation (test): The reranker" in card and "on the test set" in card
