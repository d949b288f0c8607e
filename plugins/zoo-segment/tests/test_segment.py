"""zoo-segment: the plugin is found, trains on its embedded scenes, predicts masks at the original
resolution, evaluates (own split and --data), exports to ONNX, round-trips through the Hub, reads mask
folders (palette, grey, RGB with a spec) and COCO polygons, and refuses bad annotations in one line naming
the file; it imports nothing from zoo_core but the public API."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from zoo_core import DataConfig, get_zoo
from zoo_core.testing import cli, one_line_error, tiny_train

PLUGIN = Path(__file__).resolve().parents[1] / "zoo_segment"
SMALL = {"dataset_options": {"count": 20}}  # a tiny embedded set: generated in a fraction of a second
TINY = ["--backbone", "cnn2", "--no-pretrained", "--image-size", "32", "--epochs", "1", "--batch-size", "4",
        "--workers", "0", "--device", "cpu"]
PALETTE = [(0, 0, 0), (200, 40, 40), (40, 40, 200)]

pytestmark = pytest.mark.usefixtures("offline")  # no test here may reach the network


def scene(i: int, size=(48, 32)) -> tuple[Image.Image, np.ndarray]:
    """A grey w x h image with a red rectangle (class 1) and a blue ellipse (class 2), and its mask."""
    w, h = size
    img = Image.new("RGB", size, (120, 120, 120))
    mask = Image.new("L", size, 0)
    r = (2 + i % 5, 3, 2 + i % 5 + w // 3, 3 + h // 2)
    e = (w // 2, h // 3 + i % 3, w - 3, h - 2)
    for draw, fills in ((ImageDraw.Draw(img), PALETTE), (ImageDraw.Draw(mask), (0, 1, 2))):
        draw.rectangle(r, fill=fills[1])
        draw.ellipse(e, fill=fills[2])
    return img, np.asarray(mask)


def mask_folder(root: Path, n: int = 8, mode: str = "P", spec: bool = True) -> Path:
    """root/images/*.png + root/masks/*.png (palette "P", grey "L" or colour "RGB") [+ classes.json]."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(exist_ok=True)
    for i in range(n):
        img, mask = scene(i)
        img.save(root / "images" / f"s{i}.jpg" if i % 2 else root / "images" / f"s{i}.png")
        m = Image.fromarray(mask.astype(np.uint8), "L")
        if mode == "P":
            m = m.convert("P")
            m.putpalette([v for c in PALETTE for v in c] + [0] * (768 - 9))
        elif mode == "RGB":
            m = Image.fromarray(np.array(PALETTE, np.uint8)[mask])
        m.save(root / "masks" / f"s{i}.png")
    if spec:
        colors = {"colors": [list(c) for c in PALETTE]} if mode == "RGB" else {}
        (root / "classes.json").write_text(json.dumps({"classes": ["background", "box", "disc"], **colors}))
    return root


def coco_file(root: Path, n: int = 8, annotations: list | None = None) -> Path:
    """root/coco.json with n images in root/images, a rectangle and a triangle polygon each."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    for i in range(n):
        img, _ = scene(i)
        img.save(root / "images" / f"c{i}.png")
        images.append({"id": i + 1, "file_name": f"c{i}.png", "width": 48, "height": 32})
        anns.append({"id": 2 * i + 1, "image_id": i + 1, "category_id": 7, "iscrowd": 0,
                     "segmentation": [[2, 3, 18, 3, 18, 19, 2, 19]]})
        anns.append({"id": 2 * i + 2, "image_id": i + 1, "category_id": 9, "iscrowd": 0,
                     "segmentation": [[26, 12, 45, 12, 36, 30]]})
    data = {"images": images, "annotations": annotations if annotations is not None else anns,
            "categories": [{"id": 9, "name": "triangle"}, {"id": 7, "name": "square"}]}
    (root / "coco.json").write_text(json.dumps(data))
    return root / "coco.json"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return tiny_train("segment", tmp_path_factory.mktemp("segment"), **SMALL).dir


# ------------------------------------------------------------------------------------------- plugin

def test_the_plugin_is_found_and_registers_its_components():
    zoo = get_zoo()
    assert next(p for p in zoo.plugins if p.name == "segment").error is None
    for registry, name in (("head", "unet"), ("head", "lraspp"), ("loss", "pixel-ce"), ("loss", "dice"),
                           ("loss", "ce-dice"), ("dataset", "scene-masks"), ("dataset", "mask-folder"),
                           ("dataset", "coco-masks")):
        assert zoo.registries[registry].get(name).plugin == "segment"


def test_the_plugin_imports_only_the_public_api():
    import zoo_core

    public = set(zoo_core.__all__)
    for path in PLUGIN.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("zoo_core"):
                assert node.module == "zoo_core" and node.level == 0, f"{path.name}: from {node.module} import ..."
                assert {a.name for a in node.names} <= public, path.name
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("zoo_core") for a in node.names), path.name


# ------------------------------------------------------------------------------------ train, predict

def test_a_tiny_train_logs_miou_both_loss_parts_and_draws_masks(run_dir):
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert {"val_miou", "val_pixel_accuracy", "train_loss_ce", "train_loss_dice"} <= set(rows[-1])
    assert 0 <= rows[-1]["val_miou"] <= 1
    cfg = json.loads((run_dir / "config.json").read_text())
    info = cfg["model"]["info"]
    assert info["classes"] == ["background", "cat", "coffee", "astronaut"] and info["ignore_index"] == 255
    assert len(info["colors"]) == 4 and sum(info["class_pixels"]) == pytest.approx(1, abs=1e-3)
    report = json.loads((run_dir / "segmentation_report.json").read_text())
    assert set(report["iou_per_class"]) == set(info["classes"])
    assert Image.open(run_dir / "val_masks.png").size[0] > 0


def test_predict_gives_a_mask_at_the_original_resolution(run_dir, tmp_path):
    from zoo_core import load_run

    img, _ = scene(0, (70, 30))
    pred = load_run(run_dir, device="cpu").predict([img])[0]
    assert pred.mask.shape == (30, 70) and pred.mask.max() < 4
    record = pred.to_json()
    assert record["size"] == [70, 30] and sum(record["areas"].values()) == pytest.approx(1, abs=1e-3)
    assert "mask" not in record and "%" in pred.caption()
    assert pred.draw(img).size[0] == 70


def test_zoo_predict_json_draw_and_mask_files(run_dir, tmp_path):
    img, _ = scene(1, (64, 40))
    img.save(tmp_path / "wide.png")
    res = cli("predict", str(run_dir), str(tmp_path / "wide.png"), "--json", "--draw", str(tmp_path / "drawn.png"),
              "--masks", str(tmp_path / "masks"))
    assert res.exit_code == 0, res.output
    record = json.loads(res.stdout)[0]
    assert record["image"] == str(tmp_path / "wide.png") and record["size"] == [64, 40]
    written = Image.open(record["mask"])
    assert written.mode == "P" and written.size == (64, 40) and np.asarray(written).max() < 4
    assert Image.open(tmp_path / "drawn.png").size[0] > 0
    line = one_line_error(cli("predict", str(run_dir), str(tmp_path / "wide.png"), "--top-k", "3"))
    assert "--masks" in line
    # two images of one name, in two folders: two mask files; predicting one of them again overwrites its own
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        img.save(tmp_path / folder / "i.png")
    pair = [str(tmp_path / "a" / "i.png"), str(tmp_path / "b" / "i.png")]
    for _ in range(2):
        res = cli("predict", str(run_dir), *pair, "--json", "--masks", str(tmp_path / "pair"))
        assert res.exit_code == 0, res.output
        assert [r["mask"] for r in json.loads(res.stdout)] == [str(tmp_path / "pair" / n) for n in ("i.png", "i-2.png")]
    assert sorted(p.name for p in (tmp_path / "pair").iterdir()) == ["i-2.png", "i.png"]


def test_zoo_eval_on_its_own_validation_split_with_report(run_dir, tmp_path):
    res = cli("eval", str(run_dir), "--json", "--report", str(tmp_path / "report"))
    assert res.exit_code == 0, res.output
    scores = json.loads(res.stdout)
    assert {"miou", "pixel_accuracy", "iou_per_class"} <= set(scores) and scores["images"] == 4  # 20% of 20
    assert (tmp_path / "report" / "eval_val_masks.png").is_file()
    assert (tmp_path / "report" / "eval_predictions.png").is_file()
    assert "IoU" in cli("eval", str(run_dir)).stdout


def test_zoo_export_onnx_gives_logits_at_the_input_size(run_dir, tmp_path):
    import onnx
    import onnxruntime as ort

    out = tmp_path / "model.onnx"
    res = cli("export", str(run_dir), "--format", "onnx", "--out", str(out))
    assert res.exit_code == 0, res.output
    proto = onnx.load(str(out))
    assert [o.name for o in proto.graph.output] == ["logits"]
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["zoo.task"] == "segment" and json.loads(meta["zoo.info"])["classes"][0] == "background"
    channels = json.loads(meta["zoo.preprocessing"])["input_size"][0]  # cnn2 reads grey images
    x = np.random.default_rng(0).standard_normal((3, channels, 32, 32)).astype(np.float32)
    logits = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    assert logits.shape == (3, 4, 32, 32)


def test_push_pull_round_trip_gives_the_same_masks(hub, tmp_path, run_dir):  # noqa: F811
    img, _ = scene(2)
    img.save(tmp_path / "a.png")
    local = cli("predict", str(run_dir), str(tmp_path / "a.png"), "--json")
    assert cli("push", str(run_dir), "tester/segment-tiny", "--with", "onnx").exit_code == 0
    tree = hub.repos[("model", "tester/segment-tiny")].resolve("main").tree
    assert {"model.safetensors", "config.json", "README.md", "model.onnx", "val_masks.png"} <= set(tree)
    pulled = cli("predict", "hf-hub:tester/segment-tiny", str(tmp_path / "a.png"), "--json")
    assert pulled.exit_code == 0, pulled.output
    assert json.loads(pulled.stdout) == json.loads(local.stdout)


# --------------------------------------------------------------------------------------- mask folder

@pytest.mark.parametrize("mode, spec", [("P", True), ("L", False), ("RGB", True)])
def test_a_mask_folder_trains_and_evaluates(tmp_path, mode, spec):
    data = mask_folder(tmp_path / "data", mode=mode, spec=spec)
    out = tmp_path / "run"
    res = cli("train", "segment", "--data", str(data), *TINY, "--out", str(out))
    assert res.exit_code == 0, res.output
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["train"]["dataset"] == "mask-folder" and cfg["data"]["train"] + cfg["data"]["val"] == 8
    info = cfg["model"]["info"]
    assert info["classes"] == (["background", "box", "disc"] if spec else ["background", "class_1", "class_2"])
    if mode != "L":  # the palette's (or the spec's) colours become the classes' colours
        assert info["colors"] == [list(c) for c in PALETTE]
    res = cli("eval", str(out), "--data", str(data), "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["images"] == 8


def _break(data: Path, what: str) -> str:
    """Damage one file of a good mask folder; return what the error must name."""
    mask = data / "masks" / "s3.png"
    if what == "size":
        Image.open(mask).resize((20, 20)).save(mask)
        return f"{mask}: mask is 20x20, its image s3.jpg is 48x32"
    if what == "values":
        arr = np.asarray(Image.open(mask)).copy()
        arr[0, 0] = 7
        Image.fromarray(arr, "L").save(mask)
        return f"{mask}: values [7] are not classes 0..2 (background, box, disc)"
    mask.unlink()
    return f"{data / 'images' / 's3.jpg'}: no mask for it in {data / 'masks'}"


@pytest.mark.parametrize("what", ["size", "values", "missing"])
def test_a_bad_mask_is_a_one_line_error_naming_its_file(tmp_path, what):
    data = mask_folder(tmp_path / "data", mode="L")
    expected = _break(data, what)
    line = one_line_error(cli("train", "segment", "--data", str(data), *TINY, "--out", str(tmp_path / "run")))
    assert expected in line, line
    assert not (tmp_path / "run").exists()


def test_the_ignore_index_trains_nothing_and_counts_nowhere(tmp_path):
    from zoo_segment.losses import ce_dice_loss
    from zoo_segment.metrics import SegmentationMetrics

    info = {"classes": ["a", "b"], "ignore_index": 255, "class_pixels": [0.5, 0.5]}
    targets = torch.tensor([[[0, 1], [255, 255]]])
    right = torch.tensor([[[[5.0, -5.0], [0.0, 0.0]], [[-5.0, 5.0], [0.0, 0.0]]]])  # right where labelled
    wrong_on_ignored = right.clone()
    wrong_on_ignored[0, :, 1] = torch.tensor([[-9.0, 9.0], [9.0, -9.0]]).T
    loss = ce_dice_loss(info)
    assert float(sum(loss(right, targets).values())) == pytest.approx(float(sum(loss(wrong_on_ignored, targets).values())))
    metrics = SegmentationMetrics(info)
    metrics.update({"logits": wrong_on_ignored}, targets)
    assert metrics.compute() == {"miou": 1.0, "pixel_accuracy": 1.0}


# ------------------------------------------------------------------------------------------------ COCO

def test_coco_polygons_train_with_categories_in_id_order(tmp_path):
    data = coco_file(tmp_path / "data")
    out = tmp_path / "run"
    res = cli("train", "segment", "--data", str(data), *TINY, "--out", str(out))
    assert res.exit_code == 0, res.output
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["train"]["dataset"] == "coco-masks"
    assert cfg["model"]["info"]["classes"] == ["background", "square", "triangle"]
    assert cli("eval", str(out), "--data", str(data)).exit_code == 0


def test_coco_rasterizes_polygons_and_ignores_crowds():
    from zoo_segment.datasets import rasterize

    rle = {"counts": [0, 3, 9], "size": [3, 4]}  # the first column of a 3 x 4 image
    mask = rasterize((3, 4), [(1, [[0, 0, 3, 0, 3, 2, 0, 2]]), (None, rle)])
    assert (mask[:, 0] == 255).all() and (mask[:, 1:] == 1).all()


@pytest.mark.parametrize("ann, expected", [
    ({"id": 5, "image_id": 1, "category_id": 3, "segmentation": [[0, 0, 5, 0, 5, 5]]}, "annotation 5: category_id 3 is not in 'categories'"),
    ({"id": 6, "image_id": 99, "category_id": 7, "segmentation": [[0, 0, 5, 0, 5, 5]]}, "annotation 6: image_id 99 is not in 'images'"),
    ({"id": 7, "image_id": 1, "category_id": 7, "segmentation": [[0, 0, 5]]}, "annotation 7: a polygon needs at least 3"),
    ({"id": 8, "image_id": 1, "category_id": 7, "segmentation": {"counts": "abc", "size": [32, 48]}}, "annotation 8: compressed RLE"),
])
def test_a_bad_coco_annotation_is_a_one_line_error_naming_it(tmp_path, ann, expected):
    data = coco_file(tmp_path / "data", annotations=[ann])
    line = one_line_error(cli("train", "segment", "--data", str(data), *TINY, "--out", str(tmp_path / "run")))
    assert f"{data}: {expected}" in line, line


# ------------------------------------------------------------------------------------------- geometry

@pytest.mark.parametrize("size", [(48, 32), (30, 70)])
def test_a_mask_survives_the_eval_transform_and_comes_back_through_geometry(size):
    from zoo_segment.datasets import MaskSamples
    from zoo_segment.task import SegmentTask

    task = SegmentTask()
    _, eval_tf = task.transforms(DataConfig((3, 96, 96), (0.5,) * 3, (0.5,) * 3), "none")
    img, mask = scene(1, size)
    sample = eval_tf(MaskSamples([(img, lambda: mask, "x")])[0])
    batch = task.collate([sample])
    t = batch.targets[0]
    assert t.shape == (96, 96) and (t == 255).any()  # the letterbox padding is ignored, not background
    assert set(t[t != 255].unique().tolist()) == {0, 1, 2}
    logits = torch.nn.functional.one_hot(t.clamp(max=2), 3).permute(2, 0, 1).float()[None]  # the truth, as if predicted
    pred = task.predict(logits, batch.geometry, {"classes": ["bg", "box", "disc"]})[0]
    # torchvision resizes masks with floor-based 'nearest' (not 'nearest-exact'): edges may move one input pixel
    assert pred.mask.shape == mask.shape and (pred.mask == mask).mean() > 0.93


def test_augmentation_moves_the_mask_with_the_image():
    from zoo_segment.task import SegmentTask

    torch.manual_seed(0)
    task = SegmentTask()
    train_tf, _ = task.transforms(DataConfig((3, 32, 32), (0.5,) * 3, (0.5,) * 3), "standard")
    from zoo_segment.masks import stored_mask

    img = Image.new("RGB", (40, 40), (0, 0, 0))
    ImageDraw.Draw(img).rectangle((0, 0, 19, 39), fill=(255, 255, 255))
    mask = np.zeros((40, 40), np.int64)
    mask[:, :20] = 1
    for _ in range(10):
        s = train_tf({"image": img, "target": stored_mask(mask)})
        t = task.collate([s]).targets[0]
        bright = s["image"][0] > 0.5
        labelled = t != 255
        assert ((t == 1) == bright)[labelled].float().mean() > 0.9  # edges: bilinear image, nearest mask


@pytest.mark.parametrize("head, loss", [("lraspp", "pixel-ce"), ("unet", "dice")])
def test_the_other_head_and_losses_train(tmp_path, head, loss):
    run = tiny_train("segment", tmp_path, head=head, loss=loss, **SMALL)
    assert run.config["train"]["head"] == head
    assert run.predict([Image.new("RGB", (40, 30))])[0].mask.shape == (30, 40)


@pytest.mark.zoo_plugins("localize")  # localize's component, refused by this task: skipped when it is not installed
def test_a_bounding_box_loss_is_a_one_line_error(tmp_path):
    line = one_line_error(cli("train", "segment", "--loss", "l1", *TINY, "--out", str(tmp_path / "run")))
    assert "l1" in line and "logits/mask" in line and "ce-dice" in line
