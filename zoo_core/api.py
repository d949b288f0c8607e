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
from .data import build_transforms, find_images, open_image, scan_images
from .errors import ZooError
from .plugins import get_zoo
from .trainer import TrainResult, build_data, data_loader, evaluate, infer_dataset, pick_device, rebuild
from .trainer import train as _train


def train(task: str, **settings: Any) -> TrainResult:
    """Train a task; keyword arguments are the CLI's flags (config=, resume=, epochs=, data=, ...)."""
    return _train(task, **settings)


class _Predictor:
    """Batching, loading and naming shared by a trained run and a pretrained backbone; a subclass
    sets data_config, transform and device, and turns one batch into predictions."""

    data_config: DataConfig

    def _predict_batch(self, x: torch.Tensor, top_k: int) -> list[dict[str, Any]]:
        raise NotImplementedError

    @torch.no_grad()
    def predict(self, images: Iterable[str | Path | Image.Image], top_k: int = 5, batch_size: int = 32) -> list[dict[str, Any]]:
        """One prediction per image (paths or PIL images), in order. Unreadable files raise ZooError."""
        images = list(images)
        out: list[dict[str, Any]] = []
        for start in range(0, len(images), batch_size):
            chunk = images[start:start + batch_size]
            x = torch.stack([self.transform(open_image(im, self.data_config.channels)) for im in chunk]).to(self.device)
            for im, p in zip(chunk, self._predict_batch(x, top_k)):
                out.append({"image": str(im) if not isinstance(im, Image.Image) else "<PIL image>", **p})
        return out

    def predict_paths(self, paths: Iterable[str | Path], top_k: int = 5) -> tuple[list[dict], list[tuple[str, str]]]:
        """Predictions for files and folders (searched recursively); unreadable files are skipped and returned."""
        good, skipped = scan_images(find_images(paths))
        return (self.predict(good, top_k=top_k) if good else []), skipped


class Run(_Predictor):
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

    def _predict_batch(self, x: torch.Tensor, top_k: int) -> list[dict[str, Any]]:
        return self.task.predict(self.model(x), self.info, top_k=top_k)

    def format_prediction(self, prediction: dict[str, Any]) -> str:
        return self.task.format_prediction(prediction)

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


def format_top(prediction: dict[str, Any]) -> str:
    return "  ".join(f"{t['label']} {t['probability']:.3f}" for t in prediction["top"])


class Pretrained(_Predictor):
    """A backbone as it was pretrained, with its own classifier and classes: the first step of the
    textbook (load VGG16, show it a cat, get 'tabby'). `zoo predict efficientnet_lite0 cat.jpg`."""

    def __init__(self, backbone: str, device: str = "auto", image_size: int | None = None):
        self.name = backbone
        self.backbone = get_zoo().backbones.create(backbone, pretrained=True, image_size=image_size)
        kept = self.backbone.pretrained_classifier()
        if kept is None:
            raise ZooError(f"backbone '{backbone}' has no pretrained classifier to predict with; train a head on it: "
                           f"zoo train classify --backbone {backbone} --data DIR")
        self.classifier, self.labels, self.label_ids = kept
        self.data_config = self.backbone.data_config
        _, self.transform = build_transforms(self.data_config, "none")
        self.device = pick_device(device)
        self.backbone.to(self.device).eval()
        self.classifier.to(self.device).eval()

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.backbone(x.to(self.device)))

    def _predict_batch(self, x: torch.Tensor, top_k: int) -> list[dict[str, Any]]:
        probs = self.logits(x).float().softmax(dim=1)
        values, indices = probs.topk(min(top_k, probs.shape[1]), dim=1)
        out = []
        for val, idx in zip(values, indices):
            top = [{"label": self.labels[int(i)], "probability": round(float(v), 6),
                    **({"id": self.label_ids[int(i)]} if self.label_ids else {})} for v, i in zip(val, idx)]
            out.append({"label": top[0]["label"], "probability": top[0]["probability"], "top": top})
        return out

    def format_prediction(self, prediction: dict[str, Any]) -> str:
        return format_top(prediction)


def resolve_target(target: str) -> tuple[str, Any]:
    """What `zoo predict/inspect TARGET` means: ("run", Path) for a run directory, ("backbone", name)
    for a registered backbone. A directory wins over a backbone of the same name."""
    path = Path(target)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ZooError(f"{target}: not a zoo run directory (no config.json)")
        return "run", path
    backbones = get_zoo().backbones
    if target in backbones:
        return "backbone", target
    if path.exists():
        raise ZooError(f"{target}: a file, not a run directory or a backbone name")
    from .errors import did_you_mean

    raise ZooError(f"'{target}' is neither a run directory nor a backbone{did_you_mean(target, backbones.names())}; "
                   "zoo list shows backbones")


def load_pretrained(backbone: str, device: str = "auto") -> Pretrained:
    """A pretrained backbone with its original classifier: load_pretrained("efficientnet_lite0").predict(["cat.jpg"])."""
    return Pretrained(backbone, device=device)
