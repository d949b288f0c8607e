"""zoo-detect: the plugin is found, trains on generated scenes, predicts boxes in original pixels with
its options, evaluates (COCO mAP, per class, report pictures), exports to ONNX whose outputs plus the
documented post-processing give zoo's own predictions, reads COCO, YOLO and VOC (and refuses bad
annotations in one line naming file and line), and goes through push/pull."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from zoo_core import generate_scenes, get_zoo
from zoo_core.testing import cli, one_line_error, tiny_train

PLUGIN = Path(__file__).resolve().parents[1] / "zoo_detect"
CLASSES = ["cat", "coffee", "astronaut"]
# Tiny everywhere: a few small scenes, a narrow head with one conv per tower.
SMALL = {"dataset_options": {"count": 16, "min_size": 64, "max_size": 96},
         "head_options": {"channels": 32, "num_convs": 1}}
TINY = ["--backbone", "cnn2", "--no-pretrained", "--image-size", "32", "--epochs", "1", "--batch-size", "8",
        "--workers", "0", "--device", "cpu", "--set", "head.channels=32", "--set", "head.num_convs=1"]

pytestmark = pytest.mark.usefixtures("offline")  # no test here may reach the network


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return tiny_train("detect", tmp_path_factory.mktemp("detect"), **SMALL).dir


def scene_files(root: Path, n: int = 6, seed: int = 3) -> list[tuple[Path, list[list[float]], list[int], tuple[int, int]]]:
    """n generated scenes saved as PNGs: (path, boxes XYXY, labels, (w, h))."""
    root.mkdir(parents=True, exist_ok=True)
    out = []
    for i, s in enumerate(generate_scenes(n, seed, min_size=64, max_size=96)):
        path = root / f"s{i}.png"
        s.image.save(path)
        out.append((path, s.boxes, s.labels, s.image.size))
    return out


def coco_set(root: Path, n: int = 6, background: int = 1) -> Path:
    """root/instances.json over n scenes in root/images (the last `background` without annotations)."""
    files = scene_files(root / "images", n)
    images, anns = [], []
    for i, (path, boxes, labels, (w, h)) in enumerate(files):
        images.append({"id": i + 1, "file_name": path.name, "width": w, "height": h})
        if i >= n - background:
            continue
        for b, c in zip(boxes, labels):
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": c + 1,
                         "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]], "area": (b[2] - b[0]) * (b[3] - b[1]), "iscrowd": 0})
    doc = {"images": images, "annotations": anns, "categories": [{"id": k + 1, "name": c} for k, c in enumerate(CLASSES)]}
    (root / "instances.json").write_text(json.dumps(doc, indent=1))
    return root / "instances.json"


def yolo_set(root: Path, n: int = 6) -> Path:
    files = scene_files(root / "images", n)
    (root / "labels").mkdir(parents=True)
    for path, boxes, labels, (w, h) in files[:-1]:  # the last image has no label file: background
        lines = [f"{c} {(b[0] + b[2]) / 2 / w:.6f} {(b[1] + b[3]) / 2 / h:.6f} {(b[2] - b[0]) / w:.6f} {(b[3] - b[1]) / h:.6f}"
                 for b, c in zip(boxes, labels)]
        (root / "labels" / f"{path.stem}.txt").write_text("\n".join(lines) + "\n")
    (root / "data.yaml").write_text("names:\n" + "".join(f"  {i}: {c}\n" for i, c in enumerate(CLASSES)))
    return root


def voc_set(root: Path, n: int = 6) -> Path:
    files = scene_files(root / "JPEGImages", n)
    (root / "Annotations").mkdir(parents=True)
    for path, boxes, labels, (w, h) in files:
        objects = "".join(
            f"  <object>\n    <name>{CLASSES[c]}</name>\n    <difficult>0</difficult>\n    <bndbox>\n"
            f"      <xmin>{b[0] + 1:g}</xmin>\n      <ymin>{b[1] + 1:g}</ymin>\n      <xmax>{b[2]:g}</xmax>\n"
            f"      <ymax>{b[3]:g}</ymax>\n    </bndbox>\n  </object>\n" for b, c in zip(boxes, labels))
        (root / "Annotations" / f"{path.stem}.xml").write_text(
            f"<annotation>\n  <filename>{path.name}</filename>\n  <size><width>{w}</width><height>{h}</height>"
            f"<depth>3</depth></size>\n{objects}</annotation>\n")
    (root / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    return root


# ------------------------------------------------------------------------------------------- plugin

def test_the_plugin_is_found_through_its_entry_point():
    zoo = get_zoo()
    assert next(p for p in zoo.plugins if p.name == "detect").error is None
    assert zoo.tasks.get("detect").plugin == "detect"
    for kind, names in (("dataset", ["detect-scenes", "coco", "yolo", "voc"]), ("head", ["fcos", "grid"]), ("loss", ["fcos", "grid"])):
        for name in names:
            assert zoo.registries[kind].get(name).plugin == "detect"


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


# ----------------------------------------------------------------------------------- the assignment

def test_fcos_assigns_locations_inside_and_near_the_centre_of_a_box_at_the_level_of_its_size():
    from zoo_detect.heads import level_points
    from zoo_detect.losses import fcos_assign

    maps = [torch.zeros(1, 1, 32, 32), torch.zeros(1, 1, 16, 16), torch.zeros(1, 1, 8, 8)]
    points, strides = level_points(maps, [8, 16, 32])
    small, large = [20.0, 20.0, 60.0, 60.0], [100.0, 60.0, 250.0, 250.0]
    idx = fcos_assign(points, strides, torch.tensor([small, large]))
    for k, box in enumerate([small, large]):
        mine = points[idx == k]
        assert len(mine) > 0
        assert (mine[:, 0] > box[0]).all() and (mine[:, 0] < box[2]).all() and (mine[:, 1] > box[1]).all()
    # the small box (40 px) is found on the finest level only, the large one (190 px) never there
    assert set(strides[idx == 0].tolist()) == {8.0} and 8.0 not in set(strides[idx == 1].tolist())
    assert (fcos_assign(points, strides, torch.zeros(0, 4)) == -1).all()


@pytest.mark.parametrize("head, loss", [("fcos", "fcos"), ("grid", "grid")])
def test_losses_are_finite_with_objects_and_with_background_only(head, loss):
    from zoo_core import Backbone, FeatureLevel

    zoo = get_zoo()

    class Fake(Backbone):
        feature_info = [FeatureLevel(8, 8), FeatureLevel(16, 16)]

    net = zoo.heads.create(head, Fake(), {"num_outputs": 3}, **({"channels": 32, "num_convs": 1} if head == "fcos" else {}))
    out = net([torch.randn(2, 8, 8, 8, requires_grad=True), torch.randn(2, 16, 4, 4, requires_grad=True)])
    assert out["logits"].shape[:2] == out["boxes"].shape[:2] == out["centerness"].shape
    fn = zoo.losses.create(loss, info={})
    targets = [{"boxes": torch.tensor([[4.0, 6.0, 40.0, 50.0]]), "labels": torch.tensor([2])},
               {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}]
    for t in (targets, targets[1:] * 2):
        terms = fn(out, t)
        total = sum(terms.values())
        assert torch.isfinite(total)
        total.backward(retain_graph=True)


# ------------------------------------------------------------------------------ train, predict, eval

def test_a_tiny_train_logs_map_and_the_loss_parts_and_writes_the_report(run_dir):
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert {"val_map", "val_map_50", "val_map_75", "train_loss_cls", "train_loss_box", "train_loss_centerness"} <= set(rows[-1])
    assert 0 <= rows[-1]["val_map_50"] <= 1
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["model"]["fit"] == "pad" and cfg["model"]["info"]["classes"] == CLASSES
    for name in ("pr_curve.png", "val_detections.png", "detection_report.json"):
        assert (run_dir / name).is_file(), name


def test_predict_gives_boxes_in_original_pixels_and_obeys_its_options(run_dir, tmp_path):
    from zoo_core import load_run

    run = load_run(run_dir, device="cpu")
    image = generate_scenes(1, 7, min_size=90, max_size=150)[0].image  # non-square
    w, h = image.size
    pred = run.predict([image], score_threshold=0.0, max_detections=5)[0]
    assert 1 <= len(pred.detections) <= 5 and pred.image_size == (w, h)
    for d in pred.detections:
        x0, y0, x1, y1 = d.box
        assert 0 <= x0 <= x1 <= w and 0 <= y0 <= y1 <= h and d.label in CLASSES and 0 <= d.score <= 1
    assert [d.score for d in pred.detections] == sorted((d.score for d in pred.detections), reverse=True)
    assert run.predict([image], score_threshold=1.0)[0].detections == []
    coco = pred.to_coco(42)
    assert coco[0]["image_id"] == 42 and len(coco[0]["bbox"]) == 4 and coco[0]["category_id"] in (1, 2, 3)


def test_zoo_predict_json_options_and_draw(run_dir, tmp_path):
    path = tmp_path / "scene.png"
    generate_scenes(1, 8, min_size=80, max_size=120)[0].image.save(path)
    res = cli("predict", str(run_dir), str(path), "--json", "-t", "0", "--max-detections", "3",
              "--iou-threshold", "0.4", "--draw", str(tmp_path / "drawn.png"))
    assert res.exit_code == 0, res.output
    record = json.loads(res.stdout)[0]
    assert record["image"] == str(path) and 1 <= len(record["detections"]) <= 3
    assert {"label", "class_index", "score", "box"} == set(record["detections"][0])
    assert Image.open(tmp_path / "drawn.png").size[0] > 0
    line = one_line_error(cli("predict", str(run_dir), str(path), "--score-threshold", "2"))
    assert "score-threshold" in line or "score_threshold" in line


def test_zoo_eval_with_and_without_data_and_the_report(run_dir, tmp_path):
    res = cli("eval", str(run_dir), "--json", "--report", str(tmp_path / "report"))
    assert res.exit_code == 0, res.output
    scores = json.loads(res.stdout)
    assert {"map", "map_50", "map_75", "mar_100", "per_class"} <= set(scores) and scores["images"] == 3  # 20% of 16
    for name in ("eval_pr_curve.png", "eval_val_detections.png", "eval_predictions.png", "eval_detection_report.json"):
        assert (tmp_path / "report" / name).is_file(), name
    data = coco_set(tmp_path / "coco")
    res = cli("eval", str(run_dir), "--data", str(data), "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["images"] == 6
    text = cli("eval", str(run_dir)).stdout
    assert "AP@0.5" in text and "map_50" in text


def test_onnx_export_plus_the_documented_post_processing_matches_zoo_predict_on_real_images(run_dir, tmp_path):
    import onnx
    import onnxruntime as ort
    from zoo_core import load_run, open_image
    from zoo_detect import postprocess

    out = tmp_path / "model.onnx"
    res = cli("export", str(run_dir), "--format", "onnx", "--out", str(out))
    assert res.exit_code == 0, res.output
    proto = onnx.load(str(out))
    assert [o.name for o in proto.graph.output] == ["boxes", "scores"]
    meta = {p.key: json.loads(p.value) if p.value.startswith(("{", "[")) else p.value for p in proto.metadata_props}
    assert meta["zoo.task"] == "detect" and meta["zoo.info"]["classes"] == CLASSES
    run = load_run(run_dir, device="cpu")
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for seed in (11, 12):
        image = generate_scenes(1, seed, min_size=80, max_size=160)[0].image
        sample = run.transform({"image": open_image(image, run.data_config.channels)})  # cnn2 is grayscale
        boxes, scores = session.run(None, {"input": sample["image"][None].numpy()})
        got = postprocess(boxes[0], scores[0], meta["zoo.preprocessing"], image.size, score_threshold=0.05)
        want = run.predict([image], score_threshold=0.05)[0].detections
        assert len(got) == len(want)
        for g, d in zip(got, want):
            assert g["class_index"] == d.class_index and g["score"] == pytest.approx(d.score, abs=1e-4)
            assert g["box"] == pytest.approx(d.box, abs=0.05)


# ------------------------------------------------------------------------------------------ formats

def test_coco_trains_and_counts_background_images(tmp_path):
    data = coco_set(tmp_path / "coco")
    out = tmp_path / "run"
    res = cli("train", "detect", "--data", str(data), *TINY, "--out", str(out))
    assert res.exit_code == 0, res.output
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["train"]["dataset"] == "coco" and cfg["model"]["info"]["category_ids"] == [1, 2, 3]
    assert "1 without objects (background)" in (out / "train.log").read_text()


@pytest.mark.parametrize("edit, expected", [
    (lambda d: d["annotations"][1].update(bbox=[5, 5, 0, 10]), "empty box"),
    (lambda d: d["annotations"][1].update(bbox=[5, 5, 500, 10]), "lies outside its"),
    (lambda d: d["annotations"][1].update(category_id=9), "category_id 9 is not in 'categories'"),
])
def test_a_bad_coco_annotation_is_a_one_line_error_naming_file_and_line(tmp_path, edit, expected):
    data = coco_set(tmp_path / "coco")
    doc = json.loads(data.read_text())
    edit(doc)
    data.write_text(json.dumps(doc, indent=1))
    line_no = data.read_text().splitlines().index(next(ln for ln in data.read_text().splitlines() if '"bbox"' in ln)) + 1
    second = [i + 1 for i, ln in enumerate(data.read_text().splitlines()) if '"bbox"' in ln][1]
    assert second > line_no
    line = one_line_error(cli("train", "detect", "--data", str(data), *TINY, "--out", str(tmp_path / "run")))
    assert f"{data}:{second}" in line and expected in line, line
    assert not (tmp_path / "run").exists()


def test_yolo_trains_with_a_background_image(tmp_path):
    data = yolo_set(tmp_path / "yolo")
    out = tmp_path / "run"
    res = cli("train", "detect", "--data", str(data), *TINY, "--out", str(out))
    assert res.exit_code == 0, res.output
    assert json.loads((out / "config.json").read_text())["train"]["dataset"] == "yolo"
    assert "1 without objects (background)" in (out / "train.log").read_text()


@pytest.mark.parametrize("line, expected", [
    ("7 0.5 0.5 0.2 0.2", ":2: class 7 is outside the class list"),
    ("0 0.5 0.5 0.2", ":2: expected 'class cx cy w h'"),
    ("1 0.9 0.5 0.6 0.2", ":2: box"),
    ("1 0.5 0.5 0 0.2", ":2: empty box"),
])
def test_a_bad_yolo_line_is_a_one_line_error_naming_file_and_line(tmp_path, line, expected):
    data = yolo_set(tmp_path / "yolo")
    label = data / "labels" / "s0.txt"
    label.write_text("0 0.5 0.5 0.2 0.2\n" + line + "\n")
    msg = one_line_error(cli("train", "detect", "--data", str(data), *TINY, "--out", str(tmp_path / "run")))
    assert str(label) in msg and expected in msg, msg


def test_voc_trains(tmp_path):
    data = voc_set(tmp_path / "voc")
    out = tmp_path / "run"
    res = cli("train", "detect", "--data", str(data), *TINY, "--out", str(out))
    assert res.exit_code == 0, res.output
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["train"]["dataset"] == "voc" and cfg["model"]["info"]["classes"] == CLASSES


@pytest.mark.parametrize("old, new, expected", [
    ("<name>", "<name>dog", "label 'dog"),
    ("<xmax>", "<xmax>900", "lies outside its"),
    ("<ymin>", "<ymin>x", "needs numeric xmin"),
])
def test_a_bad_voc_object_is_a_one_line_error_naming_file_and_line(tmp_path, old, new, expected):
    data = voc_set(tmp_path / "voc")
    xml = data / "Annotations" / "s1.xml"
    text = xml.read_text()
    xml.write_text(text.replace(old, new, 1))
    object_line = text.splitlines().index("  <object>") + 1
    msg = one_line_error(cli("train", "detect", "--data", str(data), *TINY, "--out", str(tmp_path / "run")))
    assert f"{xml}:{object_line}" in msg and expected in msg, msg


@pytest.mark.zoo_plugins("classify")  # classify's component, refused by this task: skipped when it is not installed
def test_a_classification_head_is_a_one_line_error(tmp_path):
    line = one_line_error(cli("train", "detect", "--head", "linear", *TINY, "--out", str(tmp_path / "run")))
    assert "linear" in line and "detection/dense" in line and "fcos" in line


# ----------------------------------------------------------------------------------------- push/pull

def test_push_pull_round_trip_gives_the_same_detections(hub, run_dir, tmp_path):  # noqa: F811
    path = tmp_path / "scene.png"
    generate_scenes(1, 9, min_size=80, max_size=120)[0].image.save(path)
    local = cli("predict", str(run_dir), str(path), "--json", "-t", "0.05", "--device", "cpu")
    assert local.exit_code == 0, local.output
    res = cli("push", str(run_dir), "tester/detect-tiny")
    assert res.exit_code == 0, res.output
    tree = hub.repos[("model", "tester/detect-tiny")].resolve("main").tree
    assert {"model.safetensors", "config.json", "README.md", "pr_curve.png", "val_detections.png"} <= set(tree)
    pulled = cli("predict", "hf-hub:tester/detect-tiny", str(path), "--json", "-t", "0.05", "--device", "cpu")
    assert pulled.exit_code == 0, pulled.output
    strip = lambda out: [{k: v for k, v in r.items() if k != "image"} for r in json.loads(out)]  # noqa: E731
    assert strip(pulled.stdout) == strip(local.stdout)


def test_detect_results_writes_the_coco_results_format_with_the_annotations_image_ids(run_dir, tmp_path):
    data = coco_set(tmp_path / "coco", n=3)
    out = tmp_path / "results.json"
    res = cli("detect-results", str(run_dir), str(tmp_path / "coco" / "images"), "--annotations", str(data),
              "-o", str(out), "-t", "0", "--max-detections", "2", "--device", "cpu")
    assert res.exit_code == 0, res.output
    results = json.loads(out.read_text())
    assert len(results) == 6 and {r["image_id"] for r in results} == {1, 2, 3}
    assert set(results[0]) == {"image_id", "category_id", "bbox", "score"} and results[0]["category_id"] in (1, 2, 3)
    line = one_line_error(cli("detect-results", str(run_dir), str(data), "-o", str(out)))
    assert "no readable image among the inputs" in line
