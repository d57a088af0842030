"""How long a long step will take on this machine, from throughput measured by earlier jobs and runs.

Three rates: texts/s for embedding, pairs/s for scoring with a cross-encoder (evaluation, a second opinion) and
pairs/s for training. Until a job has measured one, a conservative default for a 2-thread CPU is used (README:
~60 texts/s embedding, ~35 pairs/s predicting, ~9 pairs/s training at max length 128). Measurements live in the
workspace's `throughput.json` (recomputable, never precious): the median of the last few per rate is used.

Each rate is kept per precision (core.inference.precision): bf16 measurements under `<rate>.bf16`. Until bf16 has
been measured here, its rate is the fp32 one times the speed-up bf16 showed on the AMX Xeon (BF16_SPEEDUP), so a
CPU with bf16 units plans longer contexts or more epochs into the same time budget from the first run.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import store

FILE = "throughput.json"
KEEP = 7  # measurements kept per rate
DEFAULTS = {
    "embed_texts_per_s": 60.0,
    "predict_pairs_per_s": 35.0,
    "train_pairs_per_s": 9.0,
    "prior_pairs_per_s": 23.0,  # tuning the embedding model (core.training.prior); see BF16_SPEEDUP
}
# bf16 over fp32 on the 2-core AMX Xeon, same process, order alternated (issue 23, bench/scoring.py --quick on a
# trained reranker, load 9: embedding 2.1x, scoring 2.8x). Training under bf16 autocast: 1.30x on an idle machine
# (issue 23) but 0.9-1.06x with the 2 cores shared (load 9-12), so the plan assumes no gain until a bf16 run has
# measured its own rate here (`learn` files it under train_pairs_per_s.bf16).
# The prior's fp32 default is the cross-encoder's fp32 training rate measured on the idle machine (23 pairs/s: a
# bi-encoder pair holds about as many tokens), and its bf16 speed-up the 1.5x bench/training.py --precision measured
# there (34 pairs/s, as bench/prior_tuning.py saw); until a tuning run here measures its own.
BF16_SPEEDUP = {
    "embed_texts_per_s": 2.0,
    "predict_pairs_per_s": 2.0,
    "train_pairs_per_s": 1.0,
    "prior_pairs_per_s": 1.5,
}
REFERENCE_LENGTH = 128  # the max length the training and predicting defaults were measured at
# A training step grows faster than the length: bf16 on the idle 2-core Xeon, SciFact lists of 32 pairs, ~0.93 s a
# step at 128 and 6.7 s at 384 (7.2x for 3x the tokens; the matmuls grow ~3.5x, the unfused attention with dropout,
# its softmax and casts, with the square). Scoring (fused attention, no dropout) stays close to linear.
TRAIN_LENGTH_EXPONENT = 1.8
STARTUP_S = 8.0  # loading a model and the data before the first batch
PLAUSIBLE = (0.05, 50_000.0)  # a measurement outside this range is noise (a cached run, a clock jump)


@dataclass
class Estimate:
    """A step's expected duration and how it was reached, for a caption beside the button."""

    seconds: float
    basis: str  # e.g. "1,200 texts at 60 texts/s (default)"
    measured: bool

    def text(self) -> str:
        """'about 3 min (1,200 texts at 60 texts/s, measured here)'."""
        return f"about {duration(self.seconds)} ({self.basis}, {'measured here' if self.measured else 'default'})"


def duration(seconds: float) -> str:
    """Seconds as a person reads them: '40 s', '3 min', '1 h 20 min'."""
    s = max(0, int(round(seconds)))
    if s < 90:
        return f"{max(s, 1)} s"
    if s < 3600:
        return f"{round(s / 60)} min"
    return f"{s // 3600} h {round(s % 3600 / 60)} min"


def _path(workspace: Path) -> Path:
    return Path(workspace) / FILE


def _read(workspace: Path) -> dict[str, Any]:
    try:
        data = json.loads(_path(workspace).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write(workspace: Path, data: dict[str, Any]) -> None:
    path = _path(workspace)
    tmp = path.with_name(f".{FILE}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
        tmp.replace(path)
    except OSError:
        pass  # a read-only workspace only loses the refinement, never the step


def precision_now(precision: str | None = None) -> str:
    """The precision a rate is for: the one given, else what this process's torch work on the CPU runs in."""
    if precision:
        return precision
    from core.inference.device import pick_device
    from core.inference.precision import choose

    device = pick_device()
    return choose(device=device).name if device == "cpu" else "fp32"


def rate_key(name: str, precision: str = "fp32") -> str:
    """Where a rate measured in this precision is kept: the plain name for fp32 (older files stay valid)."""
    return name if precision in ("fp32", "fp16") else f"{name}.{precision}"


def observe(workspace: Path, rate: str, value: float, source: str = "") -> bool:
    """Record one measured rate (e.g. embed_texts_per_s or train_pairs_per_s.bf16); False when implausible/unknown."""
    if rate.split(".")[0] not in DEFAULTS or not (PLAUSIBLE[0] <= float(value) <= PLAUSIBLE[1]):
        return False
    data = _read(workspace)
    seen = data.setdefault("sources", [])
    if source and source in seen:
        return False
    values = data.setdefault(rate, [])
    values.append(round(float(value), 3))
    data[rate] = values[-KEEP:]
    if source:
        data["sources"] = (seen + [source])[-200:]
    _write(workspace, data)
    return True


def rate(workspace: Path | None, name: str, precision: str | None = None) -> tuple[float, bool]:
    """(rate, measured) in `precision` (default: this process's): the median of this machine's measurements in
    it; for bf16 without any, the fp32 rate (measured or default) times BF16_SPEEDUP."""
    precision = precision_now(precision)
    data = _read(workspace) if workspace else {}
    values = _values(data, rate_key(name, precision))
    if values:
        return statistics.median(values), True
    fp32 = _values(data, name)
    base, measured = (statistics.median(fp32), True) if fp32 else (DEFAULTS[name], False)
    return (base * BF16_SPEEDUP[name] if precision == "bf16" else base), measured


def _values(data: dict[str, Any], key: str) -> list[float]:
    """The numeric measurements stored under a key."""
    return [float(v) for v in data.get(key) or [] if isinstance(v, (int, float))]


def training_rate_words(workspace: Path | None, precision: str | None = None) -> str:
    """'at 23.4 pairs/s (length 128) in bf16, measured here': the rate the time budget planned with, in words."""
    precision = precision_now(precision)
    r, measured = rate(workspace, "train_pairs_per_s", precision)
    origin = "measured here" if measured else "default"
    if precision == "bf16" and not _values(
        _read(workspace) if workspace else {}, rate_key("train_pairs_per_s", "bf16")
    ):
        origin += f", the fp32 rate x{BF16_SPEEDUP['train_pairs_per_s']:g} until bf16 is measured"
    return f"at {r:.1f} pairs/s (length {REFERENCE_LENGTH}) in {precision}, {origin}"


def length_factor(max_length: int, training: bool = False) -> float:
    """How much slower a pair is at `max_length` than at REFERENCE_LENGTH: linear for scoring, to the power
    TRAIN_LENGTH_EXPONENT for a training step; never assume shorter is faster than measured."""
    ratio = max(1.0, max_length / REFERENCE_LENGTH)
    return ratio**TRAIN_LENGTH_EXPONENT if training else ratio


def embedding(workspace: Path | None, texts: int, cached_note: bool = True) -> Estimate:
    """Embedding `texts` texts (an upper bound: texts already in the cache cost nothing)."""
    r, measured = rate(workspace, "embed_texts_per_s")
    basis = f"{texts:,} texts at {r:,.0f} texts/s" + (", fewer if cached" if cached_note else "")
    return Estimate(STARTUP_S + texts / r, basis, measured)


def scoring(workspace: Path | None, pairs: int, max_length: int = REFERENCE_LENGTH) -> Estimate:
    """A cross-encoder scoring `pairs` (query, passage) pairs."""
    r, measured = rate(workspace, "predict_pairs_per_s")
    r_eff = r / length_factor(max_length)
    return Estimate(STARTUP_S + pairs / r_eff, f"{pairs:,} pairs at {r_eff:,.0f} pairs/s", measured)


def training(workspace: Path | None, pairs: int, max_length: int = REFERENCE_LENGTH) -> Estimate:
    """Training over `pairs` (query, passage) pairs in total (rows x pairs per row x epochs)."""
    r, measured = rate(workspace, "train_pairs_per_s")
    r_eff = r / length_factor(max_length, training=True)
    return Estimate(STARTUP_S + pairs / r_eff, f"{pairs:,} pairs at {r_eff:,.1f} pairs/s", measured)


def combine(*parts: Estimate) -> Estimate:
    """Steps that run one after the other (e.g. embed the corpus, then rerank)."""
    return Estimate(
        sum(p.seconds for p in parts) - STARTUP_S * (len(parts) - 1),
        " + ".join(p.basis for p in parts),
        all(p.measured for p in parts),
    )


# --- learning from what ran --------------------------------------------------------------------


def _from_job(j: dict[str, Any]) -> tuple[str, float] | None:
    """The rate a finished job measured, if it measured one."""
    res = j.get("result") or {}
    if j["kind"] == "mine":
        stats = res.get("stats") or {}
        computed = (stats.get("cache") or {}).get("computed") or 0
        secs = (stats.get("seconds") or {}).get("embedding") or 0
        if computed >= 50 and secs > 0.5:
            return "embed_texts_per_s", computed / secs
    if j["kind"] == "evaluate":
        params = res.get("params") or {}
        rerankers = [s for s in res.get("systems", []) if s.get("kind") not in ("first_stage", "component")]
        pairs = int(params.get("queries") or 0) * int(params.get("top_k") or 0) * len(rerankers)
        wall = float(res.get("wall_s") or 0)
        if pairs >= 100 and wall > 1:
            return "predict_pairs_per_s", pairs / wall  # wall time includes the first stage: conservative
    return None


def learn(conn: sqlite3.Connection, project: int | None = None) -> int:
    """Record the rates measured by finished jobs and training runs not seen yet; returns how many were new."""
    workspace = store.workspace_of(conn)
    new = 0
    sql = "SELECT id, kind, result FROM jobs WHERE status = 'completed' AND kind IN ('mine', 'evaluate')"
    params: list[Any] = []
    if project is not None:
        sql, params = sql + " AND project_id = ?", [project]
    for row in conn.execute(sql + " ORDER BY id DESC LIMIT 20", params).fetchall():
        found = _from_job({"kind": row["kind"], "result": json.loads(row["result"] or "{}")})
        if found and observe(workspace, rate_key(found[0], precision_now()), found[1], f"job:{row['id']}"):
            new += 1
    for row in conn.execute(
        "SELECT id, config, metrics FROM runs WHERE status = 'completed' ORDER BY created_at DESC LIMIT 20"
    ).fetchall():
        metrics, config = json.loads(row["metrics"] or "{}"), json.loads(row["config"] or "{}")
        pps = metrics.get("pairs_per_s")
        if pps and (metrics.get("train_seconds") or 0) > 5:
            at_reference = float(pps) * length_factor(
                int(config.get("max_length") or REFERENCE_LENGTH), training=True
            )
            key = rate_key("train_pairs_per_s", str(metrics.get("precision") or "fp32"))
            if observe(workspace, key, at_reference, f"run:{row['id']}"):
                new += 1
        tuned = metrics.get("prior") or {}
        if tuned.get("pairs") and (tuned.get("seconds") or 0) > 5:
            at_reference = (
                tuned["pairs"]
                / tuned["seconds"]
                * length_factor(
                    min(int(config.get("max_length") or REFERENCE_LENGTH), REFERENCE_LENGTH), training=True
                )
            )
            key = rate_key("prior_pairs_per_s", str(tuned.get("precision") or "fp32"))
            if observe(workspace, key, at_reference, f"prior:{row['id']}"):
                new += 1
    return new
