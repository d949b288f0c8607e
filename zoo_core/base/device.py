"""Where and how precisely the numbers are computed: chosen once per run and passed as one object."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import torch

from .errors import ZooError


def pick_device(name: str) -> torch.device:
    if name != "auto":
        try:
            device = torch.device(name)
        except RuntimeError:
            raise ZooError(f"--device '{name}': use auto, cpu, cuda, cuda:N or mps") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ZooError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise ZooError(f"--device {name}: MPS is not available on this machine; use --device cpu")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@dataclass(frozen=True)
class Machine:
    """The device, mixed precision (on CUDA: bf16 where supported, else fp16 with a gradient scaler)
    and memory format. `autocast()` is the one precision context every forward pass runs in."""

    device: torch.device
    amp: bool = False
    dtype: torch.dtype = torch.float32
    channels_last: bool = False

    @classmethod
    def from_config(cls, cfg: dict[str, Any], local_rank: int = 0) -> "Machine":
        """`local_rank`: this process's place among the training processes on this machine (one GPU each)."""
        device = pick_device(cfg["device"])
        cuda = device.type == "cuda"
        if cuda and device.index is None and local_rank:
            if local_rank >= torch.cuda.device_count():
                raise ZooError(f"process {local_rank} of this machine has no GPU of its own ({torch.cuda.device_count()} "
                               "visible): start at most one process per GPU (--nproc)")
            device = torch.device("cuda", local_rank)
        if cuda:
            device = torch.device("cuda", device.index if device.index is not None else torch.cuda.current_device())
            torch.cuda.set_device(device)
        amp = bool(cfg["amp"]) and cuda
        dtype = torch.float32
        if amp:
            name = cfg["amp_dtype"]
            dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if name == "auto" else getattr(torch, name)
        # channels_last is the convolutions' fast layout on CPUs as well (oneDNN): measured on the 2-core VM, a
        # training step 1.25x (resnet18, efficientnet_lite0 at 160 px) to 1.7x (cnn2 on digits) faster
        return cls(device, amp, dtype, bool(cfg["channels_last"]) and device.type in ("cuda", "cpu"))

    def autocast(self) -> AbstractContextManager:
        return torch.autocast(self.device.type, dtype=self.dtype if self.amp else torch.bfloat16, enabled=self.amp)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """fp16 needs loss scaling to keep small gradients; bf16 and fp32 do not (the scaler is a no-op)."""
        return torch.amp.GradScaler("cuda", enabled=self.amp and self.dtype == torch.float16)

    def prepare(self, module: torch.nn.Module) -> torch.nn.Module:
        return module.to(self.device, memory_format=torch.channels_last) if self.channels_last else module.to(self.device)

    def describe(self) -> str:
        return f"device {self.device}" + (f", AMP {str(self.dtype).split('.')[-1]}" if self.amp else "")
