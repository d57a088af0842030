"""The desk's evidence: query terms marked in passages as Markdown styling over escaped text (never HTML from the
data), and the reasons behind a candidate's risk in one line."""

from __future__ import annotations

from core.review import evidence


def test_query_terms_are_marked_and_everything_else_is_escaped():
    terms = evidence.query_terms("Do <b>cells</b> express the [ACE2] receptor?")
    assert terms == {
        "cell",
        "express",
        "ace2",
        "receptor",
    }  # stop words and short tags dropped, plurals folded
    text = "ACE2 sits on Cells.\n    Receptor: <img src=x onerror=alert(1)> [link](http://x) :red[x] **b**"
    md = evidence.highlight(text, terms)
    assert ":orange-background[ACE2]" in md and ":orange-background[Cells]" in md
    assert ":orange-background[Receptor]" in md
    assert "\\<img src=x onerror=alert\\(1\\)\\>" in md  # shown literally, never a tag
    assert "\\[link\\]\\(http\\://x\\)" in md and "\\:red\\[x\\]" in md and "\\*\\*b\\*\\*" in md
    assert md.split("  \n")[1].startswith(":orange")  # a line break kept, its indentation (a code block) not


def test_a_marked_term_cannot_break_out_of_its_styling():
    md = evidence.highlight("cell]x[", {"cell"})
    assert md == ":orange-background[cell]x\\[" or md.startswith(":orange-background[cell]")
    assert "]" not in md.replace(":orange-background[cell]", "").replace("\\]", "")


def test_risk_reasons_name_the_signals_in_one_line():
    line = evidence.risk_reasons(
        {
            "score": 0.71,
            "positive_score": 0.64,
            "rank": 1,
            "kind": "hard",
            "ce_score": None,
            "query": "Does ACE2 bind the spike protein?",
            "candidate": "The spike protein binds ACE2 tightly.",
            "positive": "ACE2 binds the spike protein of SARS-CoV-2.",
        }
    )
    assert line.startswith("scores 0.71, above its positive's 0.64; rank 1 in the search;")
    assert "shares 4 query terms (ace2, bind, spike, protein)" in line  # "binds" folds to "bind"
    assert "of its words are in the positive" in line and "\n" not in line
    random = evidence.risk_reasons(
        {
            "score": 0.1,
            "positive_score": 0.6,
            "kind": "random",
            "query": "x y z",
            "candidate": "nothing shared",
        }
    )
    assert "shares no query term" in random and "random negative" in random
