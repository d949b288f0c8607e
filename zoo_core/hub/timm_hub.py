"""timm's Hub format, both ways.

Out: a zoo model that *is* a timm classifier (a timm backbone, pooled features, one linear layer with one
output per class) is pushed so that `timm.create_model("hf-hub:ID", pretrained=True)` loads it as it is:
`model.safetensors` holds timm's own key names, and `config.json` holds timm's fields (`architecture`,
`num_classes`, `label_names`, `pretrained_cfg` with zoo's preprocessing) beside zoo's own. zoo reads the
same file back through the renaming its config records (`weights_layout.rename`), so there is one weights file
for both libraries. Whether a model qualifies is not guessed: the timm model is built, loaded strictly and
must give zoo's logits on a probe input, or the push keeps zoo's own layout.

In: a checkpoint pushed by timm's `push_to_hf_hub` (or any timm model repo with `model.safetensors`) is a
backbone (`--backbone hf-hub:ID`), and, when it has a classifier, a pretrained model (`zoo predict
hf-hub:ID`), loaded from safetensors only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..base.errors import ZooError

LOGITS = "logits/class"  # the output kind a backbone's pretrained head has (see components.PretrainedHead)


def is_timm_config(config: dict[str, Any]) -> bool:
    """config.json written by timm (push_to_hf_hub / save_for_hf), current or legacy single-dict form,
    and not by zoo (a zoo push of a timm classifier has both; zoo's reading wins)."""
    return "architecture" in config and "format" not in config


def _parse(config: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(architecture, pretrained_cfg, model_args) the way timm's own reader splits config.json."""
    config = dict(config)
    if "pretrained_cfg" not in config:  # legacy: one dict
        pretrained_cfg = {k: v for k, v in config.items() if k not in ("architecture", "num_features")}
        if "labels" in pretrained_cfg:
            pretrained_cfg["label_names"] = pretrained_cfg.pop("labels")
    else:
        pretrained_cfg = dict(config["pretrained_cfg"])
    for key in ("num_classes", "label_names", "label_descriptions"):
        if key in config:
            pretrained_cfg[key] = config[key]
    return str(config["architecture"]), pretrained_cfg, dict(config.get("model_args") or {})


# ---------------------------------------------------------------------------------------------- in

def timm_backbone(folder: Path, source: str, *, pretrained: bool = True, in_chans: int | None = None,
                  image_size: int | None = None):
    """A timm checkpoint's network as a zoo backbone; its classifier, if any, becomes the pretrained head
    (with the checkpoint's label names), as an ImageNet classifier's does."""
    import json

    import timm
    from torch import nn

    from ..model.backbones import TimmModelBackbone, short_label
    from ..contract.components import PretrainedHead

    config = json.loads((folder / "config.json").read_text())
    architecture, pretrained_cfg, model_args = _parse(config)
    if not timm.is_model(architecture):
        raise ZooError(f"{source}: timm architecture '{architecture}' is unknown to the installed timm "
                       f"{timm.__version__}; pip install -U timm")
    num_classes = int(pretrained_cfg.get("num_classes") or 0)
    overlay = {k: v for k, v in pretrained_cfg.items()
               if k in ("input_size", "mean", "std", "interpolation", "crop_pct", "crop_mode", "num_classes",
                        "label_names", "classifier", "first_conv", "pool_size", "fixed_input_size")}
    try:
        model = timm.create_model(architecture, pretrained=False, pretrained_cfg_overlay=overlay,
                                  **{**model_args, "num_classes": num_classes})
    except (TypeError, ValueError, KeyError) as e:
        raise ZooError(f"{source}: config.json does not build timm's '{architecture}' ({e})") from None
    if pretrained:
        from safetensors.torch import load_file

        weights = folder / "model.safetensors"
        try:
            state = load_file(str(weights))
            model.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise ZooError(f"{source}: model.safetensors does not fit timm's '{architecture}' "
                           f"({str(e).splitlines()[0][:160]})") from None
    head = None
    classifier = model.get_classifier() if num_classes else None
    if pretrained and isinstance(classifier, nn.Linear):
        names = pretrained_cfg.get("label_names")
        if isinstance(names, dict):  # timm allows {index: name} where ids have gaps
            names = [names.get(str(i), names.get(i, str(i))) for i in range(num_classes)]
        if not names or len(names) != num_classes:
            names = [str(i) for i in range(num_classes)]
        head = PretrainedHead(classifier.eval(), LOGITS, {"classes": [short_label(str(n)) for n in names]})
    model.reset_classifier(0)  # forward() now returns pooled features
    backbone = TimmModelBackbone(model, image_size=image_size, in_chans=in_chans)
    if head is not None:
        backbone.set_pretrained_head(head)
    backbone.pretrained_source = source if pretrained else "none"
    return backbone


# --------------------------------------------------------------------------------------------- out

def timm_layout(model, mc: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]] | str:
    """For a model timm can load as it is: (timm's state dict, timm's config.json fields, zoo's
    `weights` section that renames the keys back). Otherwise the reason why not, in a few words."""
    import torch
    from torch import nn

    from ..model.backbones import TimmModelBackbone

    backbone, head = model.backbone, model.head
    classes = mc.get("info", {}).get("classes") or []
    if not isinstance(backbone, TimmModelBackbone):
        return "the backbone is not a timm model"
    if mc.get("output") != LOGITS or model.head_input != "pooled" or mc.get("pruned"):
        return "not a classifier on pooled features"
    layers = [(name, m) for name, m in head.named_modules() if any(True for _ in m.parameters(recurse=False))]
    if len(layers) != 1 or not isinstance(layers[0][1], nn.Linear) or layers[0][1].out_features != len(classes):
        return "the head is not one linear layer with one output per class"
    linear_name, linear = layers[0]
    timm_model = backbone.model
    architecture = timm_model.pretrained_cfg.get("architecture")
    classifier = timm_model.pretrained_cfg.get("classifier")
    if not architecture or not isinstance(classifier, str):
        return "timm does not name the model's architecture or classifier"

    body = "backbone.model."
    head_prefix = f"head.{linear_name}." if linear_name else "head."
    state = model.state_dict()
    timm_state: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith(body):
            timm_state[key[len(body):]] = value
        elif key.startswith(head_prefix):
            timm_state[f"{classifier}.{key[len(head_prefix):]}"] = value
        else:
            return f"the model has weights timm has no place for ({key})"

    in_chans = int(mc["data_config"]["input_size"][0])
    model_args = {k: v for k, v in (mc.get("backbone_options") or {}).items() if _json_plain(v)}
    if in_chans != 3:
        model_args["in_chans"] = in_chans
    import timm

    try:  # the proof: timm builds it, takes every weight strictly, and gives zoo's logits
        probe_model = timm.create_model(architecture, pretrained=False, num_classes=len(classes), **model_args).eval()
        probe_model.load_state_dict(timm_state, strict=True)
        x = torch.randn(2, *mc["data_config"]["input_size"], generator=torch.Generator().manual_seed(0))
        was_training = model.training
        model.eval()
        with torch.no_grad():
            same = torch.allclose(probe_model(x), model(x), atol=1e-4, rtol=1e-4)
        model.train(was_training)
    except Exception as e:  # any failure means: not timm's model, keep zoo's layout
        return f"timm cannot rebuild it ({type(e).__name__})"
    if not same:
        return "timm's rebuild gives other outputs"

    dc = mc["data_config"]
    pretrained_cfg = {k: v for k, v in timm_model.pretrained_cfg.items()
                      if k not in ("state_dict", "hf_hub_id", "hf_hub_filename", "url", "file", "source", "tag",
                                   "license", "origin_url", "paper_ids", "paper_name", "notes", "label_names",
                                   "label_descriptions", "label_offset", "test_input_size", "test_crop_pct")
                      and _json_plain(v)}
    pretrained_cfg.update(input_size=list(dc["input_size"]), mean=list(dc["mean"]), std=list(dc["std"]),
                          interpolation=dc["interpolation"], crop_pct=dc["crop_pct"], crop_mode="center",
                          num_classes=len(classes), classifier=classifier, custom_load=False)
    fields = {"architecture": architecture, "num_classes": len(classes), "num_features": int(linear.in_features),
              "label_names": list(classes), "pretrained_cfg": pretrained_cfg}
    if model_args:
        fields["model_args"] = model_args
    layout = {"layout": "timm", "rename": [[f"{classifier}.", head_prefix], ["", body]]}  # first match wins
    return timm_state, fields, layout


def _json_plain(value: Any) -> bool:
    import json

    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True
