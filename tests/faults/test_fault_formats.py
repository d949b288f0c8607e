"""Fault class 1, task data formats: damaged, malformed and hostile annotation files as other tools (or
attackers) leave them. Every case is `zoo train <task> --data BAD`: one line `Error: ...` naming the file
(and line or field where there is one), exit 1, no traceback, never the catch-all "unexpected", and no run
directory left behind. Memory bombs (a YAML alias bomb, XML entity expansion, a PNG declaring a huge
size) are refused before anything is expanded or decoded."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from .faultkit import cli_error

TINY = ["--backbone", "cnn2", "--no-pretrained", "--image-size", "32", "--epochs", "1", "--batch-size", "4",
        "--workers", "0", "--device", "cpu", "-q"]


def refused(task: str, data: Path, tmp_path: Path, *expected: str, extra=()) -> str:
    out = tmp_path / "run"
    line = cli_error("train", task, "--data", str(data), *TINY, *extra, "--out", str(out))
    for part in expected:
        assert part in line, f"{part!r} not in: {line}"
    assert not out.exists(), "a refused dataset left a run directory"
    return line


def pictures(folder: Path, n: int = 4, size=(40, 30), ext: str = "png") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        arr = np.random.default_rng(i).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(arr).save(folder / f"i{i}.{ext}")
        out.append(folder / f"i{i}.{ext}")
    return out


# -------------------------------------------------------------------------------------------- COCO

def coco(root: Path, edit=None) -> Path:
    files = pictures(root / "images")
    doc = {"images": [{"id": i + 1, "file_name": f.name, "width": 40, "height": 30} for i, f in enumerate(files)],
           "annotations": [{"id": i + 1, "image_id": i + 1, "category_id": 1 + i % 2, "bbox": [5, 5, 10, 8],
                            "area": 80, "iscrowd": 0} for i in range(len(files))],
           "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}
    if edit:
        edit(doc)
    (root / "instances.json").write_text(json.dumps(doc, indent=1))
    return root / "instances.json"


COCO_CASES = {
    "missing keys": (lambda d: d.pop("annotations"), ["missing 'annotations'"]),
    "images not a list": (lambda d: d.update(images={"id": 1}), ["'images' must be a list"]),
    "zero-width box": (lambda d: d["annotations"][1].update(bbox=[5, 5, 0, 8]), [":", "empty box"]),
    "negative-height box": (lambda d: d["annotations"][1].update(bbox=[5, 5, 4, -3]), ["empty box"]),
    "box outside the image": (lambda d: d["annotations"][2].update(bbox=[30, 5, 40, 8]), ["lies outside its 40x30"]),
    "unknown category id": (lambda d: d["annotations"][0].update(category_id=9), ["category_id 9 is not in 'categories'"]),
    "duplicate image ids": (lambda d: d["images"][1].update(id=1), ["images[1]", "image id 1 is used twice"]),
    "annotation of a missing image": (lambda d: d["annotations"][0].update(image_id=77), ["image_id 77 is not in 'images'"]),
    "width as a string": (lambda d: d["images"][0].update(width="forty"), ["images[0]", "width and height"]),
    "bbox of strings": (lambda d: d["annotations"][0].update(bbox=["5", "5", "10", "8"]), ["bbox must be"]),
    "category without a name": (lambda d: d["categories"][0].pop("name"), ["categories[0]", "non-empty name"]),
    "duplicate category names": (lambda d: d["categories"][1].update(name="a"), ["name 'a' is used twice"]),
    "iscrowd not 0 or 1": (lambda d: d["annotations"][0].update(iscrowd="yes"), ["iscrowd must be 0 or 1"]),
    "annotation not an object": (lambda d: d["annotations"].append(7), ["annotations[4] is not an object"]),
}


@pytest.mark.parametrize("case", COCO_CASES)
def test_coco_damage_is_one_line_naming_the_file(case, tmp_path):
    edit, expected = COCO_CASES[case]
    data = coco(tmp_path / "d", edit)
    refused("detect", data, tmp_path, str(data), *expected)


def test_coco_huge_non_json_file_is_refused_on_its_first_bytes(tmp_path):
    data = tmp_path / "instances.json"
    with open(data, "wb") as f:  # 3 GB of zeros, sparse on disk: never read whole
        f.truncate(3 * 2**30)
    refused("detect", data, tmp_path, str(data), "not JSON")


def test_coco_junk_text_is_one_line(tmp_path):
    data = tmp_path / "instances.json"
    data.write_text("<html><body>502 Bad Gateway</body></html>\n")
    refused("detect", data, tmp_path, str(data), "not JSON")


def test_coco_deep_nesting_is_one_line(tmp_path):
    data = tmp_path / "instances.json"
    data.write_text('{"images": ' + "[" * 200_000 + "]" * 200_000 + "}")
    refused("detect", data, tmp_path, str(data), "nested too deeply")


def test_coco_not_utf8_is_one_line_naming_the_line(tmp_path):
    data = coco(tmp_path / "d")
    text = data.read_text().replace('"i0.png"', '"caf\udce9.png"')
    data.write_bytes(text.encode("utf-8", "surrogateescape"))
    refused("detect", data, tmp_path, str(data), "not UTF-8")


def test_coco_truncated_json_names_the_line(tmp_path):
    data = coco(tmp_path / "d")
    data.write_text(data.read_text()[:-40])
    refused("detect", data, tmp_path, str(data), "not valid JSON")


def test_segment_coco_duplicate_image_ids(tmp_path):
    data = coco(tmp_path / "d", lambda d: (d["images"][2].update(id=2), [a.update(segmentation=[[5, 5, 15, 5, 15, 13]])
                                                                         for a in d["annotations"]]))
    refused("segment", data, tmp_path, str(data), "image id 2 is used twice")


# -------------------------------------------------------------------------------------------- YOLO

def yolo(root: Path, label: str = "0 0.5 0.5 0.2 0.2\n", yaml: str = "names: [a, b]\n") -> Path:
    files = pictures(root / "images")
    (root / "labels").mkdir()
    for f in files:
        (root / "labels" / f"{f.stem}.txt").write_text("1 0.4 0.4 0.2 0.2\n")
    (root / "labels" / "i1.txt").write_text(label)
    (root / "data.yaml").write_text(yaml)
    return root


YOLO_CASES = {
    "coordinate above 1": ("0 1.5 0.5 0.2 0.2\n", ["i1.txt:1", "normalised to 0..1"]),
    "negative coordinate": ("0 0.5 -0.2 0.2 0.2\n", ["i1.txt:1", "normalised to 0..1"]),
    "pixel coordinates": ("0 20 15 8 6\n", ["i1.txt:1", "normalised to 0..1"]),
    "six columns": ("0 0.5 0.5 0.2 0.2 0.9\n", ["i1.txt:1", "got 6 columns"]),
    "three columns": ("0 0.5 0.5\n", ["i1.txt:1", "got 3 columns"]),
    "class out of range": ("0 0.5 0.5 0.2 0.2\n5 0.5 0.5 0.2 0.2\n", ["i1.txt:2", "class 5 is outside the class list"]),
    "negative class": ("-1 0.5 0.5 0.2 0.2\n", ["i1.txt:1", "class -1"]),
    "words": ("cat 0.5 0.5 0.2 0.2\n", ["i1.txt:1", "expected 'class cx cy w h'"]),
    "nan": ("0 nan 0.5 0.2 0.2\n", ["i1.txt:1", "normalised to 0..1"]),
    "not UTF-8": (b"0 0.5 0.5 0.2 0.2 \xff\n", ["i1.txt:1", "not UTF-8"]),
}


@pytest.mark.parametrize("case", YOLO_CASES)
def test_yolo_label_damage_is_one_line_naming_file_and_line(case, tmp_path):
    label, expected = YOLO_CASES[case]
    root = yolo(tmp_path / "y")
    if isinstance(label, bytes):
        (root / "labels" / "i1.txt").write_bytes(label)
    else:
        (root / "labels" / "i1.txt").write_text(label)
    refused("detect", root, tmp_path, *expected)


def test_yolo_without_a_labels_folder_is_one_line(tmp_path):
    root = tmp_path / "y"
    pictures(root / "images")
    (root / "data.yaml").write_text("names: [a, b]\n")
    refused("detect", root, tmp_path, str(root), "has a label file")


def test_yolo_yaml_alias_bomb_is_refused_before_it_expands(tmp_path):
    """The billion laughs of YAML: nine levels of nine aliases, 387 million strings if expanded."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    lines.append("names: *i")
    root = yolo(tmp_path / "y", yaml="\n".join(lines) + "\n")
    refused("detect", root, tmp_path, "data.yaml:2", "aliases")


def test_yolo_data_yaml_names_wrong(tmp_path):
    root = yolo(tmp_path / "y", yaml="nc: 3\nnames: [a, b]\n")
    refused("detect", root, tmp_path, "data.yaml", "nc is 3 but 'names' lists 2")


def test_yolo_data_yaml_invalid(tmp_path):
    root = yolo(tmp_path / "y", yaml="names: [a, b\ntrain: images\n")
    refused("detect", root, tmp_path, "data.yaml", "not valid YAML")


def test_yolo_image_list_with_a_nul_byte(tmp_path):
    root = yolo(tmp_path / "y", yaml="train: train.txt\nnames: [a, b]\n")
    (root / "train.txt").write_text("images/i0.png\nimages/i\0.png\n")
    refused("detect", root, tmp_path, "train.txt:2", "NUL byte")


def test_yolo_split_path_that_does_not_exist(tmp_path):
    root = yolo(tmp_path / "y", yaml="train: images\nval: nowhere/images\nnames: [a, b]\n")
    refused("detect", root, tmp_path, "data.yaml", "nowhere/images is not a folder")


# --------------------------------------------------------------------------------------------- VOC

OBJECT = "<object><name>a</name><bndbox><xmin>5</xmin><ymin>5</ymin><xmax>20</xmax><ymax>15</ymax></bndbox></object>"


def voc(root: Path, xml: str | None = None) -> Path:
    files = pictures(root / "JPEGImages")
    (root / "Annotations").mkdir()
    for f in files:
        (root / "Annotations" / f"{f.stem}.xml").write_text(
            f"<annotation><filename>{f.name}</filename><size><width>40</width><height>30</height><depth>3</depth>"
            f"</size>\n{OBJECT}\n</annotation>\n")
    if xml is not None:
        (root / "Annotations" / "i1.xml").write_text(xml)
    return root


VOC_CASES = {
    "malformed": ("<annotation><filename>i1.png</filename><object>\n</annotation>", ["i1.xml:2", "not valid XML"]),
    "not VOC": ("<svg></svg>", ["i1.xml", "expected <annotation>"]),
    "object without a name": (f"<annotation><filename>i1.png</filename>\n<object><bndbox><xmin>5</xmin><ymin>5</ymin>"
                              "<xmax>20</xmax><ymax>15</ymax></bndbox></object></annotation>",
                              ["i1.xml:2", "without a <name>"]),
    "size not numeric": ("<annotation><filename>i1.png</filename><size><width>wide</width><height>30</height></size>"
                         f"{OBJECT}</annotation>", ["i1.xml", "<size> needs numeric"]),
    "size disagrees with the image": ("<annotation><filename>i1.png</filename><size><width>400</width><height>300"
                                      f"</height></size>{OBJECT}</annotation>", ["i1.xml", "<size> says 400x300"]),
    "billion laughs": ('<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
                       + "".join(f' <!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">\n'
                                 for i in range(1, 10))
                       + ']>\n<annotation><filename>&lol9;</filename></annotation>\n', ["i1.xml", "refused"]),
    "quadratic blowup": ('<?xml version="1.0"?>\n<!DOCTYPE a [<!ENTITY x "' + "x" * 50_000 + '">]>\n<annotation>'
                         "<filename>" + "&x;" * 50_000 + "</filename></annotation>\n", ["i1.xml", "refused"]),
    "external entity": ('<?xml version="1.0"?>\n<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
                        "<annotation><filename>&x;</filename></annotation>\n", ["i1.xml", "refused"]),
    "bndbox not numeric": (f"<annotation><filename>i1.png</filename>\n{OBJECT.replace('<xmin>5', '<xmin>five')}"
                           "</annotation>", ["i1.xml:2", "needs numeric xmin"]),
}


@pytest.mark.parametrize("case", VOC_CASES)
def test_voc_damage_is_one_line_naming_the_file(case, tmp_path):
    xml, expected = VOC_CASES[case]
    root = voc(tmp_path / "v", xml)
    refused("detect", root, tmp_path, *expected)


# ------------------------------------------------------------------------------------------- masks

def masks(root: Path, spec: object = None) -> Path:
    files = pictures(root / "images")
    (root / "masks").mkdir()
    for f in files:
        m = np.zeros((30, 40), np.uint8)
        m[5:15, 5:20] = 1
        Image.fromarray(m, mode="L").save(root / "masks" / f"{f.stem}.png")
    if spec is not None:
        (root / "classes.json").write_text(spec if isinstance(spec, str) else json.dumps(spec))
    return root


def huge_png(path: Path, w: int, h: int) -> None:
    """A valid 1x1 grey PNG whose header declares w x h: decoding it would allocate w*h bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00\x00"))
                     + chunk(b"IEND", b""))


def test_mask_of_the_wrong_size(tmp_path):
    root = masks(tmp_path / "m")
    Image.fromarray(np.zeros((20, 20), np.uint8), mode="L").save(root / "masks" / "i2.png")
    refused("segment", root, tmp_path, "i2.png", "mask is 20x20, its image i2.png is 40x30")


def test_mask_values_outside_the_classes(tmp_path):
    root = masks(tmp_path / "m", {"classes": ["background", "thing"]})
    m = np.zeros((30, 40), np.uint8)
    m[0, 0] = 7
    Image.fromarray(m, mode="L").save(root / "masks" / "i3.png")
    refused("segment", root, tmp_path, "i3.png", "values [7]")


def test_an_rgb_picture_instead_of_class_indices(tmp_path):
    root = masks(tmp_path / "m")
    Image.fromarray(np.full((30, 40, 3), 200, np.uint8)).save(root / "masks" / "i0.png")
    refused("segment", root, tmp_path, "i0.png", "a RGB mask", "colors")


def test_a_missing_mask_file(tmp_path):
    root = masks(tmp_path / "m")
    (root / "masks" / "i1.png").unlink()
    refused("segment", root, tmp_path, "i1.png", "no mask for it")


def test_a_text_file_as_a_mask(tmp_path):
    root = masks(tmp_path / "m")
    (root / "masks" / "i2.png").write_text("this is not a picture\n")
    refused("segment", root, tmp_path, "i2.png", "not readable as a mask")


@pytest.mark.parametrize("w, h", [(20000, 20000), (100000, 100000)])
def test_a_mask_declaring_a_huge_size_is_refused_before_decoding(w, h, tmp_path):
    root = masks(tmp_path / "m")
    huge_png(root / "masks" / "i1.png", w, h)
    refused("segment", root, tmp_path, "i1.png", "pixels")


SPEC_CASES = {
    "not JSON": ("classes: background, thing", ["classes.json", "not JSON"]),
    "truncated": ('{"classes": ["background", "thing"', ["classes.json", "not valid JSON"]),
    "classes as a string": ({"classes": "background,thing"}, ["classes.json", "'classes' must be a list of names"]),
    "classes missing": ({"names": ["background", "thing"]}, ["classes.json", "'classes' must be a list"]),
    "classes of numbers": ({"classes": [0, 1]}, ["classes.json", "'classes' must be a list of names"]),
    "colors of the wrong length": ({"classes": ["background", "thing"], "colors": [[0, 0, 0]]},
                                   ["classes.json", "'colors' needs one [r, g, b]"]),
    "a list at the top": (["background", "thing"], ["classes.json", "'classes' must be a list"]),
}


@pytest.mark.parametrize("case", SPEC_CASES)
def test_a_malformed_classes_json(case, tmp_path):
    spec, expected = SPEC_CASES[case]
    root = masks(tmp_path / "m", spec)
    refused("segment", root, tmp_path, *expected)


# ---------------------------------------------------------------------------------- keypoints CSV

def keypoints_csv(root: Path, row: str) -> Path:
    pictures(root)
    rows = ["image,nose_x,nose_y,tail_x,tail_y", "i0.png,10,10,30,20", "i1.png,12,11,28,22", "i2.png,9,9,31,19"]
    (root / "points.csv").write_text("\n".join(rows + [row]) + "\n")
    return root / "points.csv"


KEYPOINT_CASES = {
    "no labelled point (NaN)": ("i3.png,NaN,nan,,", [":5:", "no labelled point"]),
    "no labelled point (negative)": ("i3.png,-1,-1,-1,-1", [":5:", "no labelled point"]),
    "too few columns": ("i3.png,10,10", [":5:", "expected 5 columns"]),
    "point outside the image": ("i3.png,10,10,90,20", [":5:", "lies outside its 40x30 image"]),
    "not a number": ("i3.png,10,ten,30,20", [":5:", "coordinates must be numbers"]),
    "NUL byte in the path": ("i\0.png,10,10,30,20", [":5:", "NUL byte"]),
    "missing image": ("nowhere.png,10,10,30,20", [":5:", "no image file"]),
}


@pytest.mark.parametrize("case", KEYPOINT_CASES)
def test_keypoints_csv_damage_names_file_and_line(case, tmp_path):
    row, expected = KEYPOINT_CASES[case]
    data = keypoints_csv(tmp_path / "k", row)
    refused("keypoints", data, tmp_path, str(data), *expected)


# ---------------------------------------------------------------------------------- multitask CSV

def multitask_csv(root: Path, row: str, header: str = "file,age,gender") -> Path:
    pictures(root, 6)
    rows = [header, "i0.png,20,m", "i1.png,30,f", "i2.png,40,m", "i3.png,50,f", "i4.png,25,m"]
    (root / "faces.csv").write_text("\n".join(rows + [row]) + "\n")
    return root / "faces.csv"


def test_multitask_nul_byte_in_a_path(tmp_path):
    data = multitask_csv(tmp_path / "t", "i\0.png,30,f")
    refused("multitask", data, tmp_path, f"{data}:7", "NUL byte")


def test_multitask_too_few_columns(tmp_path):
    pictures(tmp_path / "t", 2)
    data = tmp_path / "t" / "faces.csv"
    data.write_text("file\ni0.png\ni1.png\n")
    refused("multitask", data, tmp_path, str(data), "no target columns")


def test_multitask_a_word_in_a_number_column(tmp_path):
    data = multitask_csv(tmp_path / "t", "i5.png,old,f", header="file,age,gender")
    refused("multitask", data, tmp_path, f"{data}:7", "'old'",
            extra=["--set", "dataset.targets=age:regression,gender:binary"])


def test_multitask_nan_is_missing_not_a_class(tmp_path):
    """pandas writes a missing value as NaN: it is missing (not learned), never a class named 'NaN'."""
    from zoo_core import DataConfig, get_zoo

    pictures(tmp_path / "t", 6)
    data = multitask_csv(tmp_path / "t", "i5.png,NaN,nan")
    splits = get_zoo().datasets.create("multitask-csv", str(data), data_config=DataConfig((3, 32, 32), (0.5,) * 3,
                                       (0.5,) * 3), seed=0, val_fraction=0.2)
    classes = json.dumps(splits.info)
    assert "NaN" not in classes and '"nan"' not in classes, classes


# ----------------------------------------------------------------------------------- classify CSV

def labels_csv(root: Path, row: str) -> Path:
    pictures(root, 6)
    rows = ["path,label", "i0.png,a", "i1.png,b", "i2.png,a", "i3.png,b", "i4.png,a"]
    (root / "labels.csv").write_text("\n".join(rows + [row]) + "\n")
    return root / "labels.csv"


@pytest.mark.parametrize("label", ["NaN", "nan", "", "N/A", "None"])
def test_a_missing_csv_label_names_file_and_line(label, tmp_path):
    data = labels_csv(tmp_path / "c", f"i5.png,{label}")
    refused("classify", data, tmp_path, f"{data}:7", "label is missing")


def test_a_nul_byte_in_a_csv_path_names_file_and_line(tmp_path):
    data = labels_csv(tmp_path / "c", "i\0.png,a")
    refused("classify", data, tmp_path, f"{data}:7", "NUL byte")


def test_a_nul_byte_in_a_multilabel_csv_path(tmp_path):
    data = labels_csv(tmp_path / "c", "i\0.png,a")
    data.write_text(data.read_text().replace("path,label", "path,labels"))
    refused("multilabel", data, tmp_path, f"{data}:7", "NUL byte")


def test_a_nan_multilabel_label(tmp_path):
    data = labels_csv(tmp_path / "c", "i5.png,a;NaN")
    data.write_text(data.read_text().replace("path,label", "path,labels"))
    refused("multilabel", data, tmp_path, f"{data}:7", "missing label")


# ---------------------------------------------------------------------------------- keypoints COCO

@pytest.mark.parametrize("content, expected", [
    (b'{"images": [], "annotations": [], "categories": [{"name": "caf\xe9"}]}', "not UTF-8"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    (b"GIF89a not json at all", "not JSON"),
])
def test_keypoints_coco_damage_is_one_line(content, expected, tmp_path):
    data = tmp_path / "person_keypoints.json"
    data.write_bytes(content)
    refused("keypoints", data, tmp_path, str(data), expected, extra=["--dataset", "coco-keypoints"])


def test_detect_results_reads_an_image_info_file_without_annotations(tmp_path):
    """COCO's test-dev ships image_info_test-dev2017.json: images and categories, no annotations."""
    from zoo_detect.commands import annotation_ids

    info = tmp_path / "image_info.json"
    info.write_text(json.dumps({"images": [{"id": 5, "file_name": "x.jpg", "width": 4, "height": 3}],
                                "categories": [{"id": 17, "name": "cat"}, {"id": 1, "name": "person"}]}))
    assert annotation_ids(str(info), ["person", "cat"]) == ({"x.jpg": 5}, [1, 17])
