"""zoo-detect against files other tools write, in exactly their published layouts: COCO with sparse category
ids (scored by pycocotools and faster-coco-eval as `zoo eval` scores it), Roboflow's COCO and YOLO
exports, Ultralytics' data.yaml (train/val/test, polygon lines), Pascal VOC's ImageSets/Main."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zoo_core import generate_scenes, get_zoo
from zoo_core.testing import cli
from zoo_core.testing import one_line_error as _one_line_error

SCENE_CLASSES = ["cat", "coffee", "astronaut"]
SPARSE = {"astronaut": 1, "cat": 17, "coffee": 47}  # COCO's ids are not 1..N (person=1, cat=17, cup=47)
TINY = ["--backbone", "cnn2", "--no-pretrained", "--image-size", "64", "--batch-size", "8", "--workers", "0",
        "--device", "cpu", "--set", "head.channels=32", "--set", "head.num_convs=1", "-q"]


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def one_line_error(result) -> str:
    """zoo_core.testing's one-line check, and never the catch-all for an error zoo did not foresee."""
    line = _one_line_error(result)
    assert not line.startswith("Error: unexpected"), line
    return line


def scenes(folder: Path, n: int, seed: int = 3, prefix: str = "s"):
    """n generated scenes saved as JPEGs: (path, XYXY boxes, class names, (w, h))."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, s in enumerate(generate_scenes(n, seed, min_size=64, max_size=112)):
        path = folder / f"{prefix}{i}.jpg"
        s.image.save(path, quality=95)
        out.append((path, s.boxes, [SCENE_CLASSES[c] for c in s.labels], s.image.size))
    return out


def coco_json(path: Path, files, ids: dict[str, int], placeholder: bool = False) -> Path:
    """A COCO instances file as COCO's tools write it (area, iscrowd, supercategory); with `placeholder`,
    Roboflow's category 0 (supercategory "none", the parent of the real ones, no annotations)."""
    cats = [{"id": i, "name": n, "supercategory": "scenes"} for n, i in sorted(ids.items(), key=lambda kv: -kv[1])]
    if placeholder:
        cats.insert(0, {"id": 0, "name": "scenes", "supercategory": "none"})
    images, anns = [], []
    for k, (p, boxes, names, (w, h)) in enumerate(files):
        images.append({"id": k + 100, "file_name": p.name, "width": w, "height": h})
        for b, name in zip(boxes, names):
            anns.append({"id": len(anns) + 1, "image_id": k + 100, "category_id": ids[name], "iscrowd": 0,
                         "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]], "area": (b[2] - b[0]) * (b[3] - b[1]),
                         "segmentation": []})
    path.write_text(json.dumps({"info": {}, "licenses": [], "images": images, "annotations": anns, "categories": cats}))
    return path


def load(source: Path, dataset: str, val_fraction: float = 0.2, **options):
    from zoo_core import DataConfig

    get_zoo.cache_clear()
    return get_zoo().datasets.create(dataset, str(source), data_config=DataConfig((3, 64, 64), (0.5,) * 3, (0.5,) * 3),
                                     seed=0, val_fraction=val_fraction, **options)


def names(split) -> set[str]:
    return {Path(str(s["image"])).name for s in split}


# ------------------------------------------------------------------------ COCO: sparse ids, scoring

@pytest.fixture(scope="module")
def sparse_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("sparse")
    files = scenes(root / "images", 24)
    data = coco_json(root / "instances.json", files, SPARSE)
    out = root / "run"
    res = cli("train", "detect", "--data", data, *TINY, "--epochs", "6", "--lr", "3e-3", "--out", out)
    assert res.exit_code == 0, res.output
    return out, data, root / "images"


def test_detect_results_scores_in_pycocotools_and_faster_coco_eval_as_zoo_eval_reports(sparse_run, tmp_path):
    run, data, images = sparse_run
    assert json.loads((run / "config.json").read_text())["model"]["info"]["category_ids"] == [1, 17, 47]
    res = cli("eval", run, "--data", data, "--json")
    assert res.exit_code == 0, res.output
    zoo_map = json.loads(res.stdout)["map"]
    out = tmp_path / "results.json"
    res = cli("detect-results", run, images, "--annotations", data, "-o", out, "--device", "cpu")
    assert res.exit_code == 0, res.output
    results = json.loads(out.read_text())
    assert {r["category_id"] for r in results} <= {1, 17, 47}

    import contextlib
    import io

    pycocotools = pytest.importorskip("pycocotools.coco")
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = pycocotools.COCO(str(data))
        ev = COCOeval(gt, gt.loadRes(str(out)), "bbox")
        ev.evaluate(), ev.accumulate(), ev.summarize()
    from faster_coco_eval import COCO as FCOCO
    from faster_coco_eval import COCOeval_faster

    with contextlib.redirect_stdout(io.StringIO()):
        fgt = FCOCO(str(data))
        fev = COCOeval_faster(fgt, fgt.loadRes(str(out)), "bbox")
        fev.evaluate(), fev.accumulate(), fev.summarize()
    print(f"mAP@0.5:0.95 zoo eval {zoo_map:.4f}, pycocotools {ev.stats[0]:.4f}, faster-coco-eval {fev.stats[0]:.4f}")
    assert ev.stats[0] > 0.01  # a model that finds something: the agreement below means something
    assert abs(ev.stats[0] - zoo_map) <= 0.002 and abs(fev.stats[0] - zoo_map) <= 0.002


def test_detect_results_refuses_a_class_the_annotation_file_does_not_name(sparse_run, tmp_path):
    run, data, images = sparse_run
    doc = json.loads(data.read_text())
    doc["categories"] = [c for c in doc["categories"] if c["name"] != "coffee"]
    doc["annotations"] = [a for a in doc["annotations"] if a["category_id"] != 47]
    other = tmp_path / "other.json"
    other.write_text(json.dumps(doc))
    line = one_line_error(cli("detect-results", run, images, "--annotations", other, "-o", tmp_path / "r.json"))
    assert str(other) in line and "'coffee'" in line
    assert not (tmp_path / "r.json").exists()


def test_one_nms_default_is_shared_and_documented():
    from zoo_detect import boxes, commands, task

    assert boxes.NMS_IOU == 0.6
    option = next(o for o in task.DetectTask.predict_options if o.name == "iou_threshold")
    assert option.default == boxes.NMS_IOU
    params = {p.name: p.default for p in commands.detect_results.params}
    assert params["iou_threshold"] == boxes.NMS_IOU and params["score_threshold"] == boxes.EVAL_SCORE
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "IoU 0.6" in readme and "clipped to the image" in readme


def test_eval_clips_to_the_image_inside_the_letterbox_and_scores_in_original_pixels():
    """A prediction sticking into the letterbox padding is cut at the image's edge before it is matched."""
    import torch
    from zoo_core import Geometry
    from zoo_detect.metrics import DetectionMetrics

    # a 100 x 50 image letterboxed into 64 x 64: scale 0.64, 16 px of padding above and below
    g = Geometry((50, 100), (64, 64), (0.64, 0.64), (0.0, 16.0))
    truth_orig = torch.tensor([[10.0, 0.0, 40.0, 30.0]])
    truth_input = truth_orig * 0.64 + torch.tensor([0, 16, 0, 16])
    pred = truth_input.clone()
    pred[0, 1] = 2.0  # reaches up into the padding
    logits = torch.full((1, 1, 3), -20.0)
    logits[0, 0, 0] = 20.0
    outputs = {"boxes": pred[None], "logits": logits, "centerness": torch.full((1, 1), 20.0)}
    m = DetectionMetrics({"classes": ["a", "b", "c"]})
    m.update(outputs, [{"boxes": truth_input, "labels": torch.tensor([0]),
                        "geometry": torch.tensor([0.64, 0.64, 0.0, 16.0, 50.0, 100.0])}])
    assert m.compute()["map"] == pytest.approx(1.0)  # unclipped, its IoU would be 0.69: AP 0.4


# ---------------------------------------------------------------------------------- COCO layouts

def test_a_roboflow_coco_export_splits_by_its_folders_and_its_placeholder_is_no_class(tmp_path):
    root = tmp_path / "rf"
    for folder, n, seed in (("train", 6, 1), ("valid", 3, 2), ("test", 2, 3)):
        coco_json(root / folder / "_annotations.coco.json", scenes(root / folder, n, seed, prefix=folder), SPARSE,
                  placeholder=True)
    data = load(root, "coco")
    assert data.info["classes"] == ["astronaut", "cat", "coffee"] and data.info["category_ids"] == [1, 17, 47]
    assert names(data.train) == {f"train{i}.jpg" for i in range(6)}
    assert names(data.val) == {f"valid{i}.jpg" for i in range(3)}
    assert "test held out" in data.description
    evaluated = load(root, "coco", val_fraction=1.0)
    assert names(evaluated.val) == {"test0.jpg", "test1.jpg"} and len(evaluated.train) == 0


def test_a_coco_train_and_val_pair_is_the_split(tmp_path):
    train = coco_json(tmp_path / "train.json", scenes(tmp_path / "images", 5, 1, prefix="t"), SPARSE)
    val = coco_json(tmp_path / "val.json", scenes(tmp_path / "images", 2, 2, prefix="v"), SPARSE)
    data = load(train, "coco", val=str(val))
    assert names(data.train) == {f"t{i}.jpg" for i in range(5)} and names(data.val) == {"v0.jpg", "v1.jpg"}
    res = cli("train", "detect", "--data", train, "--set", f"dataset.val={val}", *TINY, "--epochs", "1",
              "--out", tmp_path / "run")
    assert res.exit_code == 0, res.output
    assert "5 train, 2 val" in (tmp_path / "run" / "train.log").read_text()


def test_coco_own_layout_annotations_instances_train_and_val(tmp_path):
    files_t = scenes(tmp_path / "train2017", 4, 1, prefix="t")
    files_v = scenes(tmp_path / "val2017", 2, 2, prefix="v")
    (tmp_path / "annotations").mkdir()
    coco_json(tmp_path / "annotations" / "instances_train2017.json", files_t, SPARSE)
    coco_json(tmp_path / "annotations" / "instances_val2017.json", files_v, SPARSE)
    data = load(tmp_path, "coco")
    assert len(data.train) == 4 and names(data.val) == {"v0.jpg", "v1.jpg"}


# ------------------------------------------------------------------------------------------- YOLO

def yolo_label(files, polygon: bool = False) -> dict[str, str]:
    out = {}
    for p, boxes, labels, (w, h) in files:
        lines = []
        for b, name in zip(boxes, labels):
            c = SCENE_CLASSES.index(name)
            if polygon:  # a diamond inside the box touching its four sides: its bounding box is the box
                cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
                pts = [(cx, b[1]), (b[2], cy), (cx, b[3]), (b[0], cy)]
                lines.append(f"{c} " + " ".join(f"{x / w:.6f} {y / h:.6f}" for x, y in pts))
            else:
                lines.append(f"{c} {(b[0] + b[2]) / 2 / w:.6f} {(b[1] + b[3]) / 2 / h:.6f} {(b[2] - b[0]) / w:.6f} "
                             f"{(b[3] - b[1]) / h:.6f}")
        out[p.stem] = "\n".join(lines) + "\n"
    return out


def test_a_roboflow_yolo_export_follows_data_yaml_and_never_trains_on_test(tmp_path):
    """Roboflow's YOLOv8 export: data.yaml with train: ../train/images (read as Ultralytics reads it),
    valid/ as validation, test/ held out."""
    root = tmp_path / "rf"
    for folder, n, seed in (("train", 6, 1), ("valid", 3, 2), ("test", 2, 3)):
        files = scenes(root / folder / "images", n, seed, prefix=folder)
        (root / folder / "labels").mkdir(parents=True)
        for stem, text in yolo_label(files).items():
            (root / folder / "labels" / f"{stem}.txt").write_text(text)
    (root / "data.yaml").write_text("train: ../train/images\nval: ../valid/images\ntest: ../test/images\n\nnc: 3\n"
                                    "names: ['cat', 'coffee', 'astronaut']\n\nroboflow:\n  workspace: w\n  version: 1\n")
    data = load(root, "yolo")
    assert names(data.train) == {f"train{i}.jpg" for i in range(6)} and names(data.val) == {f"valid{i}.jpg" for i in range(3)}
    assert "2 test" in data.description and "test held out" in data.description
    assert names(load(root / "data.yaml", "yolo", val_fraction=1.0).val) == {"test0.jpg", "test1.jpg"}
    res = cli("train", "detect", "--data", root, *TINY, "--epochs", "1", "--out", tmp_path / "run")
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train"]["dataset"] == "yolo"


def test_an_ultralytics_layout_with_path_and_polygon_lines(tmp_path):
    """Ultralytics' own: data.yaml with path: and images/{train,val}, labels/{train,val}; segmentation
    labels (polygons) read as their bounding boxes."""
    root = tmp_path / "ds"
    files = {"train": scenes(root / "images" / "train", 4, 1, prefix="a"),
             "val": scenes(root / "images" / "val", 2, 2, prefix="b")}
    for split, fs in files.items():
        (root / "labels" / split).mkdir(parents=True)
        for stem, text in yolo_label(fs, polygon=True).items():
            (root / "labels" / split / f"{stem}.txt").write_text(text)
    (tmp_path / "ds.yaml").write_text("path: ds\ntrain: images/train\nval: images/val\nnames:\n  0: cat\n  1: coffee\n"
                                      "  2: astronaut\n")
    data = load(tmp_path / "ds.yaml", "yolo")
    assert len(data.train) == 4 and names(data.val) == {"b0.jpg", "b1.jpg"}
    got = {Path(s["image"]).name: s["target"]["boxes"].tolist() for s in data.train}
    for p, boxes, _, (w, h) in files["train"]:
        for g, b in zip(got[p.name], boxes):
            assert g == pytest.approx(b, abs=0.01 * max(w, h))


def test_images_test_folder_keeps_its_split(tmp_path):
    """images/train and images/test without val: val is drawn from train, test is never trained on."""
    root = tmp_path / "y"
    for split, n in (("train", 6), ("test", 2)):
        fs = scenes(root / "images" / split, n, 1 if split == "train" else 2, prefix=split)
        (root / "labels" / split).mkdir(parents=True)
        for stem, text in yolo_label(fs).items():
            (root / "labels" / split / f"{stem}.txt").write_text(text)
    (root / "classes.txt").write_text("\n".join(SCENE_CLASSES) + "\n")
    data = load(root, "yolo")
    seen = names(data.train) | names(data.val)
    assert len(seen) == 6 and not any(n.startswith("test") for n in seen)


# -------------------------------------------------------------------------------------------- VOC

def test_voc_image_sets_are_the_split_and_test_is_never_trained_on(tmp_path):
    root = tmp_path / "VOC2007"
    files = scenes(root / "JPEGImages", 9)
    (root / "Annotations").mkdir()
    for p, boxes, labels, (w, h) in files:
        objects = "".join(f"<object><name>{n}</name><pose>Unspecified</pose><truncated>0</truncated><difficult>0"
                          f"</difficult><bndbox><xmin>{b[0] + 1:.0f}</xmin><ymin>{b[1] + 1:.0f}</ymin><xmax>{b[2]:.0f}"
                          f"</xmax><ymax>{b[3]:.0f}</ymax></bndbox></object>" for b, n in zip(boxes, labels))
        (root / "Annotations" / f"{p.stem}.xml").write_text(
            f"<annotation><folder>VOC2007</folder><filename>{p.name}</filename><size><width>{w}</width>"
            f"<height>{h}</height><depth>3</depth></size><segmented>0</segmented>{objects}</annotation>")
    main_dir = root / "ImageSets" / "Main"
    main_dir.mkdir(parents=True)
    (main_dir / "train.txt").write_text("s0\ns1\ns2\ns3\n")
    (main_dir / "val.txt").write_text("s4\ns5\n")
    (main_dir / "trainval.txt").write_text("s0\ns1\ns2\ns3\ns4\ns5\n")
    (main_dir / "test.txt").write_text("s6\ns7\n")  # s8 is in no list
    (main_dir / "cat_train.txt").write_text("s0  1\ns1 -1\n")  # per-class lists are not splits
    data = load(root, "voc")
    assert names(data.train) == {f"s{i}.jpg" for i in range(4)} and names(data.val) == {"s4.jpg", "s5.jpg"}
    assert "1 in no split (left out)" in data.description
    assert names(load(root, "voc", val_fraction=1.0).val) == {"s6.jpg", "s7.jpg"}
    (main_dir / "train.txt").unlink()
    (main_dir / "val.txt").unlink()
    data = load(root, "voc")  # trainval only: val drawn from it, test still held out
    assert names(data.train) | names(data.val) == {f"s{i}.jpg" for i in range(6)}


# ------------------------------------------------------------------------------------------- ONNX

def test_the_onnx_metadata_names_the_letterbox_pad_value(tmp_path):
    pytest.importorskip("onnxruntime")
    from zoo_core.testing import tiny_train

    run = tiny_train("detect", tmp_path, dataset_options={"count": 8, "min_size": 64, "max_size": 96},
                     head_options={"channels": 32, "num_convs": 1})
    out = tmp_path / "model.onnx"
    res = cli("export", run.dir, "--format", "onnx", "--out", out)
    assert res.exit_code == 0, res.output
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    pre = json.loads(meta["zoo.preprocessing"])
    assert pre["fit"] == "pad" and pre["pad_value"] == [round(m * 255) for m in pre["mean"]]
