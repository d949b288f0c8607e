"""zoo-restore's tests pass with zoo-core and this plugin alone:
    pip install -c constraints.txt -e '.[test]' -e plugins/zoo-restore && python -m pytest plugins/zoo-restore
Their fixtures (hub, ...) come from zoo_core.testing, through zoo-core's pytest11 entry point."""

import numpy as np
import pytest
from PIL import Image
from zoo_core.testing import isolate_environment

isolate_environment()  # no network, and a fresh zoo cache for the session


@pytest.fixture(scope="module")
def clean_folder(tmp_path_factory):
    """Six small clean RGB images of smooth shapes and texture (generated; any photo would do)."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:40, 0:48]
    for i in range(6):
        arr = np.stack([(xx * (3 + i)) % 256, (yy * (5 + i)) % 256, ((xx + yy) * 2) % 256], axis=-1)
        arr = np.clip(arr + rng.normal(0, 4, arr.shape), 0, 255).astype(np.uint8)
        Image.fromarray(arr).save(root / f"p{i}.png")
    return root


TINY_RESTORE = dict(head_options={"channels": 8, "levels": 2}, dataset_options={"patches": 16}, image_size=32)


@pytest.fixture(scope="module")
def restore_run(tmp_path_factory, clean_folder):
    """One tiny restore run (RGB small CNN, one epoch) shared by a module's tests."""
    from zoo_core.testing import tiny_train

    return tiny_train("restore", tmp_path_factory.mktemp("restore"), channels=3, data=str(clean_folder), **TINY_RESTORE)
