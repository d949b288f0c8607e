"""The Python API, mirroring the CLI:

    import zoo_core as zoo
    result = zoo.train(TASK, data="pets/", epochs=5)            # zoo train TASK --data pets/ --epochs 5
    run = zoo.load_run(result.run_dir)                          # zoo predict RUN ...
    for p in run.predict(["cat.jpg", pil_image]):               # Prediction objects of the run's task
        print(p.source, p.caption(), p.to_json())
    run.evaluate()                                              # zoo eval RUN (its own validation split)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .prediction.predictor import (  # noqa: F401  (the user API)
    Exported,
    Predictor,
    Pretrained,
    Run,
    load_exported,
    load_pretrained,
    load_run,
)
from .training.trainer import TrainResult
from .training.trainer import train as _train


def train(task: str, **settings: Any) -> TrainResult:
    """Train a task; keyword arguments are the CLI's flags (config=, resume=, epochs=, data=, ...)."""
    return _train(task, **settings)


def pull(model: str, registry: str | Path | None = None) -> Path:
    """`zoo pull`: a pushed model (namespace/name[@revision], hf-hub:..., or a registry name) into the
    Hugging Face cache; the folder load_run() takes. From the cache alone with HF_HUB_OFFLINE=1."""
    from .hub.hub import pull as hub_pull

    return hub_pull(model, registry)[0]
