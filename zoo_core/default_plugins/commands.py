"""zoo's own commands beyond training, evaluating, predicting, exporting and sharing: `zoo lr-find`,
`zoo inspect`, `zoo compress`, `zoo serve`, `zoo plugin new`, `zoo cache`. They register through
register_commands like any plugin's (builtin.py names them), are imported only when run, and call the
Python API; what they print is theirs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..base.errors import ZooError
from ..console import friendly, train_options


@click.command("lr-find")
@click.argument("task")
@train_options
@click.option("--start-lr", type=click.FloatRange(min=0, min_open=True), default=1e-7, show_default=True,
              help="Smallest learning rate of the sweep.")
@click.option("--end-lr", type=click.FloatRange(min=0, min_open=True), default=10.0, show_default=True,
              help="Largest learning rate of the sweep (it stops earlier when the loss blows up).")
@click.option("--steps", type=click.IntRange(min=3), help="Steps of the sweep (default: 3 passes over the data, 30 to 200).")
@click.option("--plot", type=click.Path(dir_okay=False), help="Where to draw loss against lr (default runs/lr-find-TASK.png).")
@friendly
def lr_find_cmd(task: str, sets: tuple[str, ...], config: str | None, resume: str | None, quiet: bool,
                start_lr: float, end_lr: float, steps: int | None, plot: str | None, **flags):
    """The learning-rate range test for TASK with the flags zoo train takes: train briefly while the lr grows
    exponentially, plot the loss against it, and print the zoo train command with the suggested --lr."""
    import shlex

    from ..api import lr_find
    from ..console import settings_from

    if resume:
        raise ZooError("--resume: zoo lr-find starts from the run's config, not a checkpoint; give the training flags")
    settings = settings_from(flags, sets)
    result = lr_find(task, config=config, start_lr=start_lr, end_lr=end_lr, steps=steps, plot=plot, quiet=quiet,
                     **settings)
    # the same command line as a training run, with the suggestion as its --lr
    own = {"--start-lr", "--end-lr", "--steps", "--plot", "--lr"}
    argv, keep, skip = sys.argv[1:], [], False
    if "lr-find" in argv:
        for token in argv[argv.index("lr-find") + 1:]:
            if skip:
                skip = False
            elif token in own:
                skip = True
            elif token.split("=")[0] not in own:
                keep.append(token)
    else:
        keep = [task]
    click.echo(f"suggested lr {result.suggestion:.2g} (steepest descent of the smoothed loss; plot {result.plot})")
    click.echo("zoo train " + " ".join(shlex.quote(t) for t in [*keep, "--lr", f"{result.suggestion:.2g}"]))

@click.command("inspect")
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
    from ..api import inspect

    result = inspect(target, depth=depth, mode=mode, image_size=image_size, image=image, layers=layers,
                     channels=channels, pretrained=bool(image) and not no_pretrained, out=out, device=device)
    title, table = result.pop("title"), result.pop("table")
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        click.echo(title)
        click.echo(table)
    if image:
        maps = result["feature_maps"]
        click.echo(f"wrote {maps['path']} (feature maps of {', '.join(m['name'] for m in maps['layers'])})", err=as_json)

@click.command()
@click.argument("run", metavar="RUN|hf-hub:ID")
@click.option("--sparsity", type=click.FloatRange(0, 1, min_open=True, max_open=True), required=True,
              help="Share to remove, e.g. 0.5: of all convolution and linear weights (--prune weights), or of "
                   "each backbone layer's channels (--prune channels).")
@click.option("--prune", type=click.Choice(["weights", "channels"]), default="weights", show_default=True,
              help="weights: zero the smallest weights (a file that compresses well, no faster); channels: "
                   "remove whole channels, the smallest by L2 norm (a smaller, faster network; needs "
                   "pip install 'zoo-core[prune]').")
@click.option("--epochs", type=click.IntRange(min=0), default=3, show_default=True,
              help="Fine-tuning epochs after pruning, with the run's own recipe (0: none).")
@click.option("--lr", type=float, help="Fine-tuning learning rate (default: the run's / 10).")
@click.option("-o", "--out", type=click.Path(file_okay=False), help="The new run directory (default: runs/TASK-NNN).")
@friendly
def compress(run: str, sparsity: float, prune: str, epochs: int, lr: float | None, out: str | None):
    """Prune a trained RUN (weights by magnitude, or whole channels) and fine-tune it briefly with the
    normal trainer: a new run (evaluate, export, push it as any other). Prints the validation scores
    before, after pruning and after fine-tuning."""
    from ..api import compress as compress_run

    facts = compress_run(run, sparsity, out, epochs=epochs, lr=lr, quiet=False, prune=prune)
    scores = facts["scores"]
    keys = [k for k, v in scores["original"].items() if k not in ("images", "skipped") and isinstance(v, float)]
    for stage, label in (("original", "original"), ("pruned", f"pruned {sparsity:.0%} of {prune}"),
                         ("fine_tuned", f"+ {epochs} epoch(s) fine-tuning")):
        s = scores[stage]
        click.echo(f"{label:<28} " + "  ".join(f"{k} {s[k]:.4f}" for k in keys))
    params = facts["parameters"]
    if prune == "channels":
        click.echo(f"{params['pruned']:,} parameters of {params['original']:,} ({params['pruned'] / params['original']:.0%}); "
                   f"run saved to {facts['run_dir']}")
    else:
        click.echo(f"{facts['zero_weights']:,} of {facts['prunable_weights']:,} weights are zero; "
                   f"run saved to {facts['run_dir']}")

@click.command()
@click.argument("target", metavar="RUN|hf-hub:ID")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on; any other than the loopback needs --api-key.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="0: any free port.")
@click.option("--runtime", type=click.Choice(["torch", "onnx"]), default="torch", show_default=True)
@click.option("--device", default="auto")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Inference threads.")
@click.option("--api-key", envvar="ZOO_API_KEY", help="Key every request but the page and /health must send (X-API-Key); or ZOO_API_KEY.")
@click.option("--max-batch", type=click.IntRange(min=1), default=16, show_default=True, help="Images predicted together at most (1: no batching).")
@click.option("--batch-wait-ms", type=click.FloatRange(min=0), default=5.0, show_default=True, help="How long a batch waits for more images.")
@click.option("--max-upload-mb", type=click.FloatRange(min=0, min_open=True), default=20.0, show_default=True, help="Largest request body.")
@click.option("--max-pixels", type=click.IntRange(min=1), default=40_000_000, show_default=True, help="Largest image (width x height).")
@click.option("--option", "fixed", multiple=True, metavar="NAME=VALUE",
              help="A prediction option fixed for every request, checked at start (embed: --option index=gallery.idx); "
                   "requests cannot change it. Repeatable.")
@friendly
def serve(target: str, fixed: tuple[str, ...], **settings):
    """Serve a trained RUN over HTTP: POST /predict answers what zoo predict --json prints, a page at /
    lets you drop images and see them drawn, API docs at /docs."""
    from ..serve import serve as run_server

    pairs = {}
    for item in fixed:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ZooError(f"--option {item}: give NAME=VALUE (zoo predict --help lists the task's options)")
        pairs[name.strip().replace("-", "_")] = value
    run_server(target, echo=click.echo, fixed=pairs, **settings)

@click.group()
def plugin():
    """Write and check plugins."""


@plugin.command("new")
@click.argument("name")
@click.option("--dir", "parent", type=click.Path(file_okay=False), default=".", show_default=True,
              help="Where to create the zoo-NAME folder.")
@friendly
def plugin_new(name: str, parent: str):
    """Write a plugin skeleton zoo-NAME/: a task with an embedded dataset, a head, a pyproject with its
    entry point and a test. `pip install -e zoo-NAME && zoo train NAME` trains it as it is."""
    from .scaffold import new_plugin

    root = new_plugin(name, Path(parent))
    click.echo(f"wrote {root}/; next: pip install -e {root} && zoo train {name.lower()}")

def _ago(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return "just now"


@click.group()
def cache():
    """zoo's on-disk cache ($ZOO_CACHE, else ~/.cache/zoo): backbone features and decoded images,
    reused across runs; bounded by the cache_disk_gb setting (least recently used files go first)."""


@cache.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@friendly
def cache_list(as_json: bool):
    """Entries: key, what they were computed for, images, size and last use."""
    import time

    from ..base.settings import BY_NAME
    from ..training.cache import cache_root, entries

    rows = entries()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    limit = BY_NAME["cache_disk_gb"].default
    total = sum(r["bytes"] for r in rows)
    click.echo(f"{cache_root()}: {len(rows)} entr{'y' if len(rows) == 1 else 'ies'}, {total / 2**20:.1f} MiB "
               f"(limit cache_disk_gb={limit:g} GiB)")
    if rows:
        click.echo(f"{'key':<14} {'kind':<14} {'images':>6} {'MiB':>8}  {'last used':<12} what")
    for r in sorted(rows, key=lambda r: -r["last_used"]):
        click.echo(f"{r['key'][:12]:<14} {r['kind']:<14} {r['images']:>6} {r['bytes'] / 2**20:>8.1f}  "
                   f"{_ago(time.time() - r['last_used']):<12} {r['what']}")


@cache.command("clear")
@click.argument("key", required=False)
@click.option("--older-than", "older_than", type=click.FloatRange(min=0), metavar="DAYS",
              help="Only what has not been used for this many days.")
@friendly
def cache_clear(key: str | None, older_than: float | None):
    """Remove everything, the entry KEY (a prefix of it, or 'images'), or what is unused for --older-than DAYS."""
    from ..training.cache import clear

    files, freed = clear(key, older_than)
    click.echo(f"removed {files} file(s), {freed / 2**20:.1f} MiB")
