"""Class 2, images: every odd mode a camera or an editor writes (CMYK, 16-bit, palette, 1-bit,
EXIF-rotated, animated, 1x1, 2000:1) is predicted; files that are not whole images (text, empty,
truncated) are skipped in one line each; a decompression bomb (a few hundred bytes declaring gigapixels)
is refused from its header, before any pixel is allocated: in training data, in `zoo predict` and in
the Python API. (Uploads to `zoo serve`: test_fault_server.py.)"""

from __future__ import annotations

import json
import resource
import shutil

import pytest

from .faultkit import TINY_SETTINGS, cli, zoo_process
from .imagekit import bad_images, odd_images, png_bomb

pytestmark = pytest.mark.zoo_plugins("classify")  # trains them: skipped without

GIGA = 60_000  # 60000 x 60000: 3.6 GB as 8-bit grey, 10.8 GB as RGB, if it were ever decoded


def test_every_odd_mode_is_predicted_and_bad_files_skipped_in_one_line_each(trained, tmp_path):
    odd = odd_images(tmp_path / "in")
    bad = bad_images(tmp_path / "in")
    result = cli("predict", trained, tmp_path / "in", "--json")
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.stderr
    predicted = {json.loads(line)["image"].rsplit("/", 1)[-1] for line in result.stdout.splitlines() if line.strip()} \
        if not result.stdout.lstrip().startswith("[") else {r["image"].rsplit("/", 1)[-1] for r in json.loads(result.stdout)}
    assert set(odd) <= predicted, (set(odd) - predicted, result.stderr)
    skipped = [line for line in result.stderr.splitlines() if line.startswith("skipped ")]
    assert sorted(line.split()[1].rsplit("/", 1)[-1].rstrip(":") for line in skipped) == sorted(bad), result.stderr


def test_exif_rotation_is_applied_before_the_model_sees_the_image(tmp_path):
    from zoo_core.data.images import open_image

    path = odd_images(tmp_path)["rotated.jpg"]
    assert open_image(path).size == (24, 32)  # stored 32x24, shown upright


@pytest.mark.parametrize("size", [(GIGA, GIGA), (12_000, 12_000)], ids=["gigapixels", "just-over-the-limit"])
def test_a_decompression_bomb_in_zoo_predict_is_one_line_with_bounded_memory(trained, tmp_path, size):
    bomb = png_bomb(tmp_path / "bomb.png", *size)
    assert bomb.stat().st_size < 200_000
    good = odd_images(tmp_path / "good")["tiny.png"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    proc = zoo_process("predict", trained, good, bomb)  # the bomb skipped in one line, the other predicted
    peak_mb = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"skipped {bomb}: ") and "decompression bomb" in lines[0], lines
    assert "tiny.png" in proc.stdout
    assert peak_mb < 2500, f"peak memory {peak_mb:.0f} MB: the image was decoded"
    alone = zoo_process("predict", trained, bomb)  # nothing else: the skip, then the one-line error
    assert alone.returncode == 1 and alone.stderr.strip().splitlines()[-1].startswith("Error: ")


def test_a_decompression_bomb_in_the_api_is_a_zoo_error(tmp_path):
    from zoo_core import ZooError
    from zoo_core.data.images import open_image

    with pytest.raises(ZooError, match="bomb.png"):
        open_image(png_bomb(tmp_path / "bomb.png", GIGA, GIGA))
    with pytest.raises(ZooError, match="more than zoo decodes"):
        open_image(png_bomb(tmp_path / "bomb.png", 12_000, 12_000))


def test_a_decompression_bomb_in_training_data_is_skipped_and_said(folder, tmp_path):
    from zoo_core import train

    data = tmp_path / "pets"
    shutil.copytree(folder, data)
    png_bomb(data / "red" / "bomb.png", GIGA, GIGA)
    png_bomb(data / "green" / "bomb2.png", 12_000, 12_000)
    bad_images(data / "blue")
    out = tmp_path / "run"
    train("classify", data=str(data), out=str(out), **TINY_SETTINGS)
    skipped = (out / "skipped.txt").read_text()
    for name in ("bomb.png", "bomb2.png", "text.jpg", "empty.png", "truncated.png"):
        assert name in skipped, skipped
