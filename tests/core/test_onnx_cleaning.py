"""Issue 24: the ONNX export reads text as training did — the run's cleaning rules, applied by its loader."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import ROOT
from tests.model_folders import make_model_folder

pytestmark = pytest.mark.timeout(600)

HTML = "<p>Statins   lower <b>LDL</b> cholesterol &amp; more: https://example.org/a?b=1 \u2728</p>"
QUERY = "<i>Do statins</i> lower cholesterol?"


@pytest.fixture()
def onnx_export(db):
    """The bundled sample imported with two cleaning rules, a plain cross-encoder run on it, and its ONNX export."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from core import store
    from core.export import bundle, onnx
    from core.ingest.cleaning import CleaningOptions
    from core.ingest.run import run_import
    from core.ingest.spec import ImportSpec
    from core.runs import records
    from core.training import TrainConfig
    from core.training.run_record import create_run

    rules = CleaningOptions.from_names("html,urls")
    run_import(db, "cleaned", ImportSpec(ROOT / "sample_data" / "scifact", cleaning=rules))
    pid = store.project_id(db, "cleaned")
    run_id = create_run(db, pid, TrainConfig(max_length=32), status="running")
    model = make_model_folder(records.run_folder(db, run_id) / "model", activation="identity")
    records.update_run(db, run_id, status="completed", model_dir=str(model))
    dest = bundle.destination(db, "onnx-cleaned", run_id, explicit=False)
    onnx.export_onnx(db, run_id, dest, project=pid)
    return dest


def test_onnx_loader_scores_html_as_the_cleaned_text(onnx_export):
    from core.export import onnx
    from core.ingest.cleaning import CleaningOptions, clean_text

    spec = json.loads((onnx_export / onnx.ONNX_SPEC_FILE).read_text())
    assert spec["cleaning"] == ["html", "urls"]  # the rules of the project's training import, in run order
    assert "html, urls" in (onnx_export / "README.md").read_text()
    rules = CleaningOptions.from_names(spec["cleaning"])
    cleaned_q, cleaned_p = clean_text(QUERY, rules)[0], clean_text(HTML, rules)[0]
    assert "<b>" not in cleaned_p and "https://" not in cleaned_p and "<i>" not in cleaned_q
    shipped = onnx.load(onnx_export)
    got = shipped.score(QUERY, [HTML, cleaned_p])
    want = shipped.score(cleaned_q, [cleaned_p])
    assert np.allclose(got, want[0], atol=1e-6)  # HTML-laden query and passage score as their cleaned text
    raw = onnx.load(onnx_export, clean=False).score(QUERY, [HTML])
    assert abs(float(raw[0]) - float(want[0])) > 1e-4  # switched off, the raw markup reaches the model
