"""Get a person's training data in: read, detect the shape, clean, validate, de-duplicate, split, store.

Every import is one transaction: a file with any error leaves the workspace exactly as it was, and the error
names the file, the row (as a spreadsheet shows it: the header is row 1; JSONL rows are line numbers) and the
column. Files stream in chunks, so a 150 MB upload imports in bounded memory with progress.

    preview = dry_run(conn, project, ImportSpec(Path("pairs.csv")))   # nothing written
    summary = run_import(conn, "My project", ImportSpec(Path("pairs.csv"), test_fraction=0.2, seed=7))

The readers here are the only file readers of the studio: test sets (`read_test_set`) and extra corpora
(`read_corpus_file`) go through the same readers and the same cleaning as an import.
"""

from core.ingest.beir import beir_layout
from core.ingest.cleaning import RULE_LABELS, RULES, Cleaner, CleaningOptions, clean_text
from core.ingest.cli import cli_arguments, cli_main
from core.ingest.columns import SHAPES, ColumnMap, detect_columns
from core.ingest.formats import FORMATS, UPLOAD_LIMIT_MB, UPLOAD_TYPES, check_size, detect_format
from core.ingest.labels import compare_labels, is_relevant, parse_label
from core.ingest.preview import FileInfo, displayable, inspect
from core.ingest.problems import MAX_LISTED, IngestError, Problem, Report
from core.ingest.readers import MAX_TEXT_CHARS, TableReader, open_table
from core.ingest.report import MIN_EXAMPLES
from core.ingest.run import dry_run, first_pairs, list_imports, run_import
from core.ingest.spec import ImportSpec
from core.ingest.testsets import TestFile, TestRow, overlapping_queries, read_corpus_file, read_test_set
from core.ingest.texts import LONG_TEXT_CHARS

__all__ = [
    "Cleaner",
    "CleaningOptions",
    "ColumnMap",
    "FORMATS",
    "FileInfo",
    "ImportSpec",
    "IngestError",
    "LONG_TEXT_CHARS",
    "MAX_LISTED",
    "MAX_TEXT_CHARS",
    "MIN_EXAMPLES",
    "Problem",
    "RULES",
    "RULE_LABELS",
    "Report",
    "SHAPES",
    "TableReader",
    "TestFile",
    "TestRow",
    "UPLOAD_LIMIT_MB",
    "UPLOAD_TYPES",
    "beir_layout",
    "check_size",
    "clean_text",
    "cli_arguments",
    "cli_main",
    "compare_labels",
    "detect_columns",
    "detect_format",
    "displayable",
    "dry_run",
    "first_pairs",
    "inspect",
    "is_relevant",
    "list_imports",
    "open_table",
    "overlapping_queries",
    "parse_label",
    "read_corpus_file",
    "read_test_set",
    "run_import",
]
