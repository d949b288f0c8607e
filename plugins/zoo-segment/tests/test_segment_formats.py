"""zoo-segment scores validation at each image's own resolution (the field's convention), with the
input-size score beside it, labelled; and reads Roboflow's placeholder category as no class."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from zoo_core import DataConfig


def test_validation_miou_is_scored_at_each_images_own_resolution():
    from zoo_segment.datasets import MaskSamples
    from zoo_segment.task import SegmentTask

    task = SegmentTask()
    _, eval_tf = task.transforms(DataConfig((3, 32, 32), (0.5,) * 3, (0.5,) * 3), "none")
    h, w = 45, 101  # not the input's shape: a 101 x 45 image letterboxed into 32 x 32
    mask = np.zeros((h, w), np.int64)
    mask[:, 1::2] = 1  # one-pixel stripes: lost at the input size, there at the image's own
    from PIL import Image

    image = Image.fromarray(np.zeros((h, w, 3), np.uint8))
    sample = eval_tf(MaskSamples([(image, lambda: mask, "x")], original=True)[0])
    batch = task.collate([sample])
    assert isinstance(batch.targets, dict) and batch.targets["original"][0].shape == (h, w)
    metrics = task.metrics({"classes": ["background", "stripe"]})
    logits = torch.zeros(1, 2, 32, 32)
    logits[:, 0] = 1.0  # predicts background everywhere
    out = task.step(lambda x: logits, batch, lambda lg, t: lg.sum() * 0)  # the loss sees the input-size masks
    metrics.update(out.outputs, batch.targets)
    scores = metrics.compute()
    stripes = mask.mean()
    assert scores["pixel_accuracy"] == pytest.approx(1 - stripes, abs=1e-6)  # counted on h x w pixels
    assert "miou_input" in scores


def test_a_roboflow_placeholder_category_is_no_class(tmp_path):
    from zoo_core import get_zoo
    from PIL import Image

    (tmp_path / "images").mkdir()
    images, anns = [], []
    for i in range(4):
        Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(tmp_path / "images" / f"c{i}.png")
        images.append({"id": i, "file_name": f"c{i}.png", "width": 40, "height": 30})
        anns.append({"id": i, "image_id": i, "category_id": 1 + i % 2, "iscrowd": 0, "bbox": [2, 3, 16, 16],
                     "area": 256, "segmentation": [[2, 3, 18, 3, 18, 19, 2, 19]]})
    cats = [{"id": 0, "name": "shapes", "supercategory": "none"}, {"id": 1, "name": "square", "supercategory": "shapes"},
            {"id": 2, "name": "box", "supercategory": "shapes"}]
    (tmp_path / "_annotations.coco.json").write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    data = get_zoo().datasets.create("coco-masks", str(tmp_path / "_annotations.coco.json"),
                                     data_config=DataConfig((3, 32, 32), (0.5,) * 3, (0.5,) * 3), seed=0, val_fraction=0.25)
    assert data.info["classes"] == ["background", "square", "box"]
