import numpy as np
import pytest
from PIL import Image


def write_identities(root, identities=6, per_identity=4, size=24, seed=0):
    """root/<identity>/<n>.png: each identity a colour and stripe pattern, its images a little noisy."""
    rng = np.random.default_rng(seed)
    for i in range(identities):
        folder = root / f"id{i:02d}"
        folder.mkdir(parents=True)
        colour = rng.integers(0, 256, 3)
        for n in range(per_identity):
            arr = np.zeros((size, size, 3), np.float32) + colour
            arr[:, :: 2 + i % 3] = 255 - colour
            arr += rng.normal(0, 12, arr.shape)
            Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(folder / f"{n}.png")
    return root


@pytest.fixture
def identity_dir(tmp_path):
    return write_identities(tmp_path / "ids")


@pytest.fixture(scope="session")
def make_identities():
    """write_identities, for fixtures of a wider scope than a test's tmp_path."""
    return write_identities
