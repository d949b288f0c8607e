"""Backbones zoo brings itself: any timm model, torchvision models, and the small from-scratch networks
of the source material. Also: loading backbone weights from a local file, safely."""

from __future__ import annotations

import logging
import pickle
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..base.errors import ZooError
from ..contract.components import Backbone, DataConfig, FeatureLevel, PretrainedHead
from .network import offline_alternatives, require_hf_weights, require_reachable


@contextmanager
def _quiet_hub():
    """huggingface_hub logs every retry as a warning; the one-line error zoo raises says it all."""
    logger = logging.getLogger("huggingface_hub")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _with_image_size(dc: DataConfig, image_size: int | None, in_chans: int | None = None) -> DataConfig:
    c, h, w = dc.input_size
    if image_size:
        h = w = int(image_size)
    if in_chans:
        c = int(in_chans)
        if c != len(dc.mean):  # e.g. a 3-channel model used on 1-channel input: average the statistics
            dc = DataConfig(dc.input_size, (sum(dc.mean) / len(dc.mean),) * c, (sum(dc.std) / len(dc.std),) * c,
                            dc.interpolation, dc.crop_pct)
    return DataConfig((c, h, w), dc.mean, dc.std, dc.interpolation, dc.crop_pct)


# ---------------------------------------------------------------------------------------------- timm

class TimmModelBackbone(Backbone):
    """A timm model as a zoo backbone: pooled features, the feature pyramid timm describes in
    `feature_info`, and the data config timm resolves for the model. Subclass it for a backbone that
    builds its own timm model (a plugin whose weights come from elsewhere than timm's own loading)."""

    def __init__(self, model: nn.Module, *, image_size: int | None = None, in_chans: int | None = None):
        super().__init__()
        from timm.data import resolve_data_config

        self.model = model
        self.num_features = model.num_features
        self.feature_info = [FeatureLevel(int(f["num_chs"]), int(f["reduction"]), str(f.get("module", "")))
                             for f in getattr(model, "feature_info", [])]
        dc = resolve_data_config({}, model=model)
        self.data_config = _with_image_size(
            DataConfig(tuple(dc["input_size"]), tuple(dc["mean"]), tuple(dc["std"]), dc["interpolation"], dc["crop_pct"]),
            image_size, in_chans)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)  # num_classes=0: timm returns pooled pre-logits features

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        if not self.feature_info or not hasattr(self.model, "forward_intermediates"):
            raise TypeError(f"timm model {type(self.model).__name__} gives no feature pyramid")
        return list(self.model.forward_intermediates(x, intermediates_only=True))

    def keep_imagenet_classifier(self) -> None:
        """Set the ImageNet classifier aside (with timm's class names) and drop it from the model."""
        from timm.data import ImageNetInfo, infer_imagenet_subset

        classifier = self.model.get_classifier()
        subset = infer_imagenet_subset(self.model)
        if isinstance(classifier, nn.Linear) and subset:
            info = ImageNetInfo(subset)
            ids = info.label_names()
            if len(ids) == classifier.out_features:
                self.set_pretrained_head(PretrainedHead(
                    classifier.eval(), "logits/class",
                    {"classes": [short_label(info.index_to_description(i)) for i in range(len(ids))], "class_ids": ids}))
        self.model.reset_classifier(0)
        self.num_features = self.model.num_features


class TimmBackbone(TimmModelBackbone):
    """Any timm model; pretrained weights come through timm's own Hub loading."""

    def __init__(self, name: str, *, pretrained: bool = True, in_chans: int | None = None,
                 image_size: int | None = None, **options: Any):
        import timm

        # Pretrained models keep their classifier for a moment, to set it aside as the pretrained head.
        kwargs: dict[str, Any] = dict(options) if pretrained else dict(num_classes=0, **options)
        if in_chans:
            kwargs["in_chans"] = in_chans
        if pretrained:
            try:
                cfg = timm.models.get_pretrained_cfg(name)
            except RuntimeError:  # an unknown pretrained tag
                cfg = None
            if cfg is None or not (cfg.hf_hub_id or cfg.url or cfg.file):
                raise ZooError(f"timm has no pretrained weights for '{name}': use --no-pretrained or --weights FILE")
            if cfg.hf_hub_id and not cfg.file:
                require_hf_weights(cfg.hf_hub_id, f"pretrained weights for '{name}' from the Hugging Face Hub")
            elif cfg.url and not cfg.file:
                require_reachable(cfg.url, f"pretrained weights for '{name}'")
        try:
            with _quiet_hub():
                model = timm.create_model(name, pretrained=pretrained, **kwargs)
        except ZooError:
            raise
        except TypeError as e:
            raise ZooError(f"backbone '{name}': {e}") from None
        except Exception as e:
            if not pretrained:
                raise
            raise ZooError(f"could not load pretrained weights for '{name}' ({type(e).__name__}); {offline_alternatives()}") from None
        super().__init__(model, image_size=image_size, in_chans=in_chans)
        if pretrained and getattr(model, "num_classes", 0):
            self.keep_imagenet_classifier()
        tag = getattr(model, "pretrained_cfg", {}).get("hf_hub_id") or name
        self.pretrained_source = f"hf-hub:{tag}" if pretrained else "none"


def short_label(description: str) -> str:
    """'tabby, tabby cat' -> 'tabby': WordNet lists synonyms; the first is the usual name."""
    return description.split(",")[0].strip()


def timm_has(name: str) -> bool:
    import timm
    return timm.is_model(name)


def timm_weights(name: str) -> str:
    """Where timm's default pretrained weights for `name` come from (BackboneSpec.weights)."""
    import timm

    try:
        cfg = timm.models.get_pretrained_cfg(name)
    except RuntimeError:
        return "none"
    if cfg is None:
        return "none"
    return f"hf-hub:{cfg.hf_hub_id}" if cfg.hf_hub_id else f"url:{cfg.url}" if cfg.url else "none"


# --------------------------------------------------------------------------------------- torchvision

def _torchvision_body(model: nn.Module, name: str) -> nn.Module:
    """The convolutional trunk of a torchvision classifier, without its pooling and classifier."""
    if hasattr(model, "features"):  # VGG, DenseNet, MobileNet, EfficientNet, ConvNeXt, SqueezeNet, AlexNet
        body = model.features
        return nn.Sequential(body, nn.ReLU()) if name.startswith("densenet") else body
    if hasattr(model, "fc") and hasattr(model, "avgpool"):  # ResNet, ResNeXt, Wide ResNet, RegNet
        keep = [m for n, m in model.named_children() if n not in {"avgpool", "fc", "dropout", "AuxLogits", "aux1", "aux2"}]
        return nn.Sequential(*keep)
    raise ZooError(f"torchvision model '{name}' has no convolutional trunk zoo can use; try its timm equivalent")


class TorchvisionBackbone(Backbone):
    """A torchvision classification model with its classifier dropped and adaptive average pooling,
    so any input size works."""

    def __init__(self, name: str, *, pretrained: bool = True, in_chans: int | None = None,
                 image_size: int | None = None, **options: Any):
        super().__init__()
        from torchvision import models

        try:
            weights_enum = models.get_model_weights(name)
            default = weights_enum.DEFAULT
        except (ValueError, AttributeError):
            default = None
        if pretrained and default is None:
            raise ZooError(f"torchvision has no pretrained weights for '{name}': use --no-pretrained or --weights FILE")
        if pretrained:
            cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(default.url).name
            if not cached.exists():
                require_reachable(default.url, f"pretrained weights for torchvision '{name}'")
        try:
            model = models.get_model(name, weights=default if pretrained else None, **options)
        except ZooError:
            raise
        except Exception as e:
            if not pretrained:
                raise ZooError(f"backbone 'torchvision:{name}': {e}") from None
            raise ZooError(f"could not load pretrained weights for torchvision '{name}' ({type(e).__name__}); {offline_alternatives()}") from None
        if in_chans and in_chans != 3:
            raise ZooError(f"torchvision backbones take 3-channel input; drop in_chans={in_chans} (grayscale images are converted)")
        self.body = _torchvision_body(model, name)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        if default is not None:
            t = default.transforms()
            crop = t.crop_size[0]
            dc = DataConfig((3, crop, crop), tuple(t.mean), tuple(t.std), t.interpolation.value, crop / t.resize_size[0])
        else:
            dc = DataConfig()
        self.data_config = _with_image_size(dc, image_size)
        self.pyramid = SequentialPyramid(self.body, self.data_config.input_size)
        self.feature_info = self.pyramid.levels
        self.num_features = self.feature_info[-1].channels
        self.pretrained_source = f"torchvision:{default}" if pretrained else "none"

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.pyramid(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.body(x))


def torchvision_weights(name: str) -> str:
    from torchvision import models

    try:
        return f"url:{models.get_model_weights(name).DEFAULT.url}"
    except (ValueError, AttributeError):
        return "none"


class SequentialPyramid:
    """The feature pyramid of an nn.Sequential trunk: the output of the last layer at each stride,
    found once by tracing a dummy input (so heads never probe). Not a module: it holds no weights."""

    def __init__(self, body: nn.Sequential, input_size: tuple[int, int, int]):
        self.body = body
        self.taps: list[int] = []
        self.levels: list[FeatureLevel] = []
        was_training = body.training
        body.eval()
        with torch.no_grad():
            x = torch.zeros(1, *input_size)
            for i, (name, layer) in enumerate(body.named_children()):
                x = layer(x)
                if x.dim() != 4:
                    break
                level = FeatureLevel(int(x.shape[1]), max(1, round(input_size[1] / x.shape[2])), name)
                if self.levels and self.levels[-1].stride == level.stride:
                    self.taps[-1], self.levels[-1] = i, level
                else:
                    self.taps.append(i)
                    self.levels.append(level)
        body.train(was_training)

    def __call__(self, x: torch.Tensor) -> list[torch.Tensor]:
        if not self.taps:
            raise TypeError("this backbone flattens its input: it gives no feature pyramid")
        out = []
        for i, layer in enumerate(self.body):
            x = layer(x)
            if i in self.taps:
                out.append(x)
                if i == self.taps[-1]:
                    break
        return out


def _pooled_width(backbone: Backbone, dc: DataConfig) -> int:
    was_training = backbone.training
    backbone.eval()
    with torch.no_grad():
        n = backbone(torch.zeros(1, *dc.input_size)).shape[1]
    backbone.train(was_training)
    return int(n)


# ------------------------------------------------------------------------------ small from-scratch nets

def _small_net_layers(name: str, c: int, h: int, w: int) -> nn.Sequential:
    if name == "linear":  # pixels straight to the head: the head *is* the linear model
        return nn.Sequential(nn.Flatten())
    if name == "mlp":  # 784 -> 100 -> head
        return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, 100), nn.ReLU())
    if name == "cnn1":  # one conv layer, 9 filters of 5x5, then the head
        return nn.Sequential(nn.Conv2d(c, 9, 5), nn.ReLU(), nn.Flatten())
    if name == "cnn2":  # two conv + max-pool blocks
        return nn.Sequential(
            nn.Conv2d(c, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten())
    if name == "lenet":  # LeNet-5 as in the PyTorch CIFAR-10 tutorial
        return nn.Sequential(
            nn.Conv2d(c, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.LazyLinear(120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU())
    raise ZooError(f"unknown small network '{name}'")


from .small_nets import SMALL_NETS  # noqa: E402  (the table zoo-core registers them from, torch-free)


class SmallNet(Backbone):
    """The source material's networks trained from scratch. They have no pretrained weights;
    inputs are normalised to [-1, 1]."""

    def __init__(self, name: str, *, pretrained: bool = False, in_chans: int | None = None,
                 image_size: int | None = None):
        super().__init__()
        size = SMALL_NETS[name][0]
        c = in_chans or size[0]
        self.data_config = _with_image_size(DataConfig(size, (0.5,) * size[0], (0.5,) * size[0], "bilinear", 1.0),
                                            image_size, c)
        _, h, w = self.data_config.input_size
        self.body = _small_net_layers(name, c, h, w)
        self.num_features = _pooled_width(self, self.data_config)  # also materialises lazy layers
        self.pyramid = SequentialPyramid(self.body, self.data_config.input_size)
        self.feature_info = self.pyramid.levels
        self.pretrained_source = "none"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.pyramid(x)


def small_net_factory(name: str, *, pretrained: bool = False, in_chans: int | None = None,
                      image_size: int | None = None) -> SmallNet:
    return SmallNet(name, pretrained=pretrained, in_chans=in_chans, image_size=image_size)


# ------------------------------------------------------------------------------- weights from a file

def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors from a .safetensors file, or from a .pth/.pt/.bin through torch.load(weights_only=True)."""
    path = Path(path)
    if not path.is_file():
        raise ZooError(f"{path}: weights file not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            return load_file(str(path))
        with open(path, "rb") as f:
            head = f.read(4)
        if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):  # torch.save's zip, or a legacy pickle
            raise ZooError(f"{path}: not a weights file (neither safetensors nor torch.save's format); give a "
                           ".safetensors file or a state dict saved with torch.save")
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except ZooError:
        raise
    except pickle.UnpicklingError:  # torch's own text goes on to explain how to switch the check off: not quoted
        raise ZooError(f"{path}: refused: the file holds pickled Python objects, not only tensors, and zoo never "
                       "unpickles them (they can run code); give a .safetensors file or a plain state dict of tensors") from None
    except Exception as e:
        raise ZooError(f"{path}: cannot read weights ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
                       "give a .safetensors file or a state dict saved with torch.save") from None
    for key in ("state_dict", "model", "model_state_dict"):  # common checkpoint wrappers
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ZooError(f"{path}: not a state dict of tensors")
    return sd


def load_weights_into(module: nn.Module, state: dict[str, torch.Tensor], source: str) -> tuple[int, int]:
    """Copy every tensor whose name (after stripping a common prefix) and shape match.

    Classifier weights of a different size are left out, which is what transfer learning wants.
    Returns (loaded, expected); raises when nothing matches."""
    target = module.state_dict()
    prefixes = {""} | {k.split(".")[0] + "." for k in state} | {".".join(k.split(".")[:2]) + "." for k in state}
    best: dict[str, torch.Tensor] = {}
    for p in prefixes:  # e.g. "module.", "model.", "backbone." from wrappers and zoo runs
        for q in ("", "model.", "body."):
            cand = {q + k[len(p):]: v for k, v in state.items() if k.startswith(p)}
            matched = {k: v for k, v in cand.items() if k in target and target[k].shape == v.shape}
            if len(matched) > len(best):
                best = matched
    if not best:
        raise ZooError(f"{source}: no tensor matches this backbone (wrong architecture?)")
    module.load_state_dict(best, strict=False)
    return len(best), len(target)


def count_parameters(module: nn.Module) -> tuple[int, int]:
    total = sum(p.numel() for p in module.parameters())
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return total, trainable


# ------------------------------------------------------- a task's default backbone: the first whose weights can be had

HUB_TIMEOUT_S = 2.0  # how long a weight host may take to accept a connection before it counts as unreachable


def weights_status(source: str) -> tuple[bool, str]:
    """Whether pretrained weights from `source` (BackboneSpec.weights: "package:DIST", "hf-hub:REPO",
    "url:URL", "none") can be had now, and in words where from or why not. Looks, in this order, at
    installed packages, the local Hugging Face or torch.hub cache, then whether the host accepts a
    connection within HUB_TIMEOUT_S: it never downloads and never waits longer."""
    import importlib.metadata as md

    from .network import hf_cached, hf_endpoint, hf_offline, reachable

    kind, _, where = source.partition(":")
    if kind == "package":
        try:
            md.distribution(where)
            return True, f"pretrained weights from the installed package {where}"
        except md.PackageNotFoundError:
            return False, f"weights need the package {where}, which is not installed"
    if kind == "hf-hub":
        host = hf_endpoint().split("://")[-1]
        if hf_cached(where):
            return True, f"pretrained weights {where} from the local Hugging Face cache"
        if hf_offline():
            return False, "weights need the Hugging Face Hub, and HF_HUB_OFFLINE is set"
        if reachable(hf_endpoint(), timeout=HUB_TIMEOUT_S):
            return True, f"pretrained weights {where} from the Hugging Face Hub ({host})"
        return False, f"weights need the Hugging Face Hub, which is unreachable ({host})"
    if kind == "url":
        host = where.split("://")[-1].split("/")[0]
        if (Path(torch.hub.get_dir()) / "checkpoints" / Path(where).name).exists():
            return True, f"pretrained weights from torch.hub's cache ({Path(where).name})"
        if reachable(where, timeout=HUB_TIMEOUT_S):
            return True, f"pretrained weights downloaded from {host}"
        return False, f"weights need {host}, which is unreachable"
    if kind == "none":
        return False, "has no pretrained weights"
    return True, "pretrained weights (the plugin does not say from where)"


def choose_backbone(zoo, preferences: list[str], pretrained: bool = True) -> tuple[str, str]:
    """A task's default backbone from its preference list: the first whose pretrained weights can be had
    now (installed, cached, or a host that answers). Returns the name and the line that says why, e.g.
    "backbone B (pretrained weights from the installed package P; A's weights need the Hugging Face Hub,
    which is unreachable (huggingface.co))". When none can be had, the first installed one: building it
    then says in one line what to do."""
    if not pretrained:
        name = next((n for n in preferences if zoo.backbones.knows(n)), preferences[0])
        return name, f"backbone {name} (the task's default; no pretrained weights needed)"
    passed: list[str] = []
    for name in preferences:
        if name not in zoo.backbones:
            passed.append(f"{name} is not installed")
            continue
        component, local_name = zoo.backbones.resolve(name)
        available, how = weights_status(component.spec.weights_of(local_name))
        if available:
            others = f"; {'; '.join(passed)}" if passed else ""
            return name, f"backbone {name} ({how}{others}); --backbone NAME picks another"
        passed.append(f"{name}'s {how}" if how.startswith("weights") else f"{name} {how}")
    name = next((n for n in preferences if n in zoo.backbones), preferences[0])
    return name, f"backbone {name}: no default backbone's weights can be had ({'; '.join(passed)})"
