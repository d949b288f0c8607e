"""zoo-keypoints: the plugin is found, trains, predicts points in original pixels, evaluates (its own split
and --data), exports to ONNX with parity, round-trips through the Hub, reads the source's CSV layout and
COCO keypoints (and refuses bad ones in one line naming file:line), masks missing points, swaps left and
right under flips, and imports nothing from zoo_core but the public API."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from zoo_core import DataConfig, Preprocess, get_zoo
from zoo_core.testing import cli, one_line_error, tiny_train

PLUGIN = Path(__file__).resolve().parents[1] / "zoo_keypoints"
SMALL = {"dataset_options": {"count": 40, "min_size": 48, "max_size": 64}}  # generated in a fraction of a second
TINY = ["--backbone", "cnn2", "--no-pretrained", "--image-size", "32", "--epochs", "1", "--batch-size", "8",
        "--workers", "0", "--device", "cpu"]

pytestmark = pytest.mark.usefixtures("offline")  # no test here may reach the network


def dots_image(path: Path, size: tuple[int, int], points: list[tuple[float, float]]) -> Path:
    """A grey w x h image with a coloured dot at each point."""
    img = Image.new("RGB", size, (120, 120, 120))
    draw = ImageDraw.Draw(img)
    for i, (x, y) in enumerate(points):
        draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=(255, 60 * i % 255, 40))
    img.save(path)
    return path


def three_points(i: int) -> list[tuple[float, float]]:
    return [(8 + 3 * i, 10 + i), (50 - 2 * i, 12 + i), (30, 40 - i)]  # left_eye, right_eye, mouth


def points_csv(root: Path, n: int = 10, header: str | None = None, rows: list[str] | None = None) -> Path:
    """root/points.csv in the source's layout: image file, then x0, y0, x1, y1, x2, y2; images in root/img."""
    (root / "img").mkdir(parents=True, exist_ok=True)
    lines = [header] if header else []
    for i in range(n):
        pts = three_points(i)
        dots_image(root / "img" / f"{i}.png", (64, 48), pts)
        lines.append(f"img/{i}.png," + ",".join(f"{x:g},{y:g}" for x, y in pts))
    if rows is not None:
        lines = ([header] if header else []) + [lines[1 if header else 0]] + rows
    (root / "points.csv").write_text("\n".join(lines) + "\n")
    return root / "points.csv"


def coco_json(root: Path, n: int = 10, edit=None) -> Path:
    """root/keypoints.json in COCO keypoints format with images in root/images; edit(data) may spoil it."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    data = {"images": [], "annotations": [],
            "categories": [{"id": 1, "name": "face", "keypoints": ["left_eye", "right_eye", "mouth"],
                            "skeleton": [[1, 2], [1, 3], [2, 3]]}]}
    for i in range(n):
        pts = three_points(i)
        dots_image(root / "images" / f"f{i}.png", (64, 48), pts)
        data["images"].append({"id": i + 1, "file_name": f"f{i}.png", "width": 64, "height": 48})
        v = [2, 2, 0 if i == 3 else 2]  # one image's mouth not labelled
        data["annotations"].append({"id": 100 + i, "image_id": i + 1, "category_id": 1, "num_keypoints": sum(map(bool, v)),
                                    "keypoints": [c for (x, y), vis in zip(pts, v) for c in (x, y, vis)]})
    if edit:
        edit(data)
    (root / "keypoints.json").write_text(json.dumps(data, indent=1))
    return root / "keypoints.json"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return tiny_train("keypoints", tmp_path_factory.mktemp("keypoints"), **SMALL).dir


# ------------------------------------------------------------------------------------------- plugin

def test_the_plugin_is_found_and_zoo_list_shows_its_components():
    zoo = get_zoo()
    assert next(p for p in zoo.plugins if p.name == "keypoints").error is None
    assert zoo.tasks.get("keypoints").plugin == "keypoints"
    for kind, name in (("head", "points-linear"), ("head", "points-mlp"), ("head", "points-grid"), ("head", "heatmap"),
                       ("loss", "keypoint-l1"), ("dataset", "drawn-faces"), ("dataset", "keypoint-csv"),
                       ("dataset", "coco-keypoints")):
        assert zoo.registries[kind].get(name).plugin == "keypoints"
    listed = cli("list").stdout
    for name in ("keypoints", "drawn-faces", "keypoint-csv", "coco-keypoints", "heatmap", "points-grid", "keypoint-l1"):
        assert name in listed


def test_the_plugin_imports_only_the_public_api():
    import zoo_core

    public = set(zoo_core.__all__)
    for path in PLUGIN.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("zoo_core"):
                assert node.module == "zoo_core" and node.level == 0, f"{path.name}: from {node.module} import ..."
                assert {a.name for a in node.names} <= public, path.name
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("zoo_core") for a in node.names), f"{path.name}: import zoo_core..."


def test_plain_regression_losses_do_not_fit_a_task_with_missing_points(tmp_path):
    line = one_line_error(cli("train", "keypoints", "--loss", "l1", *TINY, "--out", str(tmp_path / "run")))
    assert "'l1'" in line and "keypoints/xy" in line and "keypoint-l1" in line


# ------------------------------------------------------------------------------------ train, predict

def test_a_tiny_train_logs_errors_nme_pck_and_the_mean_shape_baseline(run_dir):
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert {"val_mean_px_error", "val_nme", "val_pck05", "val_baseline_nme", "val_baseline_mean_px_error",
            "val_baseline_pck05", "train_nme"} <= set(rows[-1])
    assert rows[-1]["val_nme"] > 0 and 0 <= rows[-1]["val_pck05"] <= 1
    cfg = json.loads((run_dir / "config.json").read_text())
    info = cfg["model"]["info"]
    assert cfg["model"]["fit"] == "pad" and cfg["train"]["loss"] == "keypoint-l1" and cfg["train"]["head"] == "heatmap"
    assert len(info["keypoints"]) == 11 and len(info["mean_shape"]) == 11 and info["eyes"] == [2, 3]
    assert [0, 1] in info["flip_pairs"] and [2, 3] in info["flip_pairs"]
    assert (run_dir / "val_keypoints.png").is_file()
    report = json.loads((run_dir / "keypoints_report.json").read_text())
    assert report["nme_reference"] == "inter-ocular distance" and set(report["per_keypoint_px_error"]) == set(info["keypoints"])


def test_predict_gives_points_in_original_pixels(run_dir, tmp_path):
    from zoo_core import load_run

    img = dots_image(tmp_path / "wide.png", (150, 90), three_points(0))
    pred = load_run(run_dir, device="cpu").predict([img])[0]
    assert len(pred.points) == 11 and pred.image_size == (150, 90)
    for (x, y), (nx, ny) in zip(pred.points, pred.points_normalized):
        assert -1 <= x <= 151 and -1 <= y <= 91 and nx == pytest.approx(x / 150) and ny == pytest.approx(y / 90)
    record = pred.to_json()
    assert set(record) == {"keypoints", "keypoints_normalized"} and "left_eye" in record["keypoints"]
    assert "left_brow" in pred.caption()


def test_zoo_predict_json_and_draw_on_the_original_resolution(run_dir, tmp_path):
    img = dots_image(tmp_path / "tall.png", (70, 130), three_points(1))
    res = cli("predict", str(run_dir), str(img), "--json", "--draw", str(tmp_path / "drawn.png"), "--device", "cpu")
    assert res.exit_code == 0, res.output
    record = json.loads(res.stdout)[0]
    assert record["image"] == str(img) and len(record["keypoints"]) == 11
    from zoo_core import load_run

    pred = load_run(run_dir, device="cpu").predict([img])[0]
    drawn = pred.draw(Image.open(img))
    assert drawn.size == (70, 130)  # drawn on the image at its own resolution
    assert np.abs(np.asarray(drawn, dtype=int) - np.asarray(Image.open(img).convert("RGB"), dtype=int)).sum() > 0
    assert Image.open(tmp_path / "drawn.png").size[0] > 0


def test_zoo_eval_on_its_own_split_with_report(run_dir, tmp_path):
    res = cli("eval", str(run_dir), "--json", "--report", str(tmp_path / "report"), "--device", "cpu")
    assert res.exit_code == 0, res.output
    scores = json.loads(res.stdout)
    assert {"nme", "mean_px_error", "pck05", "baseline_nme", "per_keypoint_px_error"} <= set(scores)
    assert scores["images"] == 8  # 20% of 40
    assert (tmp_path / "report" / "eval_val_keypoints.png").is_file()
    assert (tmp_path / "report" / "eval_predictions.png").is_file()
    table = cli("eval", str(run_dir), "--device", "cpu").stdout
    assert "mean shape px" in table and "left_eye" in table


def test_zoo_export_onnx_with_parity_and_metadata(run_dir, tmp_path):
    import onnx
    import onnxruntime as ort

    out = tmp_path / "model.onnx"
    res = cli("export", str(run_dir), "--format", "onnx", "--out", str(out))
    assert res.exit_code == 0, res.output
    assert "max abs diff vs PyTorch" in res.output + res.stderr
    proto = onnx.load(str(out))
    assert [o.name for o in proto.graph.output] == ["points"]
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["zoo.task"] == "keypoints" and meta["zoo.output"] == "keypoints/xy"
    assert len(json.loads(meta["zoo.info"])["keypoints"]) == 11
    # the file gives what the run gives, on a batch of another size than the export's example
    from zoo_core import load_run

    run = load_run(run_dir, device="cpu")
    x = torch.randn(3, *run.data_config.input_size)
    with torch.no_grad():
        expected = run.model(x).numpy()
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
    assert got.shape == (3, 11, 2) and np.allclose(got, expected, rtol=1e-3, atol=1e-5)


def test_push_pull_round_trip(hub, run_dir, tmp_path, monkeypatch):  # noqa: F811
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    run = run_dir
    img = dots_image(tmp_path / "a.png", (60, 40), three_points(2))
    local = cli("predict", str(run), str(img), "--json", "--device", "cpu")
    res = cli("push", str(run), "tester/keypoints-tiny", "--with", "onnx")
    assert res.exit_code == 0, res.output
    tree = hub.repos[("model", "tester/keypoints-tiny")].resolve("main").tree
    assert {"model.safetensors", "config.json", "README.md", "model.onnx", "val_keypoints.png"} <= set(tree)
    import shutil

    shutil.rmtree(constants.HF_HUB_CACHE, ignore_errors=True)
    assert cli("pull", "tester/keypoints-tiny").exit_code == 0
    pulled = cli("predict", "hf-hub:tester/keypoints-tiny", str(img), "--json", "--device", "cpu")
    assert pulled.exit_code == 0, pulled.output
    assert json.loads(pulled.stdout) == json.loads(local.stdout)
    assert cli("eval", "hf-hub:tester/keypoints-tiny", "--json", "--device", "cpu").exit_code == 0


# ------------------------------------------------------------------------------------------ CSV, COCO

def test_the_source_csv_layout_trains_and_evaluates_with_data(tmp_path):
    data = points_csv(tmp_path / "data")  # no header: file, x0, y0, x1, y1, x2, y2
    out = tmp_path / "run"
    res = cli("train", "keypoints", "--data", str(data), *TINY, "--out", str(out))
    assert res.exit_code == 0, res.output
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["train"]["dataset"] == "keypoint-csv" and cfg["data"]["train"] == 8 and cfg["data"]["val"] == 2
    assert cfg["model"]["info"]["keypoints"] == ["0", "1", "2"] and cfg["model"]["info"]["eyes"] is None
    res = cli("eval", str(out), "--data", str(data), "--json", "--device", "cpu")
    assert res.exit_code == 0, res.output
    scores = json.loads(res.stdout)
    assert scores["images"] == 10 and scores["nme_reference"] == "bounding-box diagonal"


def test_a_csv_header_names_the_points_and_its_missing_points_are_masked(tmp_path):
    from zoo_keypoints.datasets import csv_dataset

    header = "image,left_eye_x,left_eye_y,right_eye_x,right_eye_y,mouth_x,mouth_y"
    data = points_csv(tmp_path / "data", n=4, header=header, rows=["img/1.png,9,11,,,30,39"])
    splits = csv_dataset(str(data), data_config=DataConfig((3, 32, 32)), seed=0, val_fraction=0.5)
    assert splits.info["keypoints"] == ["left_eye", "right_eye", "mouth"]
    assert splits.info["eyes"] == [0, 1] and splits.info["flip_pairs"] == [[0, 1]]
    visible = [s["target"]["visible"].tolist() for s in list(splits.train) + list(splits.val)]
    assert sorted(visible) == [[True, False, True], [True, True, True]]


@pytest.mark.parametrize("row, expected", [
    ("img/1.png,9,11,47,13", ":2: expected 7 columns (an image file, 3 x, y pairs), got 5"),
    ("img/1.png,9,11,47,abc,30,39", ":2: coordinates must be numbers, got 'abc' (column 5)"),
    ("img/1.png,9,11,47,13,300,39", ":2: point 2 (2) at (300, 39) lies outside its 64x48 image 1.png"),
    ("img/nope.png,9,11,47,13,30,39", ":2: no image file 'img/nope.png'"),
])
def test_a_bad_csv_row_is_a_one_line_error_naming_file_and_line(tmp_path, row, expected):
    data = points_csv(tmp_path / "data", n=3, rows=[row])
    line = one_line_error(cli("train", "keypoints", "--data", str(data), *TINY, "--out", str(tmp_path / "run")))
    assert str(data) in line and expected in line, line
    assert not (tmp_path / "run").exists()


def test_coco_keypoints_train_and_evaluate(tmp_path):
    data = coco_json(tmp_path / "coco")
    out = tmp_path / "run"
    res = cli("train", "keypoints", "--data", str(data), *TINY, "--out", str(out))
    assert res.exit_code == 0, res.output
    cfg = json.loads((out / "config.json").read_text())
    info = cfg["model"]["info"]
    assert cfg["train"]["dataset"] == "coco-keypoints" and info["keypoints"] == ["left_eye", "right_eye", "mouth"]
    assert info["eyes"] == [0, 1] and info["flip_pairs"] == [[0, 1]] and info["skeleton"] == [[0, 1], [0, 2], [1, 2]]
    res = cli("eval", str(out), "--data", str(data), "--json", "--device", "cpu")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["points"] == 29  # 10 images x 3 points, one not labelled


def _ann(data, i):
    return data["annotations"][i]


@pytest.mark.parametrize("edit, expected", [
    (lambda d: _ann(d, 2).update(keypoints=[1, 2, 2]), "keypoints must be 9 numbers (x, y, v for each of 3 points), got 3"),
    (lambda d: _ann(d, 2)["keypoints"].__setitem__(4, "x"), "keypoints must be numbers, got 'x'"),
    (lambda d: _ann(d, 2)["keypoints"].__setitem__(3, 500), "point 1 (right_eye) at (500, 14) lies outside its 64x48 image f2.png"),
    (lambda d: d["images"][2].update(file_name="missing.png"), "no image file 'missing.png'"),
    (lambda d: _ann(d, 2).update(image_id=99), "image_id 99 is not in 'images'"),
])
def test_bad_coco_is_a_one_line_error_naming_file_and_line(tmp_path, edit, expected):
    data = coco_json(tmp_path / "coco", n=4, edit=edit)
    line = one_line_error(cli("train", "keypoints", "--data", str(data), *TINY, "--out", str(tmp_path / "run")))
    assert expected in line, line
    where = line.split(": ", 2)[1]  # "PATH:LINE"
    path, lineno = where.rsplit(":", 1)
    assert path == str(data)
    text = data.read_text().splitlines()[int(lineno) - 1]
    assert ("missing.png" in text) if "missing" in expected else ("{" in text or "keypoints" in text), (lineno, text)


def test_coco_with_several_people_per_image_crops_each_instance(tmp_path):
    from zoo_keypoints.datasets import coco_dataset

    def two_per_image(d):
        for a in list(d["annotations"]):
            d["annotations"].append({**a, "id": a["id"] + 1000, "bbox": [30, 5, 30, 40]})
            a["bbox"] = [4, 6, 30, 38]
    data = coco_json(tmp_path / "coco", n=4, edit=two_per_image)
    splits = coco_dataset(str(data), data_config=DataConfig((3, 32, 32)), seed=0, val_fraction=0.25)
    samples = [splits.train[i] for i in range(len(splits.train))]
    assert len(samples) + len(splits.val) == 8
    for s in samples:
        h, w = s["target"]["points"].canvas_size
        assert s["image"].size == (w, h) and w < 64  # a crop, and the points are in its pixels
        xy, vis = s["target"]["points"][s["target"]["visible"]], s["target"]["visible"]
        assert vis.any() and (xy[:, 0] < w).all() and (xy[:, 1] < h).all()


# ------------------------------------------------------------------------------- geometry, masking

@pytest.mark.parametrize("size", [(150, 90), (60, 140)])
def test_points_survive_the_eval_transform_and_come_back_through_geometry(tmp_path, size):
    from torchvision import tv_tensors

    from zoo_keypoints.task import KeypointsTask

    task = KeypointsTask()
    dc = DataConfig((3, 64, 64), (0.5,) * 3, (0.5,) * 3)
    _, eval_tf = task.transforms(dc, "none")
    w, h = size
    pts = [(5.0, 7.0), (w - 10.0, h / 2), (w / 3, h - 4.0)]
    target = {"points": tv_tensors.KeyPoints(torch.tensor(pts), canvas_size=(h, w)), "visible": torch.ones(3, dtype=torch.bool)}
    sample = eval_tf({"image": Image.new("RGB", size), "target": target})
    batch = task.collate([sample])
    assert batch.targets.shape == (1, 3, 3) and (batch.targets[..., 2] == 1).all()
    pred = task.predict(batch.targets[..., :2], batch.geometry, {"keypoints": ["a", "b", "c"]})[0]
    assert np.allclose(pred.points, pts, atol=1.0)
    assert batch.geometry[0] == Preprocess(dc, "pad")({"image": Image.new("RGB", size)})["geometry"]


def test_a_flip_swaps_left_and_right_and_points_pushed_out_are_masked():
    from torchvision import tv_tensors

    from zoo_keypoints.augment import FlipWithSwap, RandomCropKeep
    from zoo_keypoints.task import point_targets

    img = tv_tensors.Image(torch.zeros(3, 40, 100, dtype=torch.uint8))
    pts = tv_tensors.KeyPoints(torch.tensor([[20.0, 10.0], [80.0, 12.0], [50.0, 30.0]]), canvas_size=(40, 100))
    target = {"points": pts, "visible": torch.tensor([True, True, False]), "flip": torch.tensor([1, 0, 2])}
    flipped = FlipWithSwap(p=1.0)({"image": img, "target": target})["target"]
    # the left point (index 0) is again the one on the left: the old right one, mirrored
    assert flipped["points"].tolist() == [[19.0, 12.0], [79.0, 10.0], [49.0, 30.0]]
    assert flipped["visible"].tolist() == [True, True, False]
    no_pairs = {**target, "flip": None}
    assert FlipWithSwap(p=1.0)({"image": img, "target": no_pairs})["target"]["points"].tolist() == pts.tolist()
    torch.manual_seed(0)
    cropped = [RandomCropKeep((0.5, 0.6))({"image": img, "target": target}) for _ in range(20)]
    targets = point_targets(cropped)
    assert (targets[:, 2, 2] == 0).all()  # never labelled: stays masked wherever it lands
    assert (targets[..., 2] == 0).any()  # some labelled points were cropped away: masked, not clamped to the edge


def test_the_loss_ignores_points_that_are_not_visible():
    from zoo_keypoints.losses import keypoint_l1_loss

    loss = keypoint_l1_loss({})
    targets = torch.tensor([[[0.2, 0.4, 1.0], [0.0, 0.0, 0.0]]])
    near = torch.tensor([[[0.2, 0.4], [0.9, 0.9]]])  # the invisible point is far from (0, 0): no matter
    assert float(loss(near, targets)) == 0.0
    assert float(loss(torch.tensor([[[0.3, 0.4], [0.0, 0.0]]]), targets)) == pytest.approx(0.05)
    assert float(loss(near, torch.zeros(1, 2, 3))) == 0.0  # nothing visible: zero, not NaN


@pytest.mark.parametrize("head", ["points-linear", "points-mlp", "points-grid", "heatmap"])
def test_every_head_gives_points_in_the_unit_square(head):
    zoo = get_zoo()
    backbone = zoo.backbones.create("lenet", pretrained=False, image_size=32)
    info = {"keypoints": ["a", "b", "c"], "mean_shape": [[0.2, 0.3], [0.8, 0.3], [0.5, 0.7]]}
    from zoo_core import Task  # noqa: F401  (the model below is what the trainer builds)

    spec = zoo.heads.get(head).spec
    module = zoo.heads.create(head, backbone, info)
    x = torch.randn(2, 3, 32, 32)
    out = module(backbone.forward_features(x) if spec.input == "pyramid" else backbone(x))
    assert out.shape == (2, 3, 2) and (out >= 0).all() and (out <= 1).all()
    if head.startswith("points-"):  # regression heads start at the mean shape
        assert torch.allclose(out.mean(0), torch.tensor(info["mean_shape"]), atol=0.15)


def test_soft_argmax_finds_a_peak():
    from zoo_keypoints.heads import soft_argmax

    maps = torch.full((1, 1, 8, 16), -50.0)
    maps[0, 0, 2, 12] = 50.0
    assert soft_argmax(maps)[0, 0].tolist() == pytest.approx([12.5 / 16, 2.5 / 8], abs=1e-4)


def test_layouts_from_names_and_the_68_point_face():
    from zoo_keypoints.points import IBUG68_EYES, layout

    info = layout(["nose", "left_eye", "right_eye", "left_ear", "right_ear"])
    assert info["eyes"] == [1, 2] and sorted(map(sorted, info["flip_pairs"])) == [[1, 2], [3, 4]]
    face = layout([str(i) for i in range(68)])
    assert face["eyes"] == list(IBUG68_EYES) and len(face["flip_pairs"]) == 29
    assert layout(["a", "b"], flip_pairs="0:1", eyes="0,1")["flip_pairs"] == [[0, 1]]
