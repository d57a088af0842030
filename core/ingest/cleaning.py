"""Text cleaning rules: noise in training text teaches a reranker noise.

Each rule is a pure function `str -> str`; `clean_text` applies the chosen ones in a fixed order and says which
of them changed the text, so the Data page can show counts and before/after rows.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from dataclasses import asdict, dataclass, fields

from core.errors import UserError

RULES: tuple[str, ...] = ("control", "html", "urls", "symbols", "whitespace")
RULE_LABELS: dict[str, str] = {
    "html": "Strip HTML tags and entities",
    "urls": "Remove URLs",
    "control": "Remove control and invisible characters",
    "symbols": "Remove stray symbols (emoji, dingbats, box drawing, decorative runs)",
    "whitespace": "Collapse whitespace",
}


@dataclass(frozen=True)
class CleaningOptions:
    """Which cleaning rules run; all on by default because each removes noise the model would learn."""

    html: bool = True
    urls: bool = True
    control: bool = True
    symbols: bool = True
    whitespace: bool = True

    @classmethod
    def from_names(cls, names: str | list[str] | tuple[str, ...]) -> CleaningOptions:
        """Parse the CLI's `--clean html,urls,...`; unknown names are an error listing the known ones."""
        if isinstance(names, str):
            names = [n for n in (p.strip() for p in names.split(",")) if n]
        unknown = [n for n in names if n not in RULES]
        if unknown:
            raise UserError(f"Unknown cleaning rule(s): {', '.join(unknown)}. Known: {', '.join(RULES)}.")
        return cls(**{rule: rule in names for rule in RULES})

    @classmethod
    def none(cls) -> CleaningOptions:
        """Keep texts exactly as uploaded."""
        return cls(**{f.name: False for f in fields(cls)})

    def names(self) -> list[str]:
        """The rules that are on, in the order they run."""
        return [rule for rule in RULES if getattr(self, rule)]

    def to_dict(self) -> dict[str, bool]:
        return asdict(self)


# --- the rules ------------------------------------------------------------------------------------

# Only real HTML tag names (or tags with attributes) count, so "<or=2 years" and "</=60 mm Hg" survive.
_TAG_NAMES = (
    "a|abbr|b|big|blockquote|body|br|button|caption|center|cite|code|col|dd|del|div|dl|dt|em|font|"
    "footer|form|h[1-6]|head|header|hr|html|i|iframe|img|input|ins|kbd|label|li|link|main|mark|meta|"
    "nav|ol|option|p|pre|q|s|samp|section|select|small|span|strike|strong|sub|sup|table|tbody|td|"
    "textarea|tfoot|th|thead|title|tr|tt|u|ul|article|aside|figure|figcaption|picture|source|svg|path"
)
_HTML_BLOCKS = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_HTML_COMMENT = re.compile(r"<!--.*?-->|<!\[CDATA\[.*?\]\]>|<!DOCTYPE[^>]*>", re.IGNORECASE | re.DOTALL)
_HTML_TAG = re.compile(
    rf"</?(?:{_TAG_NAMES})(?:\s[^<>]*)?/?>|<[A-Za-z][\w-]*(?:\s+[\w:-]+\s*=\s*(?:\"[^\"]*\"|'[^']*'))+\s*/?>",
    re.IGNORECASE,
)
_ENTITY = re.compile(r"&(?:#\d{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
# PubMed-style SGML Greek entities (&bgr; = beta) that html.unescape does not know; real SciFact text has them.
_SGML_GREEK = {
    "agr": "α",
    "bgr": "β",
    "ggr": "γ",
    "dgr": "δ",
    "egr": "ε",
    "zgr": "ζ",
    "eegr": "η",
    "thgr": "θ",
    "igr": "ι",
    "kgr": "κ",
    "lgr": "λ",
    "mgr": "μ",
    "ngr": "ν",
    "xgr": "ξ",
    "ogr": "ο",
    "pgr": "π",
    "rgr": "ρ",
    "sgr": "σ",
    "tgr": "τ",
    "ugr": "υ",
    "phgr": "φ",
    "khgr": "χ",
    "psgr": "ψ",
    "ohgr": "ω",
    "Agr": "Α",
    "Bgr": "Β",
    "Ggr": "Γ",
    "Dgr": "Δ",
    "Egr": "Ε",
    "Kgr": "Κ",
    "Lgr": "Λ",
    "Pgr": "Π",
    "Sgr": "Σ",
    "PHgr": "Φ",
    "PSgr": "Ψ",
    "OHgr": "Ω",
}


def _entity(match: re.Match[str]) -> str:
    name = match.group(0)[1:-1]
    if name in _SGML_GREEK:
        return _SGML_GREEK[name]
    return html.unescape(match.group(0))


def strip_html(text: str) -> str:
    """Remove tags, comments and script/style blocks; decode entities (&amp; -> &, &bgr; -> β)."""
    if "<" in text:
        text = _HTML_BLOCKS.sub(" ", text)
        text = _HTML_COMMENT.sub(" ", text)
        text = _HTML_TAG.sub(" ", text)
    if "&" in text:
        text = _ENTITY.sub(_entity, text)
    return text


_URL_CHARS = r"[^\s<>\"'\]\[{}|\\^`]"
_URL = re.compile(rf"\b(?:https?|ftp)://(?:[ \t]*www\.)?{_URL_CHARS}*|\bwww\.{_URL_CHARS}+", re.IGNORECASE)
_URL_TRAIL = ".,;:!?)"
_EMPTY_BRACKETS = re.compile(r"\(\s*\)|\[\s*\]")


def _url(match: re.Match[str]) -> str:
    url = match.group(0)
    kept = ""
    while url and url[-1] in _URL_TRAIL:  # sentence punctuation after a URL is not part of it
        if url[-1] == ")" and url.count("(") >= url.count(")"):
            break
        kept = url[-1] + kept
        url = url[:-1]
    return kept


def strip_urls(text: str) -> str:
    """Remove web addresses (and the empty brackets they leave); they are unique noise to a reranker."""
    if "://" not in text and "www." not in text.lower():
        return text
    out = _URL.sub(_url, text)
    if out != text:
        out = _EMPTY_BRACKETS.sub("", out)
        out = re.sub(r"[ \t]+([.,;:])", r"\1", out)
    return out


# C0/C1 controls except tab, newline, carriage return (whitespace's job), plus invisible format characters.
_CONTROL = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]"
)


def strip_control(text: str) -> str:
    """Remove control characters and zero-width/bidi marks that are invisible but change tokens."""
    if text.isprintable():  # fast path in C: no controls, no format characters
        return text
    return _CONTROL.sub("", text)


# Symbols that carry meaning in real text are kept: degree, copyright/trademark, arrows, maths operators.
_KEEP_SYMBOLS = "°©®™℃℉№℗"
_STRAY = re.compile(
    "[\ufffd\ue000-\uf8ff"  # replacement character, private use
    "\u2300-\u23ff"  # misc technical (⌘ ⏰ ...)
    "\u2400-\u24ff"  # control pictures, enclosed alphanumerics
    "\u2500-\u25ff"  # box drawing, block elements, geometric shapes (■ ▸ ●)
    "\u2600-\u27bf"  # misc symbols, dingbats (☆ ✓ ✂)
    "\u2b00-\u2bff"  # misc symbols and arrows used as bullets
    "\U0001f000-\U0001faff"  # emoji, pictographs
    "\ufe0f\u20e3"  # emoji variation selector / keycap
    "]"
)
_RUN_HINT = re.compile(r"[*=_#~+|^\-<>•·]{4}")  # cheap pre-check, no back-reference
_RUNS = re.compile(r"([*=_#~+|^\-<>•·])\1{3,}")  # decorative runs: "*****", "=====", "-----"


def strip_symbols(text: str) -> str:
    """Remove emoji, dingbats, box drawing and decorative runs, keeping symbols that carry meaning."""
    if not text.isascii() and _STRAY.search(text):
        text = _STRAY.sub("", text)
    if _RUN_HINT.search(text):
        text = _RUNS.sub("", text)
    return text


def collapse_whitespace(text: str) -> str:
    """One space between words, none at the ends: line breaks and tabs mean nothing to the tokenizer."""
    return " ".join(text.split())


_RULE_FUNCS = {
    "control": strip_control,
    "html": strip_html,
    "urls": strip_urls,
    "symbols": strip_symbols,
    "whitespace": collapse_whitespace,
}


def clean_text(text: str, options: CleaningOptions) -> tuple[str, tuple[str, ...]]:
    """The cleaned text and the rules that changed it (in the order they ran)."""
    changed = []
    for rule in RULES:
        if getattr(options, rule):
            out = _RULE_FUNCS[rule](text)
            if out != text:
                changed.append(rule)
                text = out
    return text, tuple(changed)


def inference_options(rules: list[str] | tuple[str, ...] | None, on: bool = True) -> CleaningOptions:
    """The rules a shipped model's spec names (none when switched off): served text is read like training text."""
    return CleaningOptions.from_names(list(rules)) if on and rules else CleaningOptions.none()


def clean_input(text: str, options: CleaningOptions) -> str:
    """A text to score, cleaned as the training data was (exactly as given when no rule is on)."""
    return clean_text(text, options)[0] if options.names() else text


class Cleaner:
    """Cleans many texts with counts per rule; memoises repeats (a passage often appears in many rows)."""

    def __init__(self, options: CleaningOptions, memo_size: int = 50_000):
        self.options = options
        self.counts: Counter[str] = Counter()
        self.texts_changed = 0
        self.texts_seen = 0
        self._memo: dict[str, tuple[str, tuple[str, ...]]] = {}
        self._memo_size = memo_size
        self._active = bool(options.names())

    def __call__(self, text: str) -> tuple[str, tuple[str, ...]]:
        self.texts_seen += 1
        if not self._active:
            return text, ()
        hit = self._memo.get(text)
        if hit is None:
            hit = clean_text(text, self.options)
            if len(self._memo) >= self._memo_size:  # bounded memory on huge files
                self._memo.clear()
            self._memo[text] = hit
        if hit[1]:
            self.texts_changed += 1
            self.counts.update(hit[1])
        return hit

    def report(self) -> dict[str, int]:
        """Counts of texts each rule changed, plus the total of texts changed by any rule."""
        out = {rule: int(self.counts.get(rule, 0)) for rule in self.options.names()}
        out["texts_changed"] = self.texts_changed
        out["texts_seen"] = self.texts_seen
        return out
