"""zoo-classify trained end to end: its artifacts (confusion matrix, classification report), its heads and losses
as training options, top-k predictions from a saved run (moved from tests/test_train.py, unchanged)."""

from __future__ import annotations

import json

import pytest

from zoo_core import load_run, train
from zoo_core.testing import metrics_of

# A small from-scratch CNN on 16x16 images, one epoch: a real training run in well under a second.
FAST = dict(backbone="cnn2", pretrained=False, image_size=16, epochs=1, batch_size=8, workers=0, quiet=True)


def test_a_run_leaves_every_artifact(tmp_path, image_folder):
    out = tmp_path / "run"
    result = train("classify", data=str(image_folder()), out=str(out), **{**FAST, "epochs": 2})
    assert result.run_dir == out and result.status == "completed"
    for name in ("best.safetensors", "last.safetensors", "last.state.pt", "config.json", "metrics.jsonl",
                 "metrics.csv", "curves.png", "confusion_matrix.png", "classification_report.json", "train.log"):
        assert (out / name).is_file(), name
    assert not list(out.glob(".*tmp"))  # atomic writes leave no temp files behind
    rows = metrics_of(out)
    assert [r["epoch"] for r in rows] == [1, 2]
    assert {"train_loss", "val_loss", "val_accuracy", "train_accuracy", "lr"} <= set(rows[0])
    assert (out / "metrics.csv").read_text().splitlines()[0].startswith("epoch,")
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["status"] == "completed" and cfg["best"]["epoch"] in (1, 2)
    assert cfg["model"]["info"]["classes"] == ["blue", "green", "red"]
    assert cfg["model"]["data_config"]["input_size"] == [1, 16, 16]  # cnn2 is a 1-channel net


def test_config_json_alone_rebuilds_the_model(tmp_path, image_folder):
    data = image_folder()
    out = tmp_path / "run"
    train("classify", data=str(data), out=str(out), head="mlp", head_options={"hidden": 16}, **FAST)
    run = load_run(out, device="cpu")
    assert run.info["classes"] == ["blue", "green", "red"]
    preds = run.predict(sorted((data / "red").glob("*.png"))[:2], top_k=2)
    assert len(preds) == 2 and len(preds[0].to_json()["top"]) == 2
    assert preds[0].source == str(sorted((data / "red").glob("*.png"))[0])
    top3 = run.predict([data / "red" / "red_0.png"], top_k=3)[0].to_json()["top"]
    assert abs(sum(t["probability"] for t in top3) - 1) < 1e-4




@pytest.mark.parametrize("extra", [
    {"optimizer": "sgd", "schedule": "step", "step_size": 1, "gamma": 0.5},
    {"schedule": "onecycle"},
    {"schedule": "cosine", "warmup_epochs": 0.5, "clip_grad": 1.0, "accum_steps": 2},
    {"schedule": "constant", "loss": "bce", "head": "mlp"},
])
def test_optimizers_and_schedules(tmp_path, image_folder, extra):
    classes = ("red", "blue") if extra.get("loss") == "bce" else ("red", "green", "blue")
    result = train("classify", data=str(image_folder(classes=classes)), out=str(tmp_path / "run"), **{**FAST, **extra})
    row = metrics_of(result.run_dir)[0]
    assert row["val_loss"] == row["val_loss"]  # not NaN
    cfg = json.loads((result.run_dir / "config.json").read_text())
    for k, v in extra.items():
        assert cfg["train"][k] == v


def test_toml_config_and_flags_win(tmp_path, image_folder):
    cfg_file = tmp_path / "run.toml"
    cfg_file.write_text('epochs = 3\nlr = 0.01\n[head]\nname = "mlp"\nhidden = 12\ndropout = 0.1\n')
    out = tmp_path / "run"
    train("classify", data=str(image_folder()), out=str(out), config=str(cfg_file), **FAST)  # FAST has epochs=1
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["train"]["epochs"] == 1 and cfg["train"]["lr"] == 0.01
    assert cfg["model"]["head"] == "mlp" and cfg["model"]["head_options"] == {"hidden": 12, "dropout": 0.1}
