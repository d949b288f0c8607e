"""The contract for image-to-image tasks (issue 20): a head that reads the input image, fit "native" and
collation of unequal sizes, tasks that opt out of feature caching, image-valued predictions saved at full
size, tiled prediction, head options resolved in config.json, and tiny_train on RGB."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from zoo_core import DataConfig, ImagePrediction, Preprocess, ZooError, collate_samples, tiled
from zoo_core.model.model import ZooModel


def test_native_fit_pads_to_the_stride_and_keeps_the_pixels():
    dc = DataConfig(input_size=(3, 32, 32), mean=(0.5,) * 3, std=(0.5,) * 3, stride=16)
    arr = np.random.default_rng(0).integers(0, 255, (20, 37, 3), dtype=np.uint8)
    out = Preprocess(dc, "native")({"image": Image.fromarray(arr)})
    assert out["image"].shape == (3, 32, 48)  # 20 -> 32, 37 -> 48: multiples of 16, no resizing
    pixels = torch.from_numpy(arr).permute(2, 0, 1).float() / 255 * 2 - 1
    assert torch.allclose(out["image"][:, :20, :37], pixels, atol=1e-6)  # the image's own pixels, untouched
    assert torch.equal(out["image"][:, 25, :37], out["image"][:, 19, :37])  # the border repeated below
    g = out["geometry"]
    assert g.original_size == (20, 37) and g.scale == (1.0, 1.0) and g.offset == (0.0, 0.0)
    assert DataConfig.from_dict(dc.to_dict()).stride == 16
    assert DataConfig.from_dict({k: v for k, v in dc.to_dict().items() if k != "stride"}).stride == 32  # older runs


def test_collate_pads_images_of_different_sizes():
    batch = collate_samples([{"image": torch.ones(3, 16, 32)}, {"image": torch.ones(3, 32, 16)}])
    assert batch.inputs.shape == (2, 3, 32, 32) and batch.inputs[0, :, 16:].abs().sum() == 0


class _Head(nn.Module):
    def forward(self, pyramid, image):
        return image + 0 * pyramid[-1].mean()


def test_a_pyramid_image_head_is_called_with_the_input():
    class Bb(nn.Module):
        def forward_features(self, x):
            return [x[:, :, ::2, ::2]]

    x = torch.randn(1, 3, 8, 8)
    assert torch.equal(ZooModel(Bb(), _Head(), "pyramid+image")(x), x)


def test_image_prediction_saves_full_size_under_the_input_name(tmp_path):
    folder = tmp_path / "out"
    a, b = ImagePrediction(image=Image.new("RGB", (300, 200)), save_dir=str(folder)), \
        ImagePrediction(image=Image.new("RGB", (30, 20)), save_dir=str(folder))
    a.source, b.source = str(tmp_path / "x" / "p.jpg"), str(tmp_path / "y" / "p.jpg")
    assert a.record()["saved"] == str(folder / "p.png") and a.record()["size"] == [300, 200]
    assert b.record()["saved"] == str(folder / "p-2.png")  # a second input of the same name never overwrites
    assert Image.open(folder / "p.png").size == (300, 200)
    assert a.draw(Image.new("RGB", (300, 200))).size[1] == 200  # input | output, not shrunk


def test_tiles_give_the_whole_image_answer_for_a_local_model():
    conv = nn.Conv2d(3, 3, 3, padding=1)
    x = torch.randn(1, 3, 70, 90)
    with torch.no_grad():
        assert torch.allclose(tiled(conv, x, tile=32, overlap=8, multiple=8), conv(x), atol=1e-5)


@pytest.mark.zoo_plugins("classify")  # trains it: skipped without
def test_tiny_train_rgb_and_resolved_head_options(tmp_path, monkeypatch):
    from zoo_core.training.rundir import rebuild
    from zoo_core.testing import tiny_train

    run = tiny_train("classify", tmp_path, channels=3, head="mlp")
    config = json.loads((run.dir / "config.json").read_text())
    assert run.data_config.channels == 3
    assert config["model"]["head_options"] == {"hidden": 128, "dropout": 0.2}  # as built, defaults included
    assert config["train"]["head_options"] == {}  # as given
    # a head default that changed since training: the load names the tensor and the shapes, not "damaged"
    config["model"]["head_options"]["hidden"] = 64
    (run.dir / "config.json").write_text(json.dumps(config))
    monkeypatch.setattr("zoo_core.training.rundir.weights_metadata", lambda path: {})  # past the digest check
    with pytest.raises(ZooError, match=r"is \[128, \d+\] in the file but \[64, \d+\] in the network"):
        rebuild(run.dir)
