"""One text cell through the checks and the cleaning: the same path for every file, table or BEIR folder."""

from __future__ import annotations

import math
from typing import Any

from core.ingest.cleaning import Cleaner, CleaningOptions
from core.ingest.problems import Problem, ProblemLog, short
from core.ingest.readers import BAD_BYTES, MAX_TEXT_CHARS, SURROGATE

LONG_TEXT_CHARS = 20_000  # warn: the model reads ~512 tokens (a few thousand characters)


class TextCheck:
    """Cleans and checks text cells, keeping before/after samples and long-text warnings for the report."""

    def __init__(self, cleaning: CleaningOptions, log: ProblemLog):
        self.cleaner = Cleaner(cleaning)
        self.log = log
        self.samples: list[dict[str, Any]] = []
        self.changed_samples: list[dict[str, Any]] = []
        self.long_texts: list[Problem] = []
        self.n_long = 0

    def __call__(self, value: Any, file: str, row: int, column: str, role: str) -> str | None:
        """A cleaned, checked text cell, or None after recording why it is unusable."""
        if (
            type(value) is not str or BAD_BYTES.count or len(value) > MAX_TEXT_CHARS
        ):  # fast path: a plain text
            value = self._as_text(value, file, row, column)
            if value is None:
                return None
        cleaned, rules = self.cleaner(value)
        if len(self.samples) < 5 or (rules and len(self.changed_samples) < 8):
            self._sample(file, row, column, value, cleaned, rules)
        if not cleaned.strip():
            what = "blank" if not value.strip() else f"blank after cleaning (it was {short(value, 60)!r})"
            self.log.row(file, row, column, f"the {role} is {what}.")
            return None
        if len(cleaned) > LONG_TEXT_CHARS:
            self.n_long += 1
            if len(self.long_texts) < 20:
                self.long_texts.append(
                    Problem(
                        file,
                        f"a {role} of {len(cleaned):,} characters; the model reads only about the first "
                        "512 tokens (a few thousand characters).",
                        row=row,
                        column=column,
                        kind="warning",
                    )
                )
        return cleaned

    def _as_text(self, value: Any, file: str, row: int, column: str) -> str | None:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return ""
        if isinstance(value, (list, tuple, dict)):
            self.log.row(file, row, column, f"expected a text, found a {type(value).__name__}.")
            return None
        if not isinstance(value, str):
            value = str(value)
        if BAD_BYTES.count and (bad := SURROGATE.search(value)):
            before = value[max(0, bad.start() - 20) : bad.start()]
            self.log.row(
                file,
                row,
                column,
                (
                    f"bytes that are not UTF-8 (0x{ord(bad.group()) - 0xDC00:02x} after {short(before, 30)!r}); "
                    "save the file as UTF-8 (in Excel: 'CSV UTF-8')."
                ),
            )
            return None
        if len(value) > MAX_TEXT_CHARS:
            self.log.row(
                file,
                row,
                column,
                (
                    f"a text of {len(value):,} characters (the limit is {MAX_TEXT_CHARS:,}); is a quote left open?"
                ),
            )
            return None
        return value

    def _sample(
        self, file: str, row: int, column: str, value: str, cleaned: str, rules: tuple[str, ...]
    ) -> None:
        entry = {
            "file": file,
            "row": row,
            "column": column,
            "before": value[:2000],
            "after": cleaned[:2000],
            "changed": ", ".join(rules),
        }
        if len(self.samples) < 5:
            self.samples.append(entry)
        elif rules:
            self.changed_samples.append(entry)

    def shown_samples(self) -> list[dict[str, Any]]:
        """Up to 10 before/after rows for the report: changed ones first."""
        s = self.samples
        ordered = self.changed_samples + [x for x in s if x["changed"]] + [x for x in s if not x["changed"]]
        return ordered[:10]
