"""zoo-generate's autoencode task on tiny settings: train, reconstruct at the original size with the latent."""

import json

import numpy as np
from PIL import Image
from zoo_core.testing import tiny_train


def test_autoencode_trains_and_predicts_reconstruction_and_latent(tmp_path):
    run = tiny_train("autoencode", tmp_path, dataset="lfw-faces", image_size=16, head_options={"latent": 8, "channels": 16},
                     epochs=2)
    metrics = [json.loads(line) for line in (run.dir / "metrics.jsonl").read_text().splitlines()]
    assert {"val_psnr", "val_psnr_mean_image", "val_ssim"} <= set(metrics[-1])
    assert (run.dir / "val_reconstructions.png").is_file()
    img = tmp_path / "face.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (25, 30), dtype=np.uint8)).save(img)
    p = run.predict([img], save=str(tmp_path / "out"))[0]
    record = p.record()
    assert record["size"] == [30, 25] and len(record["latent"]) == 8
    assert Image.open(tmp_path / "out" / "face.png").size == (30, 25)
