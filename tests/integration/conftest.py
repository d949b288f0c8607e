"""Integration tests: several real plugins together (export parity over every installed task, zoo serve of a
classifier and a localizer, ImageNet predictions of a backbone plugin read by the classify task). They run
where the README's test command runs them, with every plugin of plugins/all.txt installed; each test module
names the plugins it needs (pytest.mark.zoo_plugins), and is skipped, saying which, without them."""

from __future__ import annotations

from pathlib import Path

import pytest

from zoo_core.testing import COLOURS, make_image, tiny_train


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Tiny runs: classify on 3 colours (16 px), localize on 48 generated canvases (32 px)."""
    root = tmp_path_factory.mktemp("serve")
    for i, (name, colour) in enumerate(COLOURS.items()):
        for k in range(6):
            make_image(root / "colours" / name / f"{k}.png", colour, seed=10 * i + k)
    return {"classify": tiny_train("classify", root / "c", data=str(root / "colours"), image_size=16).dir,
            "localize": tiny_train("localize", root / "l", dataset_options={"count": 48}).dir}
