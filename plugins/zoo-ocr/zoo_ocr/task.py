"""The ocr task: a line of text of any length. Images are resized to the model's height with their width
in proportion (at most the input width: wider lines are squeezed), and padded in a batch to the widest one
with each image's own background (its median grey); the padding is excluded from the loss and from
decoding (each image's own time steps: its share of the padded width). Inside the GRU the padding is
seen (ONNX files have one input), which batches of similar widths keep small."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torchvision.transforms import v2 as T
from zoo_core import Batch, DataConfig, Geometry, Prediction, Setting, StepOutput, Task, ZooError, draw_caption, to_sample

from . import CTC
from .decode import constraint, read_beam, read_greedy
from .metrics import OcrMetrics
from .model import logits_of, valid_steps

PAD_MULTIPLE = 8  # a batch's width is rounded up to this: a whole number of time steps for usual strides


@dataclass
class TextPrediction(Prediction):
    text: str = ""
    confidence: float = 0.0  # P(text | image) under CTC
    characters: list[tuple[str, float]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "confidence": round(self.confidence, 5),
                "characters": [{"char": c, "confidence": p} for c, p in self.characters]}

    def caption(self) -> str:
        return f"{self.text!r} {self.confidence:.3f}"

    def draw(self, image):
        k = max(1, 48 // max(1, image.height))  # a line of text is small: enlarge it to be read
        return draw_caption(image.resize((image.width * k, image.height * k)) if k > 1 else image, self.caption())


class TextLine:
    """A sample's image to the model's height, width in proportion (clamped to [height / 2, input width]),
    normalised; the "fill" it should be padded with (its median, normalised) and the Geometry. With
    `augment`: the width stretched by up to 15%, a slight rotation and shear, brightness and contrast."""

    def __init__(self, dc: DataConfig, augment: bool = False):
        _, self.height, self.max_width = dc.input_size
        self.min_width = max(4, self.height // 2)
        self.augment = augment
        self.finish = T.Compose([T.ToDtype(torch.float32, scale=True), T.Normalize(dc.mean, dc.std)])
        self.jitter = T.ColorJitter(brightness=0.3, contrast=0.3)

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        sample = to_sample(sample["image"], sample.get("target"), sample.get("id", ""))
        image = sample["image"]
        h0, w0 = image.shape[-2:]
        fill = [float(v) for v in image.flatten(1).float().median(dim=1).values]
        stretch = 1.0
        if self.augment:
            stretch = float(torch.empty(1).uniform_(0.85, 1.15))
            image = T.RandomAffine(degrees=2, shear=(-8, 8), fill=[round(f) for f in fill])(image)
            image = self.jitter(image)
        w1 = int(min(self.max_width, max(self.min_width, round(w0 * self.height / h0 * stretch))))
        image = T.functional.resize(image, [self.height, w1], antialias=True)
        sample["image"] = self.finish(image)
        sample["fill"] = self.finish(torch.tensor(fill, dtype=torch.uint8).view(-1, 1, 1))[:, 0, 0]
        sample["geometry"] = Geometry((int(h0), int(w0)), (self.height, w1), (w1 / w0, self.height / h0), (0.0, 0.0))
        return sample


class OcrTask(Task):
    name = "ocr"
    description = "read a line of text of any length: CRNN + CTC (default: captchas and rendered lines)"
    output = CTC
    # From scratch on your own lines too: a text CNN learns strokes faster than ImageNet features transfer.
    defaults = {"dataset": "text-lines", "backbone": "ocr-cnn", "pretrained": False, "head": "crnn", "loss": "ctc",
                "mode": "finetune", "backbone_lr_mult": 1.0, "epochs": 30, "batch_size": 32, "lr": 2e-3,
                "augment": "light", "image_size": 32}
    primary_metric = "val_cer"
    primary_mode = "min"
    fit = "pad"  # the aspect ratio is kept: see TextLine
    dynamic_size = ("width",)
    predict_options = (
        Setting("decoder", str, "greedy", "greedy (best path) or beam (CTC prefix beam search).", choices=("greedy", "beam")),
        Setting("beam_width", int, 10, "Prefixes the beam search keeps per step.", min=1, max=200),
        Setting("pattern", str, "", "Only read text matching this regular expression, e.g. '[A-Z0-9]{4,8}' (beam)."),
        Setting("lexicon", str, "", "Only read text listed in this file, one per line (beam)."),
    )

    def __init__(self):
        self.data_config: DataConfig | None = None

    def transforms(self, data_config: DataConfig, augment: str):
        if augment not in ("standard", "light", "none"):
            raise ZooError(f"unknown augment '{augment}': use one of standard, light, none")
        self.data_config = data_config
        return TextLine(data_config, augment != "none"), TextLine(data_config)

    def collate(self, samples: list[dict[str, Any]]) -> Batch:
        c, h = samples[0]["image"].shape[:2]
        width = max(s["image"].shape[-1] for s in samples)
        width = -(-width // PAD_MULTIPLE) * PAD_MULTIPLE
        inputs = torch.empty(len(samples), c, h, width)
        for i, s in enumerate(samples):
            inputs[i] = s.get("fill", torch.zeros(c)).view(-1, 1, 1)
            inputs[i, :, :, : s["image"].shape[-1]] = s["image"]
        fraction = torch.tensor([s["image"].shape[-1] / width for s in samples])
        geometry = [dataclasses.replace(s["geometry"], input_size=(h, width)) if s.get("geometry") else None for s in samples]
        ids = [s.get("id", "") for s in samples]
        targets = None
        if all(isinstance(s.get("target"), dict) for s in samples):
            labels = [s["target"]["labels"] for s in samples]
            targets = {"labels": torch.cat(labels) if labels else torch.zeros(0, dtype=torch.long),
                       "lengths": torch.tensor([len(x) for x in labels], dtype=torch.long), "fraction": fraction,
                       "texts": [s["target"]["text"] for s in samples], "ids": ids}
        return Batch(inputs, targets, geometry, ids)

    def step(self, model: nn.Module, batch: Batch, loss_fn: Any, optimizer: str = "main") -> StepOutput:
        logits = model(batch.inputs)
        out = StepOutput.from_loss(loss_fn(logits, batch.targets))
        out.outputs = {"logits": logits, "inputs": batch.inputs}  # the inputs: the report's pictures
        return out

    def metrics(self, info: dict[str, Any]) -> OcrMetrics:
        return OcrMetrics(info, self.data_config)

    def predict(self, outputs: Any, geometry, info: dict[str, Any], decoder: str = "greedy", beam_width: int = 10,
                pattern: str = "", lexicon: str = "", **options: Any) -> list[TextPrediction]:
        logits = logits_of(outputs).float().cpu()
        allowed = constraint(pattern, lexicon)
        alphabet = str(info["alphabet"])
        fraction = torch.tensor([(g.original_size[1] * g.scale[0]) / g.input_size[1] if g is not None else 1.0
                                 for g in geometry] if geometry else [1.0] * len(logits))
        steps = valid_steps(fraction, logits.shape[1])
        log_probs = logits.log_softmax(-1)
        out = []
        for i in range(len(logits)):
            lp = log_probs[i, : int(steps[i])]
            if decoder == "beam" or allowed is not None:
                r = read_beam(lp, alphabet, beam_width, allowed)
            else:
                r = read_greedy(lp, alphabet)
            out.append(TextPrediction(r.text, r.confidence, r.characters))
        return out

    def deploy(self, model: nn.Module, info: dict[str, Any]) -> tuple[nn.Module, list[str]]:
        """Output "scores": (B, T, 1 + len(alphabet)) probabilities per time step, index 0 the blank, index i
        the metadata's info.alphabet[i - 1]. T is the input width over the model's stride; an image padded
        into a batch owns the first ceil(T x its width / the batch's width) steps. Greedy decoding: argmax
        per step, repeats merged, blanks dropped (README, "Reading text")."""
        return _Softmax(model), ["scores"]

    def undeploy(self, outputs: dict[str, torch.Tensor], info: dict[str, Any]) -> torch.Tensor:
        return next(iter(outputs.values())).clamp_min(1e-12).log()  # log-probabilities are logits to a softmax


class _Softmax(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).softmax(-1)
