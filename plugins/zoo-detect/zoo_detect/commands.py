"""`zoo detect-results`: detections in the COCO results format, the file COCO's evaluation tools, leaderboards
and annotation tools read: [{"image_id", "category_id", "bbox": [x, y, w, h], "score"}, ...]."""

from __future__ import annotations

import json
from pathlib import Path

import click
from zoo_core import ZooError, atomic_write


@click.command("detect-results")
@click.argument("run", metavar="RUN|hf-hub:ID")
@click.argument("images", nargs=-1, required=True)
@click.option("-o", "--out", type=click.Path(dir_okay=False), required=True, help="The COCO results JSON to write.")
@click.option("--annotations", type=click.Path(exists=True, dir_okay=False),
              help="A COCO instances JSON: image ids are taken from it by file name (default: the file name).")
@click.option("-t", "--score-threshold", type=click.FloatRange(0, 1), default=0.05, show_default=True,
              help="COCO evaluation wants low-scoring detections too.")
@click.option("--iou-threshold", type=click.FloatRange(0, 1), default=0.5, show_default=True)
@click.option("--max-detections", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--device", default="auto")
def detect_results(run, images, out, annotations, score_threshold, iou_threshold, max_detections, device):
    """Detect objects in IMAGES with a trained detect RUN and write them in the COCO results format."""
    from zoo_core import load_run

    try:
        model = load_run(run, device=device)
        if model.task.name != "detect":
            raise ZooError(f"{run}: a '{model.task.name}' model; detect-results needs a detect run")
        ids = {}
        if annotations:
            try:
                ids = {Path(im["file_name"]).name: im["id"] for im in json.loads(Path(annotations).read_text())["images"]}
            except (ValueError, KeyError, TypeError):
                raise ZooError(f"{annotations}: not a COCO instances JSON with images[].file_name and id") from None
        preds, skipped = model.predict_paths(images, score_threshold=score_threshold, iou_threshold=iou_threshold,
                                             max_detections=max_detections)
        if not preds:
            raise ZooError("no readable image among the inputs" + (f" (e.g. {skipped[0][0]}: {skipped[0][1]})" if skipped else ""))
        category_ids = model.info.get("category_ids")
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
