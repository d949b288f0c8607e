"""The CRNN: a small text CNN (or any backbone's feature map), the height pooled away and the width read
as time by a bidirectional GRU, one score per character and time step; trained with CTC.

Index 0 of the scores is CTC's blank (BLANK, said once here); index i > 0 is info["alphabet"][i - 1]."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from zoo_core import Backbone, DataConfig, FeatureLevel, ZooError

BLANK = 0
WIDTH_PER_HEIGHT = 8  # the widest line the default input takes, in heights (32 x 256): wider ones are squeezed
TIME_STRIDE = 4  # input pixels per time step of ocr-cnn


class OcrCNN(Backbone):
    """Six 3x3 conv blocks (BatchNorm, ReLU); max-pooling halves height and width twice, then the height
    alone twice: a 32-pixel line becomes 2 rows of 128 channels and one column per 4 pixels of width,
    enough time steps for CTC to put a blank between two equal characters (the source's CRNN, narrower,
    so that the default trains on a CPU)."""

    def __init__(self, *, in_chans: int | None = None, image_size: int | None = None):
        super().__init__()
        height = image_size or 32
        if height % 16:
            raise ZooError(f"backbone 'ocr-cnn': --image-size is the line height and must be a multiple of 16, got {height}")
        c = in_chans or 1
        self.data_config = DataConfig((c, height, height * WIDTH_PER_HEIGHT), (0.5,) * c, (0.5,) * c, "bilinear", 1.0)

        def block(cin: int, cout: int, pool: tuple[int, int] | None) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                    *([nn.MaxPool2d(pool, pool)] if pool else [])]

        self.body = nn.Sequential(*block(c, 32, (2, 2)), *block(32, 48, (2, 2)), *block(48, 64, None),
                                  *block(64, 96, (2, 1)), *block(96, 96, None), *block(96, 128, (2, 1)))
        self.num_features = 128
        self.feature_info = [FeatureLevel(128, TIME_STRIDE, "body")]  # the stride along the width (time)
        self.pretrained_source = "none"

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.body(x)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).mean(dim=(2, 3))


def ocr_cnn(name: str, *, pretrained: bool = False, in_chans: int | None = None, image_size: int | None = None) -> OcrCNN:
    if pretrained:
        raise ZooError("backbone 'ocr-cnn' has no pretrained weights; train it from scratch with --no-pretrained")
    return OcrCNN(in_chans=in_chans, image_size=image_size)


class CRNNHead(nn.Module):
    """(B, C, h, w) feature map -> (B, w, classes) scores: the height averaged, each column a time step."""

    def __init__(self, channels: int, classes: int, hidden: int, layers: int, dropout: float, level: int):
        super().__init__()
        self.level = level
        self.norm = nn.LayerNorm(channels)
        # to the GRU's own output width: torch.onnx's GRU converter assumes every layer takes that width
        self.proj = nn.Linear(channels, 2 * hidden)
        self.rnn = nn.GRU(2 * hidden, hidden, num_layers=layers, bidirectional=True, batch_first=True,
                          dropout=dropout if layers > 1 else 0.0)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(2 * hidden, classes)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = features[self.level].mean(dim=2).transpose(1, 2)  # (B, T, C)
        x, _ = self.rnn(self.proj(self.norm(x)))
        return self.out(self.drop(x))


def crnn_head(backbone: Backbone, info: dict[str, Any], hidden: int = 128, layers: int = 2, dropout: float = 0.1,
              level: int = -1) -> CRNNHead:
    levels = backbone.feature_info
    if not -len(levels) <= level < len(levels):
        raise ZooError(f"head 'crnn': level {level} is not one of the backbone's {len(levels)} feature levels "
                       f"(0..{len(levels) - 1}, or -1 for the deepest)")
    if hidden < 1 or layers < 1:
        raise ZooError(f"head 'crnn': hidden and layers must be at least 1, got {hidden} and {layers}")
    return CRNNHead(levels[level].channels, 1 + len(info["alphabet"]), hidden, layers, dropout, level)


# ---------------------------------------------------------------------------------------------- loss

def logits_of(outputs: Any) -> torch.Tensor:
    """The (B, T, classes) scores from a step's outputs dict or the bare model output."""
    return outputs["logits"] if isinstance(outputs, dict) else outputs


def valid_steps(fraction: torch.Tensor, steps: int) -> torch.Tensor:
    """Per image, the time steps that see the image and not the batch's padding: the share of the padded
    width it fills, rounded up (a step that sees any of the image counts)."""
    return (fraction.float() * steps - 1e-4).ceil().clamp(1, steps).long()


def steps_needed(labels: list[int]) -> int:
    """CTC needs one step per character plus a blank between two equal neighbours ('LL' reads as 'L')."""
    return len(labels) + sum(a == b for a, b in zip(labels, labels[1:]))


class CTCLoss(nn.Module):
    """CTC over each image's own time steps, averaged over the batch (each divided by its text's length).
    A text that needs more steps than its image gives makes the loss infinite: refused, naming the image."""

    def __init__(self, blank: int = BLANK):
        super().__init__()
        self.blank = blank

    def forward(self, outputs: Any, targets: dict[str, Any]) -> torch.Tensor:
        logits = logits_of(outputs)
        steps = valid_steps(targets["fraction"].to(logits.device), logits.shape[1])
        lengths = targets["lengths"]
        offsets = [0, *torch.cumsum(lengths, 0).tolist()]
        labels = targets["labels"].tolist()
        for i, n in enumerate(steps.tolist()):
            need = steps_needed(labels[offsets[i]:offsets[i + 1]])
            if need > n:
                who = targets["ids"][i] if targets.get("ids") and targets["ids"][i] else f"image {i} of a batch"
                raise ZooError(f"{who}: text {targets['texts'][i]!r} needs {need} time steps and the image gives {n} "
                               f"(its width over the model's stride); give it more width, or drop it from the data")
        log_probs = logits.float().log_softmax(-1).transpose(0, 1)  # (T, B, classes): what ctc_loss takes
        return F.ctc_loss(log_probs, targets["labels"].to(logits.device), steps, lengths.to(logits.device),
                          blank=self.blank, reduction="mean", zero_infinity=False)


def ctc_loss(info: dict[str, Any]) -> CTCLoss:
    return CTCLoss(BLANK)


def sequence_log_prob(log_probs: torch.Tensor, labels: list[int]) -> float:
    """log P(text | image) under CTC, every alignment summed: (T, classes) log-probabilities of one image;
    -inf for a text the steps cannot hold."""
    nll = F.ctc_loss(log_probs[:, None].float(), torch.tensor(labels, dtype=torch.long).reshape(1, -1),
                     torch.tensor([log_probs.shape[0]]), torch.tensor([len(labels)]), blank=BLANK, reduction="sum")
    return -float(nll)
