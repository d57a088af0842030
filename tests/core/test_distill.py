"""Distillation's pieces without a model: the student's config and the teacher's listwise targets."""

from __future__ import annotations

import numpy as np

from core.training.config import TrainConfig
from core.training.distill import DistillSettings, student_config, teacher_rows


class LengthTeacher:
    """Scores a passage by its length (a stand-in for a run's full score)."""

    def __init__(self) -> None:
        self.groups = []

    def score_groups(self, groups):
        self.groups = groups
        return [np.array([float(len(p)) for p in ps]) for _, ps in groups]


def test_student_is_a_plain_listwise_run_with_the_teachers_data_settings():
    teacher = TrainConfig(loss="residual", residual_beta=25.0, candidates_k=30, max_length=128, seed=7)
    cfg = student_config(teacher, DistillSettings(max_steps=5, list_size=0, max_length=64))
    assert cfg.loss == "listnet" and cfg.residual_beta is None and not cfg.fusion
    assert cfg.candidates_k == 30 and cfg.max_length == 64 and cfg.seed == 7 and cfg.max_steps == 5
    cfg.validate()  # a valid run config: the store and the pages read it like any run's


def test_teacher_rows_add_missed_positives_and_carry_the_teachers_scores():
    samples = [
        {"query": "q1", "documents": ["aa", "b"], "positive": ["b", "cccc"]},
        {"query": "q2", "documents": ["only"], "positive": ["only"]},  # one passage: nothing to rank, dropped
    ]
    teacher = LengthTeacher()
    rows = teacher_rows(teacher, samples)
    assert rows == [{"query": "q1", "docs": ["aa", "b", "cccc"], "labels": [2.0, 1.0, 4.0]}]
    assert teacher.groups[0] == ("q1", ["aa", "b", "cccc"])


def test_cli_distill_is_registered_and_names_a_missing_teacher(tmp_path):
    import json
    import os
    import subprocess
    import sys

    from core import store
    from tests.conftest import ROOT

    home = tmp_path / "studio-home"
    conn = store.connect(home)
    store.create_project(conn, "p")
    conn.close()
    env = {**os.environ, "RERANK_STUDIO_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "core", "distill", "--project", "p", "--run", "nope", "--max-steps", "2"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2 and "nope" in json.loads(out.stderr.strip().splitlines()[-1])["error"]


def test_distill_is_a_job_kind_whose_adapter_passes_the_settings(monkeypatch):
    from core import queue
    from core.training import distill as module

    seen = {}

    def fake(conn, project, teacher, settings):
        seen.update(project=project, teacher=teacher, settings=settings)
        return "student", {"steps": settings.max_steps}

    monkeypatch.setattr(module, "distill", fake)
    adapter = queue.kind_of("distill").run
    out = adapter(None, 3, {"run": "t1", "max_steps": 4, "list_size": 6}, lambda *a: None, lambda: False)
    assert out == {"run": "student", "teacher": "t1", "steps": 4}
    assert seen["project"] == 3 and seen["settings"] == DistillSettings(max_steps=4, list_size=6)
