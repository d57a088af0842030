"""A run's data, frozen in its folder at the first start: a resumed run trains on exactly what it started with."""

from __future__ import annotations

import dataclasses
import gzip
import json
from pathlib import Path
from typing import Any

from core.training.config import DATA_FIELDS, TrainConfig
from core.training.data import TrainingData

SNAPSHOT_FILE = "data_snapshot.json.gz"


def _data_settings(cfg: TrainConfig) -> dict[str, Any]:
    """The settings that shaped the data (a snapshot made with others is not this run's data)."""
    return {k: getattr(cfg, k) for k in DATA_FIELDS}


def save(folder: Path, data: TrainingData, cfg: TrainConfig) -> Path:
    """Write the run's rows, validation and test lists, statistics and snapshot next to its checkpoints."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / SNAPSHOT_FILE
    tmp = path.with_suffix(".tmp")
    payload = {"settings": _data_settings(cfg), "data": dataclasses.asdict(data)}
    with gzip.open(tmp, "wt", encoding="utf-8") as fh:
        json.dump(payload, fh)
    tmp.replace(path)
    return path


def load(folder: Path, cfg: TrainConfig) -> TrainingData | None:
    """The run's frozen data, or None when there is none yet (or it was built with other data settings)."""
    path = folder / SNAPSHOT_FILE
    if not path.is_file():
        return None
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        payload = json.load(fh)
    if payload.get("settings") != json.loads(json.dumps(_data_settings(cfg))):
        return None
    return TrainingData(**payload["data"])
