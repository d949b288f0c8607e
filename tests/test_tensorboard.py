"""--tensorboard: the run's scalars (per step and per epoch) and the task report's pictures as TensorBoard
events in RUN/tensorboard, read back with TensorBoard's own EventAccumulator, for two tasks."""

from __future__ import annotations

import json

import pytest

from zoo_core import train

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

pytestmark = pytest.mark.zoo_plugins("classify", "localize")  # trains them: skipped without

TINY = dict(backbone="cnn2", pretrained=False, image_size=16, batch_size=8, workers=0, quiet=True, device="cpu")


def events(run):
    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


@pytest.mark.parametrize("task,extra,picture", [
    ("classify", {}, "report/confusion_matrix"),
    ("localize", {"dataset_options": {"count": 48}}, "report/val_boxes"),
])
def test_events_hold_every_logged_number_and_the_report_pictures(tmp_path, image_folder, task, extra, picture):
    data = {"data": str(image_folder())} if task == "classify" else {}
    out = tmp_path / "run"
    train(task, out=str(out), epochs=2, tensorboard=True, **data, **TINY, **extra)
    acc = events(out)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    scalars = set(acc.Tags()["scalars"])
    expected = {"step/loss", "step/lr", "epoch/lr"} | {
        f"{k.split('_', 1)[0]}/{k.split('_', 1)[1]}" for k in rows[0] if k.startswith(("train_", "val_"))}
    assert expected <= scalars, expected - scalars
    # one point per epoch, equal to metrics.jsonl; one per training step
    val_loss = acc.Scalars("val/loss")
    assert [e.step for e in val_loss] == [1, 2]
    assert [round(e.value, 5) for e in val_loss] == [round(r["val_loss"], 5) for r in rows]
    steps = acc.Scalars("step/loss")
    assert [e.step for e in steps] == list(range(len(steps))) and len(steps) >= 2
    # the pictures the task's report wrote at its best epochs
    report_pngs = {f"report/{p.stem}" for p in out.glob("*.png") if p.name != "curves.png"}
    assert report_pngs <= set(acc.Tags()["images"])
    if picture:
        assert picture in acc.Tags()["images"]


def test_off_by_default(tmp_path, image_folder):
    out = tmp_path / "run"
    train("classify", data=str(image_folder()), out=str(out), **TINY)
    assert not (out / "tensorboard").exists()
