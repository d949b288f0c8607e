"""text-cnn: a small from-scratch CNN for one line of text (captchas), wider than tall.

Four conv blocks, then the height is averaged away and one feature vector per column is kept: where a
character sits along the line is what tells the first position from the second, so the columns stay
apart and the head sees them all (10 columns x 96 channels at the default 32 x 80 input)."""

from __future__ import annotations

import torch
from torch import nn
from zoo_core import Backbone, DataConfig, FeatureLevel, ZooError

ASPECT = 2.5  # width / height of the input: a captcha is 100 x 40


class TextCNN(Backbone):
    def __init__(self, *, in_chans: int | None = None, image_size: int | None = None):
        super().__init__()
        height = image_size or 32
        if height % 8:
            raise ZooError(f"backbone 'text-cnn': --image-size is the input height and must be a multiple of 8, got {height}")
        width = int(round(height * ASPECT / 8)) * 8
        c = in_chans or 1
        self.data_config = DataConfig((c, height, width), (0.5,) * c, (0.5,) * c, "bilinear", 1.0)

        def block(cin: int, cout: int, pool: bool) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                    *([nn.MaxPool2d(2)] if pool else [])]

        self.body = nn.Sequential(*block(c, 16, True), *block(16, 32, True), *block(32, 64, True), *block(64, 96, False))
        self.columns = width // 8
        self.num_features = 96 * self.columns
        self.feature_info = [FeatureLevel(96, 8, "body")]
        self.pretrained_source = "none"

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.body(x)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).mean(dim=2).flatten(1)  # average over the height, one vector per column


def text_cnn(name: str, *, pretrained: bool = False, in_chans: int | None = None,
             image_size: int | None = None) -> TextCNN:
    if pretrained:
        raise ZooError("backbone 'text-cnn' has no pretrained weights; train it from scratch with --no-pretrained")
    return TextCNN(in_chans=in_chans, image_size=image_size)
