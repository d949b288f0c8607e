"""A backbone as it was pretrained: its own classifier and classes, and what `zoo predict TARGET` means."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from zoo_core import ZooError
from zoo_core.prediction.predictor import Pretrained, resolve_target
from zoo_core.cli import main
from zoo_core.base.config import normalise
from zoo_core.registry.plugins import get_zoo
from zoo_core.testing import make_image

pytestmark = pytest.mark.zoo_plugins("classify")  # trains them: skipped without


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
    backbone = p.model.backbone
    head = backbone.pretrained_head  # the classifier its weights were trained with, and its classes
    assert head.output == "logits/class" and p.task.name == "classify"  # read by the task of that output kind
    assert torch.equal(head.module.weight, hub_cache["classifier.weight"])
    labels, ids = p.info["classes"], p.info["class_ids"]
    assert len(labels) == 1000 and labels[281] == "tabby" and ids[281] == "n02123045"
    # the classifier is not part of the backbone transfer models train, save and count
    assert not any(k.startswith("model.classifier.") for k in backbone.state_dict())
    assert backbone(torch.zeros(1, 3, 64, 64)).shape == (1, backbone.num_features)
    x = torch.randn(2, 3, 160, 160)
    import timm

    reference = timm.create_model("test_efficientnet").eval()
    reference.load_state_dict(hub_cache)
    with torch.no_grad():
        assert torch.allclose(p.model(x), reference(x), atol=1e-5)
    image = make_image(tmp_path / "a.png", (200, 30, 30))
    (pred,) = p.predict([image], top_k=3)
    rec = pred.record()
    assert rec["image"] == str(image) == pred.source
    assert len(rec["top"]) == 3 and rec["label"] == rec["top"][0]["label"]
    assert 0 < sum(t["probability"] for t in rec["top"]) <= 1 + 1e-6


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
    assert r.output.strip() == ("Error: backbone 'cnn2' has no pretrained head to predict with; "
                                "train one on it: zoo train TASK --backbone cnn2 --data DIR")


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
    from zoo_core.training.configure import resolve_config

    zoo = get_zoo()
    task = zoo.tasks.create("classify")
    own = resolve_config(task, zoo, {}, {})
    assert (own["backbone"], own["pretrained"], own["mode"], own["lr"], own["augment"]) == ("cnn2", False, "finetune", 3e-3, "light")
    other = resolve_config(task, zoo, {}, normalise({"backbone": "efficientnet_b0"}, "flags"))
    assert (other["backbone"], other["pretrained"], other["mode"], other["lr"]) == ("efficientnet_b0", True, "staged", 1e-3)
    assert other["augment"] == "light"  # digits must not be flipped, whatever the backbone
    same = resolve_config(task, zoo, normalise({"backbone": "cnn2"}, "file"), {})
    assert same["mode"] == "finetune" and same["pretrained"] is False
