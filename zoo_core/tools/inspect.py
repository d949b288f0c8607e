"""What `zoo inspect TARGET` shows a network of: a run (its trained weights, trainable as the run ended)
or a backbone (as created); the table and the feature maps themselves are model.summary's."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from torch import nn

from ..base.errors import ZooError
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


def inspect(target: str, depth: int = 3, mode: str | None = None, image_size: int | None = None,
            image: str | None = None, layers: str | None = None, channels: int = 16, pretrained: bool = False,
            out: str | None = None, device: str = "auto") -> dict[str, Any]:
    """`zoo inspect`: the layer table of a run or a backbone (rows and totals; "title" and "table" as text),
    and with `image` its feature maps drawn into a PNG ("feature_maps": the path and the layers)."""
    from ..base.device import pick_device
    from ..model.summary import (
        default_layers,
        feature_maps,
        find_layer,
        format_table,
        summarise,
    )

    if (layers or out) and not image:
        raise ZooError("--layers and --out go with --feature-maps IMAGE")
    # Weights change no shape or count: a backbone loads its pretrained ones only to draw feature maps.
    t = load_target(target, mode=mode, image_size=image_size, pretrained=pretrained)
    t.model.to(pick_device(device))
    summary = summarise(t.model, t.data_config.input_size, depth)
    result: dict[str, Any] = {"target": target, "kind": t.kind, "mode": t.mode, **summary.to_dict()}
    if image:
        from ..pictures.plots import plot_feature_maps

        # by default from the rows shown; from all of them when --depth hides every feature map
        wanted = ([s.strip() for s in layers.split(",") if s.strip()] if layers else default_layers(summary)
                  or default_layers(summarise(t.model, t.data_config.input_size, depth=1_000)))
        if not wanted:
            raise ZooError("no layer gives a feature map larger than 1x1 to draw")
        names = list(dict.fromkeys(find_layer(t.model, w, [r.name for r in summary.rows]) for w in wanted))
        shown, maps = feature_maps(t.model, t.data_config, image, names, t.fit)
        path = Path(out) if out else Path(f"{Path(image).stem}-feature-maps.png")
        path.parent.mkdir(parents=True, exist_ok=True)
        plot_feature_maps(shown, maps, path, channels=channels)
        result["feature_maps"] = {"image": image, "path": str(path),
                                  "layers": [{"name": n, "shape": list(m.shape)} for n, m in maps.items()]}
    return {**result, "title": t.title, "table": format_table(summary)}
