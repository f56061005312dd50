"""The synthetic benchmark says up front when a model states no synthetic world."""

from __future__ import annotations

import json
import logging
import shutil

from imageconductor.evaluation.synthetic_benchmark import warn_if_not_synthetic
from imageconductor.pipelines import default_model_path, read_model_index


def test_a_model_without_a_synthetic_world_is_named_with_the_size_it_would_render(tmp_path, caplog):
    index = read_model_index(default_model_path())
    del index["synthetic_world"], index["native_size"]
    (tmp_path / "model_index.json").write_text(json.dumps(index))
    with caplog.at_level(logging.WARNING):
        warn_if_not_synthetic(tmp_path)
    [record] = [r for r in caplog.records if "synthetic_world" in r.getMessage()]
    assert str(tmp_path) in record.getMessage() and "16x256x384" in record.getMessage()


def test_the_embedded_model_is_measured_without_a_warning(tmp_path, caplog):
    shutil.copy(default_model_path() / "model_index.json", tmp_path / "model_index.json")
    with caplog.at_level(logging.WARNING):
        warn_if_not_synthetic(tmp_path)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
