"""Predictors: a trained run, an exported file or a pretrained backbone, each predicting and evaluating
with its task's own transform, predictions and metrics (what the API's load_run, load_exported and
load_pretrained return, and what `zoo serve` serves)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import torch
from PIL import Image

from ..base.artifacts import load_weights
from ..base.config import merge, normalise
from ..base.device import Machine, pick_device
from ..base.errors import ZooError, did_you_mean
from ..contract.components import DataConfig, Prediction, Task, detach, new_metrics
from ..data.images import find_images, open_image
from ..model.model import ZooModel, weights_fingerprint
from ..registry.plugins import get_zoo
from ..training.loaders import data_loader
from ..training.rundir import LOSS_WEIGHTS, rebuild
from ..training.configure import infer_dataset
from ..training.data_plan import load_data
from ..training.step import evaluate
from .images import stack_full_size, tiled


def check_predict_options(task: Task, options: dict[str, Any]) -> dict[str, Any]:
    """The task's predict options, defaults filled in and each checked like a setting."""
    declared = {s.name: s for s in task.predict_options}
    for key in options:
        if key not in declared:
            raise ZooError(f"task '{task.name}' has no prediction option '{key}'{did_you_mean(key, declared)}; "
                           f"its options: {', '.join(declared) or 'none'}")
    return {name: s.check(options.get(name, s.default), "prediction option") for name, s in declared.items()}


@dataclass
class Skipped:
    """An input that could not be read while predicting: reported, never fatal to the others."""

    source: str
    reason: str


class _Images(torch.utils.data.Dataset):
    """Inputs (paths or PIL images) opened and fitted to the model by the task's eval transform, in the
    loader's worker processes: each file is decoded and resized exactly once, whichever runtime runs the model."""

    def __init__(self, items: list, transform, channels: int):
        self.items, self.transform, self.channels = items, transform, channels

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = self.items[i]
        source = "<PIL image>" if isinstance(item, Image.Image) else str(item)
        try:
            sample = self.transform({"image": open_image(item, self.channels)})
        except ZooError as e:
            return {"source": source, "error": str(e).removeprefix(f"{source}: ")}
        return {**sample, "source": source}


class _SplitCollate:
    """(the task's Batch of the readable samples or None, their sources, [(source, reason)] of the rest)."""

    def __init__(self, task: Task):
        self.task = task

    def __call__(self, samples: list[dict[str, Any]]):
        good = [s for s in samples if "error" not in s]
        bad = [Skipped(s["source"], s["error"]) for s in samples if "error" in s]
        return (self.task.collate(good) if good else None), [s["source"] for s in good], bad


RUNTIMES = ("torch", "onnx")


class Predictor:
    """A model, its task and its input recipe: images in (paths or PIL images), Predictions out, in
    the original images' pixels. Prediction uses exactly the task's validation transform.

    runtime="onnx" runs the model with ONNX Runtime (on the CPU) instead of PyTorch: the model is exported
    once (cached), and the task's undeploy() turns the file's outputs back into what predict() reads, so the
    predictions are the same either way."""

    def __init__(self, model: ZooModel, task: Task, info: dict[str, Any], data_config: DataConfig, device: str = "auto",
                 runtime: str = "torch"):
        if runtime not in RUNTIMES:
            raise ZooError(f"--runtime {runtime}: use one of {', '.join(RUNTIMES)}")
        self.model, self.task, self.info, self.data_config = model, task, info, data_config
        if isinstance(model, torch.nn.Module) and model.state_dict() and "model_fingerprint" not in info:
            # which weights made a prediction: a task checks files built with a model (a search index) against it
            self.info = {**info, "model_fingerprint": weights_fingerprint(model)}
        self.transform = task.transforms(data_config, "none")[1]
        self.runtime = runtime
        if runtime == "onnx":
            from .runtime import OnnxModule, cached_onnx

            self.device = torch.device("cpu")
            self.model = OnnxModule(cached_onnx(self), task, info)
        else:
            self.device = pick_device(device)
            self.model.to(self.device).eval()

    def predict_stream(self, images: Iterable[str | Path | Image.Image], batch_size: int = 32, workers: int | None = None,
                       progress: bool = False, **options: Any) -> Iterator[Prediction | Skipped]:
        """Predictions one by one, in order, as batches come out of a DataLoader (decoding in `workers`
        processes; default: one fewer than the CPU cores for files, none for PIL images or a few files).
        An unreadable file gives a Skipped in its place. Nothing is held beyond one batch per worker."""
        from tqdm import tqdm

        options = check_predict_options(self.task, options)
        items = list(images)
        if workers is None:
            import os

            files = not any(isinstance(im, Image.Image) for im in items)
            workers = min(4, max(1, (os.cpu_count() or 2) - 1)) if files and len(items) > 2 * batch_size else 0
        loader = torch.utils.data.DataLoader(_Images(items, self.transform, self.data_config.channels), batch_size=batch_size,
                                             num_workers=workers, collate_fn=_SplitCollate(self.task),
                                             prefetch_factor=2 if workers else None)
        with tqdm(total=len(items), unit="img", desc="predicting", disable=None if progress else True, leave=False) as bar:
            for batch, sources, skipped in loader:
                yield from skipped
                if batch is not None:
                    with torch.no_grad():
                        outputs = self._forward(batch.inputs.to(self.device), bar)
                    for source, p in zip(sources, self.task.predict(detach(outputs), batch.geometry, self.info, **options)):
                        p.source = source
                        yield p
                bar.update(len(sources) + len(skipped))

    def _forward(self, inputs: torch.Tensor, bar) -> Any:
        """The model on a batch; on overlapping tiles when the task asks for it and the images are larger."""
        tile = self.task.tile
        if not tile or max(inputs.shape[-2:]) <= tile:
            return self.model(inputs)
        if not getattr(self, "_said_tiles", False):
            bar.write(f"tiling: images larger than {tile} px are predicted in {tile}x{tile} tiles, "
                      f"{self.task.tile_overlap} px overlap")
            self._said_tiles = True
        return tiled(self.model, inputs, tile, self.task.tile_overlap, self.data_config.stride)

    def predict(self, images: Iterable[str | Path | Image.Image], batch_size: int = 32, **options: Any) -> list[Prediction]:
        """One Prediction per image, in order; `source` on each says which. Unreadable files raise ZooError."""
        out: list[Prediction] = []
        for p in self.predict_stream(images, batch_size=batch_size, workers=0, **options):
            if isinstance(p, Skipped):
                raise ZooError(f"{p.source}: {p.reason}")
            out.append(p)
        return out

    def predict_paths(self, paths: Iterable[str | Path], **options: Any) -> tuple[list[Prediction], list[tuple[str, str]]]:
        """Predictions for files, folders (searched recursively) and globs; unreadable files are skipped and returned."""
        results, skipped = [], []
        for p in self.predict_stream(expand_inputs(paths), **options):
            if isinstance(p, Skipped):
                skipped.append((p.source, p.reason))
            else:
                results.append(p)
        return results, skipped

    def draw(self, predictions: list[Prediction], path: str | Path, limit: int = 48) -> Path:
        """Each prediction drawn on its original image, side by side in one PNG."""
        from ..data.images import load_image
        from ..pictures.draw import image_grid

        shown = [p for p in predictions if p.source != "<PIL image>"][:limit]
        if shown and all(getattr(p, "full_size", False) for p in shown):  # image outputs: never shrunk into cells
            return stack_full_size([p.draw(load_image(p.source)) for p in shown], path)
        return image_grid([p.draw(load_image(p.source)) for p in shown], path, titles=[Path(p.source).name for p in shown])


def expand_inputs(paths: Iterable[str | Path]) -> list[Path]:
    """Files, folders (every image inside, recursively, sorted) and quoted globs ('photos/**/*.jpg')."""
    import glob

    out: list[Path] = []
    for p in paths:
        text = str(p)
        if not Path(text).exists() and any(c in text for c in "*?["):
            matches = sorted(glob.glob(text, recursive=True))
            if not matches:
                raise ZooError(f"{text}: no file matches this pattern")
            out += find_images(matches)
        else:
            out += find_images([p])
    return out


class Run(Predictor):
    """A trained run, rebuilt from its directory: config.json + best.safetensors."""

    def __init__(self, run_dir: str | Path, which: str = "best", device: str = "auto", runtime: str = "torch"):
        self.dir, self.which = Path(run_dir), which
        model, self.config, task = rebuild(self.dir, which)
        mc = self.config["model"]
        super().__init__(model, task, mc["info"], DataConfig.from_dict(mc["data_config"]), device, runtime)

    def _data(self, data: str | Path | None, dataset: str | None, batch_size: int, workers: int):
        """(the run's config for evaluation, the data's splits with the eval transform on both)."""
        zoo = get_zoo()
        if not self.config.get("train"):
            raise ZooError(f"{getattr(self, 'dir', 'this model')}: carries no training config to rebuild its validation "
                           "split from; give labelled data with --data DIR")
        saved = normalise(self.config["train"], "run config")
        overrides: dict[str, Any] = {"augment": "none", "batch_size": batch_size, "workers": workers}
        if data is not None:
            overrides.update(data=str(data), dataset=dataset or infer_dataset(self.task, zoo, str(data)), val_fraction=1.0)
        elif dataset is not None:
            raise ZooError("--dataset goes with --data")
        cfg = merge(saved, overrides)
        return cfg, load_data(zoo, self.task, cfg, self.data_config, log=lambda m: None, reference_info=self.info)

    def _load_loss_weights(self, loss_fn: torch.nn.Module) -> None:
        """The loss's trained parameters of the same epoch as the weights (CosFace's class weights), when the
        run has them: the validation loss is then the one training measured."""
        for name in (LOSS_WEIGHTS.get(getattr(self, "which", "best")), LOSS_WEIGHTS["model"]):
            path = getattr(self, "dir", None) and self.dir / name
            if path and path.is_file() and loss_fn.state_dict():
                load_weights(loss_fn, path)
                return

    def eval_splits(self):
        """The run's own train and validation splits, both with the evaluation transform (cached): what
        exports are checked and calibrated on."""
        if getattr(self, "_eval_splits", None) is None:
            self._eval_splits = self._data(None, None, 64, 0)[1]
        return self._eval_splits

    def evaluate_exported(self, path: str | Path) -> dict[str, float]:
        """Validation scores of an exported ONNX file on this run's own validation split."""
        scores, _ = load_exported(path, config=self.config).evaluate()
        return scores

    def evaluate(self, data: str | Path | None = None, dataset: str | None = None, batch_size: int = 64,
                 workers: int = -1):
        """Metrics on labelled data, or with no data on the run's own validation split (rebuilt from the
        saved config and seed). Returns (scores, metrics object): scores = {"loss": ..., <task metrics>...}."""
        zoo = get_zoo()
        cfg, splits = self._data(data, dataset, batch_size, workers)
        if len(splits.val) == 0:
            raise ZooError(f"{data or cfg['dataset']}: no readable labelled images to evaluate")
        loss_fn = zoo.losses.create(cfg["loss"], info=self.info, **cfg["loss_options"])
        if isinstance(loss_fn, torch.nn.Module):
            self._load_loss_weights(loss_fn)
            loss_fn.to(self.device)
        metrics = new_metrics(self.task, self.info, self.data_config)
        machine = Machine(self.device)
        loader = data_loader(splits.val, cfg, machine, splits, self.task.collate, shuffle=False)
        losses, scores = evaluate(self.task, self.model, loader, loss_fn, metrics, machine, data_config=self.data_config)
        self.last_eval_split = splits.val
        return {"images": len(splits.val), "skipped": len(splits.skipped), **losses, **scores}, metrics

    def draw_examples(self, path: str | Path, limit: int = 12) -> Path | None:
        """Predictions drawn on the first images of the last evaluated split (`zoo eval --report`)."""
        split = getattr(self, "last_eval_split", None)
        if split is None or len(split) == 0:
            return None
        raw = [split.raw[i]["image"] for i in range(min(limit, len(split)))]
        from ..pictures.draw import image_grid

        images = [open_image(im, 3) for im in raw]
        preds = self.predict(images)
        return image_grid([p.draw(im) for p, im in zip(preds, images)], path,
                          titles=[Path(str(r)).name if not isinstance(r, Image.Image) else f"#{i}" for i, r in enumerate(raw)])


class Exported(Run):
    """An exported .onnx file as a run: predict with ONNX Runtime, evaluate on the run's own validation
    split (its training config travels in the file) or on --data. No PyTorch model is involved."""

    def __init__(self, path: str | Path, config: dict[str, Any] | None = None):
        from .runtime import OnnxModule, read_onnx_metadata

        self.path = Path(path)
        meta = read_onnx_metadata(self.path)
        zoo = get_zoo()
        if meta["task"] not in zoo.tasks:
            raise ZooError(f"{path}: exported for task '{meta['task']}', which is not installed (zoo list shows tasks)")
        task = zoo.tasks.create(meta["task"])
        self.config = config or {"model": meta.get("model", {}), "train": meta.get("train")}
        info, dc = meta["info"], DataConfig.from_dict(meta["preprocessing"])
        Predictor.__init__(self, OnnxModule(self.path, task, info), task, info, dc, device="cpu")
        self.runtime = "onnx"


def load_exported(path: str | Path, config: dict[str, Any] | None = None) -> Exported:
    """An exported .onnx file: predict and evaluate with ONNX Runtime (zoo eval model.onnx)."""
    return Exported(path, config)


def load_run(run_dir: str | Path, which: str = "best", device: str = "auto", runtime: str = "torch") -> Run:
    """A run directory, a folder `pull` returned, `hf-hub:ID[@REV]`, or an exported .onnx file."""
    if str(run_dir).endswith(".onnx") and Path(run_dir).is_file():
        return load_exported(run_dir)
    if str(run_dir).startswith("hf-hub:"):
        from ..hub.hub import pull

        run_dir = pull(str(run_dir))[0]
    return Run(run_dir, which=which, device=device, runtime=runtime)


class Pretrained(Predictor):
    """A backbone with the head its weights were trained with (ImageNet's classifier): the first step of
    the textbook (load VGG16, show it a cat, get 'tabby'). The installed task whose output kind matches
    the head reads its outputs, so the core knows no classes. `zoo predict BACKBONE cat.jpg`."""

    def __init__(self, backbone: str, device: str = "auto", image_size: int | None = None, runtime: str = "torch"):
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
        super().__init__(ZooModel(net, head.module), task, head.info, net.data_config, device, runtime)


def resolve_target(target: str) -> tuple[str, Any]:
    """What `zoo predict/eval/export/inspect TARGET` means: ("run", Path) for a run directory or a model
    pulled from the Hub (`hf-hub:ID[@REV]`, into the Hugging Face cache), ("backbone", name) for a
    registered backbone. A directory wins over a backbone of the same name."""
    from ..hub.hub import PREFIX, is_timm_folder, pull

    if target.startswith(PREFIX):  # a zoo model is a run; a timm checkpoint is a backbone with its classifier
        folder = pull(target)[0]
        return ("backbone", target) if is_timm_folder(folder) else ("run", folder)
    path = Path(target)
    if path.suffix == ".onnx" and path.is_file():
        return "exported", path
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ZooError(f"{target}: not a zoo run directory (no config.json)")
        return "run", path
    if path.exists():
        raise ZooError(f"{target}: a file, not a run directory or a backbone name")
    # A path whose folder exists (runs/classify-009, /tmp/x/run) is a mistyped run, not a Hub id (NAMESPACE/NAME)
    if target.startswith(("/", ".", "~")) or (path.parent != Path(".") and path.parent.is_dir()):
        parent = path.expanduser().parent
        runs = sorted(d.name for d in parent.iterdir() if (d / "config.json").is_file()) if parent.is_dir() else []
        raise ZooError(f"{target}: no such run directory{did_you_mean(path.name, runs)}")
    backbones = get_zoo().backbones
    if target in backbones:
        return "backbone", target
    raise ZooError(f"'{target}' is neither a run directory nor a backbone{did_you_mean(target, backbones.names())}; "
                   "zoo list shows backbones")


def load_pretrained(backbone: str, device: str = "auto", runtime: str = "torch") -> Pretrained:
    """A pretrained backbone with its original head: load_pretrained(BACKBONE).predict(["cat.jpg"])."""
    return Pretrained(backbone, device=device, runtime=runtime)


def load_target(target: str, device: str = "auto", runtime: str = "torch") -> Predictor:
    """A run directory, an exported .onnx file or a pretrained backbone, as a Predictor; runtime="onnx"
    runs it with ONNX Runtime (an exported file always does)."""
    kind, what = resolve_target(target)
    if kind == "exported":
        return load_exported(what)
    if kind == "run":
        return load_run(what, device=device, runtime=runtime)
    return Pretrained(what, device=device, runtime=runtime)
