"""Helpers for plugin authors' tests: a real training run of a task, tiny enough for a laptop CPU.

    from zoo_core.testing import tiny_train

    def test_my_task_trains(tmp_path):
        run = tiny_train("mytask", tmp_path)            # 1 epoch, small images, no pretrained weights
        assert run.predict([some_image])[0].to_json()
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Small and quick everywhere: a from-scratch CNN on 32 px images, one epoch, no worker processes.
TINY = dict(backbone="cnn2", pretrained=False, image_size=32, epochs=1, batch_size=8, workers=0, quiet=True,
            device="cpu")


def tiny_train(task: str, tmp_path: str | Path, **settings: Any):
    """Train `task` with TINY settings (yours win) into tmp_path/run and return the loaded Run."""
    from ..api import load_run, train

    out = Path(tmp_path) / "run"
    train(task, out=str(out), **{**TINY, **settings})
    return load_run(out, device="cpu")
