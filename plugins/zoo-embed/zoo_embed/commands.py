"""`zoo index build|add` and `zoo search`: a gallery of images embedded once, searched by example."""

from __future__ import annotations

import json
from pathlib import Path

import click
from zoo_core import ZooError


def _run(target: str, device: str):
    from zoo_core import load_run

    run = load_run(target, device=device)
    if run.task.name != "embed":
        raise ZooError(f"{target}: a '{run.task.name}' model; an index needs an embed run")
    return run


def _report_skipped(skipped) -> None:
    for path, reason in skipped[:10]:
        click.echo(f"skipped {path}: {reason}", err=True)
    if len(skipped) > 10:
        click.echo(f"... and {len(skipped) - 10} more unreadable file(s)", err=True)


@click.group("index")
def index():
    """Build or extend a search index: a gallery's embeddings, paths and the model's fingerprint."""


@index.command("build")
@click.argument("run", metavar="RUN|hf-hub:ID")
@click.argument("images", nargs=-1, required=True)
@click.option("-o", "--out", type=click.Path(dir_okay=False), help="The index file to write (default: RUN/index.safetensors).")
@click.option("--device", default="auto", show_default=True)
def build(run, images, out, device):
    """Embed IMAGES (files, folders searched recursively, globs) with RUN and write them as an index."""
    from .index import Index, embed_images

    model = _run(run, device)
    out = Path(out) if out else Path(run) / "index.safetensors"
    embeddings, paths, skipped = embed_images(model, images)
    if not paths:  # one line: the error says why the first file was unreadable
        raise ZooError(f"{' '.join(images)}: no readable image to index" + (f" ({skipped[0][1]})" if skipped else ""))
    _report_skipped(skipped)
    Index(embeddings, paths, model.info["model_fingerprint"], str(Path(run).resolve())).save(out)
    click.echo(f"indexed {len(paths)} image(s) into {out}", err=True)


@index.command("add")
@click.argument("index_file", metavar="INDEX")
@click.argument("images", nargs=-1, required=True)
@click.option("--run", "run", help="The run the index was built with (default: the one it records).")
@click.option("--device", default="auto", show_default=True)
def add(index_file, images, run, device):
    """Add IMAGES not yet in INDEX (by path), embedded with the model that built it."""
    from .index import Index, embed_images

    idx = Index.load(index_file)
    model = _run(run or idx.model, device)
    idx.check_model(model.info["model_fingerprint"], index_file)
    embeddings, paths, skipped = embed_images(model, images)
    _report_skipped(skipped)
    added = idx.add(embeddings, paths)
    idx.save(index_file)
    click.echo(f"added {added} image(s) to {index_file} ({len(idx)} in all; {len(paths) - added} already there)", err=True)


@click.command("search")
@click.argument("target", metavar="INDEX|RUN")
@click.argument("images", nargs=-1, required=True)
@click.option("-k", "--top-k", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--run", "run", help="With an INDEX: the run to embed the query with (default: the one it records).")
@click.option("--draw", type=click.Path(dir_okay=False), help="A PNG: each query and its neighbours in a row.")
@click.option("--json", "as_json", is_flag=True, help="One JSON line per query image.")
@click.option("--device", default="auto", show_default=True)
def search(target, images, top_k, run, draw, as_json, device):
    """The images of an index most like each query image. TARGET is an index file, or a run with an index
    built into it (zoo index build RUN DIR)."""
    from .index import Index

    if Path(target).is_dir():
        index_file, run = Path(target) / "index.safetensors", run or target
        if not index_file.is_file():
            raise ZooError(f"{target}: no index in this run; build one: zoo index build {target} GALLERY_DIR")
    else:
        index_file = Path(target)
        run = run or Index.load(index_file).model
    model = _run(run, device)
    predictions, skipped = model.predict_paths(list(images), index=str(index_file), top_k=top_k)
    if not predictions:  # one line: the error says why the first file was unreadable
        raise ZooError(f"{' '.join(images)}: not an image zoo can read" + (f" ({skipped[0][1]})" if skipped else ""))
    _report_skipped(skipped)
    for p in predictions:
        if as_json:
            click.echo(json.dumps({"image": p.source, "neighbours": p.neighbours}))
        else:
            click.echo(p.source)
            for n in p.neighbours:
                click.echo(f"  {n['similarity']:.4f}  {n['path']}")
    if draw:
        from .draw import draw_searches

        click.echo(f"drew {draw_searches(predictions, draw)}", err=True)
