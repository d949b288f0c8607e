"""The restore task: a degraded image in, the restored image out, at the input's own size (times the
super-resolution scale).

Training crops input and target together (the target's crop s times larger), flips both alike, and
normalises the input as the backbone wants; the target stays [0, 1] pixels. Evaluation and prediction
never resize (fit "native": padded to the backbone's stride, the padding cut off the output again), and
large images are predicted in overlapping tiles (Task.tile).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from zoo_core import (
    SAVE_OPTION,
    Batch,
    DataConfig,
    ImagePrediction,
    Metrics,
    Preprocess,
    StepOutput,
    Task,
    ZooError,
    collate_samples,
    image_grid,
    input_to_image,
    to_sample,
    write_json,
)

from . import IMAGE

AUGMENTS = ("standard", "light", "none")


def _scale_of(sample: dict[str, Any]) -> int:
    target, image = sample.get("target"), sample["image"]
    if target is None:
        return 1
    return max(1, round(target.shape[-1] / image.shape[-1]))


class TrainTransform:
    """A random input crop of the model's input size (target s times larger, same place), flips of both."""

    def __init__(self, dc: DataConfig, flips: int):
        self.dc, self.flips = dc, flips
        self.mean = torch.tensor(dc.mean).view(-1, 1, 1)
        self.std = torch.tensor(dc.std).view(-1, 1, 1)

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        sample = to_sample(sample["image"], sample.get("target"), sample.get("id", ""))
        image, target = sample["image"], sample["target"]
        s = _scale_of(sample)
        p = self.dc.input_size[-1]
        h, w = image.shape[-2:]
        if h < p or w < p:  # smaller than a patch: padded by reflection, the target alike
            ph, pw = max(0, p - h), max(0, p - w)
            image = F.pad(image[None].float(), (0, pw, 0, ph), mode="replicate")[0].to(image.dtype)
            target = F.pad(target[None].float(), (0, pw * s, 0, ph * s), mode="replicate")[0].to(target.dtype)
            h, w = image.shape[-2:]
        y, x = int(torch.randint(0, h - p + 1, ())), int(torch.randint(0, w - p + 1, ()))
        image, target = image[:, y:y + p, x:x + p], target[:, y * s:(y + p) * s, x * s:(x + p) * s]
        if self.flips >= 1 and torch.rand(()) < 0.5:
            image, target = image.flip(-1), target.flip(-1)
        if self.flips >= 2 and torch.rand(()) < 0.5:
            image, target = image.flip(-2), target.flip(-2)
        # normalised as the backbone wants; no padding: a training patch needs none, whatever the stride
        image = (torch.as_tensor(image).float().div(255) - self.mean) / self.std
        return {"image": image, "target": target.float().div(255), "geometry": None, "id": sample["id"]}


class EvalTransform:
    """The whole image, not resized (fit "native"); the target, when there is one, as [0, 1] pixels."""

    def __init__(self, dc: DataConfig):
        self.preprocess = Preprocess(dc, "native")

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        target = sample.get("target")
        out = self.preprocess({"image": sample["image"], "id": sample.get("id", "")})
        out["target"] = None if target is None else torch.as_tensor(target).float().div(255)
        return out


def crop_valid(t: torch.Tensor, g, scale: int) -> torch.Tensor:
    """An output (C, sH, sW) cut to the image's own pixels: its original size times the scale."""
    if g is None:
        return t
    h, w = g.original_size
    return t[..., : h * scale, : w * scale]


class RestoreMetrics(Metrics):
    """PSNR and SSIM (torchmetrics, data range 1) of the restored images, of the degraded input itself
    (identity; for super-resolution nearest-neighbour upscaling) and for super-resolution of bicubic
    upscaling: the baselines a restoration model must beat. Per image, on its own pixels (no padding)."""

    KEEP = 6  # validation examples kept for the before/after/target pictures

    def __init__(self, info: dict[str, Any], data_config: DataConfig | None):
        self.scale, self.dc = int(info.get("scale", 1)), data_config
        self.reset()

    def reset(self) -> None:
        self.sums: dict[str, float] = {}
        self.n = 0
        self.kept: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def _add(self, name: str, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Per-image PSNR and SSIM of a (B, C, H, W) stack, summed."""
        from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

        pred = pred.clamp(0, 1)
        psnr = peak_signal_noise_ratio(pred, target, data_range=1.0, reduction="none", dim=(1, 2, 3))
        self.sums[f"psnr{name}"] = self.sums.get(f"psnr{name}", 0.0) + float(psnr.sum())
        if min(target.shape[-2:]) >= 11:  # SSIM's 11x11 window
            ssim = structural_similarity_index_measure(pred, target, data_range=1.0, reduction="none")
            self.sums[f"ssim{name}"] = self.sums.get(f"ssim{name}", 0.0) + float(ssim.sum())

    def update(self, outputs: Any, targets: Any) -> None:
        if targets is None or self.dc is None:
            return
        restored, inputs, geometry = outputs["restored"].float().cpu(), outputs["inputs"].float().cpu(), outputs["geometry"]
        targets = targets.float().cpu()
        mean = torch.tensor(self.dc.mean).view(1, -1, 1, 1)
        std = torch.tensor(self.dc.std).view(1, -1, 1, 1)
        degraded_all = (inputs * std + mean).clamp(0, 1)
        s = self.scale
        # images of one size are scored together (training patches, same-size validation crops)
        groups: dict[Any, list[int]] = {}
        for i, g in enumerate(geometry):
            groups.setdefault(None if g is None else tuple(g.original_size), []).append(i)
        for size, idx in groups.items():
            g = geometry[idx[0]]
            degraded = crop_valid(degraded_all[idx], g, 1)
            target, out = crop_valid(targets[idx], g, s), crop_valid(restored[idx], g, s)
            identity = degraded if s == 1 else F.interpolate(degraded, scale_factor=s, mode="nearest")
            self._add("", out, target)
            self._add("_identity", identity, target)
            if s > 1:
                bicubic = F.interpolate(degraded, scale_factor=s, mode="bicubic", align_corners=False)
                self._add("_bicubic", bicubic.clamp(0, 1), target)
            self.n += len(idx)
            for k in range(min(len(idx), self.KEEP - len(self.kept))):
                self.kept.append((identity[k], out[k].clamp(0, 1), target[k]))

    def compute(self) -> dict[str, float]:
        if not self.n:
            return {}
        scores = {k: round(v / self.n, 4) for k, v in self.sums.items()}
        best = max(v for k, v in scores.items() if k.startswith("psnr_"))
        scores["psnr_gain"] = round(scores["psnr"] - best, 4)  # over the better baseline
        return scores

    def table(self) -> str:
        scores = self.compute()
        if not scores:
            return ""
        rows = [("model", ""), ("identity (the degraded input)", "_identity")]
        if self.scale > 1:
            rows.append(("bicubic upscaling", "_bicubic"))
        lines = [f"{'':32}{'PSNR dB':>9}{'SSIM':>8}"]
        for label, key in rows:
            ssim = scores.get(f"ssim{key}")
            lines.append(f"{label:32}{scores[f'psnr{key}']:9.2f}{'' if ssim is None else f'{ssim:8.4f}'}")
        return "\n".join(lines)

    def details(self) -> dict[str, Any]:
        return {"scale": self.scale, "images": self.n}

    def report(self, run_dir, prefix: str = "") -> list[str]:
        from PIL import Image
        from zoo_core import side_by_side

        run_dir = Path(run_dir)
        written = [str(write_json(run_dir / f"{prefix}restore_report.json", {**self.compute(), **self.details()}))]
        if self.kept:
            to_pil = lambda t: Image.fromarray((t * 255).round().byte().permute(1, 2, 0).numpy())  # noqa: E731
            sheets, titles = [], []
            for before, after, target in self.kept:
                sheet = side_by_side([to_pil(before), to_pil(after), to_pil(target)])
                k = max(1, 240 // sheet.height)  # small patches enlarged, pixels kept sharp
                sheets.append(sheet.resize((sheet.width * k, sheet.height * k), Image.NEAREST) if k > 1 else sheet)
                titles.append("before | after | target")
            written.append(str(image_grid(sheets, run_dir / f"{prefix}val_restored.png", columns=2, cell=720,
                                          titles=titles)))
        return written


class RestoreTask(Task):
    name = "restore"
    description = "image restoration: deblur, denoise, super-resolution, inpainting (default: real photos degraded on the fly)"
    output = IMAGE
    # On your own images: the offline ImageNet EfficientNet-Lite0 under the residual U-Net, all trained.
    defaults = {"dataset": "restore-photos", "backbone": ["efficientnet_lite0", "resnet18"], "head": "unet-residual",
                "loss": "restore", "mode": "finetune", "backbone_lr_mult": 0.1, "image_size": 64, "epochs": 20,
                "batch_size": 16, "lr": 1e-3, "augment": "standard"}
    primary_metric = "val_psnr"
    primary_mode = "max"
    fit = "native"
    cache_features = False  # degradations are drawn afresh every epoch
    dynamic_size = ("height", "width")  # exported files take any image size
    tile = 512
    tile_overlap = 32
    predict_options = (SAVE_OPTION,)

    def transforms(self, data_config: DataConfig, augment: str):
        if augment not in AUGMENTS:
            raise ZooError(f"unknown augment '{augment}': use one of {', '.join(AUGMENTS)}")
        flips = {"standard": 2, "light": 1, "none": 0}[augment]
        return TrainTransform(data_config, flips), EvalTransform(data_config)

    def collate(self, samples: list[dict[str, Any]]) -> Batch:
        batch = collate_samples([{**s, "target": None} for s in samples])
        targets = [s.get("target") for s in samples]
        if any(t is None for t in targets):
            batch.targets = None
        else:
            H, W = max(t.shape[-2] for t in targets), max(t.shape[-1] for t in targets)
            batch.targets = torch.stack([F.pad(t, (0, W - t.shape[-1], 0, H - t.shape[-2])) for t in targets])
        return batch

    def step(self, model: nn.Module, batch: Batch, loss_fn: Any, optimizer: str = "main") -> StepOutput:
        restored = model(batch.inputs)
        target = batch.targets
        if target.shape[-2:] != restored.shape[-2:]:  # padded to the stride: the target padded alike
            target = F.pad(target, (0, restored.shape[-1] - target.shape[-1], 0, restored.shape[-2] - target.shape[-2]))
        if any(g is not None for g in batch.geometry):  # padding (stride, batch) is neither trained nor scored
            scale = restored.shape[-1] // batch.inputs.shape[-1]
            valid = torch.zeros_like(restored[:, :1], dtype=torch.bool)
            for i, g in enumerate(batch.geometry):
                h, w = g.original_size if g is not None else batch.inputs.shape[-2:]
                valid[i, :, : h * scale, : w * scale] = True
            restored_for_loss = torch.where(valid, restored, target)
        else:
            restored_for_loss = restored
        out = StepOutput.from_loss(loss_fn(restored_for_loss, target))
        out.outputs = {"restored": restored, "inputs": batch.inputs, "geometry": list(batch.geometry)}
        return out

    def metrics(self, info: dict[str, Any], data_config: DataConfig | None = None) -> RestoreMetrics:
        return RestoreMetrics(info, data_config)

    def predict(self, outputs: Any, geometry, info: dict[str, Any], save: str | None = None,
                **options: Any) -> list[ImagePrediction]:
        from PIL import Image

        restored = outputs["restored"] if isinstance(outputs, dict) else outputs
        s = int(info.get("scale", 1))
        out = []
        for t, g in zip(restored.float().cpu(), geometry):
            t = crop_valid(t.clamp(0, 1), g, s)
            image = Image.fromarray((t * 255).round().byte().permute(1, 2, 0).numpy())
            out.append(ImagePrediction(image=image, save_dir=save))
        return out

    def deploy(self, model: nn.Module, info: dict[str, Any]) -> tuple[nn.Module, list[str]]:
        """The output "restored" is (B, 3, s*H, s*W) pixels in [0, 1] for an input (B, 3, H, W) normalised
        as the metadata says, padded to a multiple of its stride; cut the padding (times s) off the output."""
        return model, ["restored"]
