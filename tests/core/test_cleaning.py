"""Cleaning rules on real SciFact text: what they remove, what they must keep, and their counts."""

from __future__ import annotations

import pytest

from core.ingest.cleaning import (
    RULES,
    Cleaner,
    CleaningOptions,
    clean_text,
    collapse_whitespace,
    strip_control,
    strip_html,
    strip_symbols,
    strip_urls,
)
from core.ingest.labels import compare_labels


def test_html_entities_and_tags(scifact):
    doc = scifact["corpus"]["5377642"]  # PubMed SGML entity: "transforming growth factor &bgr; (Tgf‐&bgr;)"
    assert "&bgr;" in doc
    cleaned = strip_html(doc)
    assert "factor β (Tgf‐β)" in cleaned and "&bgr;" not in cleaned
    html = "<p>Aspirin &amp; <b>heart</b> attacks<br/>risk</p><script>alert('x')</script><!-- note -->"
    assert collapse_whitespace(strip_html(html)) == "Aspirin & heart attacks risk"
    assert strip_html('<a href="http://x.org">link</a> text') == " link  text"


def test_html_rule_keeps_comparisons_that_look_like_tags(scifact):
    for doc_id, fragment in (("9306247", "(</=0.3 kb)"), ("13464392", "</=5.0 g/dL")):
        doc = scifact["corpus"][doc_id]
        assert fragment in doc
        assert fragment in strip_html(doc), doc_id


def test_urls_removed_without_leaving_brackets(scifact):
    doc = scifact["corpus"]["5304891"]  # "... Project (http://www.humanfunctionalgenomics.org), obtained"
    cleaned = strip_urls(doc)
    assert "humanfunctionalgenomics.org" not in cleaned and "()" not in cleaned
    doc = scifact["corpus"]["2454002"]  # "... KOBAS 2.0 can be accessed at http://kobas.cbi.pku.edu.cn."
    assert strip_urls(doc).endswith("accessed at.") or "accessed at." in strip_urls(doc)
    assert strip_html("ok <or=2 years") == "ok <or=2 years"
    assert strip_urls("see www.example.org, then stop") == "see, then stop"
    assert strip_urls("no address here") == "no address here"


def test_control_and_invisible_characters():
    assert strip_control("a\x00b\x07c\u200bd\ufeffe\u00adf") == "abcdef"
    assert strip_control("keeps\ttabs\nand lines") == "keeps\ttabs\nand lines"


def test_symbols_removed_but_meaningful_ones_kept(scifact):
    doc = "Redox biology☆. A recent review"  # as in a full SciFact abstract (not in the bundled sample)
    assert strip_symbols(doc) == "Redox biology. A recent review"
    kept = "37 °C, Tween® 20, TGF-β ↑ 2 ± 0.1 ≤ 5"
    assert strip_symbols(kept) == kept
    assert strip_symbols("Great paper 😀👍 ★★★") == "Great paper  "
    assert strip_symbols("Title\n*****\nBody ====== end") == "Title\n\nBody  end"
    assert strip_symbols("Met\ufffdio") == "Metio"


def test_whitespace():
    assert collapse_whitespace("  a \t b\r\n\n c\u00a0d  ") == "a b c d"


def test_clean_text_reports_rules_in_order_and_options_turn_them_off():
    text = "<b>Claim</b>:\u200b see https://x.org ★ now"
    out, rules = clean_text(text, CleaningOptions())
    assert out == "Claim: see now"
    assert rules == ("control", "html", "urls", "symbols", "whitespace")
    assert clean_text(text, CleaningOptions.none()) == (text, ())
    out, rules = clean_text(text, CleaningOptions.from_names("html,whitespace"))
    assert rules == ("html", "whitespace") and "https://x.org" in out


def test_options_parse_and_reject_unknown_names():
    assert CleaningOptions.from_names("urls, html").names() == ["html", "urls"]
    assert CleaningOptions().names() == list(RULES)
    with pytest.raises(ValueError, match="Unknown cleaning rule.*emoji.*Known: control"):
        CleaningOptions.from_names("html,emoji")


def test_cleaner_counts_and_is_idempotent_on_the_whole_corpus(scifact):
    cleaner = Cleaner(CleaningOptions())
    cleaned = [cleaner(t)[0] for t in scifact["corpus"].values()]
    report = cleaner.report()
    assert report["texts_seen"] == len(scifact["corpus"])
    assert all(report[r] > 0 for r in RULES), report
    assert report["texts_changed"] <= report["texts_seen"]
    assert sum(1 for a, b in zip(scifact["corpus"].values(), cleaned) if a != b) == report["texts_changed"]
    for text in cleaned:
        assert clean_text(text, CleaningOptions()) == (text, ())  # cleaning twice changes nothing
        assert "http://" not in text and "&bgr;" not in text and "\u200b" not in text and "  " not in text


def test_cleaner_memo_counts_every_occurrence(scifact):
    text = scifact["corpus"]["5304891"]
    cleaner = Cleaner(CleaningOptions(), memo_size=1)
    for _ in range(3):
        cleaner(text)
        cleaner("plain")
    assert cleaner.report()["urls"] == 3 and cleaner.report()["texts_seen"] == 6


def test_duplicate_rules():
    assert compare_labels(1, 1) == "duplicate"
    assert compare_labels(1, 0) == "conflict" and compare_labels(0, 2) == "conflict"
    assert compare_labels(1, 2) == "grade"
