"""`zoo detect-results`: detections in the COCO results format, the file COCO's evaluation tools, leaderboards
and annotation tools read: [{"image_id", "category_id", "bbox": [x, y, w, h], "score"}, ...]."""

from __future__ import annotations

import json
from pathlib import Path

import click
from zoo_core import ZooError, atomic_write

from .boxes import EVAL_SCORE, MAX_DETECTIONS, NMS_IOU


def annotation_ids(path: str, classes: list[str]) -> tuple[dict[str, object], list[int]]:
    """From a COCO instances JSON: image ids by file name, and the category id of each of the model's
    classes, taken by name (COCO ids are sparse: 1, 17, 47 ...). A class the file does not name is an error."""
    from .datasets import read_coco_json

    doc = read_coco_json(Path(path), need_annotations=False)  # test-dev's image info file has none
    ids = {Path(str(im["file_name"])).name: im["id"] for im in doc["images"]}
    by_name = {str(c["name"]): c["id"] for c in doc["categories"]}
    missing = [c for c in classes if c not in by_name]
    if missing:
        raise ZooError(f"{path}: no category named {', '.join(repr(c) for c in missing)} among its categories "
                       f"({', '.join(by_name) or 'none'}); the model's classes are {', '.join(classes)}")
    return ids, [int(by_name[c]) for c in classes]


@click.command("detect-results")
@click.argument("run", metavar="RUN|hf-hub:ID")
@click.argument("images", nargs=-1, required=True)
@click.option("-o", "--out", type=click.Path(dir_okay=False), required=True, help="The COCO results JSON to write.")
@click.option("--annotations", type=click.Path(exists=True, dir_okay=False),
              help="A COCO instances JSON: image ids by file name and category ids by class name are taken from it "
                   "(default: the file name, and the training data's ids).")
@click.option("-t", "--score-threshold", type=click.FloatRange(0, 1), default=EVAL_SCORE, show_default=True,
              help="COCO evaluation wants low-scoring detections too.")
@click.option("--iou-threshold", type=click.FloatRange(0, 1), default=NMS_IOU, show_default=True,
              help="Per-class NMS IoU (the same default as zoo predict and zoo eval).")
@click.option("--max-detections", type=click.IntRange(min=1), default=MAX_DETECTIONS, show_default=True)
@click.option("--device", default="auto")
def detect_results(run, images, out, annotations, score_threshold, iou_threshold, max_detections, device):
    """Detect objects in IMAGES with a trained detect RUN and write them in the COCO results format.

    Decoded as zoo eval scores them (boxes clipped to the image, per-class NMS, original pixels), so
    pycocotools' mAP on this file is zoo eval's on the same images."""
    from zoo_core import load_run

    try:
        model = load_run(run, device=device)
        if model.task.name != "detect":
            raise ZooError(f"{run}: a '{model.task.name}' model; detect-results needs a detect run")
        ids, category_ids = {}, model.info.get("category_ids")
        if annotations:
            ids, category_ids = annotation_ids(annotations, list(model.info["classes"]))
        preds, skipped = model.predict_paths(images, score_threshold=score_threshold, iou_threshold=iou_threshold,
                                             max_detections=max_detections)
        if not preds:
            raise ZooError("no readable image among the inputs" + (f" (e.g. {skipped[0][0]}: {skipped[0][1]})" if skipped else ""))
        results = []
        for p in preds:
            name = Path(p.source).name
            if ids and name not in ids:
                raise ZooError(f"{p.source}: not among the images of {annotations}")
            results += p.to_coco(ids.get(name, name), category_ids)
        atomic_write(Path(out), lambda path: path.write_text(json.dumps(results)))
    except ZooError as e:
        raise click.ClickException(str(e)) from None
    for path, reason in skipped:
        click.echo(f"skipped {path}: {reason}", err=True)
    click.echo(f"wrote {len(results)} detection(s) of {len(preds)} image(s) to {out}", err=True)
