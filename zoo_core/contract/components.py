"""The types that flow between plugins and the core: a backbone and its features, data splits and
batches, a task, its metrics and its predictions.

Output kinds. Heads say what kind of raw output they produce, losses which kinds they accept, tasks
which kind they need, datasets which kind their targets label: a short string such as
"logits/class" or "regression/box". The core gives these strings no meaning beyond matching them
(losses may accept a wildcard: "regression/*"), so a new task brings new kinds with no core change,
and a wrong mix (a box head on a classifier) is a one-line error before any data is read.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Literal, Sequence

import torch
from torch import nn

from ..data.types import Batch, DataConfig, DataSplits, _apply, detach  # noqa: F401  (part of the contract)

if TYPE_CHECKING:
    from PIL import Image

    from ..base.settings import Setting
    from ..data.transforms import Geometry


# ------------------------------------------------------------------------------------------ backbone

@dataclass(frozen=True)
class FeatureLevel:
    """One level of a backbone's feature pyramid: its channels and its stride (input pixels per cell)."""

    channels: int
    stride: int
    name: str = ""


@dataclass
class PretrainedHead:
    """The head a backbone's weights were trained with (e.g. ImageNet's 1000-class classifier), with
    the facts a task needs to read its outputs (e.g. {"classes": [...], "class_ids": [...]}).
    `zoo predict BACKBONE` asks the task whose output kind matches to predict with it."""

    module: nn.Module
    output: str
    info: dict[str, Any]


class Backbone(nn.Module):
    """A feature extractor with two views of an image:

    - forward(x) -> pooled features (B, num_features), for heads with input="pooled";
    - forward_features(x) -> a feature pyramid, a list of (B, C_i, H_i, W_i) maps from shallow to deep
      as `feature_info` describes them, for heads with input="pyramid" (boxes, masks, heatmaps).
    """

    num_features: int
    data_config: DataConfig
    feature_info: list[FeatureLevel]
    pretrained_source: str = "none"  # what the weights came from, for the run's config and `zoo list`

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        raise TypeError(f"{type(self).__name__} gives no feature pyramid")

    def set_pretrained_head(self, head: PretrainedHead) -> None:
        """Keep the head the weights were trained with, outside the module tree on purpose: transfer
        models never train, save or count it."""
        self.__dict__["_pretrained_head"] = head

    @property
    def pretrained_head(self) -> PretrainedHead | None:
        return self.__dict__.get("_pretrained_head")


# ------------------------------------------------------------------------------------ training step

@dataclass
class StepOutput:
    """What a training or validation step gives back: the loss to minimise, its named parts (logged
    and plotted as train_loss_<name>, val_loss_<name>), the raw outputs for the metrics, and how many of
    the batch's samples the loss covers (`count`; None: all of them): an epoch's mean loss weighs each batch
    by it, so a batch whose loss is defined for a few samples only (held-out identities have no class
    weight) does not dilute it, and a loss no sample covered is left out of the record."""

    loss: torch.Tensor
    parts: dict[str, torch.Tensor] = field(default_factory=dict)
    outputs: Any = None
    count: int | None = None

    @classmethod
    def from_loss(cls, loss: torch.Tensor | dict[str, torch.Tensor], outputs: Any = None) -> "StepOutput":
        """A loss function may return one tensor, or a dict of named terms whose sum is the loss."""
        if isinstance(loss, dict):
            if not loss:
                raise ValueError("the loss returned an empty dict")
            return cls(sum(loss.values()), dict(loss), outputs)
        return cls(loss, {}, outputs)


# ------------------------------------------------------------------------------------------- metrics

class Metrics(ABC):
    """Accumulates outputs and targets over an epoch; compute() gives scalar metrics (JSON-able).

    A metric named baseline_<name> is a reference measured beside the model (zoo-embed: the untrained
    backbone's features), shown next to <name>; an exported file is not expected to reproduce it."""

    @abstractmethod
    def reset(self) -> None: ...

    @abstractmethod
    def update(self, outputs: Any, targets: Any) -> None: ...

    @abstractmethod
    def compute(self) -> dict[str, float]: ...

    def details(self) -> dict[str, Any]:
        """JSON-able detail beyond the scalars (per-class rows, a confusion matrix): `zoo eval --json`."""
        return {}

    def table(self) -> str:
        """The details as aligned text for the terminal (`zoo eval`); empty when there are none."""
        return ""

    def report(self, run_dir, prefix: str = "") -> list[str]:
        """Write plots or tables for the last compute() into run_dir; return the files written."""
        return []

    def learned_info(self) -> dict[str, Any]:
        """What the last compute() fitted on this data that the model needs to be used (decision
        thresholds tuned on validation). The trainer saves it from the best epoch into the run's info,
        so prediction, evaluation, export and pushed models use it; the next metrics get it in `info`."""
        return {}


# --------------------------------------------------------------------------------------- predictions

class Prediction(ABC):
    """One image's prediction, in the original image's pixels. It knows how to be JSON, a one-line
    caption for the terminal, and a drawing on the original image; `zoo predict`, `zoo eval --report`
    and the Python API use nothing else."""

    source: str = ""  # the image it is for (a path, or "<PIL image>"); set by the core

    @abstractmethod
    def to_json(self) -> dict[str, Any]: ...

    @abstractmethod
    def caption(self) -> str: ...

    def draw(self, image: "Image.Image") -> "Image.Image":
        """The image with the prediction drawn on it; by default the caption written over it."""
        from ..pictures.draw import draw_caption

        return draw_caption(image, self.caption())

    def record(self) -> dict[str, Any]:
        """What `zoo predict --json` prints for one image."""
        return {"image": self.source, **self.to_json()}


# ---------------------------------------------------------------------------------------------- task

class Task(ABC):
    """A task: its output kind, default recipe, transforms, training step, metrics, predictions and
    deployment. Subclass it in a plugin and register the class with register_tasks."""

    name: str = ""
    description: str = ""
    output: str = ""  # the output kind its heads produce, e.g. "logits/class"
    # Settings `zoo train <task>` uses when the user gives none: "dataset" is the embedded default
    # (used only without --data), "backbone", "head", "loss" and any hyper-parameter of settings.py.
    defaults: dict[str, Any] = {}
    # The metric that decides the best checkpoint and early stopping.
    primary_metric: str = "val_loss"
    primary_mode: Literal["min", "max"] = "min"
    # How an image is fitted to the model's input at evaluation and prediction: "crop" (shorter side,
    # centre crop: classification), "pad" (letterbox: nothing is cut off) or "stretch" (resize to the
    # input size, aspect ratio not kept) or "native" (no resizing: padded right and below, the border
    # repeated, to a multiple of the backbone's deepest stride, DataConfig.stride; image-to-image tasks, whose output is the input's
    # pixels). Geometric tasks must not crop: a box near the edge would be lost.
    fit: Literal["crop", "pad", "stretch", "native"] = "crop"
    # False when the task's inputs change every epoch by design (degradations drawn on the fly, generated
    # noise): backbone features computed once would freeze them, so the CPU recipe never turns feature
    # caching on for it and --cache-features is a one-line error.
    cache_features: bool = True
    # An image-valued task (output (B, C, s*H, s*W) for input (B, C, H, W)) whose inputs may be large: prediction
    # runs the model on overlapping tiles of at most `tile` input pixels a side (images.tiled), so memory stays
    # bounded; 0: the whole image at once.
    tile: int = 0
    tile_overlap: int = 32
    # Options of `zoo predict` and Run.predict for this task (e.g. top_k), as settings.Setting objects.
    predict_options: Sequence["Setting"] = ()
    # The Hub's pipeline tag for model cards ("image-classification", "object-detection"), if one fits.
    pipeline_tag: str | None = None
    # Input axes besides the batch whose size may vary, from ("height", "width"): ("width",) for lines of
    # text of any length, ("height", "width") for image-to-image models. Every exporter keeps them dynamic
    # and checks the file at a second size, the exported metadata says so, and the ONNX runtime feeds any
    # size through; () fixes both to the input size (a head with a flatten needs that).
    dynamic_size: tuple[str, ...] = ()

    def outputs_info(self, info: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
        """Add what heads need (e.g. num_outputs) to the dataset's info, given the run config."""
        return info

    def transforms(self, data_config: DataConfig, augment: str) -> tuple[Callable, Callable]:
        """(train, eval) transforms: sample dict -> sample dict with a normalised "image" tensor, the
        target moved with it, and "geometry". Eval is also what prediction uses, exactly."""
        from ..data.transforms import image_transforms

        return image_transforms(data_config, augment, fit=self.fit)

    def collate(self, samples: list[dict[str, Any]]) -> Batch:
        """Transformed samples into a Batch; targets torch's default collate cannot stack (boxes of
        different counts) are kept as lists."""
        from ..data.transforms import collate_samples

        return collate_samples(samples)

    def optimizer_groups(self, model: nn.Module, loss_fn: Any, cfg: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
        """Named optimizers and their parameter groups. The default: one optimizer, the head at lr, the
        backbone at lr * backbone_lr_mult, and any parameters inside the loss (CosFace's class weights)
        at lr. A GAN returns two names; step() is then called once per name, in order."""
        groups = [{"params": list(model.head.parameters()), "lr": cfg["lr"], "name": "head"},
                  {"params": list(model.backbone.parameters()), "lr": cfg["lr"] * cfg["backbone_lr_mult"], "name": "backbone"}]
        if isinstance(loss_fn, nn.Module):
            groups.append({"params": list(loss_fn.parameters()), "lr": cfg["lr"], "name": "loss"})
        return {"main": [g for g in groups if g["params"]]}

    def step(self, model: nn.Module, batch: Batch, loss_fn: Any, optimizer: str = "main") -> StepOutput:
        """One forward pass and its loss, for the named optimizer. Training runs it with gradients,
        validation the same without. A step that declares a `data_config` keyword is given the run's
        DataConfig (see run_step)."""
        outputs = model(batch.inputs)
        return StepOutput.from_loss(loss_fn(outputs, batch.targets), outputs)

    @abstractmethod
    def metrics(self, info: dict[str, Any]) -> Metrics:
        """A fresh Metrics for one pass over the data. Declare a `data_config` keyword to be given the
        run's DataConfig (the input size; what undoes the normalisation to draw the inputs)."""

    @abstractmethod
    def predict(self, outputs: Any, geometry: list["Geometry | None"], info: dict[str, Any],
                **options: Any) -> list[Prediction]:
        """A batch of raw outputs into one Prediction per image, mapped to original-image pixels
        through each image's geometry. `options` are this task's predict_options."""

    def deploy(self, model: nn.Module, info: dict[str, Any]) -> tuple[nn.Module, list[str]]:
        """The model as exported, and its output names: a task may add softmax, decoding or
        normalisation so that the file's outputs are what a user consumes."""
        return model, ["output"]

    def undeploy(self, outputs: dict[str, torch.Tensor], info: dict[str, Any]) -> Any:
        """The inverse of deploy's additions: an exported file's named outputs back into the raw outputs
        predict() and metrics() read, so that `zoo predict --runtime onnx` and `zoo eval model.onnx` reuse
        them unchanged. The default fits the default deploy (one output, the model's own)."""
        if len(outputs) == 1:
            return next(iter(outputs.values()))
        return outputs


def _accepts(method: Callable, name: str) -> bool:
    """Does `method` take a keyword `name`? Read once per function (pluggy reads a hook's arguments the
    same way), so a task written before the keyword existed keeps working unchanged."""
    func = getattr(method, "__func__", method)
    known = _ACCEPTS.get((func, name))
    if known is None:
        import inspect

        try:
            params = inspect.signature(method).parameters.values()
        except (TypeError, ValueError):
            params = ()
        known = _ACCEPTS[(func, name)] = any(p.name == name and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                                              or p.kind is p.VAR_KEYWORD for p in params)
    return known


_ACCEPTS: dict[tuple[Any, str], bool] = {}


def new_metrics(task: Task, info: dict[str, Any], data_config: DataConfig | None) -> Metrics:
    """task.metrics(info), given data_config= when the task's metrics() declares it."""
    if data_config is not None and _accepts(task.metrics, "data_config"):
        return task.metrics(info, data_config=data_config)
    return task.metrics(info)


def run_step(task: Task, model: nn.Module, batch: Batch, loss_fn: Any, optimizer: str,
             data_config: DataConfig | None) -> StepOutput:
    """task.step(...), given data_config= when the task's step() declares it."""
    if data_config is not None and _accepts(task.step, "data_config"):
        return task.step(model, batch, loss_fn, optimizer, data_config=data_config)
    return task.step(model, batch, loss_fn, optimizer)


# ------------------------------------------------------------------------------------ registrations

# The specs live in specs.py, which imports no torch, so that `zoo list` reads them without it.
from .specs import BackboneSpec, DatasetSpec, ExporterSpec, HeadSpec, LossSpec, TaskSpec  # noqa: E402,F401
