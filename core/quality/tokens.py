"""Token counts with the chosen model's tokenizer (two threads on the Rust tokenizer), cached per text on disk,
so the Quality page measures exactly what the trained model will see."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from core import store
from core.progress import Progress, noop


def _backend(tokenizer: Any) -> Any | None:
    """A private copy of the fast tokenizer with truncation and padding off (the shared one is untouched)."""
    if not getattr(tokenizer, "is_fast", False):
        return None
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_truncation()
    backend.no_padding()
    return backend


def token_counts(
    texts: Sequence[str], tokenizer: Any, *, progress: Progress = noop, chunk: int = 1024
) -> np.ndarray:
    """Tokens of each text without special tokens (the pair encoding adds those once)."""
    out = np.zeros(len(texts), dtype=np.int32)
    backend = _backend(tokenizer)
    starts = list(range(0, len(texts), chunk))

    def count(start: int) -> int:
        batch = list(texts[start : start + chunk])
        if backend is not None:  # the Rust tokenizer releases the GIL: two threads use two cores
            encodings = backend.encode_batch_fast(batch, add_special_tokens=False)
            out[start : start + len(batch)] = [len(e) for e in encodings]
        else:
            ids = tokenizer(batch, add_special_tokens=False, truncation=False)["input_ids"]
            out[start : start + len(batch)] = [len(i) for i in ids]
        return len(batch)

    done = 0
    with ThreadPoolExecutor(max_workers=2 if backend is not None else 1) as pool:
        for n in pool.map(count, starts):
            done += n
            progress(done / max(1, len(texts)), "Counting tokens")
    return out


class TokenCache:
    """Token counts per (tokenizer, text hash) on disk, so a changed project re-counts only new texts."""

    def __init__(self, folder: Path, tokenizer_key: str):
        name = hashlib.sha1(tokenizer_key.encode()).hexdigest()[:16]
        self.conn = sqlite3.connect(folder / f"tokens-{name}.sqlite", timeout=30)
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("CREATE TABLE IF NOT EXISTS counts (hash TEXT PRIMARY KEY, n INTEGER NOT NULL)")

    def counts(self, texts: Sequence[str], tokenizer: Any, progress: Progress = noop) -> np.ndarray:
        """Counts of `texts` in order: known ones from disk, the rest counted and stored (then the file closes)."""
        hashes = [store.text_hash(t) for t in texts]
        known: dict[str, int] = {}
        for start in range(0, len(hashes), 900):
            chunk = hashes[start : start + 900]
            marks = ",".join("?" * len(chunk))
            known.update(self.conn.execute(f"SELECT hash, n FROM counts WHERE hash IN ({marks})", chunk))
        missing = [i for i, h in enumerate(hashes) if h not in known]
        if missing:
            fresh = token_counts([texts[i] for i in missing], tokenizer, progress=progress)
            rows = [(hashes[i], int(n)) for i, n in zip(missing, fresh)]
            with self.conn:
                self.conn.executemany("INSERT OR REPLACE INTO counts VALUES (?, ?)", rows)
            known.update(rows)
        self.conn.close()
        return np.fromiter((known[h] for h in hashes), dtype=np.int32, count=len(hashes))


def special_tokens(tokenizer: Any) -> int:
    """Special tokens the pair encoding adds ([CLS] q [SEP] p [SEP] is 3 for BERT-style models)."""
    return int(tokenizer.num_special_tokens_to_add(pair=True))
