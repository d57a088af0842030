"""Quality report on real SciFact rows with planted, known answers (paraphrases, a long passage, leakage).

SciFact (BEIR) by AllenAI, CC BY-NC 2.0. The planted paraphrases and the planted sentence are written here.
"""

from __future__ import annotations

import numpy as np
import pytest

from core import models, quality, store
from tests.conftest import load_scifact, seed_scifact

pytestmark = pytest.mark.slow

# A real SciFact training query (id 30) and paraphrases of it written for this test.
QUERY = "A breast cancer patient's capacity to metabolize tamoxifen influences treatment outcome."
PARAPHRASES = [
    "A breast cancer patient's ability to metabolize tamoxifen influences the treatment outcome.",
    "The capacity of a breast cancer patient to metabolise tamoxifen influences treatment outcome.",
    "Breast cancer patients' capacity to metabolize tamoxifen influences their treatment outcome.",
    "A breast cancer patient's capacity for metabolizing tamoxifen affects treatment outcome.",
]
# A query of our own and the one sentence that answers it, hidden among unrelated abstracts.
LONG_QUERY = "Does drinking green tea lower the risk of kidney stones in older adults?"
PLANTED = (
    "In adults over sixty, daily green tea consumption lowered the incidence of kidney stones by forty "
    "percent compared with non-drinkers."
)
MAX_LENGTH = 256


@pytest.fixture(scope="module")
def shared_home(tmp_path_factory):
    """One workspace for the module so the embedding cache is filled once."""
    home = tmp_path_factory.mktemp("quality-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RERANK_STUDIO_HOME", str(home))
        yield home


def unnamed_docs(n: int, skip: int = 0) -> list[str]:
    """Abstracts no qrels row names (unrelated to every query), in id order: works on the sample and full SciFact."""
    sf = load_scifact()
    named = {d for split in sf["qrels"].values() for docs in split.values() for d in docs}
    return [d for d in sorted(sf["corpus"], key=int) if d not in named][skip : skip + n]


def long_passage() -> str:
    sf = load_scifact()
    unrelated = [sf["corpus"][d] for d in unnamed_docs(4)]
    return " ".join(unrelated[:2] + [PLANTED] + unrelated[2:])


def make_project(conn, name: str, *, n_test: int = 10) -> int:
    pid = seed_scifact(conn, name, n_train=30, n_test=n_test, n_extra=0)
    sf = load_scifact()
    positive = sf["corpus"][next(iter(sf["qrels"]["train"]["30"]))]
    with store.transaction(conn):
        store.insert_pairs(conn, pid, [(p, positive, 1) for p in PARAPHRASES])
        store.insert_pairs(conn, pid, [(LONG_QUERY, long_passage(), 1)])
    return pid


def report_for(conn, pid, **kw):
    return quality.analyse(conn, pid, max_length=MAX_LENGTH, **kw)


def test_planted_paraphrase_cluster_is_found(shared_home):
    conn = store.connect(shared_home)
    pid = make_project(conn, "paraphrases")
    report = report_for(conn, pid)
    groups = quality.query_clusters(report, 0.85)
    texts = [{report.queries.texts[i] for i in g} for g in groups]
    planted = {QUERY, *PARAPHRASES}
    found = [g for g in texts if g & planted]
    assert len(found) == 1 and found[0] == planted, found
    summary = quality.diversity_summary(report.queries, groups, report.queries.group == "train")
    n_train = conn.execute(
        "SELECT COUNT(*) FROM queries WHERE project_id = ? AND split = 'train'", (pid,)
    ).fetchone()[0]
    assert summary["count"] == n_train >= 30  # the seeded training queries plus the five planted ones
    assert summary["effective"] <= n_train - 4  # the five phrasings count once
    assert summary["effective"] == quality.effective_count(n_train, groups)
    # a threshold above the paraphrases' similarity splits them up again
    assert not any(
        g >= planted
        for g in [{report.queries.texts[i] for i in g} for g in quality.query_clusters(report, 0.995)]
    )


def test_long_passage_token_count_matches_tokenizer_and_snippet_keeps_planted_sentence(shared_home):
    conn = store.connect(shared_home)
    pid = make_project(conn, "long")
    report = report_for(conn, pid)
    tok = models.load_tokenizer(None)
    expected = len(tok(LONG_QUERY, long_passage(), truncation=False)["input_ids"])
    t = report.tokens
    pair_id = next(p["id"] for p in store.fetch_pairs(conn, pid) if p["query"] == LONG_QUERY)
    row = int(np.flatnonzero((t.pair_id == pair_id) & (t.kind == "pair"))[0])
    assert t.total[row] == expected
    assert t.overflow[row] == expected - MAX_LENGTH > 0
    # every pair's count equals the tokenizer's own pair encoding
    for r in range(0, len(t.pair_id), 7):
        q, p = report.query_text[int(t.query_id[r])], report.passage_text[int(t.passage_id[r])]
        assert t.total[r] == len(tok(q, p, truncation=False)["input_ids"])
    cut = quality.truncated(report)
    assert row in cut.tolist()
    listed = [x for x in quality.truncated_table(report, cut) if x["query"] == LONG_QUERY]
    assert listed and listed[0]["cut"] == expected - MAX_LENGTH

    [snippet] = quality.propose_snippets(report, [row])
    assert PLANTED in snippet.text
    assert snippet.tokens <= MAX_LENGTH
    assert snippet.tokens == len(tok(LONG_QUERY, snippet.text)["input_ids"])

    # accepting re-points the pair to a snippet passage; the cache notices; undo restores the original
    assert quality.accept_snippets(conn, pid, [snippet]) == 1
    pair = next(p for p in store.fetch_pairs(conn, pid) if p["query"] == LONG_QUERY)
    assert pair["passage"] == snippet.text
    after = report_for(conn, pid)
    assert after.key != report.key
    new_row = int(np.flatnonzero((after.tokens.pair_id == pair_id) & (after.tokens.kind == "pair"))[0])
    assert after.tokens.overflow[new_row] == 0 and after.tokens.total[new_row] == snippet.tokens
    assert after.counts["snippets"] == 1
    n_passages = store.project_counts(conn, pid)["passages"]
    assert quality.revert_snippets(conn, pid) == 1
    pair = next(p for p in store.fetch_pairs(conn, pid) if p["query"] == LONG_QUERY)
    assert pair["passage"] == long_passage()
    assert store.project_counts(conn, pid)["passages"] == n_passages - 1


def test_leakage_lists_real_and_planted_near_duplicates(shared_home):
    conn = store.connect(shared_home)
    pid = make_project(conn, "leak")
    leak_text = (
        "Treatment outcome is influenced by a breast cancer patient's capacity to metabolize tamoxifen."
    )
    with store.transaction(conn):
        store.insert_pairs(conn, pid, [(leak_text, "Tamoxifen metabolism and outcome.", 1)], split="test")
    report = report_for(conn, pid)
    leaks = quality.leakage(report, 0.85)
    pairs = {(x["test_query"], x["train_query"]) for x in leaks}
    # SciFact itself: a test claim that negates a training claim is nearly the same text
    assert (
        "0-dimensional biomaterials show inductive properties.",
        "0-dimensional biomaterials lack inductive properties.",
    ) in pairs
    planted = [x for x in leaks if x["test_query"] == leak_text]
    assert planted and planted[0]["train_query"] in {QUERY, *PARAPHRASES}
    assert all(x["similarity"] >= 0.85 for x in leaks)
    assert quality.leakage(report, 0.999) == [x for x in leaks if x["similarity"] >= 0.999]


def states(report, threshold=0.9):
    return {c.rule.split(" (")[0]: c.state for c in quality.checklist(report, threshold)}


def test_checklist_flips_when_data_changes(shared_home):
    conn = store.connect(shared_home)
    pid = make_project(conn, "checks", n_test=0)
    before = states(report_for(conn, pid))
    assert before["At least 256 labelled training examples"] == "fail"
    assert before["Separate test set, disjoint from training"] == "fail"
    assert before["Hard negatives present and reviewed"] == "fail"
    assert before["Label balance"] == "fail"
    assert before["Few paraphrased queries"] in ("warn", "fail")

    # mined hard negatives arrive (as the Mine page writes them): 3 per training query
    queries = conn.execute(
        "SELECT id FROM queries WHERE project_id = ? AND split = 'train'", (pid,)
    ).fetchall()
    passages = [r[0] for r in conn.execute("SELECT id FROM passages WHERE project_id = ?", (pid,))]
    with store.transaction(conn):
        sf = load_scifact()
        extra = store.upsert_passages(
            conn, pid, [sf["corpus"][d] for d in unnamed_docs(30, skip=4)], source="corpus"
        )
        for i, q in enumerate(queries):
            for k in range(3):
                conn.execute(
                    "INSERT INTO negatives (project_id, query_id, passage_id, kind, rank, status) "
                    "VALUES (?, ?, ?, 'hard', ?, 'unjudged')",
                    (pid, q[0], extra[(i * 3 + k) % len(extra)], k),
                )
        test_rows = [
            (load_scifact()["queries"][q], sf["corpus"][next(iter(sf["qrels"]["test"][q]))], 1)
            for q in ("5", "36", "42", "53")
        ]  # test claims (in the sample too) that repeat no seeded one
        store.insert_pairs(conn, pid, test_rows, split="test")
    mined = report_for(conn, pid)
    after = states(mined)
    assert passages  # the seeded passages stay
    assert after["Hard negatives present and reviewed"] == "warn"  # present, none reviewed
    assert after["Label balance"] == "pass"
    assert after["Documents per query"] in ("pass", "warn")
    assert after["Separate test set, disjoint from training"] == "pass"
    assert (mined.passages.group == "mined hard negative").sum() == 30

    # a reviewer judges a third of them
    with store.transaction(conn):
        conn.execute(
            "UPDATE negatives SET status = 'negative', version = version + 1 "
            "WHERE project_id = ? AND id % 3 = 0",
            (pid,),
        )
    reviewed = states(report_for(conn, pid))
    assert reviewed["Hard negatives present and reviewed"] == "pass"

    # a long context limit makes truncation pass; a short one fails it
    assert states(quality.analyse(conn, pid, max_length=4096))["Query + passage fit in 4096 tokens"] == "pass"
    assert states(quality.analyse(conn, pid, max_length=64))["Query + passage fit in 64 tokens"] == "fail"


def test_clusters_follow_community_detection_on_small_sets():
    """On a full neighbour list our graph clustering equals sentence-transformers' community_detection."""
    from sentence_transformers import util

    rng = np.random.default_rng(1)
    centres = rng.normal(size=(6, 32))
    vecs = np.concatenate(
        [c + rng.normal(scale=0.08, size=(k, 32)) for c, k in zip(centres, [5, 4, 3, 2, 1, 1])]
    )
    vecs = (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype(np.float32)
    idx, sim = quality.nearest(vecs, vecs, len(vecs) - 1, exclude_self=True)
    ours = quality.clusters(idx, sim, 0.9)
    theirs = [c for c in util.community_detection(vecs, threshold=0.9, min_community_size=2)]
    assert sorted(sorted(g) for g in ours) == sorted(sorted(g) for g in theirs)
    assert quality.effective_count(len(vecs), ours) == 6


class _Payload:
    """Unpickling this creates a marker file: proof that a cache file was unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_cache_holds_no_pickle_and_a_tampered_file_is_never_unpickled(shared_home, tmp_path):
    """Issue 14: the quality cache was read with pickle.load; a planted file in the cache folder could run code."""
    import pickle

    conn = store.connect(shared_home)
    pid = seed_scifact(conn, "cache", n_train=12, n_test=4, n_extra=0)
    first = report_for(conn, pid)
    folder = store.cache_dir(shared_home) / "quality"
    files = [f for f in folder.iterdir() if f.is_file() and not f.name.startswith("tokens-")]
    assert files and not [f.name for f in files if f.suffix == ".pkl"]
    for f in files:
        assert not f.read_bytes().startswith(b"\x80"), f"{f.name} is a pickle"
        if f.suffix == ".npz":
            np.load(f, allow_pickle=False)  # loads without pickle
    # Plant pickles wherever a reader might look: in place of every array file and as the old .pkl names.
    marker = tmp_path / "unpickled"
    payload = pickle.dumps(_Payload(marker))
    for f in files:
        if f.suffix == ".npz":
            f.write_bytes(payload)
            f.with_suffix(".pkl").write_bytes(payload)
    quality.forget_memo()
    again = report_for(conn, pid)
    assert not marker.exists(), "a cache file was unpickled"
    assert again.key == first.key
    assert np.array_equal(again.tokens.total, first.tokens.total)
    assert again.queries.texts == first.queries.texts and list(again.queries.group) == list(
        first.queries.group
    )
    assert again.query_text == first.query_text and again.counts == first.counts


def test_the_key_analyse_files_a_report_under_is_report_key(shared_home):
    """One key function: analyse files the report under report_key, so a job's report is found by the pages
    (analyse used to key on 512 tokens while report_key took the project's chosen length)."""
    from core.quality.stored import cached_report, is_current, report_key

    conn = store.connect(shared_home)
    pid = seed_scifact(conn, "keys", n_train=12, n_test=4, n_extra=0)
    store.update_project_settings(conn, pid, max_length=128)
    report = quality.analyse(conn, pid)  # the project's choice of models and length
    assert report.max_length == 128 and report.key == report_key(conn, pid)
    assert cached_report(conn, pid) is not None and is_current(conn, report)
    explicit = report_for(conn, pid, embed_model=models.BUNDLED)
    assert explicit.key == report_key(conn, pid, models.BUNDLED, max_length=MAX_LENGTH) != report.key
