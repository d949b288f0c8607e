from __future__ import annotations

from pathlib import Path

from zoo_core import image_grid, load_image


def draw_searches(predictions, path: str | Path, cell: int = 128) -> Path:
    """A row per query: the query image, then its neighbours with their similarities."""
    k = max(len(p.neighbours) for p in predictions)
    cells, titles = [], []
    for p in predictions:
        row = [(load_image(p.source), Path(p.source).name)]
        row += [(load_image(n["path"]), f"{n['similarity']:.3f}") for n in p.neighbours]
        row += [(load_image(p.source).resize((1, 1)), "")] * (k - len(p.neighbours))
        cells += [im for im, _ in row]
        titles += [t for _, t in row]
    return image_grid(cells, path, columns=k + 1, cell=cell, titles=titles)
