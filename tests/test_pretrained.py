"""A backbone as it was pretrained: its own classifier and classes, and what `zoo predict TARGET` means."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from conftest import make_image
from zoo_core import ZooError
from zoo_core.api import Pretrained, resolve_target
from zoo_core.cli import main
from zoo_core.config import normalise
from zoo_core.plugins import get_zoo


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """A local Hugging Face cache holding timm's tiny test_efficientnet (random weights, saved the way
    the Hub serves them), so timm's real pretrained loading runs offline."""
    import huggingface_hub.constants
    import timm
    from safetensors.torch import save_file

    revision = "0" * 40
    repo = tmp_path / "hub" / "models--timm--test_efficientnet.r160_in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    (repo / "snapshots" / revision).mkdir(parents=True)
    torch.manual_seed(0)
    state = timm.create_model("test_efficientnet").state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, str(repo / "snapshots" / revision / "model.safetensors"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return state


def test_a_timm_backbone_keeps_its_imagenet_classifier_aside(hub_cache, tmp_path):
    p = Pretrained("test_efficientnet", device="cpu")
    classifier = p.backbone.pretrained_classifier()[0]
    assert torch.equal(classifier.weight, hub_cache["classifier.weight"])
    assert len(p.labels) == 1000 and p.labels[281] == "tabby" and p.label_ids[281] == "n02123045"
    # the classifier is not part of the backbone transfer models train, save and count
    assert not any(k.startswith("model.classifier.") for k in p.backbone.state_dict())
    assert p.backbone(torch.zeros(1, 3, 64, 64)).shape == (1, p.backbone.num_features)
    x = torch.randn(2, 3, 160, 160)
    import timm

    reference = timm.create_model("test_efficientnet").eval()
    reference.load_state_dict(hub_cache)
    with torch.no_grad():
        assert torch.allclose(p.logits(x), reference(x), atol=1e-5)
    preds = p.predict([make_image(tmp_path / "a.png", (200, 30, 30))], top_k=3)
    assert len(preds[0]["top"]) == 3 and preds[0]["label"] == preds[0]["top"][0]["label"]
    assert 0 < sum(t["probability"] for t in preds[0]["top"]) <= 1 + 1e-6


def test_zoo_predict_on_a_timm_backbone(hub_cache, tmp_path):
    image = make_image(tmp_path / "a.png", (200, 30, 30))
    r = CliRunner().invoke(main, ["predict", "test_efficientnet", str(image), "--json", "-k", "2"])
    assert r.exit_code == 0, r.output
    (pred,) = json.loads(r.output)
    assert pred["image"] == str(image) and len(pred["top"]) == 2 and pred["top"][0]["id"].startswith("n")


def test_a_backbone_without_a_classifier_says_what_to_do_instead(tmp_path):
    image = make_image(tmp_path / "a.png", (200, 30, 30))
    r = CliRunner().invoke(main, ["predict", "cnn2", str(image)])
    assert r.exit_code == 1
    assert r.output.strip() == ("Error: backbone 'cnn2' has no pretrained classifier to predict with; "
                                "train a head on it: zoo train classify --backbone cnn2 --data DIR")


def test_target_is_a_run_directory_or_a_backbone(tmp_path, digits_run):
    assert resolve_target(str(digits_run)) == ("run", digits_run)
    assert resolve_target("cnn2") == ("backbone", "cnn2")
    assert resolve_target("timm:test_vit") == ("backbone", "timm:test_vit")
    with pytest.raises(ZooError, match="not a zoo run directory"):
        resolve_target(str(tmp_path))
    (tmp_path / "weights.pth").write_bytes(b"")
    with pytest.raises(ZooError, match="a file, not a run directory or a backbone name"):
        resolve_target(str(tmp_path / "weights.pth"))
    with pytest.raises(ZooError, match=r"'cnn3' is neither a run directory nor a backbone \(did you mean: cnn2"):
        resolve_target("cnn3")


def test_a_dataset_recipe_applies_only_to_its_own_backbone():
    """`zoo train classify --backbone X` on the digits: the small CNN's recipe (no pretraining, lr 3e-3,
    full fine-tuning) would wreck a pretrained backbone; only the recipe's facts about the data stay."""
    from zoo_core.trainer import _resolve

    zoo = get_zoo()
    task = zoo.tasks.create("classify")
    own = _resolve("classify", task, zoo, {}, {})
    assert (own["backbone"], own["pretrained"], own["mode"], own["lr"], own["augment"]) == ("cnn2", False, "finetune", 3e-3, "light")
    other = _resolve("classify", task, zoo, {}, normalise({"backbone": "efficientnet_b0"}, "flags"))
    assert (other["backbone"], other["pretrained"], other["mode"], other["lr"]) == ("efficientnet_b0", True, "staged", 1e-3)
    assert other["augment"] == "light"  # digits must not be flipped, whatever the backbone
    same = _resolve("classify", task, zoo, normalise({"backbone": "cnn2"}, "file"), {})
    assert same["mode"] == "finetune" and same["pretrained"] is False
