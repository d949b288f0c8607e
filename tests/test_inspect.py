"""`zoo inspect`: the layer table (shapes, trainable and frozen parameters) and feature-map drawings.

Tiny nets only (cnn2, timm's test_efficientnet at 64 px), random weights, no network."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from fast_settings import FAST
from zoo_core.testing import COLOURS, make_image
from PIL import Image
from torch import nn

from zoo_core.cli import main
from zoo_core.model.model import ZooModel
from zoo_core.registry.plugins import get_zoo
from zoo_core.model.summary import default_layers, summarise

pytestmark = pytest.mark.zoo_plugins("classify")  # trains them: skipped without

TIMM = "timm:test_efficientnet"


def zoo(*args: str):
    return CliRunner().invoke(main, list(args))


def one_error_line(res) -> str:
    """The user-error contract: exit 1, one 'Error:' line on stderr, no traceback."""
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.stderr
    return lines[0]


@pytest.fixture(scope="module")
def frozen_run(tmp_path_factory):
    """A cnn2 run at 16 px trained one epoch with the backbone frozen (a linear head on 3 classes)."""
    from zoo_core import train

    root = tmp_path_factory.mktemp("inspect")
    for c in COLOURS:
        for i in range(6):
            make_image(root / "pets" / c / f"{c}_{i}.png", COLOURS[c], seed=i)
    return train("classify", data=str(root / "pets"), mode="frozen", out=str(root / "run"), **FAST).run_dir


@pytest.fixture
def picture(tmp_path) -> Path:
    return make_image(tmp_path / "cat.png", (200, 120, 60), size=48)


def small_efficientnet():
    return get_zoo().backbones.create(TIMM, pretrained=False, image_size=64)


# -------------------------------------------------------------------------------------- the summary

def test_totals_shapes_and_depth_of_a_timm_backbone():
    backbone = small_efficientnet()
    backbone.train()
    backbone.model.bn1.eval()  # a mixed state the pass must give back as it was
    modes = {name: m.training for name, m in backbone.named_modules()}
    s = summarise(backbone, (3, 64, 64), depth=3)
    assert {name: m.training for name, m in backbone.named_modules()} == modes
    assert s.total == sum(p.numel() for p in backbone.parameters()) == s.trainable
    assert s.frozen == 0 and s.param_bytes == 4 * s.total
    rows = {r.name: r for r in s.rows}
    assert rows["model.conv_stem"].output == [1, 24, 32, 32]  # stride 2
    assert rows["model.conv_stem"].params == 3 * 24 * 3 * 3
    assert rows["model"].output == [1, backbone.num_features]
    assert rows["model.blocks.2.0"].output == [1, 32, 8, 8]
    shallow = summarise(backbone, (3, 64, 64), depth=1)
    assert [r.name for r in shallow.rows] == ["model"]
    assert len(summarise(backbone, (3, 64, 64), depth=2).rows) < len(s.rows)


def test_wrappers_are_not_levels_so_a_run_lines_up_with_its_bare_backbone():
    backbone = small_efficientnet()
    model = ZooModel(backbone, nn.Sequential(nn.Dropout(), nn.Linear(backbone.num_features, 3)))
    bare = {r.name: r.level for r in summarise(backbone, (3, 64, 64), depth=3).rows}
    wrapped = {r.name.removeprefix("backbone."): r.level
               for r in summarise(model, (3, 64, 64), depth=3).rows if r.name.startswith("backbone.model")}
    assert wrapped == bare
    assert bare["model.blocks"] == bare["model.conv_stem"] == 2
    # siblings line up whatever they hold; a stage of one block is a wrapper, its block on the same level
    assert bare["model.blocks.0"] == bare["model.blocks.1"] == bare["model.blocks.0.0"] == 3
    deeper = {r.name: r.level for r in summarise(backbone, (3, 64, 64), depth=4).rows}
    assert deeper["model.blocks.0.0.conv"] == 4


def test_shared_parameters_count_once_and_uncalled_modules_show_a_dash():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(4, 4)
            self.b = nn.Linear(4, 4)
            self.b.weight = self.a.weight  # tied, as in weight sharing
            self.unused = nn.Linear(4, 2)
            self.shape = nn.Identity()

        def forward(self, x):
            return self.shape(self.b(self.a(self.shape(x).flatten(1))))

    s = summarise(Tied(), (1, 2, 2))
    assert s.total == 16 + 4 + 4 + 8 + 2
    rows = {r.name: r for r in s.rows}
    assert rows["a"].output == [1, 4] and rows["unused"].output is None
    assert rows["shape"].output == [1, 1, 2, 2]  # called twice: the first call is shown
    from zoo_core.model.summary import format_table

    assert "unused" in format_table(s) and " - " in format_table(s)


def test_frozen_run_trains_only_its_head(frozen_run):
    res = zoo("inspect", str(frozen_run), "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    from zoo_core.training.rundir import rebuild

    model, _, _ = rebuild(frozen_run)
    head = sum(p.numel() for p in model.head.parameters())
    assert out["mode"] == "frozen" and out["trainable"] == head
    assert out["total"] == sum(p.numel() for p in model.parameters())
    assert out["frozen"] == sum(p.numel() for p in model.backbone.parameters())
    rows = {r["name"]: r for r in out["rows"]}
    assert rows["backbone.body.0"]["output"] == [1, 16, 16, 16] and rows["backbone.body.0"]["trainable"] == 0
    assert rows["head.0"]["output"] == [1, 3] and rows["head.0"]["trainable"] == head
    text = zoo("inspect", str(frozen_run))
    assert text.exit_code == 0
    first = text.stdout.splitlines()[0]
    assert str(frozen_run) in first and "backbone frozen" in first and "mode frozen" in first
    assert f"Total params: {out['total']:,}" in text.stdout and f"Trainable params: {head:,}" in text.stdout
    assert f"Frozen params: {out['frozen']:,}" in text.stdout
    finetune = json.loads(zoo("inspect", str(frozen_run), "--json", "--mode", "finetune").stdout)
    assert finetune["trainable"] == finetune["total"] == out["total"]


@pytest.mark.parametrize("epochs, shown", [(2, "frozen"), (3, "finetune")])
def test_a_staged_run_is_shown_as_it_ended(frozen_run, tmp_path, epochs, shown):
    run = tmp_path / "staged"
    shutil.copytree(frozen_run, run)
    cfg = json.loads((run / "config.json").read_text())
    cfg["train"].update(mode="staged", epochs=epochs, freeze_epochs=2)
    (run / "config.json").write_text(json.dumps(cfg))
    out = json.loads(zoo("inspect", str(run), "--json").stdout)
    assert out["mode"] == shown and (out["trainable"] == out["total"]) == (shown == "finetune")


def test_backbone_target_frozen_and_image_size():
    res = zoo("inspect", TIMM, "--json", "--image-size", "32", "--mode", "frozen", "--depth", "2")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["kind"] == "backbone" and out["input_size"] == [3, 32, 32]
    assert out["trainable"] == 0 and out["frozen"] == out["total"] > 0
    assert {r["name"]: r["output"] for r in out["rows"]}["model.conv_stem"] == [1, 24, 16, 16]
    assert max(r["level"] for r in out["rows"]) == 2
    text = zoo("inspect", TIMM, "--image-size", "32")
    assert text.stdout.startswith(f"backbone {TIMM}, input 3x32x32: all parameters trainable")


# ------------------------------------------------------------------------------------- feature maps

def test_feature_maps_of_chosen_layers(frozen_run, picture, tmp_path):
    out_png = tmp_path / "maps.png"
    res = zoo("inspect", str(frozen_run), "--json", "--feature-maps", str(picture), "--layers", "body.0,backbone.body.4",
              "--channels", "8", "-o", str(out_png))
    assert res.exit_code == 0, res.output
    maps = json.loads(res.stdout)["feature_maps"]
    assert [(m["name"], m["shape"]) for m in maps["layers"]] == [("backbone.body.0", [16, 16, 16]),
                                                                 ("backbone.body.4", [32, 8, 8])]
    assert f"wrote {out_png}" in res.stderr
    with Image.open(out_png) as im:
        assert im.format == "PNG" and im.width > 400 and im.height > 400


def test_default_feature_maps_spread_shallow_to_deep(picture, in_tmp):
    res = zoo("inspect", TIMM, "--image-size", "64", "--no-pretrained", "--feature-maps", str(picture), "--json")
    assert res.exit_code == 0, res.output
    layers = json.loads(res.stdout)["feature_maps"]["layers"]
    assert len(layers) == 4 and layers[0]["name"] == "model.conv_stem"
    sizes = [m["shape"][1] for m in layers]
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == 4 and sizes[-1] > 1
    written = in_tmp / "cat-feature-maps.png"
    with Image.open(written) as im:
        assert im.width > 400


def test_default_layers_prefer_distinct_resolutions():
    s = summarise(small_efficientnet(), (3, 64, 64), depth=3)
    picked = default_layers(s)
    rows = {r.name: r for r in s.rows}
    assert len(picked) == 4 and len({tuple(rows[n].output[2:]) for n in picked}) == 4
    assert [rows[n].call for n in picked] == sorted(rows[n].call for n in picked)


# ------------------------------------------------------------------------------------------- errors

def test_bad_layer_names_and_non_maps_are_one_line_errors(frozen_run, picture, tmp_path):
    out_png = tmp_path / "never.png"
    base = ["inspect", str(frozen_run), "--feature-maps", str(picture), "-o", str(out_png), "--layers"]
    assert "no layer 'nonsense'" in one_error_line(zoo(*base, "nonsense"))
    line = one_error_line(zoo(*base, "0"))  # backbone.body.0 and head.0
    assert "ambiguous" in line and "backbone.body.0" in line and "head.0" in line
    assert "[1, 3]" in one_error_line(zoo(*base, "head.0"))
    assert "[1, 512]" in one_error_line(zoo(*base, "body.8"))  # Flatten
    assert not out_png.exists()


def test_unreadable_image_missing_image_and_unknown_target(frozen_run, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    assert "broken.jpg" in one_error_line(zoo("inspect", str(frozen_run), "--feature-maps", str(broken)))
    assert "missing.png" in one_error_line(zoo("inspect", str(frozen_run), "--feature-maps", str(tmp_path / "missing.png")))
    assert "no_such_backbone" in one_error_line(zoo("inspect", "no_such_backbone"))
    assert "--feature-maps" in one_error_line(zoo("inspect", str(frozen_run), "--layers", "body.0"))
    # a 8x8 input flattens to 128 features, not the 512 the trained head takes
    assert "forward pass" in one_error_line(zoo("inspect", str(frozen_run), "--image-size", "8"))


def test_summary_does_not_change_trainability_or_weights(frozen_run):
    from zoo_core.training.rundir import rebuild

    model, _, _ = rebuild(frozen_run)
    model.set_backbone_trainable(False)
    model.train()  # a frozen backbone stays in eval mode inside a training ZooModel
    before = {k: v.clone() for k, v in model.state_dict().items()}
    summarise(model, (1, 16, 16))
    assert model.training and not model.backbone.training and model.head.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
