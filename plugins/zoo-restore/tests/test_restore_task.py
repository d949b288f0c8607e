"""zoo-restore end to end on tiny settings: train, predict at the original size, eval, export, bad inputs."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from zoo_core import ZooError
from zoo_core.testing import run_zoo, tiny_train

TINY_RESTORE = dict(head_options={"channels": 8, "levels": 2}, dataset_options={"patches": 16}, image_size=32)


def test_degradations_are_seeded_and_declared():
    from zoo_restore.degrade import Degradation

    d = Degradation.parse("noise+sr2+blur", blur="1-1.5", noise="10")
    assert d.kinds == ("blur", "sr2", "noise") and d.scale == 2 and d.noise == (10.0, 10.0)
    clean = torch.randint(0, 256, (3, 32, 40), dtype=torch.uint8)
    a = d(clean, torch.Generator().manual_seed(3))
    b = d(clean, torch.Generator().manual_seed(3))
    assert a.shape == (3, 16, 20) and torch.equal(a, b)
    with pytest.raises(ZooError, match="degrade='fog'"):
        Degradation.parse("fog")
    with pytest.raises(ZooError, match="option blur"):
        Degradation.parse("blur", blur="3-1")


def test_train_predict_eval_at_original_size(tmp_path, restore_run):
    run = restore_run
    config = json.loads((run.dir / "config.json").read_text())
    assert config["model"]["head_options"] == {"channels": 8, "levels": 2, "y_channel": False}  # resolved
    assert config["train"]["cache_features"] is False  # on-the-fly degradations are never cached
    odd = tmp_path / "odd.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (37, 53, 3), dtype=np.uint8)).save(odd)
    out = tmp_path / "restored"
    p = run.predict([odd], save=str(out))[0]
    record = p.record()
    assert record["size"] == [53, 37] and record["saved"] == str(out / "odd.png")
    assert Image.open(out / "odd.png").size == (53, 37)
    drawn = run.draw([p], tmp_path / "pair.png")
    assert Image.open(drawn).size[1] == 37  # input | output at full size, not shrunk into a grid cell
    scores, _ = run.evaluate()
    assert {"psnr", "ssim", "psnr_identity", "psnr_gain"} <= set(scores)


def test_tiled_prediction_matches_whole_image(restore_run):
    from zoo_core import tiled

    run = restore_run
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        whole = run.model(x)
        tiles = tiled(run.model, x, tile=48, overlap=16, multiple=run.data_config.stride)
    assert tiles.shape == whole.shape
    assert (tiles - whole).abs().mean() < 0.05  # the same answer but near tile borders


def test_super_resolution_doubles_the_size(tmp_path, clean_folder):
    run = tiny_train("restore", tmp_path, channels=3, data=str(clean_folder),
                     **{**TINY_RESTORE, "dataset_options": {"degrade": "sr2", "patches": 16}})
    img = tmp_path / "small.png"
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(img)
    assert run.predict([img])[0].image.size == (60, 40)
    scores, _ = run.evaluate()
    assert "psnr_bicubic" in scores


def test_paired_folders_name_the_bad_file(tmp_path):
    from zoo_restore.datasets import paired_dataset
    from zoo_core import DataConfig

    for d in ("degraded", "clean"):
        (tmp_path / d).mkdir()
    for i in range(3):
        Image.new("RGB", (20, 10)).save(tmp_path / "degraded" / f"a{i}.png")
        Image.new("RGB", (20, 10)).save(tmp_path / "clean" / f"a{i}.png")
    splits = paired_dataset(str(tmp_path), data_config=DataConfig(), seed=0, val_fraction=0.34)
    assert splits.info["scale"] == 1 and len(splits.train) + len(splits.val) == 3
    Image.new("RGB", (21, 10)).save(tmp_path / "clean" / "a1.png")
    with pytest.raises(ZooError, match="a1.png: 21x10"):
        paired_dataset(str(tmp_path), data_config=DataConfig(), seed=0, val_fraction=0.34)
    (tmp_path / "clean" / "a1.png").unlink()
    with pytest.raises(ZooError, match="a1.png: no clean partner"):
        paired_dataset(str(tmp_path), data_config=DataConfig(), seed=0, val_fraction=0.34)


def test_cache_features_is_refused(tmp_path, clean_folder):
    with pytest.raises(ZooError, match="--cache-features: task 'restore' makes its inputs afresh"):
        tiny_train("restore", tmp_path, channels=3, data=str(clean_folder), cache_features=True, mode="frozen",
                   **TINY_RESTORE)


def test_push_pull_round_trip_gives_the_same_image(hub, tmp_path, restore_run):
    from zoo_core import load_run, pull

    img = tmp_path / "a.png"
    Image.fromarray(np.random.default_rng(2).integers(0, 255, (24, 40, 3), dtype=np.uint8)).save(img)
    local = restore_run.predict([img])[0].image
    done = run_zoo("push", restore_run.dir, "tester/restore-tiny")
    assert done.returncode == 0, done.stderr
    pulled = load_run(pull("tester/restore-tiny"), device="cpu").predict([img])[0].image
    assert np.array_equal(np.asarray(pulled), np.asarray(local))


def test_serve_answers_the_restored_png(restore_run, tmp_path):
    import io

    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient
    from zoo_core.serve.app import create_app

    buffer = io.BytesIO()
    Image.fromarray(np.zeros((20, 28, 3), np.uint8)).save(buffer, format="PNG")
    with TestClient(create_app(restore_run, "tiny")) as client:
        answer = client.post("/predict?image=1", content=buffer.getvalue(), headers={"content-type": "image/png"})
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(answer.content)).size == (28, 20)
        drawn = client.post("/predict?draw=1", content=buffer.getvalue(), headers={"content-type": "image/png"})
        assert Image.open(io.BytesIO(drawn.content)).size[1] == 20  # before | after, full size


def test_onnx_runtime_takes_any_size_and_agrees_with_pytorch(restore_run, tmp_path):
    pytest.importorskip("onnxruntime")
    from zoo_core import load_run

    onnx = load_run(restore_run.dir, device="cpu", runtime="onnx")
    for size in [(37, 53), (70, 41)]:  # neither the training crop nor a multiple of the stride
        img = tmp_path / f"i{size[0]}.png"
        Image.fromarray(np.random.default_rng(size[0]).integers(0, 255, (*size, 3), dtype=np.uint8)).save(img)
        a = np.asarray(onnx.predict([img])[0].image, dtype=np.int16)
        b = np.asarray(restore_run.predict([img])[0].image, dtype=np.int16)
        assert a.shape == (*size, 3) and np.abs(a - b).max() <= 2
