"""The Python API, mirroring the CLI:

    import zoo_core as zoo
    result = zoo.train("classify", data="pets/", epochs=5)       # zoo train classify --data pets/ --epochs 5
    run = zoo.load_run(result.run_dir)                          # zoo predict RUN ...
    run.predict(["cat.jpg", pil_image], top_k=3)
    run.evaluate("pets-test/")                                  # zoo eval RUN --data pets-test/
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import torch
from PIL import Image

from .components import DataConfig
from .config import merge, normalise
from .data import build_transforms, find_images, load_image, scan_images, to_mode
from .errors import ZooError
from .plugins import get_zoo
from .trainer import TrainResult, build_data, data_loader, evaluate, infer_dataset, pick_device, rebuild
from .trainer import train as _train


def train(task: str, **settings: Any) -> TrainResult:
    """Train a task; keyword arguments are the CLI's flags (config=, resume=, epochs=, data=, ...)."""
    return _train(task, **settings)


class Run:
    """A trained run, rebuilt from its directory: config.json + best.safetensors."""

    def __init__(self, run_dir: str | Path, which: str = "best", device: str = "auto"):
        self.dir = Path(run_dir)
        self.model, self.config, self.task = rebuild(self.dir, which)
        self.info = self.config["model"]["info"]
        self.data_config = DataConfig.from_dict(self.config["model"]["data_config"])
        _, self.transform = build_transforms(self.data_config, "none")
        self.device = pick_device(device)
        self.model.to(self.device)

    @property
    def classes(self) -> list[str] | None:
        return self.info.get("classes")

    @torch.no_grad()
    def predict(self, images: Iterable[str | Path | Image.Image], top_k: int = 5, batch_size: int = 32) -> list[dict[str, Any]]:
        """One prediction per image (paths or PIL images), in order. Unreadable files raise ZooError."""
        images = list(images)
        out: list[dict[str, Any]] = []
        for start in range(0, len(images), batch_size):
            chunk = images[start:start + batch_size]
            x = torch.stack([self.transform(self._load(im)) for im in chunk]).to(self.device)
            preds = self.task.predict(self.model(x), self.info, top_k=top_k)
            for im, p in zip(chunk, preds):
                out.append({"image": str(im) if not isinstance(im, Image.Image) else "<PIL image>", **p})
        return out

    def predict_paths(self, paths: Iterable[str | Path], top_k: int = 5) -> tuple[list[dict], list[tuple[str, str]]]:
        """Predictions for files and folders (searched recursively); unreadable files are skipped and returned."""
        good, skipped = scan_images(find_images(paths))
        return (self.predict(good, top_k=top_k) if good else []), skipped

    def _load(self, image: str | Path | Image.Image) -> Image.Image:
        if isinstance(image, Image.Image):
            return to_mode(image, self.data_config.channels)
        try:
            return load_image(image, self.data_config.channels)
        except Exception as e:
            raise ZooError(f"{image}: cannot read image ({type(e).__name__})") from None

    def evaluate(self, data: str | Path, dataset: str | None = None, batch_size: int = 64, workers: int = -1):
        """Metrics of the model on labelled data (a val/ folder if the data has train/ and val/).
        Returns (scores, metrics object): scores = {"loss": ..., <task metrics>...}."""
        zoo = get_zoo()
        train_cfg = self.config["train"]
        cfg = merge(normalise(train_cfg, "run config"), {
            "data": str(data), "dataset": dataset or infer_dataset(self.task, zoo, str(data)),
            "val_fraction": 1.0, "augment": "none", "batch_size": batch_size, "workers": workers})
        splits = build_data(zoo, cfg, self.data_config, log=lambda m: None, reference_info=self.info)
        if len(splits.val) == 0:
            raise ZooError(f"{data}: no readable labelled images to evaluate")
        loss_fn = zoo.losses.create(cfg["loss"], self.info, **cfg["loss_options"])
        metrics = self.task.metrics(self.info)
        loader = data_loader(splits.val, cfg, self.device, splits, shuffle=False)
        loss, scores = evaluate(self.model, loader, loss_fn, metrics, self.device)
        return {"images": len(splits.val), "skipped": len(splits.skipped), "loss": loss, **scores}, metrics


def load_run(run_dir: str | Path, which: str = "best", device: str = "auto") -> Run:
    return Run(run_dir, which=which, device=device)
