"""What `zoo inspect TARGET` shows a network of: a run (its trained weights, trainable as the run ended)
or a backbone (as created); the table and the feature maps themselves are model.summary's."""

from __future__ import annotations

from dataclasses import dataclass, replace

from torch import nn

from ..contract.components import DataConfig


@dataclass
class Inspected:
    model: nn.Module
    data_config: DataConfig
    kind: str  # "run" or "backbone"
    title: str  # a line naming the target and how trainability is shown
    mode: str  # "frozen" (backbone frozen) or "finetune" (everything trainable), as shown
    fit: str = "crop"  # how images are fitted to the input: the run's task's way, a backbone's by crop


def load_target(target: str, mode: str | None = None, image_size: int | None = None,
                pretrained: bool = False) -> Inspected:
    """A run (with its trained weights, trainable as the run ended unless `mode` says otherwise) or a
    backbone (as created: all trainable unless mode='frozen'; random weights unless `pretrained`)."""
    from ..prediction.predictor import resolve_target

    kind, what = resolve_target(target)
    if kind == "backbone":
        from ..registry.plugins import get_zoo

        backbone = get_zoo().backbones.create(what, pretrained=pretrained, image_size=image_size)
        shown = mode or "finetune"
        backbone.requires_grad_(shown != "frozen")
        c, h, w = backbone.data_config.input_size
        how = "frozen (--mode frozen)" if shown == "frozen" else "all parameters trainable, as created"
        return Inspected(backbone, backbone.data_config, kind, f"backbone {what}, input {c}x{h}x{w}: {how}", shown)

    from ..training.rundir import rebuild

    model, saved, _ = rebuild(what)
    train = saved.get("train", {})
    ended = train.get("mode", "finetune")
    if ended == "staged":  # the backbone is unfrozen at the start of epoch freeze_epochs + 1
        frozen_at_end = int(train.get("epochs", 0)) <= int(train.get("freeze_epochs", 0))
        why = (f"mode staged, still within its {train.get('freeze_epochs')} frozen epochs when the run ended"
               if frozen_at_end else f"mode staged, unfrozen after epoch {train.get('freeze_epochs')}, as the run ended")
    else:
        frozen_at_end = ended == "frozen"
        why = f"mode {ended}, as the run ended"
    shown = mode or ("frozen" if frozen_at_end else "finetune")
    if mode:
        why = f"--mode {mode}"
    model.set_backbone_trainable(shown != "frozen")
    dc = DataConfig.from_dict(saved["model"]["data_config"])
    if image_size:
        dc = replace(dc, input_size=(dc.channels, image_size, image_size))
    mc = saved["model"]
    how = "backbone frozen" if shown == "frozen" else "all parameters trainable"
    title = f"run {what}: {saved.get('task', '?')}, {mc.get('backbone')} backbone + {mc.get('head')} head; {how} ({why})"
    return Inspected(model, dc, kind, title, shown, mc.get("fit", "crop"))
