"""`zoo plugin new NAME`: a plugin skeleton that installs and trains as it is.

The skeleton is a complete small task, to be edited rather than filled in: it predicts one number per
image (here the brightness of generated images), with an embedded dataset, a head, metrics, a
Prediction that draws itself, a pyproject with the entry point, and a test. It is written in the
recommended style: a registration module that names its components ("module:attr") and imports no
torch, and the implementation in a module of its own, imported when used."""

from __future__ import annotations

import keyword
import re
from pathlib import Path

from ..base.errors import ZooError

PYPROJECT = '''[build-system]
requires = ["hatchling>=1.24"]
build-backend = "hatchling.build"

[project]
name = "zoo-{name}"
version = "0.1.0"
description = "zoo plugin: {name}"
requires-python = ">=3.10"
dependencies = ["zoo-core>=0.1"]

# This entry point is all zoo needs to find the plugin: pip install it and `zoo list` shows it.
[project.entry-points.zoo]
{name} = "{module}"

[tool.hatch.build.targets.wheel]
packages = ["{module}"]
'''

REGISTRATION = '''"""zoo-{name}: one number per image, by transfer learning. A skeleton written by `zoo plugin new`.

This module is what zoo imports at start-up: it registers the components by name ("module:attr") and
imports no torch, so `zoo list` and `zoo --help` stay instant. The code lives in {module}/task.py and is
imported when the task is trained or used."""

from zoo_core import DatasetSpec, HeadSpec, TaskSpec, hookimpl

OUTPUT = "regression/{name}"  # the output kind: zoo-core's l1, mse and smooth-l1 losses accept "regression/*"


@hookimpl
def register_tasks(register):
    register(TaskSpec("{name}", "{module}.task:{cls}Task", OUTPUT,
                      "one number per image (skeleton: brightness of generated images)"))


@hookimpl
def register_datasets(register):
    register(DatasetSpec("{name}-generated", "{module}.task:generated_dataset", OUTPUT,
                         "generated images, target = brightness (embedded)"))


@hookimpl
def register_heads(register):
    register(HeadSpec("{name}-score", "{module}.task:score_head", OUTPUT,
                      description="MLP to one number in 0..1 (option: hidden)"))
'''

MODULE = '''"""The {name} task: edit the dataset, head, metrics and prediction to make it your task. Registered by
name in __init__.py, so this module (and torch) is imported only when the task is used."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from zoo_core import DataSplits, Metrics, Prediction, Task, draw_caption, random_split


# ---------------------------------------------------------------------------------------------- data

def generated_dataset(source, *, data_config, seed: int, val_fraction: float, count: int = 240) -> DataSplits:
    """The embedded default: noisy images whose mean brightness (0..1) is the target. (The backbone is
    the small `mlp`: BatchNorm in a CNN would normalise brightness away.)"""
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(count):
        level = float(rng.uniform(0.1, 0.9))
        pixels = np.clip(level * 255 + rng.normal(0, 30, (40, 56)), 0, 255).astype(np.uint8)
        samples.append({{"image": Image.fromarray(pixels, mode="L"), "target": torch.tensor([level])}})
    train, val = random_split(len(samples), val_fraction, seed)
    return DataSplits([samples[i] for i in train], [samples[i] for i in val], {{"outputs": 1}}, in_memory=True,
                      description=f"{{count}} generated images, target = brightness")


# ---------------------------------------------------------------------------------------------- head

def score_head(backbone, info: dict[str, Any], hidden: int = 64) -> nn.Module:
    """Pooled backbone features -> MLP -> one number in 0..1."""
    return nn.Sequential(nn.Linear(backbone.num_features, hidden), nn.ReLU(), nn.Linear(hidden, info["outputs"]),
                         nn.Sigmoid())


# ------------------------------------------------------------------------------------ metrics, output

class ScoreMetrics(Metrics):
    def reset(self) -> None:
        self.abs_error, self.n = 0.0, 0

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        self.abs_error += float((outputs - targets).abs().sum())
        self.n += targets.numel()

    def compute(self) -> dict[str, float]:
        return {{"mae": self.abs_error / max(1, self.n)}}


@dataclass
class ScorePrediction(Prediction):
    value: float

    def to_json(self) -> dict[str, Any]:
        return {{"value": round(self.value, 6)}}

    def caption(self) -> str:
        return f"{{self.value:.3f}}"

    def draw(self, image: Image.Image) -> Image.Image:
        return draw_caption(image, f"{name}: {{self.value:.3f}}")


class {cls}Task(Task):
    # name, output and description come from its registration (TaskSpec in __init__.py): said once
    defaults = {{"dataset": "{name}-generated", "backbone": "mlp", "pretrained": False, "head": "{name}-score",
                "loss": "l1", "mode": "finetune", "augment": "none", "epochs": 10, "batch_size": 32, "lr": 3e-3}}
    primary_metric = "val_mae"
    primary_mode = "min"
    fit = "stretch"

    def metrics(self, info: dict[str, Any]) -> ScoreMetrics:
        return ScoreMetrics()

    def predict(self, outputs: torch.Tensor, geometry, info: dict[str, Any]) -> list[ScorePrediction]:
        return [ScorePrediction(float(v[0])) for v in outputs]
'''

TEST = '''from PIL import Image
from zoo_core.testing import tiny_train


def test_{module}_trains_and_predicts(tmp_path):
    run = tiny_train("{name}", tmp_path, epochs=2)
    prediction = run.predict([Image.new("L", (50, 30), 200)])[0]
    assert 0.0 <= prediction.to_json()["value"] <= 1.0
'''

README = '''# zoo-{name}

A zoo plugin written by `zoo plugin new {name}`. Install and train it:

```bash
pip install -e .
zoo list                 # shows plugin {name}: task, dataset, head
zoo train {name}         # trains on the embedded generated images
pytest tests/
```

Edit `{module}/task.py`: the dataset, head, metrics and prediction are the task. `{module}/__init__.py`
registers them by name ("module:attr"), so zoo imports them (and torch) only when the task is used.
'''


def new_plugin(name: str, parent: Path) -> Path:
    """Write zoo-NAME/ under `parent` and return it; refuses to overwrite an existing folder."""
    slug = name.strip().lower()
    if not re.fullmatch(r"[a-z][a-z0-9-]*[a-z0-9]|[a-z]", slug):
        raise ZooError(f"plugin name '{name}': use letters, digits and dashes, starting with a letter (e.g. age-regress)")
    module = "zoo_" + slug.replace("-", "_")
    if keyword.iskeyword(slug.replace("-", "_")):
        raise ZooError(f"plugin name '{name}' is a Python keyword; pick another")
    from importlib import metadata

    try:
        installed = metadata.version(f"zoo-{slug}")
    except metadata.PackageNotFoundError:
        installed = None
    if installed:  # `pip install -e zoo-NAME` would replace it (zoo-core itself, or a plugin)
        raise ZooError(f"plugin name '{name}': zoo-{slug} {installed} is already installed, and installing the new "
                       "plugin would replace it; pick another name")
    from ..registry.plugins import get_zoo

    if slug in get_zoo().tasks:  # the scaffold registers a task of its own name
        raise ZooError(f"plugin name '{name}': a task '{slug}' is already installed (zoo list); pick another name")
    root = Path(parent) / f"zoo-{slug}"
    if root.exists():
        raise ZooError(f"{root}: already exists; pick another name or --dir")
    cls = "".join(part.capitalize() for part in slug.split("-"))
    fields = {"name": slug, "module": module, "cls": cls}
    (root / module).mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "pyproject.toml").write_text(PYPROJECT.format(**fields))
    (root / module / "__init__.py").write_text(REGISTRATION.format(**fields))
    (root / module / "task.py").write_text(MODULE.format(**fields))
    (root / "tests" / f"test_{module}.py").write_text(TEST.format(**fields))
    (root / "README.md").write_text(README.format(**fields))
    return root
