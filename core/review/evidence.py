"""Why a mined candidate may answer its query, shown on the desk: the query's terms marked in a passage (as
Markdown text styling over escaped text, never HTML from the data) and the reasons behind its risk in one line."""

from __future__ import annotations

import functools
import re
from typing import Any

from core.markdown import escape_markdown

WORD = re.compile(r"\w+", re.UNICODE)
MIN_LEN = 3
MARK = ":orange-background[{}]"


@functools.cache
def _stop_words() -> frozenset[str]:
    """English stop words (scikit-learn's list, already a dependency of mining), loaded once."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS)


def _norm(word: str) -> str:
    """Case-folded, with a plural 's' dropped, so 'Cells' in a passage matches 'cell' in the query."""
    w = word.casefold()
    return w[:-1] if len(w) > MIN_LEN + 1 and w.endswith("s") and not w.endswith("ss") else w


def query_terms(query: str) -> set[str]:
    """The content words of a query (normalised): what a person scans a passage for."""
    stop = _stop_words()
    return {_norm(w) for w in WORD.findall(query) if len(w) >= MIN_LEN and w.casefold() not in stop}


def highlight(text: str, terms: set[str]) -> str:
    """Markdown of `text` with every word in `terms` marked; everything else escaped, line breaks kept."""
    lines = []
    for line in str(text).split("\n"):
        out, last = [], 0
        for m in WORD.finditer(line):
            out.append(escape_markdown(line[last : m.start()]))
            word = escape_markdown(m.group())
            out.append(MARK.format(word) if _norm(m.group()) in terms else word)
            last = m.end()
        out.append(escape_markdown(line[last:]))
        lines.append("".join(out).strip())
    return "  \n".join(lines)


def shared_terms(query: str, text: str) -> list[str]:
    """The query's content words that also occur in the text, in query order."""
    present = {_norm(w) for w in WORD.findall(text)}
    seen: dict[str, None] = {}
    stop = _stop_words()
    for w in WORD.findall(query):
        if len(w) >= MIN_LEN and w.casefold() not in stop and _norm(w) in present:
            seen.setdefault(w.casefold(), None)
    return list(seen)


def _overlap(a: str, b: str) -> float:
    """Share of a's distinct content words that b also has (a cheap near-duplicate signal)."""
    stop = _stop_words()
    wa = {_norm(w) for w in WORD.findall(a) if len(w) >= MIN_LEN and w.casefold() not in stop}
    wb = {_norm(w) for w in WORD.findall(b) if len(w) >= MIN_LEN and w.casefold() not in stop}
    return len(wa & wb) / len(wa) if wa else 0.0


def risk_reasons(c: dict[str, Any]) -> str:
    """One line: the signals that raise this candidate's false-negative risk (as the miner's risk weighs them)."""
    reasons = []
    score, pos = c.get("score"), c.get("positive_score")
    if score is not None and pos is not None:
        if score >= pos:
            reasons.append(f"scores {score:.2f}, above its positive's {pos:.2f}")
        else:
            reasons.append(f"scores {score:.2f}, {pos - score:.2f} below its positive's {pos:.2f}")
    elif score is not None:
        reasons.append(f"similarity to the query {score:.2f}")
    if c.get("rank"):
        reasons.append(f"rank {c['rank']} in the search")
    shared = shared_terms(c.get("query") or "", c.get("candidate") or "")
    if shared:
        more = f" +{len(shared) - 4}" if len(shared) > 4 else ""
        reasons.append(f"shares {len(shared)} query terms ({', '.join(shared[:4])}{more})")
    else:
        reasons.append("shares no query term")
    if c.get("positive"):
        share = _overlap(c.get("candidate") or "", c["positive"])
        if share >= 0.3:
            reasons.append(f"{share:.0%} of its words are in the positive")
    if c.get("ce_score") is not None:
        reasons.append(f"cross-encoder score {c['ce_score']:.2f}")
    if c.get("kind") == "random":
        reasons.append("a random negative (drawn, not searched)")
    return "; ".join(reasons) + "."
