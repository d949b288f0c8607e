"""The trainer assumes nothing about targets: several heads at once, and variable-length box lists
with a task's own collate, go through train, resume, feature caching, eval and predict."""

from __future__ import annotations

import json
import textwrap

import pytest

from zoo_core import load_run, train
from zoo_core.registry.plugins import get_zoo

PLUGIN = '''
import numpy as np
import torch
from PIL import Image
from torch import nn
from zoo_core import DatasetSpec, DataSplits, HeadSpec, LossSpec, Metrics, Prediction, Task, collate_samples, hookimpl

KIND = "toy/age-gender"  # an output kind the core has never heard of


class Faces(torch.utils.data.Dataset):
    """Images whose brightness is the 'age' and whose left/right half is brighter by 'gender';
    targets: a dict (age, gender) and a variable number of boxes per image."""

    def __init__(self, n, size, seed):
        g = torch.Generator().manual_seed(seed)
        self.items = []
        for i in range(n):
            age, gender = torch.rand(1, generator=g).item(), i % 2
            img = torch.full((size, size, 3), age * 0.6)
            img[:, : size // 2] += 0.4 * gender
            boxes = torch.rand(1 + i % 3, 4, generator=g)
            pil = Image.fromarray((img.numpy() * 255).round().astype(np.uint8))
            self.items.append({"image": pil, "target": {"age": torch.tensor(age), "gender": torch.tensor(float(gender)),
                                                        "boxes": boxes}, "id": f"face{i}"})

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def faces(source, *, data_config, seed, val_fraction, reference_info=None):
    size = data_config.input_size[1]
    return DataSplits(Faces(24, size, seed), Faces(8, size, seed + 1), {"heads": ["age", "gender"]}, in_memory=True)


class TwoHeads(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.shared = nn.Sequential(nn.Linear(n, 16), nn.ReLU())
        self.age, self.gender, self.box = nn.Linear(16, 1), nn.Linear(16, 1), nn.Linear(16, 4)

    def forward(self, x):
        h = self.shared(x)
        return {"age": torch.sigmoid(self.age(h))[:, 0], "gender": self.gender(h)[:, 0], "box": torch.sigmoid(self.box(h))}


def age_gender_loss(info):
    bce, l1 = nn.BCEWithLogitsLoss(), nn.L1Loss()

    def loss(out, y):
        # every image's boxes pull its one predicted box towards their mean
        box_target = torch.stack([b.mean(0) for b in y["boxes"]])
        return bce(out["gender"], y["gender"]) + l1(out["age"], y["age"]) + l1(out["box"], box_target)

    return loss


class AgeGenderMetrics(Metrics):
    def reset(self):
        self.n, self.correct, self.abs_err = 0, 0, 0.0

    def update(self, out, y):
        assert isinstance(y["boxes"], list)
        self.n += len(y["age"])
        self.correct += int(((out["gender"] > 0).float() == y["gender"]).sum())
        self.abs_err += float((out["age"] - y["age"]).abs().sum())

    def compute(self):
        return {"gender_accuracy": self.correct / max(1, self.n), "age_mae": self.abs_err / max(1, self.n)}


class AgeGenderPrediction(Prediction):
    def __init__(self, age, gender):
        self.age, self.gender = age, gender

    def to_json(self):
        return {"age": self.age, "gender": self.gender}

    def caption(self):
        return f"age {self.age:.2f}, {self.gender}"


class AgeGender(Task):
    name = "age-gender"
    output = KIND
    defaults = {"dataset": "toy-faces", "backbone": "cnn2", "pretrained": False, "head": "two-heads",
                "loss": "age-gender", "image_size": 8, "mode": "finetune", "augment": "none"}
    primary_metric = "val_age_mae"
    primary_mode = "min"

    def collate(self, samples):
        # boxes differ in number per image: age and gender stacked, boxes kept as a list
        batch = collate_samples([{**s, "target": None} for s in samples])
        if samples[0].get("target") is None:  # prediction: images only
            return batch
        batch.targets = {"age": torch.stack([s["target"]["age"] for s in samples]),
                         "gender": torch.stack([s["target"]["gender"] for s in samples]),
                         "boxes": [s["target"]["boxes"] for s in samples]}
        return batch

    def metrics(self, info):
        return AgeGenderMetrics()

    def predict(self, out, geometry, info):
        return [AgeGenderPrediction(float(a), "f" if g > 0 else "m") for a, g in zip(out["age"], out["gender"])]


@hookimpl
def register_datasets(register):
    register(DatasetSpec("toy-faces", faces, KIND))


@hookimpl
def register_heads(register):
    register(HeadSpec("two-heads", lambda backbone, info: TwoHeads(backbone.num_features), KIND))


@hookimpl
def register_losses(register):
    register(LossSpec("age-gender", age_gender_loss, (KIND,)))


@hookimpl
def register_tasks(register):
    register(AgeGender)
'''


@pytest.fixture
def age_gender_plugin(tmp_path, monkeypatch):
    site = tmp_path / "site"
    info = site / "zoo_agegender-0.1.dist-info"
    info.mkdir(parents=True)
    (site / "zoo_agegender.py").write_text(textwrap.dedent(PLUGIN))
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: zoo-agegender\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[zoo]\nagegender = zoo_agegender\n")
    monkeypatch.syspath_prepend(str(site))
    get_zoo.cache_clear()
    yield
    get_zoo.cache_clear()


def test_several_heads_and_box_lists_train_resume_and_predict(tmp_path, age_gender_plugin):
    out = tmp_path / "run"
    result = train("age-gender", out=str(out), epochs=2, batch_size=8, lr=0.01, quiet=True,
                   backbone_options={"in_chans": 3})
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert {"val_age_mae", "val_gender_accuracy", "train_age_mae"} <= set(rows[0])
    assert result.best["epoch"] in (1, 2) and "val_age_mae" in result.best
    train("", resume=str(out), epochs=3, quiet=True)
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 3
    run = load_run(out, device="cpu")
    from PIL import Image

    pred = run.predict([Image.new("RGB", (8, 8), (128, 128, 128))])[0]
    assert set(pred.record()) == {"image", "age", "gender"} and pred.source == "<PIL image>"
    assert pred.caption().startswith("age ")


def test_cached_features_keep_structured_targets(tmp_path, age_gender_plugin):
    result = train("age-gender", out=str(tmp_path / "run"), epochs=2, batch_size=8, quiet=True,
                   mode="frozen", cache_features=True, backbone_options={"in_chans": 3})
    assert result.status == "completed"
