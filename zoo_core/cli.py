"""The `zoo` command. Every user-facing problem is one line on stderr and a non-zero exit."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any

import click

from .errors import ZooError

EXIT_USER_ERROR = 1
EXIT_INTERRUPTED = 130


def friendly(fn):
    """Turn ZooError and Ctrl-C into one line and an exit code, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from .trainer import Interrupted

        try:
            return fn(*args, **kwargs)
        except ZooError as e:
            click.echo(f"Error: {e}", err=True)
            sys.exit(EXIT_USER_ERROR)
        except Interrupted as e:
            click.echo(str(e), err=True)
            sys.exit(EXIT_INTERRUPTED)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)

    return wrapper


class ZooGroup(click.Group):
    """Click's usage errors come as one line too (click prints a usage block and a blank line by default)."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            super().main(args=args, prog_name=prog_name, complete_var=complete_var, standalone_mode=False, **extra)
        except click.UsageError as e:
            hint = f" (see: {e.ctx.command_path} --help)" if e.ctx is not None else ""
            click.echo(f"Error: {e.format_message()}{hint}", err=True)
            sys.exit(e.exit_code)
        except click.ClickException as e:
            click.echo(f"Error: {e.format_message()}", err=True)
            sys.exit(e.exit_code)
        except click.Abort:
            click.echo("aborted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        sys.exit(0)


@click.group(cls=ZooGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="zoo-core", prog_name="zoo")
def main():
    """zoo: transfer learning for computer vision, one command per task.

    \b
      zoo list                          what is installed
      zoo train classify                train on the embedded digits
      zoo train classify --data pets/   train on your own folder of class folders
      zoo predict runs/classify-001 cat.jpg
    """


# ----------------------------------------------------------------------------------------------- list

def _component_rows(zoo, kind: str) -> list[dict[str, Any]]:
    rows = []
    for c in zoo.registries[kind]:
        row = {"name": c.name, "plugin": c.plugin, "description": c.description}
        if c.is_family:
            row["models"] = len(c.family_names())
        rows.append(row)
    return rows


def known_models(zoo) -> list[dict[str, Any]]:
    from .registry_file import load_known_models

    out = []
    for m in load_known_models():
        available = m.get("backbone", "") in zoo.backbones and (not m.get("task") or m["task"] in zoo.tasks)
        out.append({**m, "available": available})
    return out


@main.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON.")
@click.option("--backbones", "backbone_pattern", metavar="PATTERN",
              help="List backbone names matching a wildcard, e.g. 'resnet*' or 'torchvision:*'.")
@friendly
def list_cmd(as_json: bool, backbone_pattern: str | None):
    """Installed plugins, every component they register, and known models (registry.toml)."""
    from .plugins import get_zoo
    from .registry import KINDS, PLURAL

    zoo = get_zoo()
    if backbone_pattern:
        names = zoo.backbones.names(backbone_pattern)
        if as_json:
            click.echo(json.dumps(names, indent=2))
        else:
            click.echo("\n".join(names) if names else f"no backbone matches '{backbone_pattern}'")
        return
    if as_json:
        click.echo(json.dumps({
            "plugins": [p.as_dict() for p in zoo.plugins],
            "components": {PLURAL[k]: _component_rows(zoo, k) for k in KINDS},
            "known_models": known_models(zoo),
        }, indent=2))
        return
    click.echo("plugins:")
    for p in zoo.plugins:
        status = click.style(f"BROKEN: {p.error}", fg="red") if p.error else ""
        click.echo(f"  {p.name} ({p.source} {p.version}) {status}".rstrip())
        for kind in KINDS:
            comps = [c for c in zoo.registries[kind] if c.plugin == p.name]
            if comps:
                names = [f"{c.name} ({len(c.family_names())} models)" if c.is_family else c.name for c in comps]
                click.echo(f"    {PLURAL[kind] + ':':<11}{', '.join(names)}")
    models = known_models(zoo)
    if models:
        click.echo("\nknown models (registry.toml):")
        width = max(len(m["name"]) for m in models)
        bwidth = max(len(m["backbone"]) for m in models)
        for m in models:
            mark = "" if m["available"] else "  (not installed)"
            params = f"{m['params']:>6}M" if "params" in m else " " * 7
            click.echo(f"  {m['name']:<{width}}  {m.get('task', ''):<9} {m['backbone']:<{bwidth}} {params}  "
                       f"{m.get('description', '')}{mark}")
    click.echo("\nzoo list --json for descriptions; zoo list --backbones 'resnet*' to search backbones")


# ---------------------------------------------------------------------------------------------- train

def _train_options(fn):
    options = [
        click.option("--data", help="Your data: a folder (DIR/<class>/*.jpg or DIR/train, DIR/val) or a CSV file."),
        click.option("--dataset", help="Dataset component to read --data with (default: inferred)."),
        click.option("--backbone", help="Backbone: a timm name (resnet18), torchvision:NAME, or a small net (cnn2)."),
        click.option("--head", help="Head component (zoo list shows them)."),
        click.option("--loss", help="Loss component."),
        click.option("--weights", type=click.Path(dir_okay=False), help="Backbone weights file (.safetensors or .pth)."),
        click.option("--pretrained/--no-pretrained", default=None, help="Start from pretrained weights (default) or random."),
        click.option("--mode", type=click.Choice(["frozen", "finetune", "staged"]),
                     help="frozen: head only; finetune: everything; staged: head first, then unfreeze."),
        click.option("--freeze-epochs", type=int, help="staged: epochs before the backbone is unfrozen."),
        click.option("--backbone-lr-mult", type=float, help="Backbone learning rate as a fraction of --lr."),
        click.option("--epochs", type=int),
        click.option("--batch-size", type=int),
        click.option("--lr", type=float, help="Learning rate of the head."),
        click.option("--weight-decay", type=float),
        click.option("--optimizer", type=click.Choice(["adamw", "sgd"])),
        click.option("--momentum", type=float, help="SGD momentum."),
        click.option("--schedule", type=click.Choice(["cosine", "step", "onecycle", "constant"])),
        click.option("--warmup-epochs", type=float),
        click.option("--step-size", type=int, help="step schedule: epochs between decays."),
        click.option("--gamma", type=float, help="step schedule: decay factor."),
        click.option("--clip-grad", type=float, help="Clip gradients to this norm (0: off)."),
        click.option("--accum-steps", type=int, help="Accumulate gradients over this many batches."),
        click.option("--patience", type=int, help="Stop after this many epochs without improvement (0: off)."),
        click.option("--image-size", type=int, help="Override the backbone's input size."),
        click.option("--augment", type=click.Choice(["standard", "light", "none"])),
        click.option("--cache-features/--no-cache-features", default=None,
                     help="Frozen mode: compute backbone features once, then train only the head on them (no augmentation)."),
        click.option("--val-fraction", type=float, help="Share held out for validation when data has no val split."),
        click.option("--seed", type=int),
        click.option("--device", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N, mps."),
        click.option("--amp/--no-amp", default=None, help="Mixed precision on CUDA (default on)."),
        click.option("--amp-dtype", type=click.Choice(["auto", "bfloat16", "float16"]),
                     help="auto: bfloat16 where the GPU supports it, else float16 with a gradient scaler."),
        click.option("--channels-last/--no-channels-last", default=None, help="channels_last memory format on CUDA."),
        click.option("--workers", type=int, help="Data-loading processes (-1: auto)."),
        click.option("--out", type=click.Path(file_okay=False), help="Run directory (default runs/<task>-NNN)."),
        click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
                     help="Any setting or component option, e.g. --set head.dropout=0.3 (repeatable)."),
        click.option("--config", type=click.Path(dir_okay=False), help="A TOML run file; flags win over it."),
        click.option("--resume", type=click.Path(file_okay=False), help="Continue an interrupted or finished run."),
        click.option("-q", "--quiet", is_flag=True, help="Only the final line."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@main.command()
@click.argument("task", required=False)
@_train_options
@friendly
def train(task: str | None, sets: tuple[str, ...], config: str | None, resume: str | None, quiet: bool, **flags):
    """Train TASK (e.g. classify) on its embedded dataset, or on --data."""
    from .config import parse_set
    from .trainer import train as run_training

    if task is None and resume is None:
        raise ZooError("name a task (zoo train classify) or a run to continue (--resume RUN); zoo list shows tasks")
    settings = {**{k: v for k, v in flags.items() if v is not None}, **parse_set(sets)}
    result = run_training(task or "", config=config, resume=resume, quiet=quiet, **settings)
    metric = next((k for k in result.best if k != "epoch"), None)
    summary = f"{metric} {result.best[metric]:.4f} (best, epoch {result.best['epoch']})" if metric else "no epoch finished"
    click.echo(f"{summary}; {result.status} in {result.seconds:.0f}s; run saved to {result.run_dir}")


# ------------------------------------------------------------------------------------- eval & predict

@main.command("eval")
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@click.option("--data", required=True, help="Labelled data in a format the run's task reads.")
@click.option("--dataset", help="Dataset component (default: inferred from --data).")
@click.option("--device", default="auto")
@click.option("--report", "report_dir", type=click.Path(file_okay=False),
              help="Also write the confusion matrix and report files into this folder.")
@click.option("--json", "as_json", is_flag=True)
@friendly
def eval_cmd(run: str, data: str, dataset: str | None, device: str, report_dir: str | None, as_json: bool):
    """Evaluate a trained RUN on labelled data."""
    from .api import load_run

    r = load_run(run, device=device)
    scores, metrics = r.evaluate(data, dataset=dataset)
    if report_dir:
        Path(report_dir).mkdir(parents=True, exist_ok=True)
        metrics.report(report_dir, prefix="eval_")
    if as_json:
        detail = metrics.per_class() if hasattr(metrics, "per_class") else None
        click.echo(json.dumps({**scores, **({"per_class": detail} if detail else {})}, indent=2))
        return
    if hasattr(metrics, "table"):
        click.echo(metrics.table())
    click.echo("  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in scores.items()))


@main.command()
@click.argument("target", metavar="RUN|BACKBONE")
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("-k", "--top-k", default=3, show_default=True, help="How many classes to show per image.")
@click.option("--device", default="auto")
@click.option("--json", "as_json", is_flag=True)
@click.option("--draw", type=click.Path(dir_okay=False), help="Also draw the images with their predictions into this PNG.")
@friendly
def predict(target: str, images: tuple[str, ...], top_k: int, device: str, as_json: bool, draw: str | None):
    """Predict IMAGES (files or folders) with a trained RUN, or with a pretrained BACKBONE and the
    classifier it was trained with (ImageNet classes: zoo predict efficientnet_lite0 cat.jpg)."""
    from .api import Pretrained, load_run, resolve_target

    kind, what = resolve_target(target)
    predictor = load_run(what, device=device) if kind == "run" else Pretrained(what, device=device)
    results, skipped = predictor.predict_paths(images, top_k=top_k)
    for path, reason in skipped:
        click.echo(f"skipped {path}: {reason}", err=True)
    if not results:
        raise ZooError("no readable image among the inputs")
    if draw:
        from .data import load_image
        from .plots import draw_predictions

        shown = results[:48]
        draw_predictions([load_image(p["image"]) for p in shown],
                         [f"{Path(p['image']).name}\n{predictor.format_prediction({**p, 'top': p.get('top', [])[:1]})}"
                          if "top" in p else Path(p["image"]).name for p in shown], Path(draw))
        click.echo(f"drew {len(shown)} prediction(s) into {draw}", err=True)
    if as_json:
        click.echo(json.dumps(results, indent=2))
        return
    for p in results:
        click.echo(f"{p['image']}: {predictor.format_prediction(p)}")


# -------------------------------------------------------------------------------------------- inspect

@main.command("inspect")
@click.argument("target", metavar="RUN|BACKBONE")
@click.option("--depth", type=click.IntRange(min=1), default=3, show_default=True,
              help="Levels of modules to expand (a container holding one module is not a level).")
@click.option("--mode", type=click.Choice(["frozen", "finetune"]),
              help="Show the backbone frozen, or everything trainable (default: a run as it ended, a backbone as created).")
@click.option("--image-size", type=click.IntRange(min=1), help="Input size to trace the shapes with (default: the model's).")
@click.option("--json", "as_json", is_flag=True, help="Print the rows and totals as JSON.")
@click.option("--feature-maps", "image", type=click.Path(dir_okay=False),
              help="Also draw what layers make of this image (its feature maps) into a PNG.")
@click.option("--layers", help="Layers for --feature-maps, comma-separated: a name or its unique ending (blocks.2); "
                               "default: 4 from shallow to deep.")
@click.option("--channels", type=click.IntRange(min=1), default=16, show_default=True,
              help="--feature-maps: the most active channels drawn per layer.")
@click.option("--no-pretrained", is_flag=True, help="--feature-maps of a BACKBONE with random weights, not its pretrained ones.")
@click.option("-o", "--out", type=click.Path(dir_okay=False),
              help="PNG for --feature-maps (default: <image stem>-feature-maps.png here).")
@click.option("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N, mps.")
@friendly
def inspect_cmd(target: str, depth: int, mode: str | None, image_size: int | None, as_json: bool, image: str | None,
                layers: str | None, channels: int, no_pretrained: bool, out: str | None, device: str):
    """Layers of a trained RUN or a BACKBONE with their output shapes and trainable and frozen
    parameters (like Keras' model.summary()); with --feature-maps IMAGE, also draw what chosen
    layers see in the image."""
    from .summary import (
        default_layers,
        feature_maps,
        find_layer,
        format_table,
        load_target,
        summarise,
    )
    from .trainer import pick_device

    if (layers or out) and not image:
        raise ZooError("--layers and --out go with --feature-maps IMAGE")
    # Weights change no shape or count: a backbone loads its pretrained ones only to draw feature maps.
    t = load_target(target, mode=mode, image_size=image_size, pretrained=bool(image) and not no_pretrained)
    t.model.to(pick_device(device))
    summary = summarise(t.model, t.data_config.input_size, depth)
    result: dict[str, Any] = {"target": target, "kind": t.kind, "mode": t.mode, **summary.to_dict()}
    if image:
        from .plots import plot_feature_maps

        # by default from the rows shown; from all of them when --depth hides every feature map
        wanted = ([s.strip() for s in layers.split(",") if s.strip()] if layers else default_layers(summary)
                  or default_layers(summarise(t.model, t.data_config.input_size, depth=1_000)))
        if not wanted:
            raise ZooError("no layer gives a feature map larger than 1x1 to draw")
        names = list(dict.fromkeys(find_layer(t.model, w, [r.name for r in summary.rows]) for w in wanted))
        shown, maps = feature_maps(t.model, t.data_config, image, names)
        path = Path(out) if out else Path(f"{Path(image).stem}-feature-maps.png")
        plot_feature_maps(shown, maps, path, channels=channels)
        result["feature_maps"] = {"image": image, "path": str(path),
                                  "layers": [{"name": n, "shape": list(m.shape)} for n, m in maps.items()]}
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        click.echo(t.title)
        click.echo(format_table(summary))
    if image:
        click.echo(f"wrote {path} (feature maps of {', '.join(maps)})", err=as_json)


# --------------------------------------------------------------------------------------------- export

@main.command()
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@click.option("--format", "fmt", default="onnx", show_default=True, help="An exporter: zoo list shows them.")
@click.option("--out", type=click.Path(dir_okay=False), help="Output file (default: RUN/model.<suffix>).")
@friendly
def export(run: str, fmt: str, out: str | None):
    """Export a trained RUN for deployment (ONNX, TorchScript, or a plugin's format)."""
    import torch

    from .api import load_run
    from .artifacts import atomic_write
    from .plugins import get_zoo

    component = get_zoo().exporters.get(fmt)
    r = load_run(run, device="cpu")
    path = Path(out) if out else Path(run) / f"model{component.extra.get('suffix', '.' + fmt)}"
    example = torch.zeros(1, *r.data_config.input_size)
    atomic_write(path, lambda p: component.factory(r.model, example, p))
    click.echo(f"wrote {path}")


if __name__ == "__main__":
    main()
