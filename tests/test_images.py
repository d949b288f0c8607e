"""Images as users have them: every PIL mode converted right, EXIF orientation applied, and bad files
(zero bytes, truncated, text named .jpg) skipped with a count and their names while training goes on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from zoo_core.cli import main
from zoo_core.data.images import check_image, load_image, scan_images, to_mode

pytestmark = pytest.mark.zoo_plugins("classify")  # trains them: skipped without

TINY = ["--backbone", "cnn2", "--no-pretrained", "--image-size", "16", "--epochs", "1", "--batch-size", "8",
        "--workers", "0", "--device", "cpu"]
WHITE, RED, GREEN, BLUE = (255, 255, 255), (255, 0, 0), (0, 255, 0), (0, 0, 255)


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """Nothing here may reach the network: the small nets are built from scratch."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def zoo_command() -> list[str]:
    script = Path(sys.executable).with_name("zoo")
    return [str(script)] if script.exists() else [sys.executable, "-m", "zoo_core.cli"]


def noise(size=(16, 16), seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img).astype(int)


def sixteen_bit(values) -> Image.Image:
    a = np.asarray(values, dtype="<u2")
    return Image.frombytes("I;16", (a.shape[1], a.shape[0]), a.tobytes())


def pgm16(path: Path, values) -> None:
    """A 16-bit binary PGM (maxval 65535), which PIL opens as mode 'I', not 'I;16'."""
    a = np.asarray(values, dtype=">u2")
    path.write_bytes(f"P5\n{a.shape[1]} {a.shape[0]}\n65535\n".encode() + a.tobytes())


# ------------------------------------------------------------------------------------- bad files


def write_bad_files(folder: Path, tag: str, kinds: tuple[str, ...] | None = None) -> dict[str, str]:
    """One of each kind of unreadable file (or of `kinds`), named <kind>-<tag>.<ext>; returns {name: kind}."""
    folder.mkdir(parents=True, exist_ok=True)
    noise(seed=99).save(folder / "_tmp.jpg", quality=95)
    jpeg = (folder / "_tmp.jpg").read_bytes()
    noise(seed=98).save(folder / "_tmp.png")
    png = (folder / "_tmp.png").read_bytes()
    (folder / "_tmp.jpg").unlink()
    (folder / "_tmp.png").unlink()
    files = {
        f"empty-{tag}.png": b"",
        f"text-{tag}.jpg": b"this is a text file, not a JPEG\n",
        f"html-{tag}.jpeg": b"<html><body>404 Not Found</body></html>",
        f"truncated-{tag}.png": png[: len(png) // 2],
        f"truncated-{tag}.jpg": jpeg[: int(len(jpeg) * 0.7)],
        f"garbage-{tag}.png": np.random.default_rng(1).integers(0, 256, 600, dtype=np.uint8).tobytes(),
    }
    files = {name: data for name, data in files.items() if kinds is None or name.split("-")[0] in kinds}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return {name: name.split("-")[0] for name in files}


def test_check_image_rejects_each_kind_of_bad_file(tmp_path):
    bad = write_bad_files(tmp_path, "x")
    for name in bad:
        reason = check_image(tmp_path / name)
        assert reason, f"{name} passed as a readable image"
        assert "\n" not in reason
    assert check_image(tmp_path / "empty-x.png") == "empty file"
    assert "truncated" in check_image(tmp_path / "truncated-x.png").lower()
    noise().save(tmp_path / "good.jpg")
    noise().save(tmp_path / "good.png")
    assert check_image(tmp_path / "good.jpg") is None
    assert check_image(tmp_path / "good.png") is None


def test_scan_images_keeps_good_and_names_the_bad_with_reasons(tmp_path):
    bad = write_bad_files(tmp_path, "y")
    good = []
    for i in range(3):
        noise(seed=i).save(tmp_path / f"ok{i}.png")
        good.append(tmp_path / f"ok{i}.png")
    kept, skipped = scan_images(sorted(tmp_path.iterdir()))
    assert sorted(kept) == sorted(good)
    assert {Path(p).name for p, _ in skipped} == set(bad)
    assert all(reason for _, reason in skipped)


def make_training_folder(root: Path) -> tuple[list[str], int]:
    """a/ (PNG) and b/ (JPEG), 6 good images each, plus 9 bad files (the log names up to 10)
    and a text file that is not an image."""
    bad = []
    for c, ext in (("a", "png"), ("b", "jpg")):
        (root / c).mkdir(parents=True)
        for i in range(6):
            noise(seed=i + (10 if c == "b" else 0)).save(root / c / f"{c}{i}.{ext}")
        bad += list(write_bad_files(root / c, c, None if c == "a" else ("empty", "text", "truncated")))
    (root / "a" / "notes.txt").write_text("not an image, not an image extension: ignored, not skipped")
    return bad, 12


def test_training_skips_bad_files_logs_them_and_still_trains(tmp_path):
    """Through the real `zoo` command: exit 0, the count and every name on stderr and in train.log,
    every path in skipped.txt, and the run trained on exactly the 12 good images."""
    data, run = tmp_path / "data", tmp_path / "run"
    bad, n_good = make_training_folder(data)
    proc = subprocess.run([*zoo_command(), "train", "classify", "--data", str(data), *TINY, "--out", str(run)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout.strip().splitlines()[-1].endswith(f"run saved to {run}")
    summary = f"skipped {len(bad)} unreadable file(s)"
    log = (run / "train.log").read_text()
    for where, text in (("stderr", proc.stderr), ("train.log", log)):
        assert summary in text, f"no count in {where}"
        line = next(line for line in text.splitlines() if summary in line)
        for name in bad:
            assert name in line, f"{name} not named in {where}"
        assert "notes.txt" not in text
    listed = [line.split("\t") for line in (run / "skipped.txt").read_text().splitlines()]
    assert sorted(Path(p).name for p, _ in listed) == sorted(bad)
    assert all(reason.strip() for _, reason in listed)
    config = json.loads((run / "config.json").read_text())
    assert config["status"] == "completed"
    assert config["model"]["info"]["classes"] == ["a", "b"]
    assert config["data"]["train"] + config["data"]["val"] == n_good
    assert config["data"]["skipped"] == len(bad)
    assert (run / "best.safetensors").is_file()

    # predicting on the same folder skips the same files, one line each, and predicts the good ones
    result = CliRunner().invoke(main, ["predict", str(run), str(data), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    skipped_lines = [line for line in result.stderr.splitlines() if line.startswith("skipped ")]
    assert sorted(Path(line.split()[1].rstrip(":")).name for line in skipped_lines) == sorted(bad)
    assert len(result.stdout.strip().splitlines()) == n_good


def train_error_line() -> str:
    """`zoo train classify --data data` fails with one "Error:" line, no traceback, and creates no run."""
    result = CliRunner().invoke(main, ["train", "classify", "--data", "data", *TINY])
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert not any(Path("runs").glob("*"))
    return lines[0]


def test_folder_of_only_bad_files_is_one_line_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_bad_files(tmp_path / "data" / "a", "a")
    write_bad_files(tmp_path / "data" / "b", "b")
    assert "could be read" in train_error_line()


def test_class_with_only_bad_files_is_one_line_error(tmp_path, monkeypatch):
    """Training a class none of whose images can be read would make an output that is never right."""
    monkeypatch.chdir(tmp_path)
    for c in ("a", "b"):
        (tmp_path / "data" / c).mkdir(parents=True)
        for i in range(6):
            noise(seed=i).save(tmp_path / "data" / c / f"{i}.png")
    write_bad_files(tmp_path / "data" / "c", "c")
    assert " c " in train_error_line()


# ------------------------------------------------------------------------------------ conversions


def _rgba() -> Image.Image:
    img = Image.new("RGBA", (3, 1), (255, 0, 0, 255))
    img.putpixel((1, 0), (0, 0, 0, 0))          # fully transparent black: white once composited
    img.putpixel((2, 0), (0, 0, 255, 128))      # half-transparent blue over white
    return img


def _la() -> Image.Image:
    img = Image.new("LA", (2, 1), (0, 255))
    img.putpixel((1, 0), (0, 0))
    return img


def _palette(transparent: bool) -> Image.Image:
    img = Image.new("P", (2, 1))
    img.putpalette([255, 0, 0, 0, 255, 0] + [0, 0, 0] * 254)
    img.putpixel((1, 0), 1)
    if transparent:
        img.info["transparency"] = 1
    return img


def _palette_rgba() -> Image.Image:
    img = Image.new("P", (2, 1))
    img.putpalette([255, 0, 0, 255, 0, 255, 0, 0], rawmode="RGBA")  # index 1: transparent green
    img.putpixel((1, 0), 1)
    return img


def _cmyk() -> Image.Image:
    img = Image.new("CMYK", (2, 1), (0, 0, 0, 0))   # no ink: white
    img.putpixel((1, 0), (0, 255, 255, 0))          # magenta + yellow: red
    return img


# (what, build the image, file name to round-trip through or None, expected RGB per pixel, tolerance)
CASES = [
    ("L", lambda: Image.new("L", (2, 1), 200), "x.png", [(200,) * 3, (200,) * 3], 0),
    ("1 (bilevel)", lambda: Image.new("1", (2, 1), 1), "x.png", [WHITE, WHITE], 0),
    ("RGB", lambda: Image.new("RGB", (2, 1), RED), "x.png", [RED, RED], 0),
    ("RGBA", _rgba, "x.png", [RED, WHITE, (127, 127, 255)], 1),
    ("LA", _la, "x.png", [(0, 0, 0), WHITE], 0),
    ("P", lambda: _palette(False), "x.png", [RED, GREEN], 0),
    ("P with transparency (PNG tRNS)", lambda: _palette(True), "x.png", [RED, WHITE], 0),
    ("P with transparency (GIF)", lambda: _palette(True), "x.gif", [RED, WHITE], 0),
    ("P with an RGBA palette", _palette_rgba, None, [RED, WHITE], 0),
    ("CMYK (TIFF)", _cmyk, "x.tif", [WHITE, RED], 0),
    ("CMYK (JPEG)", lambda: _cmyk().resize((16, 8), Image.NEAREST), "x.jpg", None, 0),
    ("I;16 (PNG)", lambda: sixteen_bit([[0, 65535, 32896, 1000, 257]]), "x.png",
     [(v,) * 3 for v in (0, 255, 128, 4, 1)], 0),
    ("I;16 (TIFF)", lambda: sixteen_bit([[0, 65535, 32896, 1000, 257]]), "x.tif",
     [(v,) * 3 for v in (0, 255, 128, 4, 1)], 0),
    ("I;16 in memory", lambda: sixteen_bit([[0, 65535, 32896]]), None, [(0,) * 3, WHITE, (128,) * 3], 0),
    ("I holding 8-bit values", lambda: Image.new("L", (2, 1), 77).convert("I"), None, [(77,) * 3] * 2, 0),
    ("I (32-bit TIFF) beyond 16 bits: stretched", lambda: Image.fromarray(np.array([[-5, 70000, 34997]], np.int32)),
     "x.tif", [(0,) * 3, WHITE, (128,) * 3], 1),
    ("F in 0..1", lambda: Image.fromarray(np.array([[0.0, 1.0, 0.5, 0.25]], np.float32)), "x.tif",
     [(0,) * 3, WHITE, (128,) * 3, (64,) * 3], 0),
    ("F in 0..1, dark (not stretched)", lambda: Image.fromarray(np.array([[0.0, 0.5, 0.25]], np.float32)), "x.tif",
     [(0,) * 3, (128,) * 3, (64,) * 3], 0),
    ("F holding 8-bit values", lambda: Image.new("L", (2, 1), 77).convert("F"), None, [(77,) * 3] * 2, 0),
    ("F of any range: stretched", lambda: Image.fromarray(np.array([[-1.0, 3.0, 1.0]], np.float32)), None,
     [(0,) * 3, WHITE, (128,) * 3], 1),
    ("LAB (TIFF)", lambda: Image.new("LAB", (2, 1), (255, 128, 128)), "x.tif", [WHITE, WHITE], 3),
    ("RGBa (premultiplied)", lambda: Image.new("RGBa", (2, 1), (0, 0, 0, 0)), None, [WHITE, WHITE], 0),
    ("La (premultiplied)", lambda: Image.new("La", (2, 1), (0, 0)), None, [WHITE, WHITE], 0),
]


@pytest.mark.parametrize("channels", [3, 1])
@pytest.mark.parametrize("what,build,filename,expected,tol", CASES, ids=[c[0] for c in CASES])
def test_every_mode_converts_to_the_channels_asked_for(tmp_path, what, build, filename, expected, tol, channels):
    img = build()
    if filename:
        img.save(tmp_path / filename)
        out = load_image(tmp_path / filename, channels)
    else:
        out = to_mode(img, channels)
    assert out.mode == ("L" if channels == 1 else "RGB")
    assert out.size == img.size
    got = pixels(out)
    if expected is None:  # CMYK JPEG is lossy: left half white, right half red
        want = np.array([[WHITE] * 8 + [RED] * 8] * 8)
        tol = 12
    else:
        want = np.array([expected])
    if channels == 1:
        want = np.asarray(Image.fromarray(want.astype(np.uint8), "RGB").convert("L")).astype(int)
        tol = max(tol, 1)
    assert np.abs(got - want).max() <= tol, f"{what}: got {got.tolist()}, want {want.tolist()}"


def test_16_bit_pgm_opened_as_mode_I_scales_like_16_bit_png(tmp_path):
    """PIL opens a 16-bit PGM as mode 'I' (0-65535): the same values as the 16-bit PNG, not a per-image stretch."""
    values = [[0, 32896, 1000, 257]]
    pgm16(tmp_path / "x.pgm", values)
    sixteen_bit(values).save(tmp_path / "x.png")
    assert Image.open(tmp_path / "x.pgm").mode == "I"
    from_pgm, from_png = load_image(tmp_path / "x.pgm", 1), load_image(tmp_path / "x.png", 1)
    assert pixels(from_pgm).tolist() == pixels(from_png).tolist() == [[0, 128, 4, 1]]


def _two_colour_jpeg(path: Path, orientation: int) -> None:
    """24 wide x 12 high: left half red, right half blue, with an EXIF Orientation tag."""
    img = Image.new("RGB", (24, 12), BLUE)
    img.paste(RED, (0, 0, 12, 12))
    exif = Image.Exif()
    exif[0x0112] = orientation
    img.save(path, quality=95, exif=exif.tobytes())


@pytest.mark.parametrize("orientation,size,top_left,bottom_right", [
    (1, (24, 12), RED, BLUE),     # as stored
    (3, (24, 12), BLUE, RED),     # rotated 180
    (6, (12, 24), RED, BLUE),     # rotate 90 clockwise to view: the left half becomes the top
    (8, (12, 24), BLUE, RED),     # rotate 90 counter-clockwise: the left half becomes the bottom
])
@pytest.mark.parametrize("channels", [3, 1])
def test_exif_orientation_is_applied(tmp_path, orientation, size, top_left, bottom_right, channels):
    _two_colour_jpeg(tmp_path / "photo.jpg", orientation)
    img = load_image(tmp_path / "photo.jpg", channels)
    assert img.size == size
    got = pixels(img)
    expect = [np.array(Image.new("RGB", (1, 1), c).convert(img.mode)).astype(int)[0, 0] for c in (top_left, bottom_right)]
    assert np.abs(got[2, 2] - expect[0]).max() < 40, got[2, 2]
    assert np.abs(got[-3, -3] - expect[1]).max() < 40, got[-3, -3]


def write_every_mode(folder: Path, seed: int) -> int:
    """The same class folder in every mode a user's images come in; returns how many files."""
    folder.mkdir(parents=True)
    base = noise(seed=seed)
    base.convert("L").save(folder / "gray.png")
    base.save(folder / "rgb.jpg")
    base.convert("1").save(folder / "bilevel.png")
    rgba = base.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize((16, 16)))
    rgba.save(folder / "rgba.png")
    rgba.convert("LA").save(folder / "la.png")
    base.convert("P").save(folder / "palette.png")
    base.convert("P").save(folder / "palette-transparent.png", transparency=0)
    base.convert("P").save(folder / "palette.gif")
    base.convert("CMYK").save(folder / "cmyk.jpg")
    base.convert("CMYK").save(folder / "cmyk.tif")
    gray16 = (np.asarray(base.convert("L")).astype(np.uint16) * 257)
    sixteen_bit(gray16).save(folder / "gray16.png")
    pgm16(folder / "gray16.pgm", gray16)
    Image.fromarray(gray16.astype(np.int32) * 3 - 5).save(folder / "int32.tif")
    Image.fromarray(np.asarray(base.convert("L")).astype(np.float32) / 255).save(folder / "float.tif")
    base.convert("LAB").save(folder / "lab.tif")
    _two_colour_jpeg(folder / "rotated.jpg", 6)  # non-square: 12x24 once rotated
    return len(list(folder.iterdir()))


@pytest.mark.parametrize("channels", [1, 3])
def test_training_on_a_folder_of_every_mode(tmp_path, monkeypatch, channels):
    """All those modes batched together: each image converted to the backbone's channel count, none skipped."""
    monkeypatch.chdir(tmp_path)
    n = write_every_mode(tmp_path / "data" / "a", 1) + write_every_mode(tmp_path / "data" / "b", 2)
    extra = ["--set", "backbone.in_chans=3"] if channels == 3 else []
    result = CliRunner().invoke(main, ["train", "classify", "--data", "data", *TINY, *extra, "--out", "run"])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["model"]["data_config"]["input_size"][0] == channels
    assert config["data"]["train"] + config["data"]["val"] == n
    assert config["data"]["skipped"] == 0
    assert not (tmp_path / "run" / "skipped.txt").exists()
