"""Class 5, caches: every feature-cache shard and decoded-image file is verified (shape, dtype, a
checksum) before use; one that fails (scrambled bytes, a tensor of another shape, a tiny array in place
of an image, no checksum) is removed and recomputed, never trained on. An unwritable $ZOO_CACHE costs the
reuse, not the run."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from zoo_core.data import decoded as zdecoded
from zoo_core.training import cache as zcache


@pytest.fixture
def zoo_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def store(logs):
    return zcache.FeatureStore("k" * 24, {"feature": "pooled"}, 1.0, logs.append)


def features(n=4, dim=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {f"img{i}": torch.randn(dim, generator=g) for i in range(n)}


def test_a_good_shard_is_reused(zoo_cache):
    logs = []
    store(logs).add(features())
    found = store(logs).lookup(list(features()))
    assert set(found) == set(features()) and all(torch.equal(found[k], v) for k, v in features().items())
    assert not logs


def test_scrambled_shard_bytes_are_detected_and_the_shard_removed(zoo_cache):
    logs = []
    store(logs).add(features())
    shard = next((zoo_cache / "features").rglob("*.safetensors"))
    data = bytearray(shard.read_bytes())
    data[-16:] = bytes(16)  # the last feature's bytes, header intact: safetensors reads it fine
    shard.write_bytes(bytes(data))
    assert store(logs).lookup(list(features())) == {}
    assert not shard.exists() and "failed its check" in logs[-1]


@pytest.mark.parametrize("forged", ["other-shape", "other-dtype", "no-checksums"])
def test_a_shard_of_the_wrong_shape_dtype_or_without_checksums_is_never_used(zoo_cache, forged):
    from safetensors.torch import save_file

    logs = []
    store(logs).add(features(2))
    tensors = {"img2": torch.randn(5), "img3": torch.randn(5)} if forged == "other-shape" else \
        {"img2": torch.randn(8, dtype=torch.float64), "img3": torch.randn(8, dtype=torch.float64)} \
        if forged == "other-dtype" else {"img2": torch.randn(8), "img3": torch.randn(8)}
    meta = {"format": "1", "feature": "pooled"}
    if forged != "no-checksums":
        import json

        meta["sums"] = json.dumps({n: zcache.tensor_sum(t) for n, t in tensors.items()})
    save_file(tensors, str(zoo_cache / "features" / ("k" * 24) / "forged.safetensors"), metadata=meta)
    found = store(logs).lookup(["img0", "img1", "img2", "img3"])
    assert found == {} if forged == "other-shape" else set(found) == {"img0", "img1"}, (set(found), logs)
    assert logs


def test_a_truncated_shard_is_removed(zoo_cache):
    logs = []
    store(logs).add(features())
    shard = next((zoo_cache / "features").rglob("*.safetensors"))
    shard.write_bytes(shard.read_bytes()[:40])
    assert store(logs).lookup(list(features())) == {} and not shard.exists()


def image(tmp_path, size=(40, 30)):
    path = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


@pytest.mark.parametrize("damage", ["tiny-array", "scrambled", "truncated", "wrong-dtype"])
def test_a_damaged_decoded_image_file_is_decoded_again(zoo_cache, tmp_path, damage):
    path = image(tmp_path)
    first = zdecoded.DecodedImages(3, None, mode="disk")
    expected = np.asarray(first.load(path))
    cached = next((zoo_cache / "images").glob("*.npz"))
    if damage == "tiny-array":  # a valid file with its own valid checksum: the shape gives it away
        arr = np.zeros((2, 2, 3), np.uint8)
        np.savez(cached, a=arr, sum=np.frombuffer(zdecoded._image_sum(arr), np.uint8))
    elif damage == "wrong-dtype":
        arr = expected.astype(np.float32)
        np.savez(cached, a=arr, sum=np.frombuffer(zdecoded._image_sum(arr), np.uint8))
    elif damage == "scrambled":
        with np.load(cached) as f:
            arr, s = f["a"].copy(), f["sum"].copy()
        arr[0, 0] ^= 0xFF
        np.savez(cached, a=arr, sum=s)
    else:
        cached.write_bytes(cached.read_bytes()[:100])
    again = zdecoded.DecodedImages(3, None, mode="disk")
    assert np.array_equal(np.asarray(again.load(path)), expected) and again.decoded == 1
    third = zdecoded.DecodedImages(3, None, mode="disk")  # rewritten whole: reused from now on
    assert np.array_equal(np.asarray(third.load(path)), expected) and third.decoded == 0


def test_an_unwritable_zoo_cache_costs_the_reuse_not_the_run(tmp_path, monkeypatch):
    (tmp_path / "afile").write_text("x")
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "afile" / "cache"))
    logs = []
    store(logs).add(features())  # logged, not raised
    assert logs and "unusable" in logs[-1]
    assert store(logs).lookup(list(features())) == {}
    decoded = zdecoded.DecodedImages(3, None, mode="disk")
    assert np.asarray(decoded.load(image(tmp_path))).shape == (30, 40, 3)
    assert (tmp_path / "afile").read_text() == "x"
