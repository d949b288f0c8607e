"""The caches (zoo_core/cache.py): backbone features on disk and decoded images, and the CPU default.

Keys invalidate, entries are reused across runs and processes, the size bound holds and says so,
`zoo cache list|clear`, a killed writer never leaves a readable half entry, staged training switches
from cached features to the whole model, and no cache changes a seeded run's metrics."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from fast_settings import FAST
from zoo_core import train
from zoo_core.model.backbones import SmallNet
from zoo_core.data.decoded import DecodedImages, decode
from zoo_core.testing import COLOURS, make_image, metrics_of, run_zoo
from zoo_core.data.transforms import SampleDataset

pytestmark = pytest.mark.zoo_plugins("classify")  # trains them: skipped without


@pytest.fixture(autouse=True)
def cache_root(tmp_path, monkeypatch):
    root = tmp_path / "zoo-cache"
    monkeypatch.setenv("ZOO_CACHE", str(root))
    return root


@pytest.fixture
def jpegs(tmp_path):
    """tmp/photos/<class>/*.jpg: three colour classes of 8 noisy 24x24 JPEGs (torchvision decodes them)."""
    root = tmp_path / "photos"
    for c, colour in COLOURS.items():
        for i in range(8):
            png = make_image(tmp_path / "png" / f"{c}_{i}.png", colour, size=24, seed=i + 10 * len(c))
            (root / c).mkdir(parents=True, exist_ok=True)
            Image.open(png).convert("RGB").save(root / c / f"{c}_{i}.jpg", quality=85)
    return root


def weights_file(tmp_path, seed: int) -> Path:
    torch.manual_seed(seed)
    path = tmp_path / f"cnn2-{seed}.safetensors"
    net = SmallNet("cnn2", image_size=16, in_chans=3)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    return path


def cached_run(data, out, weights, **extra):
    """A frozen run on cached features; returns (reused, computed) from its log line."""
    settings = {**FAST, "epochs": 2, "pretrained": True, "mode": "frozen", "cache_features": True, "head": "mlp",
                "backbone_options": {"in_chans": 3}, "weights": str(weights), **extra}
    result = train("classify", data=str(data), out=str(out), **settings)
    return counts(result.run_dir)


def counts(run_dir: Path) -> tuple[int, int]:
    line = re.search(r"features: (\d+) reused, (\d+) computed", (Path(run_dir) / "train.log").read_text())
    return int(line.group(1)), int(line.group(2))


def assert_same_metrics(a: Path, b: Path, rel: float = 1e-5) -> None:
    rows_a, rows_b = metrics_of(a), metrics_of(b)
    assert len(rows_a) == len(rows_b)
    for ra, rb in zip(rows_a, rows_b):
        for k in ("train_loss", "val_loss", "val_accuracy"):
            assert ra[k] == pytest.approx(rb[k], rel=rel, abs=1e-6), k


# --------------------------------------------------------------------------------- feature cache

def test_features_are_reused_and_each_key_invalidates(tmp_path, jpegs):
    w = weights_file(tmp_path, 1)
    assert cached_run(jpegs, tmp_path / "r1", w) == (0, 24)
    assert cached_run(jpegs, tmp_path / "r2", w) == (24, 0)  # the second run computes no feature
    assert cached_run(jpegs, tmp_path / "r3", w, seed=5, val_fraction=0.5) == (24, 0)  # another split, same images
    # one file's content changes: only its features are computed again
    one = jpegs / "red" / "red_0.jpg"
    Image.open(one).transpose(Image.FLIP_LEFT_RIGHT).save(one, quality=85)
    assert cached_run(jpegs, tmp_path / "r4", w) == (23, 1)
    assert cached_run(jpegs, tmp_path / "r5", weights_file(tmp_path, 2)) == (0, 24)  # other backbone weights
    assert cached_run(jpegs, tmp_path / "r6", w, image_size=20) == (0, 24)  # another input size
    assert cached_run(jpegs, tmp_path / "r7", w, head="linear") == (24, 0)  # the head is not part of the key


def test_another_process_reuses_the_features(tmp_path, jpegs, cache_root):
    w = weights_file(tmp_path, 1)
    cached_run(jpegs, tmp_path / "first", w)
    r = run_zoo("train", "classify", "--data", str(jpegs), "--out", str(tmp_path / "second"), "--backbone", "cnn2",
                "--image-size", "16", "--epochs", "1", "--batch-size", "8", "--workers", "0", "--mode", "frozen",
                "--cache-features", "--head", "mlp", "--weights", str(w), "--set", "backbone.in_chans=3",
                env={"ZOO_CACHE": str(cache_root)})
    assert r.returncode == 0, r.stderr
    assert counts(tmp_path / "second") == (24, 0)


def test_cached_features_give_the_metrics_of_running_the_backbone(tmp_path, jpegs):
    w = weights_file(tmp_path, 1)
    common = {**FAST, "epochs": 3, "pretrained": True, "mode": "frozen", "augment": "none", "head": "mlp",
              "backbone_options": {"in_chans": 3}, "weights": str(w), "seed": 4}
    plain = train("classify", data=str(jpegs), out=str(tmp_path / "plain"), image_cache="off", **common)
    computed = train("classify", data=str(jpegs), out=str(tmp_path / "computed"), cache_features=True, **common)
    reused = train("classify", data=str(jpegs), out=str(tmp_path / "reused"), cache_features=True, **common)
    assert counts(reused.run_dir) == (24, 0)
    assert_same_metrics(plain.run_dir, computed.run_dir)
    assert_same_metrics(plain.run_dir, reused.run_dir)


def test_staged_trains_on_cached_features_then_the_whole_model(tmp_path, jpegs):
    w = weights_file(tmp_path, 1)
    common = {**FAST, "epochs": 3, "pretrained": True, "mode": "staged", "freeze_epochs": 1, "augment": "none",
              "head": "mlp", "backbone_options": {"in_chans": 3}, "weights": str(w), "seed": 2}
    plain = train("classify", data=str(jpegs), out=str(tmp_path / "plain"), **common)
    cached = train("classify", data=str(jpegs), out=str(tmp_path / "cached"), cache_features=True, **common)
    log = (cached.run_dir / "train.log").read_text()
    assert "features: 0 reused, 24 computed" in log
    assert "epoch 2: backbone unfrozen (lr x0.1), images through the whole model from now on" in log
    assert [r["backbone_frozen"] for r in metrics_of(cached.run_dir)] == [True, False, False]
    assert_same_metrics(plain.run_dir, cached.run_dir, rel=1e-4)


def test_the_size_bound_evicts_the_least_recently_used_and_says_so(tmp_path, jpegs, cache_root):
    w1, w2 = weights_file(tmp_path, 1), weights_file(tmp_path, 2)
    cached_run(jpegs, tmp_path / "a", w1)
    entry_bytes = sum(p.stat().st_size for p in (cache_root / "features").rglob("*.safetensors"))
    limit = 1.5 * entry_bytes / 2**30  # room for one entry, not two
    cached_run(jpegs, tmp_path / "b", w2, cache_disk_gb=limit)
    log = (tmp_path / "b" / "train.log").read_text()
    assert "evicted" in log and "cache_disk_gb=" in log
    assert cached_run(jpegs, tmp_path / "c", w2, cache_disk_gb=limit) == (24, 0)  # the newer entry stayed
    assert cached_run(jpegs, tmp_path / "d", w1, cache_disk_gb=limit)[1] > 0  # the older one was evicted
    tiny = cached_run(jpegs, tmp_path / "e", weights_file(tmp_path, 3), cache_disk_gb=1e-9)
    assert tiny == (0, 24)
    assert "not saved to disk: over cache_disk_gb=" in (tmp_path / "e" / "train.log").read_text()


def test_a_killed_writer_leaves_nothing_readable_and_a_damaged_shard_is_recomputed(tmp_path, jpegs, cache_root):
    w = weights_file(tmp_path, 1)
    r = run_zoo("train", "classify", "--data", str(jpegs), "--out", str(tmp_path / "killed"), "--backbone", "cnn2",
                "--image-size", "16", "--epochs", "1", "--workers", "0", "--mode", "frozen", "--cache-features",
                "--head", "mlp", "--weights", str(w), "--set", "backbone.in_chans=3",
                env={"ZOO_CACHE": str(cache_root), "ZOO_TEST_KILL_AT": "feature-shard-written"})
    assert r.returncode == -9
    assert list((cache_root / "features").rglob(".*.tmp")) and not list((cache_root / "features").rglob("*.safetensors"))
    assert cached_run(jpegs, tmp_path / "after", w) == (0, 24)
    shard = next((cache_root / "features").rglob("*.safetensors"))
    shard.write_bytes(shard.read_bytes()[:100])  # damaged on disk
    reused, computed = cached_run(jpegs, tmp_path / "damaged", w)  # a shard per split: the damaged one is recomputed
    assert reused + computed == 24 and computed in (6, 18)
    assert "unreadable" in (tmp_path / "damaged" / "train.log").read_text()


def zoo_cache(*args: str):
    """`zoo cache ...` in this process (a subprocess per command would spend seconds importing torch)."""
    from click.testing import CliRunner

    from zoo_core.cli import main

    return CliRunner().invoke(main, ["cache", *args])


def test_zoo_cache_list_and_clear(tmp_path, jpegs, cache_root):
    cached_run(jpegs, tmp_path / "a", weights_file(tmp_path, 1))
    cached_run(jpegs, tmp_path / "b", weights_file(tmp_path, 2))
    rows = json.loads(zoo_cache("list", "--json").stdout)
    features = [row for row in rows if row["kind"] == "features"]
    assert len(features) == 2 and all(row["images"] == 24 for row in features)
    assert "classify: cnn2" in features[0]["what"] and "16x16 px" in features[0]["what"]
    r = zoo_cache("list")
    assert r.exit_code == 0 and "last used" in r.stdout and features[0]["key"][:12] in r.stdout
    r = zoo_cache("clear", "nosuchkey")
    assert r.exit_code == 1 and r.stderr.startswith("Error:") and "zoo cache list" in r.stderr
    assert zoo_cache("clear", "--older-than", "1").stdout.startswith("removed 0 file(s)")
    r = zoo_cache("clear", features[0]["key"][:8])
    assert r.exit_code == 0 and "removed" in r.stdout
    assert [row["key"] for row in json.loads(zoo_cache("list", "--json").stdout)] == [features[1]["key"]]
    assert zoo_cache("clear").exit_code == 0
    assert json.loads(zoo_cache("list", "--json").stdout) == []


# ------------------------------------------------------------------------------- decoded images

def test_torchvision_decodes_plain_jpegs_as_pil_does(jpegs):
    from zoo_core.data.images import load_image

    for f in sorted(jpegs.rglob("*.jpg"))[:6]:
        assert np.array_equal(decode(f, 3), np.asarray(load_image(f, 3)))
        assert np.array_equal(decode(f, 1), np.asarray(load_image(f, 1)))


def test_later_epochs_decode_nothing_in_memory_or_on_disk(jpegs, cache_root):
    raw = [{"image": str(p), "target": 0} for p in sorted(jpegs.rglob("*.jpg"))]
    for mode, memory_gb in (("memory", 1.0), ("disk", 1.0), ("auto", 0.0)):
        shutil.rmtree(cache_root / "images", ignore_errors=True)
        images = DecodedImages(3, 64, mode, memory_gb, 1.0)
        data = SampleDataset(raw, lambda s: s, 3, images)
        first = [np.asarray(data[i]["image"]) for i in range(len(data))]
        assert images.decoded == len(raw)
        again = [np.asarray(data[i]["image"]) for i in range(len(data))]
        assert images.decoded == len(raw), mode  # the second epoch touched no JPEG
        assert all(np.array_equal(a, b) for a, b in zip(first, again))
    # the disk tier outlives the process's memory: a new cache reads the .npz files
    fresh = DecodedImages(3, 64, "disk", 1.0, 1.0)
    [SampleDataset(raw, lambda s: s, 3, fresh)[i] for i in range(len(raw))]
    assert fresh.decoded == 0 and len(list((cache_root / "images").glob("*.npz"))) == len(raw)


def test_the_decoded_image_cache_never_changes_a_seeded_run(tmp_path, jpegs):
    common = {**FAST, "epochs": 2, "mode": "finetune", "augment": "standard", "image_size": 16, "seed": 7,
              "backbone_options": {"in_chans": 3}}
    runs = {mode: train("classify", data=str(jpegs), out=str(tmp_path / mode), image_cache=mode, **common).run_dir
            for mode in ("off", "memory", "disk")}
    assert_same_metrics(runs["off"], runs["memory"], rel=1e-6)
    assert_same_metrics(runs["off"], runs["disk"], rel=1e-6)


def test_large_images_are_kept_reduced_unless_their_target_is_in_their_pixels(tmp_path):
    from torchvision import tv_tensors

    big = tmp_path / "big.png"
    Image.fromarray(np.full((200, 300, 3), 128, np.uint8)).save(big)
    images = DecodedImages(3, 40, "memory", 1.0, 0.0)
    assert images.load(big).size == (60, 40)  # (w, h): the shorter side at 2 x 20 px
    boxes = tv_tensors.BoundingBoxes([[10, 10, 50, 50]], format="XYXY", canvas_size=(200, 300))
    data = SampleDataset([{"image": str(big), "target": {"boxes": boxes}}, {"image": str(big), "target": 1}],
                         lambda s: s, 3, images)
    assert data[0]["image"].size == (300, 200) and data[1]["image"].size == (60, 40)


# -------------------------------------------------------------------------------- the CPU default

def test_on_a_cpu_your_data_trains_frozen_on_cached_features_unless_a_flag_says_otherwise(jpegs):
    from zoo_core.base.config import normalise
    from zoo_core.registry.plugins import get_zoo
    from zoo_core.training.configure import resolve_config

    zoo = get_zoo()
    task = zoo.tasks.create("classify")
    lines: list[str] = []
    cfg = resolve_config(task, zoo, {}, normalise({"data": str(jpegs), "device": "cpu"}, "flags"), lines.append)
    assert (cfg["mode"], cfg["cache_features"]) == ("frozen", True)
    assert any(line.startswith("CPU: frozen backbone with cached features, 10 epochs; pass --mode staged") for line in lines)
    for flags in ({"mode": "staged"}, {"cpu_recipe": False}, {"backbone": "cnn2"}, {"pretrained": False}, {}):
        if not flags:  # without --data: the task's embedded dataset and its recipe
            cfg = resolve_config(task, zoo, {}, normalise({"device": "cpu"}, "flags"))
        else:
            cfg = resolve_config(task, zoo, {}, normalise({"data": str(jpegs), "device": "cpu", **flags}, "flags"))
        assert not (cfg["mode"] == "frozen" and cfg["cache_features"]), flags
    file_layer = normalise({"mode": "finetune"}, "run.toml")
    assert resolve_config(task, zoo, file_layer, normalise({"data": str(jpegs), "device": "cpu"}, "flags"))["mode"] == "finetune"


def test_features_computed_in_cpu_chunks_are_the_batchs():
    """On a CPU, 224 px batches go through the backbone 8 images at a time (faster: the activations stay in
    the processor's caches); tensors and pyramids come back whole, in order, equal to one pass."""
    from types import SimpleNamespace

    from zoo_core.training.features import _features_in_chunks

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 4, 3, stride=4).eval()
    calls = []

    class Pooled:
        def features(self, x):
            calls.append(len(x))
            return conv(x).mean((2, 3))

    class Pyramid:
        def features(self, x):
            calls.append(len(x))
            return [conv(x), conv(x).amax(1)]

    cpu, gpu = SimpleNamespace(device=torch.device("cpu")), SimpleNamespace(device=torch.device("cuda"))
    x = torch.randn(20, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(_features_in_chunks(Pooled(), x, cpu), Pooled().features(x), atol=1e-6)
        assert calls[:3] == [8, 8, 4]
        for a, b in zip(_features_in_chunks(Pyramid(), x, cpu), Pyramid().features(x)):
            assert a.shape == b.shape and torch.allclose(a, b, atol=1e-6)
        calls.clear()
        _features_in_chunks(Pooled(), x[:, :, :32, :32], cpu)  # small images: one pass
        _features_in_chunks(Pooled(), x, gpu)  # a GPU: one pass (the module itself runs where it is)
        assert calls == [20, 20]
