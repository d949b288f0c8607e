"""The Python API, mirroring the CLI:

    import zoo_core as zoo
    result = zoo.train(TASK, data="pets/", epochs=5)            # zoo train TASK --data pets/ --epochs 5
    run = zoo.load_run(result.run_dir)                          # zoo predict RUN ...
    for p in run.predict(["cat.jpg", pil_image]):               # Prediction objects of the run's task
        print(p.source, p.caption(), p.to_json())
    run.evaluate()                                              # zoo eval RUN (its own validation split)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import torch
from PIL import Image

from .components import DataConfig, Prediction, Task, detach
from .config import merge, normalise
from .data import find_images, open_image, scan_images
from .device import Machine, pick_device
from .errors import ZooError, did_you_mean
from .model import ZooModel
from .plugins import get_zoo
from .rundir import rebuild
from .trainer import TrainResult, data_loader, evaluate, infer_dataset, load_data
from .trainer import train as _train


def train(task: str, **settings: Any) -> TrainResult:
    """Train a task; keyword arguments are the CLI's flags (config=, resume=, epochs=, data=, ...)."""
    return _train(task, **settings)


def check_predict_options(task: Task, options: dict[str, Any]) -> dict[str, Any]:
    """The task's predict options, defaults filled in and each checked like a setting."""
    declared = {s.name: s for s in task.predict_options}
    for key in options:
        if key not in declared:
            raise ZooError(f"task '{task.name}' has no prediction option '{key}'{did_you_mean(key, declared)}; "
                           f"its options: {', '.join(declared) or 'none'}")
    return {name: s.check(options.get(name, s.default), "prediction option") for name, s in declared.items()}


class Predictor:
    """A model, its task and its input recipe: images in (paths or PIL images), Predictions out, in
    the original images' pixels. Prediction uses exactly the task's validation transform."""

    def __init__(self, model: ZooModel, task: Task, info: dict[str, Any], data_config: DataConfig, device: str = "auto"):
        self.model, self.task, self.info, self.data_config = model, task, info, data_config
        self.transform = task.transforms(data_config, "none")[1]
        self.device = pick_device(device)
        self.model.to(self.device).eval()

    @torch.no_grad()
    def predict(self, images: Iterable[str | Path | Image.Image], batch_size: int = 32, **options: Any) -> list[Prediction]:
        """One Prediction per image, in order; `source` on each says which. Unreadable files raise ZooError."""
        options = check_predict_options(self.task, options)
        images = list(images)
        out: list[Prediction] = []
        for start in range(0, len(images), batch_size):
            chunk = images[start:start + batch_size]
            samples = [self.transform({"image": open_image(im, self.data_config.channels)}) for im in chunk]
            batch = self.task.collate(samples)
            outputs = self.model(batch.inputs.to(self.device))
            for im, p in zip(chunk, self.task.predict(detach(outputs), batch.geometry, self.info, **options)):
                p.source = str(im) if not isinstance(im, Image.Image) else "<PIL image>"
                out.append(p)
        return out

    def predict_paths(self, paths: Iterable[str | Path], **options: Any) -> tuple[list[Prediction], list[tuple[str, str]]]:
        """Predictions for files and folders (searched recursively); unreadable files are skipped and returned."""
        good, skipped = scan_images(find_images(paths))
        return (self.predict(good, **options) if good else []), skipped

    def draw(self, predictions: list[Prediction], path: str | Path, limit: int = 48) -> Path:
        """Each prediction drawn on its original image, side by side in one PNG."""
        from .data import load_image
        from .draw import image_grid

        shown = [p for p in predictions if p.source != "<PIL image>"][:limit]
        return image_grid([p.draw(load_image(p.source)) for p in shown], path, titles=[Path(p.source).name for p in shown])


class Run(Predictor):
    """A trained run, rebuilt from its directory: config.json + best.safetensors."""

    def __init__(self, run_dir: str | Path, which: str = "best", device: str = "auto"):
        self.dir = Path(run_dir)
        model, self.config, task = rebuild(self.dir, which)
        mc = self.config["model"]
        super().__init__(model, task, mc["info"], DataConfig.from_dict(mc["data_config"]), device)

    def evaluate(self, data: str | Path | None = None, dataset: str | None = None, batch_size: int = 64,
                 workers: int = -1):
        """Metrics on labelled data, or with no data on the run's own validation split (rebuilt from the
        saved config and seed). Returns (scores, metrics object): scores = {"loss": ..., <task metrics>...}."""
        zoo = get_zoo()
        saved = normalise(self.config["train"], "run config")
        overrides: dict[str, Any] = {"augment": "none", "batch_size": batch_size, "workers": workers}
        if data is not None:
            overrides.update(data=str(data), dataset=dataset or infer_dataset(self.task, zoo, str(data)), val_fraction=1.0)
        elif dataset is not None:
            raise ZooError("--dataset goes with --data")
        cfg = merge(saved, overrides)
        splits = load_data(zoo, self.task, cfg, self.data_config, log=lambda m: None, reference_info=self.info)
        if len(splits.val) == 0:
            raise ZooError(f"{data or cfg['dataset']}: no readable labelled images to evaluate")
        loss_fn = zoo.losses.create(cfg["loss"], info=self.info, **cfg["loss_options"])
        if isinstance(loss_fn, torch.nn.Module):
            loss_fn.to(self.device)
        metrics = self.task.metrics(self.info)
        machine = Machine(self.device)
        loader = data_loader(splits.val, cfg, machine, splits, self.task.collate, shuffle=False)
        losses, scores = evaluate(self.task, self.model, loader, loss_fn, metrics, machine)
        self.last_eval_split = splits.val
        return {"images": len(splits.val), "skipped": len(splits.skipped), **losses, **scores}, metrics

    def draw_examples(self, path: str | Path, limit: int = 12) -> Path | None:
        """Predictions drawn on the first images of the last evaluated split (`zoo eval --report`)."""
        split = getattr(self, "last_eval_split", None)
        if split is None or len(split) == 0:
            return None
        raw = [split.raw[i]["image"] for i in range(min(limit, len(split)))]
        from .draw import image_grid

        images = [open_image(im, 3) for im in raw]
        preds = self.predict(images)
        return image_grid([p.draw(im) for p, im in zip(preds, images)], path,
                          titles=[Path(str(r)).name if not isinstance(r, Image.Image) else f"#{i}" for i, r in enumerate(raw)])


def load_run(run_dir: str | Path, which: str = "best", device: str = "auto") -> Run:
    """A run directory, a folder `pull` returned, or `hf-hub:ID[@REV]`."""
    if str(run_dir).startswith("hf-hub:"):
        run_dir = pull(str(run_dir))
    return Run(run_dir, which=which, device=device)


def pull(model: str, registry: str | Path | None = None) -> Path:
    """`zoo pull`: a pushed model (namespace/name[@revision], hf-hub:..., or a registry name) into the
    Hugging Face cache; the folder load_run() takes. From the cache alone with HF_HUB_OFFLINE=1."""
    from .hub import pull as hub_pull

    return hub_pull(model, registry)[0]


class Pretrained(Predictor):
    """A backbone with the head its weights were trained with (ImageNet's classifier): the first step of
    the textbook (load VGG16, show it a cat, get 'tabby'). The installed task whose output kind matches
    the head reads its outputs, so the core knows no classes. `zoo predict BACKBONE cat.jpg`."""

    def __init__(self, backbone: str, device: str = "auto", image_size: int | None = None):
        zoo = get_zoo()
        self.name = backbone
        net = zoo.backbones.create(backbone, pretrained=True, image_size=image_size)
        head = net.pretrained_head
        if head is None:
            raise ZooError(f"backbone '{backbone}' has no pretrained head to predict with; train one on it: "
                           f"zoo train TASK --backbone {backbone} --data DIR")
        tasks = [c for c in zoo.tasks if c.spec.output == head.output]
        if not tasks:
            raise ZooError(f"backbone '{backbone}' predicts '{head.output}' and no installed task reads that; "
                           "install the task plugin for it (zoo list shows what is installed)")
        task = zoo.tasks.create(tasks[0].name)
        super().__init__(ZooModel(net, head.module), task, head.info, net.data_config, device)


def resolve_target(target: str) -> tuple[str, Any]:
    """What `zoo predict/eval/export/inspect TARGET` means: ("run", Path) for a run directory or a model
    pulled from the Hub (`hf-hub:ID[@REV]`, into the Hugging Face cache), ("backbone", name) for a
    registered backbone. A directory wins over a backbone of the same name."""
    from .hub import PREFIX, pull

    if target.startswith(PREFIX):
        return "run", pull(target)[0]
    path = Path(target)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ZooError(f"{target}: not a zoo run directory (no config.json)")
        return "run", path
    if path.exists():
        raise ZooError(f"{target}: a file, not a run directory or a backbone name")
    backbones = get_zoo().backbones
    if target in backbones:
        return "backbone", target
    raise ZooError(f"'{target}' is neither a run directory nor a backbone{did_you_mean(target, backbones.names())}; "
                   "zoo list shows backbones")


def load_pretrained(backbone: str, device: str = "auto") -> Pretrained:
    """A pretrained backbone with its original head: load_pretrained(BACKBONE).predict(["cat.jpg"])."""
    return Pretrained(backbone, device=device)


def load_target(target: str, device: str = "auto") -> Predictor:
    """A run directory or a pretrained backbone, as a Predictor."""
    kind, what = resolve_target(target)
    return load_run(what, device=device) if kind == "run" else Pretrained(what, device=device)
