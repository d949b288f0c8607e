import numpy as np
import pytest
from PIL import Image


@pytest.fixture
def clean_folder(tmp_path):
    """Six small clean RGB images of smooth shapes and texture (generated; any photo would do)."""
    root = tmp_path / "photos"
    root.mkdir()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:40, 0:48]
    for i in range(6):
        arr = np.stack([(xx * (3 + i)) % 256, (yy * (5 + i)) % 256, ((xx + yy) * 2) % 256], axis=-1)
        arr = np.clip(arr + rng.normal(0, 4, arr.shape), 0, 255).astype(np.uint8)
        Image.fromarray(arr).save(root / f"p{i}.png")
    return root
