"""Multi-process training: `zoo train --nproc 2` (DistributedDataParallel, gloo on CPU, two processes
under torch.distributed.run) trains like one process with the same global batch, and resumes.

The model has no BatchNorm (cnn1 + linear head) and the data no augmentation, so the only difference
between one process and two is the order floating-point sums are taken in: the tolerance is 1e-5
relative on every logged number (losses, validation metrics) and 1e-5 absolute on the weights."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from safetensors.torch import load_file

from zoo_core import train
from zoo_core.testing import run_zoo

pytestmark = pytest.mark.zoo_plugins("classify")  # trains them: skipped without

SETTINGS = dict(backbone="cnn1", pretrained=False, image_size=16, batch_size=8, workers=0, mode="finetune",
                augment="none", seed=1, lr=3e-3)
FLAGS = ["--backbone", "cnn1", "--no-pretrained", "--image-size", "16", "--batch-size", "8", "--workers", "0",
         "--mode", "finetune", "--augment", "none", "--seed", "1", "--lr", "3e-3", "-q"]
ENV = {"OMP_NUM_THREADS": "1"}


def rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def assert_close(a: list[dict], b: list[dict]) -> None:
    assert [r["epoch"] for r in a] == [r["epoch"] for r in b]
    for x, y in zip(a, b):
        for key in ("train_loss", "val_loss", "val_accuracy", "val_macro_f1", "train_accuracy", "lr"):
            assert math.isclose(x[key], y[key], rel_tol=1e-5, abs_tol=1e-7), (x["epoch"], key, x[key], y[key])


def test_two_processes_train_like_one_and_resume(tmp_path, image_folder):
    data = str(image_folder(per_class=12))  # 36 images: 28 train (3 batches of 8), 8 val
    # the same course in one process: 2 epochs, then resumed to 3 (the schedule depends on the epochs)
    one = train("classify", data=data, out=str(tmp_path / "one"), epochs=2, quiet=True, **SETTINGS).run_dir
    train("", resume=str(one), epochs=3, quiet=True)

    two = tmp_path / "two"
    first = run_zoo("train", "classify", "--data", data, *FLAGS, "--epochs", "2", "--nproc", "2", "--out", str(two),
                    env=ENV)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("run saved to") == 1  # rank 0 speaks for both
    assert json.loads((two / "config.json").read_text())["processes"] == 2
    again = run_zoo("train", "--resume", str(two), "--epochs", "3", "--nproc", "2", "-q", env=ENV)
    assert again.returncode == 0, again.stderr

    assert_close(rows(two), rows(one))
    a, b = load_file(str(one / "last.safetensors")), load_file(str(two / "last.safetensors"))
    assert a.keys() == b.keys()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-5
    assert not list(two.glob(".*tmp"))


def test_two_processes_share_the_feature_cache(tmp_path, image_folder):
    """--cache-features with 2 processes: each computes half of the features and they swap them; rank 0
    writes one cache the next run reuses whole. Training on them matches one process computing them all."""
    data = str(image_folder(per_class=12))
    flags = [*FLAGS, "--mode", "frozen", "--cache-features", "--epochs", "2"]
    env = {**ENV, "ZOO_CACHE": str(tmp_path / "cache")}
    first = run_zoo("train", "classify", "--data", data, *flags, "--nproc", "2", "--out", str(tmp_path / "two"), env=env)
    assert first.returncode == 0, first.stderr
    log = (tmp_path / "two" / "train.log").read_text()
    assert "features: 0 reused, 36 computed by 2 processes" in log, log
    again = run_zoo("train", "classify", "--data", data, *flags, "--nproc", "2", "--out", str(tmp_path / "again"), env=env)
    assert again.returncode == 0, again.stderr
    assert "features: 36 reused, 0 computed" in (tmp_path / "again" / "train.log").read_text()

    one = train("classify", data=data, out=str(tmp_path / "one"), quiet=True, cache_features=True, cache_disk_gb=0.0,
                **{**SETTINGS, "mode": "frozen", "epochs": 2}).run_dir
    assert_close(rows(tmp_path / "two"), rows(one))
    assert_close(rows(tmp_path / "again"), rows(one))


def test_a_bad_setting_is_one_line_from_one_process(tmp_path, image_folder):
    result = run_zoo("train", "classify", "--data", str(image_folder()), *FLAGS, "--batch-size", "7", "--nproc", "2",
                     "--out", str(tmp_path / "run"), env=ENV)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert errors == ["Error: --batch-size 7 is the global batch, shared by 2 processes: use a multiple of 2"], result.stderr


@pytest.mark.parametrize("argv,expected", [
    (["train", "classify", "--nproc", "2", "--epochs", "3"], ["train", "classify", "--epochs", "3"]),
    (["train", "--nproc=4", "--resume", "r"], ["train", "--resume", "r"]),
])
def test_the_relaunched_command_line_drops_nproc(monkeypatch, argv, expected):
    from zoo_core.base import distributed

    monkeypatch.setattr("sys.argv", ["zoo", *argv])
    assert distributed.command_line("train") == expected


def test_each_rank_takes_its_share_of_the_very_batches_one_process_draws():
    import torch
    from torch.utils.data import BatchSampler, DataLoader, RandomSampler

    from zoo_core.base.distributed import RoundRobinBatches, ShardedBatches

    data = list(range(30))
    one = torch.Generator().manual_seed(7)
    single = [b.tolist() for b in DataLoader(data, batch_size=8, shuffle=True, generator=one, drop_last=True)]
    shards = []
    for rank in range(2):
        g = torch.Generator().manual_seed(7)
        sampler = ShardedBatches(BatchSampler(RandomSampler(data, generator=g), 8, True), rank, 2)
        shards.append([b.tolist() for b in DataLoader(data, batch_sampler=sampler, generator=g)])
        assert len(sampler) == len(single) == 3
    for k, batch in enumerate(single):
        assert sorted(shards[0][k] + shards[1][k]) == sorted(batch) and len(shards[0][k]) == len(shards[1][k]) == 4

    # a task's own batch sampler (PK sampling, aspect-ratio batches): batches trimmed to a multiple of the
    # processes; validation: whole batches, every N-th to each rank, in order
    task_batches = [[0, 1, 2, 3, 4], [5, 6, 7, 8], [9]]
    assert [list(ShardedBatches(task_batches, r, 2)) for r in range(2)] == [[[0, 2], [5, 7]], [[1, 3], [6, 8]]]
    val = [[0, 1], [2, 3], [4]]
    assert [list(RoundRobinBatches(val, r, 2)) for r in range(2)] == [[[0, 1], [4]], [[2, 3]]]
    assert RoundRobinBatches(val, 1, 2).rounds() == 2
