"""The trainer: artifacts, transfer modes, resume, Ctrl-C, repeatability, weights sources, offline."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import zoo_core.training.trainer as trainer
from fast_settings import FAST
from zoo_core import ZooError, load_run, train
from zoo_core.model.backbones import SmallNet
from zoo_core.testing import metrics_of, without_time


def test_same_seed_same_run(tiny_task, tmp_path, image_folder):
    data = str(image_folder())
    a = train(tiny_task, data=data, out=str(tmp_path / "a"), seed=3, **{**FAST, "epochs": 2})
    b = train(tiny_task, data=data, out=str(tmp_path / "b"), seed=3, **{**FAST, "epochs": 2})
    c = train(tiny_task, data=data, out=str(tmp_path / "c"), seed=4, **{**FAST, "epochs": 2})
    assert without_time(metrics_of(a.run_dir)) == without_time(metrics_of(b.run_dir))
    assert without_time(metrics_of(a.run_dir)) != without_time(metrics_of(c.run_dir))


def interrupt_evaluation_call(monkeypatch, n: int) -> None:
    """Simulate Ctrl-C during the n-th validation pass."""
    real_evaluate, calls = trainer.evaluate, {"n": 0}

    def evaluate(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(trainer, "evaluate", evaluate)


def test_ctrl_c_then_resume_repeats_the_uninterrupted_run(tiny_task, tmp_path, image_folder, monkeypatch):
    data = str(image_folder())
    full = train(tiny_task, data=data, out=str(tmp_path / "full"), **{**FAST, "epochs": 3})
    out = tmp_path / "run"
    with monkeypatch.context() as m:
        interrupt_evaluation_call(m, 3)
        with pytest.raises(trainer.Interrupted):
            train(tiny_task, data=data, out=str(out), **{**FAST, "epochs": 3})
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["status"] == "interrupted"
    assert torch.load(out / "last.state.pt", weights_only=True)["epoch"] == 2
    result = train("", resume=str(out), quiet=True)
    assert result.status == "completed"
    assert without_time(metrics_of(out)) == without_time(metrics_of(full.run_dir))


def test_ctrl_c_in_the_first_epoch_still_leaves_a_checkpoint(tiny_task, tmp_path, image_folder, monkeypatch):
    data = str(image_folder())
    out = tmp_path / "run"
    with monkeypatch.context() as m:
        interrupt_evaluation_call(m, 1)
        with pytest.raises(trainer.Interrupted):
            train(tiny_task, data=data, out=str(out), **{**FAST, "epochs": 2})
    assert torch.load(out / "last.state.pt", weights_only=True)["epoch"] == 0
    assert train("", resume=str(out), quiet=True).status == "completed"
    assert [r["epoch"] for r in metrics_of(out)] == [1, 2]


def test_a_signal_just_after_the_checkpoint_is_renamed_waits_for_the_run_to_know_it(tiny_task, tmp_path, image_folder,
                                                                                    monkeypatch):
    """SIGTERM the instant epoch 1's checkpoint lands: config.json and metrics.jsonl must say epoch 1 too,
    or the resume the error line advises is refused (seen once in CI, 1 run in 16)."""
    out, real_replace, renames = tmp_path / "run", os.replace, []

    def replace(src, dst):
        real_replace(src, dst)
        if Path(dst).name == "last.state.pt":
            renames.append(dst)
            if len(renames) == 2:  # commit(0) at the start, then epoch 1's
                os.kill(os.getpid(), signal.SIGTERM)

    with monkeypatch.context() as m:
        m.setattr(os, "replace", replace)
        with pytest.raises(trainer.Interrupted):
            train(tiny_task, data=str(image_folder()), out=str(out), **{**FAST, "epochs": 3})
    assert torch.load(out / "last.state.pt", weights_only=True)["epoch"] == 1
    assert json.loads((out / "config.json").read_text())["epochs_done"] == 1
    assert [r["epoch"] for r in metrics_of(out)] == [1]
    assert train("", resume=str(out), epochs=2, quiet=True).status == "completed"


def test_a_budget_stops_after_the_epoch_that_fits_and_resume_goes_on_exactly(tiny_task, tmp_path, image_folder):
    data = str(image_folder())
    full = train(tiny_task, data=data, out=str(tmp_path / "full"), **{**FAST, "epochs": 3})
    out = tmp_path / "run"
    # a budget no epoch fits in: the first epoch is trained all the same, then the run stops
    result = train(tiny_task, data=data, out=str(out), budget=0.001, **{**FAST, "epochs": 3})
    assert result.status == "stopped by --budget"
    saved = json.loads((out / "config.json").read_text())
    assert saved["status"] == "stopped by --budget" and saved["epochs_done"] == 1
    assert "--budget 0.001s: stopping after epoch 1" in (out / "train.log").read_text()
    assert (out / "best.safetensors").exists()
    assert train("", resume=str(out), budget=0.0, quiet=True).status == "completed"
    assert without_time(metrics_of(out)) == without_time(metrics_of(full.run_dir))


def test_resume_can_extend_a_finished_run(tiny_task, tmp_path, image_folder):
    out = tmp_path / "run"
    train(tiny_task, data=str(image_folder()), out=str(out), **{**FAST, "epochs": 2})
    with pytest.raises(ZooError, match="already trained 2 epochs"):
        train("", resume=str(out), quiet=True)
    train("", resume=str(out), epochs=3, quiet=True)
    assert [r["epoch"] for r in metrics_of(out)] == [1, 2, 3]


def _backbone_weights_file(tmp_path) -> Path:
    torch.manual_seed(123)
    net = SmallNet("cnn2", image_size=16, in_chans=3)
    path = tmp_path / "cnn2.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    return path


def test_frozen_mode_trains_only_the_head(tiny_task, tmp_path, image_folder):
    weights = _backbone_weights_file(tmp_path)
    out = tmp_path / "run"
    train(tiny_task, data=str(image_folder()), out=str(out), mode="frozen", weights=str(weights),
          backbone_options={"in_chans": 3}, **{**FAST, "pretrained": True, "epochs": 2})
    start, end = load_file(str(weights)), load_file(str(out / "last.safetensors"))
    for k, v in start.items():  # every backbone tensor, BatchNorm statistics included, is untouched
        assert torch.equal(end[f"backbone.{k}"], v), k
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model"]["pretrained_source"].startswith("file:")
    assert all(r["backbone_frozen"] for r in metrics_of(out))


def test_staged_mode_unfreezes_after_freeze_epochs(tiny_task, tmp_path, image_folder):
    weights = _backbone_weights_file(tmp_path)
    out = tmp_path / "run"
    train(tiny_task, data=str(image_folder()), out=str(out), mode="staged", freeze_epochs=1, weights=str(weights),
          backbone_options={"in_chans": 3}, **{**FAST, "epochs": 3})
    assert [r["backbone_frozen"] for r in metrics_of(out)] == [True, False, False]
    start, end = load_file(str(weights)), load_file(str(out / "last.safetensors"))
    assert not torch.equal(end["backbone.body.0.weight"], start["body.0.weight"])


def test_early_stopping(tiny_task, tmp_path, image_folder):
    out = tmp_path / "run"
    # lr must be > 0 (settings.py); one this small changes no prediction, so nothing improves after epoch 1
    result = train(tiny_task, data=str(image_folder()), out=str(out), lr=1e-12, patience=1, **{**FAST, "epochs": 6})
    assert result.status == "stopped early" and len(metrics_of(out)) == 2


def test_step_schedule_decays_per_epoch(tiny_task, tmp_path, image_folder):
    result = train(tiny_task, data=str(image_folder()), out=str(tmp_path / "run"), lr=0.1, schedule="step",
                   step_size=1, gamma=0.5, **{**FAST, "epochs": 3})
    lrs = [r["lr"] for r in metrics_of(result.run_dir)]
    assert lrs == pytest.approx([0.05, 0.025, 0.0125])


def test_weights_from_pth_load_safely(tiny_task, tmp_path, image_folder):
    net = SmallNet("cnn2", image_size=16, in_chans=3)
    good = tmp_path / "w.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, good)
    out = tmp_path / "run"
    train(tiny_task, data=str(image_folder()), out=str(out), weights=str(good), backbone_options={"in_chans": 3},
          mode="frozen", **FAST)
    end = load_file(str(out / "last.safetensors"))
    assert torch.equal(end["backbone.body.0.weight"], net.state_dict()["body.0.weight"])

    class Payload:  # a pickle that would run code on load; weights_only=True refuses it
        def __reduce__(self):
            return (print, ("pwned",))

    evil = tmp_path / "evil.pth"
    torch.save({"x": Payload()}, evil)
    with pytest.raises(ZooError, match="refused: the file holds pickled Python objects"):
        train(tiny_task, data=str(image_folder()), out=str(tmp_path / "r2"), weights=str(evil), **FAST)
    with pytest.raises(ZooError, match="no tensor matches"):
        bad = tmp_path / "other.safetensors"
        save_file({"unrelated": torch.zeros(3)}, str(bad))
        train(tiny_task, data=str(image_folder()), out=str(tmp_path / "r3"), weights=str(bad), **FAST)


def test_timm_and_torchvision_backbones(tiny_task, tmp_path, image_folder):
    data = str(image_folder(classes=("red", "blue"), per_class=4))
    for backbone in ("test_efficientnet", "torchvision:mobilenet_v3_small"):
        result = train(tiny_task, data=data, out=str(tmp_path / backbone.replace(":", "_")),
                       **{**FAST, "backbone": backbone, "image_size": 32, "mode": "finetune"})
        cfg = json.loads((result.run_dir / "config.json").read_text())
        assert cfg["model"]["backbone"] == backbone
        assert load_run(result.run_dir, device="cpu").predict([Path(data) / "red" / "red_0.png"])[0].to_json()["label"]


def test_transforms_follow_the_backbone(tmp_path):
    from zoo_core.registry.plugins import get_zoo

    b = get_zoo().backbones.create("test_vit", pretrained=False)
    assert b.data_config.input_size == (3, 160, 160) and b.data_config.mean == (0.5, 0.5, 0.5)
    assert b.data_config.interpolation == "bicubic" and b.data_config.crop_pct == 0.95
    r = get_zoo().backbones.create("torchvision:resnet18", pretrained=False)
    assert r.data_config.input_size == (3, 224, 224) and r.data_config.mean == pytest.approx((0.485, 0.456, 0.406))
    assert r.num_features == 512


def test_offline_download_fails_fast_with_alternatives(tiny_task, tmp_path, image_folder, monkeypatch):
    import socket

    real_getaddrinfo = socket.getaddrinfo

    def offline(host, *args, **kwargs):  # no DNS beyond this machine, as on the CI machines
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", offline)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # empty caches
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    data = str(image_folder())
    for backbone in ("resnet18", "torchvision:resnet18"):
        t = time.time()
        with pytest.raises(ZooError) as e:
            train(tiny_task, data=data, out=str(tmp_path / "run"), backbone=backbone, quiet=True)
        assert time.time() - t < 30  # seconds, not huggingface_hub's minute of retries
        msg = str(e.value)
        assert "\n" not in msg and "--weights" in msg and "--no-pretrained" in msg
    assert not (tmp_path / "run").exists()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ZooError, match="HF_HUB_OFFLINE"):
        train(tiny_task, data=data, out=str(tmp_path / "run"), backbone="resnet18", quiet=True)


def test_device_selection():
    from zoo_core.base.device import pick_device

    assert pick_device("cpu").type == "cpu"
    assert pick_device("auto").type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        with pytest.raises(ZooError, match="CUDA is not available"):
            pick_device("cuda")
    with pytest.raises(ZooError):
        pick_device("tpu9")


def test_cached_features_train_the_head_exactly_as_running_the_frozen_backbone(tiny_task, tmp_path, image_folder):
    data = str(image_folder())
    weights = _backbone_weights_file(tmp_path)
    common = dict(data=data, mode="frozen", augment="none", weights=str(weights), backbone_options={"in_chans": 3},
                  **{**FAST, "epochs": 3})
    plain = train(tiny_task, out=str(tmp_path / "plain"), **common)
    cached = train(tiny_task, out=str(tmp_path / "cached"), cache_features=True, **common)
    for a, b in zip(metrics_of(plain.run_dir), metrics_of(cached.run_dir)):
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-4)
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
    run = load_run(cached.run_dir, device="cpu")  # the saved model is whole: backbone and head
    assert run.predict([Path(data) / "red" / "red_0.png"])[0].to_json()["label"] in ("red", "green", "blue")
    with pytest.raises(ZooError, match="needs --mode frozen or staged"):
        train(tiny_task, data=data, out=str(tmp_path / "x"), cache_features=True, mode="finetune", **FAST)
