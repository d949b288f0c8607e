"""What the trainer does to go faster changes no result: transforming in-memory data once (validation,
and training without augmentation) gives the very run that transforming it every epoch gives."""

from __future__ import annotations

import json

import pytest

from zoo_core import train

pytestmark = pytest.mark.zoo_plugins("classify")  # trains them: skipped without

TINY = dict(backbone="cnn2", pretrained=False, image_size=16, batch_size=16, workers=0, quiet=True, device="cpu",
            epochs=2, augment="none")


def rows(run):
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"}
            for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_transforming_once_changes_nothing(tmp_path):
    once = train("classify", out=str(tmp_path / "once"), **TINY).run_dir  # the embedded digits, in memory
    every_epoch = train("classify", out=str(tmp_path / "every"), cache_limit_gb=1e-9, **TINY).run_dir  # too small to keep
    assert rows(once) == rows(every_epoch)
