"""What one import reads: a training file or BEIR folder, an optional test file or split, and the cleaning."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from core.errors import UserError
from core.ingest.cleaning import CleaningOptions
from core.ingest.columns import ColumnMap


@dataclass
class ImportSpec:
    """One import: a training file or BEIR folder, an optional test file or split, and the cleaning."""

    train: Path
    train_name: str | None = None  # the name the person knows (an upload's original file name)
    columns: ColumnMap | None = None  # None: detect
    test: Path | None = None
    test_name: str | None = None
    test_columns: ColumnMap | None = None
    cleaning: CleaningOptions = field(default_factory=CleaningOptions)
    test_fraction: float = 0.0  # split this share of the new queries off as the test set
    seed: int = 0
    skip_invalid: bool = False  # drop rows with problems (listed) instead of stopping
    max_mb: float | None = None  # None: the upload limit

    def __post_init__(self) -> None:
        self.train = Path(self.train)
        self.test = Path(self.test) if self.test else None
        if not 0 <= self.test_fraction < 1:
            raise UserError("the test fraction must be at least 0 and below 1.")
        if self.test is not None and self.test_fraction:
            raise UserError("choose one way to get a test set: a test file or a split fraction, not both.")

    @property
    def name(self) -> str:
        """The training input's name as the person knows it."""
        return self.train_name or self.train.name

    @property
    def test_label(self) -> str | None:
        """The test file's name as the person knows it (None without a test file)."""
        return (self.test_name or self.test.name) if self.test is not None else None
