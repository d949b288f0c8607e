"""The autoencode task: an image through a latent vector and back. The target is the input itself (its
pixels in [0, 1]), so data needs no labels; PSNR and SSIM are scored next to the trivial answer that is
the same for every image, the mean validation image."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms import v2 as T
from zoo_core import (
    SAVE_OPTION,
    Augment,
    Batch,
    DataConfig,
    ImagePrediction,
    Metrics,
    Preprocess,
    StepOutput,
    Task,
    ZooError,
    image_grid,
    side_by_side,
    write_json,
)

from . import RECON


def pixels(inputs: torch.Tensor, dc: DataConfig) -> torch.Tensor:
    """Normalised model inputs back to [0, 1] pixels: the reconstruction's target."""
    mean = inputs.new_tensor(dc.mean).view(1, -1, 1, 1)
    std = inputs.new_tensor(dc.std).view(1, -1, 1, 1)
    return (inputs * std + mean).clamp(0, 1)


class AutoencodeMetrics(Metrics):
    KEEP = 8

    def __init__(self, limit: int = 1024):
        self.limit = limit
        self.reset()

    def reset(self) -> None:
        self.recons: list[torch.Tensor] = []
        self.targets: list[torch.Tensor] = []

    def update(self, outputs: Any, targets: Any) -> None:
        if sum(len(t) for t in self.targets) >= self.limit:
            return
        self.recons.append(outputs["reconstruction"].float().cpu().clamp(0, 1))
        self.targets.append(outputs["target"].float().cpu())

    def compute(self) -> dict[str, float]:
        if not self.targets:
            return {}
        from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

        recon, target = torch.cat(self.recons), torch.cat(self.targets)
        mean_image = target.mean(0, keepdim=True).expand_as(target)
        out = {}
        for name, pred in (("", recon), ("_mean_image", mean_image)):
            out[f"psnr{name}"] = round(float(peak_signal_noise_ratio(pred, target, data_range=1.0, reduction="none",
                                                                     dim=(1, 2, 3)).mean()), 4)
            if min(target.shape[-2:]) >= 11:
                out[f"ssim{name}"] = round(float(structural_similarity_index_measure(pred, target, data_range=1.0)), 4)
        out["psnr_gain"] = round(out["psnr"] - out["psnr_mean_image"], 4)
        return out

    def report(self, run_dir, prefix: str = "") -> list[str]:
        from PIL import Image

        run_dir = Path(run_dir)
        written = [str(write_json(run_dir / f"{prefix}autoencode_report.json", self.compute()))]
        if self.targets:
            to_pil = lambda t: Image.fromarray((t * 255).round().byte().permute(1, 2, 0).squeeze(-1).numpy())  # noqa: E731
            recon, target = torch.cat(self.recons)[: self.KEEP], torch.cat(self.targets)[: self.KEEP]
            pairs = [side_by_side([to_pil(t), to_pil(r)]) for t, r in zip(target, recon)]
            pairs = [p.resize((p.width * 4, p.height * 4), Image.NEAREST) for p in pairs]
            written.append(str(image_grid(pairs, run_dir / f"{prefix}val_reconstructions.png",
                                          titles=["input | reconstruction"] * len(pairs))))
        return written


class AutoencodeTask(Task):
    name = "autoencode"
    output = RECON
    description = "autoencoder: an image through a latent vector and back (default: scikit-image's small face set)"
    defaults = {"dataset": "lfw-faces", "backbone": ["efficientnet_lite0", "resnet18"], "head": "ae-decoder",
                "loss": "l1", "mode": "finetune", "backbone_lr_mult": 0.1, "image_size": 64, "epochs": 20,
                "batch_size": 16, "lr": 1e-3, "augment": "standard"}
    primary_metric = "val_psnr"
    primary_mode = "max"
    fit = "stretch"
    predict_options = (SAVE_OPTION,)

    def transforms(self, data_config: DataConfig, augment: str):
        eval_tf = Preprocess(data_config, "stretch")
        if augment == "none":
            return eval_tf, eval_tf
        if augment not in ("standard", "light"):
            raise ZooError(f"unknown augment '{augment}': use one of standard, light, none")
        return Augment([T.RandomHorizontalFlip()], Preprocess(data_config, "stretch")), eval_tf

    def step(self, model: nn.Module, batch: Batch, loss_fn: Any, optimizer: str = "main", *,
             data_config: DataConfig) -> StepOutput:
        recon, latent = model(batch.inputs)
        target = pixels(batch.inputs, data_config)
        out = StepOutput.from_loss(loss_fn(recon, target))
        out.outputs = {"reconstruction": recon, "latent": latent, "target": target}
        return out

    def metrics(self, info: dict[str, Any]) -> AutoencodeMetrics:
        return AutoencodeMetrics()

    def predict(self, outputs: Any, geometry, info: dict[str, Any], save: str | None = None,
                **options: Any) -> list[ImagePrediction]:
        from PIL import Image

        recon, latent = outputs
        out = []
        for r, z, g in zip(recon.float().cpu().clamp(0, 1), latent.float().cpu(), geometry):
            if g is not None:  # back to the original size (the model saw it stretched)
                r = F.interpolate(r[None], size=tuple(g.original_size), mode="bilinear", align_corners=False)[0]
            arr = (r * 255).round().byte().permute(1, 2, 0).squeeze(-1).numpy()
            out.append(ImagePrediction(image=Image.fromarray(arr), save_dir=save,
                                       extra={"latent": [round(float(v), 5) for v in z]}))
        return out

    def deploy(self, model: nn.Module, info: dict[str, Any]) -> tuple[nn.Module, list[str]]:
        """Two outputs: "reconstruction" (B, C, H, W) pixels in [0, 1] at the model's input size, and
        "latent" (B, latent), the code."""
        return model, ["reconstruction", "latent"]

    def undeploy(self, outputs: dict[str, torch.Tensor], info: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """An exported file's two outputs back into the model's own (reconstruction, latent), so step,
        metrics and predict read an ONNX or TorchScript model's outputs unchanged."""
        return outputs["reconstruction"], outputs["latent"]
