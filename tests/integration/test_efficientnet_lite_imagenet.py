"""zoo-efficientnet-lite with zoo-classify: ImageNet predictions need both the backbone's pretrained classifier
and a task that reads its 'logits/class' output (moved from plugins/zoo-efficientnet-lite/tests, unchanged)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from zoo_core.cli import main
from zoo_core.testing import run_zoo

pytestmark = pytest.mark.zoo_plugins("classify", "efficientnet-lite")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "efficientnet-lite"


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Photos that ship with scikit-image, saved as files the way a user has them."""
    skimage_data = pytest.importorskip("skimage.data")
    from PIL import Image

    root = tmp_path_factory.mktemp("photos")
    for name in ("chelsea", "coffee"):
        Image.fromarray(getattr(skimage_data, name)()).save(root / f"{name}.png")
    return root


def test_imagenet_predictions_on_scikit_image_photos_are_sensible(photos, cache):
    r = CliRunner().invoke(main, ["predict", "efficientnet_lite0", str(photos / "chelsea.png"),
                                  str(photos / "coffee.png"), "-k", "5", "--json"])
    assert r.exit_code == 0, r.output
    cat, coffee = json.loads(r.output)
    assert "tabby" in [t["label"] for t in cat["top"]]  # Chelsea is a tabby cat
    assert {t["label"] for t in cat["top"][:3]} <= {"tabby", "tiger cat", "Egyptian cat"}
    assert coffee["label"] == "espresso" and coffee["probability"] > 0.5
    assert coffee["top"][0]["id"] == "n07920052"  # WordNet synset, as in timm's ImageNet class info


def test_predict_prints_classes_and_draws(photos, cache, tmp_path):
    png = tmp_path / "pred.png"
    r = CliRunner().invoke(main, ["predict", "efficientnet_lite0", str(photos / "coffee.png"), "--draw", str(png)])
    assert r.exit_code == 0, r.output
    assert "coffee.png: espresso 0.9" in r.output
    assert png.stat().st_size > 10_000


@pytest.mark.slow
def test_zoo_predict_in_a_real_process(photos, tmp_path):
    r = run_zoo("predict", "efficientnet_lite0", str(photos / "chelsea.png"), env={"ZOO_CACHE": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert "tabby" in r.stdout
