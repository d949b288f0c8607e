"""Does `zoo eval` report what COCO's own tools report on `zoo detect-results`' file? A real-recipe detector
(`zoo train detect`: the offline EfficientNet-Lite0 frozen, FPN + FCOS head) scored on new generated
scenes written as a COCO instances file with sparse category ids (astronaut=1, cat=17, coffee=47, as in
COCO where ids are not 1..N), three ways: `zoo eval --data`, and pycocotools' and faster-coco-eval's
COCOeval on `zoo detect-results --annotations`. Also the old way for contrast: category ids 1..N in the
model's class order, which a sparse-id file scores near zero.

    pip install -e '.[test]' -r plugins/all.txt
    python bench/detect_coco_parity.py              # a few minutes on the 2-core VM (training included)
    python bench/detect_coco_parity.py --quick      # 200 training scenes, 6 epochs
    python bench/detect_coco_parity.py --run runs/detect-001   # score an existing detect run
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import tempfile
import time
from pathlib import Path


def coco_eval(gt_file: Path, results: Path, backend: str) -> float:
    with contextlib.redirect_stdout(io.StringIO()):
        if backend == "pycocotools":
            from pycocotools.coco import COCO
            from pycocotools.cocoeval import COCOeval
        else:
            from faster_coco_eval import COCO
            from faster_coco_eval import COCOeval_faster as COCOeval
        gt = COCO(str(gt_file))
        ev = COCOeval(gt, gt.loadRes(str(results)), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", help="an existing detect run (default: train one with the embedded recipe)")
    ap.add_argument("--images", type=int, default=120, help="new scenes to score on")
    ap.add_argument("--quick", action="store_true", help="train on 200 scenes for 6 epochs instead of the full recipe")
    args = ap.parse_args()
    from click.testing import CliRunner

    from zoo_core import generate_scenes
    from zoo_core.cli import main as zoo

    def cli(*a):
        res = CliRunner().invoke(zoo, [str(x) for x in a])
        if res.exit_code != 0:
            raise SystemExit(res.output)
        return res.stdout

    work = Path(tempfile.mkdtemp(prefix="zoo-parity-"))
    t0 = time.time()
    run = Path(args.run) if args.run else work / "run"
    if not args.run:
        quick = ["--set", "dataset.count=200", "--epochs", "6"] if args.quick else []
        cli("train", "detect", "--out", run, "-q", *quick)
    train_s = time.time() - t0
    classes = json.loads((run / "config.json").read_text())["model"]["info"]["classes"]
    sparse = {"astronaut": 1, "cat": 17, "coffee": 47}
    (work / "images").mkdir()
    images, anns = [], []
    for i, s in enumerate(generate_scenes(args.images, 12345, min_size=160, max_size=320)):
        s.image.save(work / "images" / f"n{i}.jpg", quality=95)
        images.append({"id": 1000 + i, "file_name": f"n{i}.jpg", "width": s.image.width, "height": s.image.height})
        for b, c in zip(s.boxes, s.labels):
            anns.append({"id": len(anns) + 1, "image_id": 1000 + i, "category_id": sparse[classes[c]], "iscrowd": 0,
                         "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]], "area": (b[2] - b[0]) * (b[3] - b[1])})
    gt = work / "instances.json"
    gt.write_text(json.dumps({"images": images, "annotations": anns,
                              "categories": [{"id": i, "name": n} for n, i in sparse.items()]}))
    zoo_map = json.loads(cli("eval", run, "--data", gt, "--json"))["map"]
    results = work / "results.json"
    cli("detect-results", run, work / "images", "--annotations", gt, "-o", results)
    rows = [("zoo eval --data", zoo_map)]
    for backend in ("pycocotools", "faster-coco-eval"):
        rows.append((f"{backend} on detect-results", coco_eval(gt, results, backend)))
    # the old output: ids 1..N in the model's class order
    old = json.loads(results.read_text())
    by_id = {v: k for k, v in sparse.items()}
    for r in old:
        r["category_id"] = classes.index(by_id[r["category_id"]]) + 1
    (work / "old.json").write_text(json.dumps(old))
    rows.append(("pycocotools, ids 1..N (before)", coco_eval(gt, work / "old.json", "pycocotools")))
    load = open("/proc/loadavg").read().split()[:3]
    print(f"\n{args.images} new scenes, sparse category ids; run {run} ({'given' if args.run else f'trained in {train_s:.0f} s'}); "
          f"load average {' '.join(load)}; {os.cpu_count()} CPUs\n")
    print(f"| {'scored by':<34} | mAP@0.5:0.95 | vs zoo eval |")
    print(f"|{'-' * 36}|--------------|-------------|")
    for name, value in rows:
        print(f"| {name:<34} | {value:12.4f} | {value - zoo_map:+11.4f} |")


if __name__ == "__main__":
    main()
