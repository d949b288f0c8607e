"""A linear head on cached features fitted full-batch by L-BFGS (zoo_core/training/full_batch.py): it converges where
minibatch AdamW has not, a resumed run ends where the uninterrupted one does, it refuses the runs it does not
fit, and the CPU recipe picks it only for a linear head. The run's thread decision is logged."""

from __future__ import annotations

import json
import os

import pytest
import torch
from torch import nn

from fast_settings import FAST
from zoo_core import ZooError, train
from zoo_core.testing import make_image, run_zoo
from zoo_core.training.full_batch import is_linear, resolve_optimizer
from zoo_core.training.rundir import STATE_FILE

pytestmark = pytest.mark.zoo_plugins("classify")  # trains them: skipped without


@pytest.fixture(autouse=True)
def cache_root(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "zoo-cache"))


@pytest.fixture
def photos(tmp_path):
    """Three colour classes of 8 noisy 16 px images."""
    root = tmp_path / "photos"
    for c, colour in {"red": (200, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 200)}.items():
        for i in range(8):
            make_image(root / c / f"{c}_{i}.png", colour, size=16, seed=i + 10 * len(c))
    return root


def frozen(**extra):
    return {**FAST, "mode": "frozen", "cache_features": True, "head": "linear", "cache_disk_gb": 0.0, "seed": 3, **extra}


def rows(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_lbfgs_fits_the_head_on_cached_features(tmp_path, photos, monkeypatch):
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "ZOO_THREADS"):  # zoo decides
        monkeypatch.delenv(name, raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(len(os.sched_getaffinity(0)))  # torch's own default, as in a fresh process
    result = train("classify", data=str(photos), out=str(tmp_path / "run"), **frozen(optimizer="lbfgs", epochs=3))
    metrics = rows(result.run_dir)
    # the optimum of a convex problem within the first epoch: far below the untrained head's ln 3 = 1.10
    assert metrics[0]["train_loss"] < 0.3 and metrics[-1]["val_accuracy"] == 1.0
    saved = json.loads((result.run_dir / "config.json").read_text())
    assert saved["train"]["optimizer"] == "lbfgs"
    threads = [line for line in (result.run_dir / "train.log").read_text().splitlines() if "threads: " in line]
    torch.set_num_threads(before)
    assert len(threads) == 1 and "usable" in threads[0] and "too small to share out" in threads[0], threads


def test_a_resumed_lbfgs_run_ends_where_the_uninterrupted_one_does(tmp_path, photos):
    straight = train("classify", data=str(photos), out=str(tmp_path / "straight"), **frozen(optimizer="lbfgs", epochs=3))
    train("classify", data=str(photos), out=str(tmp_path / "parts"), **frozen(optimizer="lbfgs", epochs=2))
    resumed = train("classify", resume=str(tmp_path / "parts"), epochs=3, quiet=True)
    a = torch.load(straight.run_dir / STATE_FILE, weights_only=True)["model"]
    b = torch.load(resumed.run_dir / STATE_FILE, weights_only=True)["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
    assert rows(straight.run_dir)[-1]["val_loss"] == pytest.approx(rows(resumed.run_dir)[-1]["val_loss"], rel=1e-5)


def test_lbfgs_refuses_what_it_does_not_fit(tmp_path, photos):
    with pytest.raises(ZooError, match="--optimizer lbfgs needs the head trained on cached features"):
        train("classify", data=str(photos), out=str(tmp_path / "a"), **{**frozen(optimizer="lbfgs"), "mode": "staged",
                                                                         "cache_features": False})
    with pytest.raises(ZooError, match="not one linear layer"):
        train("classify", data=str(photos), out=str(tmp_path / "b"), **frozen(optimizer="lbfgs", head="mlp"))
    r = run_zoo("train", "classify", "--data", str(photos), "--out", str(tmp_path / "c"), "--backbone", "cnn2",
                "--no-pretrained", "--image-size", "16", "--workers", "0", "--optimizer", "lbfgs", "--head", "mlp",
                "--mode", "frozen", "--cache-features")
    assert r.returncode != 0 and r.stderr.startswith("Error: --optimizer lbfgs") and "Traceback" not in r.stderr


def test_the_recipe_keeps_adamw_for_a_head_lbfgs_does_not_fit():
    linear, mlp = nn.Sequential(nn.Dropout(0.1), nn.Linear(8, 3)), nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 3))
    assert is_linear(linear) and is_linear(nn.Linear(8, 3)) and not is_linear(mlp)
    cfg = {"optimizer": "lbfgs", "mode": "frozen", "cache_features": True}
    assert resolve_optimizer(dict(cfg), False, linear, 1) is None
    fell_back = dict(cfg)
    assert "AdamW" in resolve_optimizer(fell_back, False, mlp, 1) and fell_back["optimizer"] == "adamw"
    several = dict(cfg)
    assert "one process" in resolve_optimizer(several, False, linear, 2) and several["optimizer"] == "adamw"


def test_the_cpu_recipe_chooses_lbfgs_unless_an_optimizer_is_given(photos):
    from zoo_core.base.config import normalise
    from zoo_core.registry.plugins import get_zoo
    from zoo_core.training.configure import resolve_config

    zoo = get_zoo()
    task = zoo.tasks.create("classify")
    flags = {"data": str(photos), "device": "cpu", "backbone": "efficientnet_lite0"}
    assert resolve_config(task, zoo, {}, normalise(flags, "flags"))["optimizer"] == "lbfgs"
    assert resolve_config(task, zoo, {}, normalise({**flags, "optimizer": "sgd"}, "flags"))["optimizer"] == "sgd"
    assert resolve_config(task, zoo, normalise({"optimizer": "adamw"}, "run.toml"), normalise(flags, "flags"))[
        "optimizer"] == "adamw"
