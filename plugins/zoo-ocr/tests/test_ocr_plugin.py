"""zoo-ocr on a tiny run: predictions, the exported file's greedy post-processing against zoo predict,
decoding under a pattern, and every bad input as one line."""

from __future__ import annotations

import json

import pytest
import torch

from zoo_core import ZooError
from zoo_core.testing import cli, one_line_error, tiny_train

TINY_OCR = dict(backbone="ocr-cnn", dataset_options={"captchas": 24, "lines": 24}, epochs=1, batch_size=8)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return tiny_train("ocr", tmp_path_factory.mktemp("ocr"), **TINY_OCR)


@pytest.fixture(scope="module")
def lines(tmp_path_factory):
    from zoo_ocr.render import drawn

    folder = tmp_path_factory.mktemp("lines")
    images, texts = drawn("line", 4, 99)
    for i, (im, t) in enumerate(zip(images, texts)):
        im.save(folder / f"{t}_{i}.png")
    return folder


def test_predict_json_has_text_confidence_and_characters(run, lines):
    res = cli("predict", run.dir, lines, "--json")
    assert res.exit_code == 0, res.output
    records = [json.loads(x) for x in res.stdout.strip().splitlines()] if res.stdout.strip().startswith("{") \
        else json.loads(res.stdout)
    assert len(records) == 4
    for r in records:
        assert set(r) >= {"image", "text", "confidence", "characters"} and 0.0 <= r["confidence"] <= 1.0
        assert "".join(c["char"] for c in r["characters"]) == r["text"]


def test_exported_scores_greedy_decoded_in_a_few_lines_match_zoo_predict(run, lines, tmp_path):
    """The README's post-processing of the ONNX file's per-time-step scores gives zoo predict's text."""
    import onnxruntime as ort
    from PIL import Image

    path = tmp_path / "ocr.onnx"
    res = cli("export", run.dir, "--format", "onnx", "-o", path)
    assert res.exit_code == 0, res.output
    session = ort.InferenceSession(str(path))
    meta = session.get_modelmeta().custom_metadata_map
    alphabet = json.loads(meta["zoo.info"])["alphabet"]
    files = sorted(lines.iterdir())
    for f, expected in zip(files, run.predict(files)):
        x = run.transform({"image": Image.open(f).convert("L")})["image"][None]  # height 32, width in proportion
        scores = session.run(None, {"input": x.numpy()})[0][0]  # (T, 1 + len(alphabet)), one image: no padding
        ids = scores.argmax(-1)
        text = "".join(alphabet[i - 1] for j, i in enumerate(ids) if i != 0 and (j == 0 or i != ids[j - 1]))
        assert text == expected.text


def test_beam_search_under_a_pattern_reads_only_matching_text(run, lines):
    import regex

    files = sorted(lines.iterdir())
    for p in run.predict(files, decoder="beam", pattern="[0-9]{2,3}"):
        assert p.text == "" or regex.fullmatch("[0-9]{2,3}", p.text)
    with pytest.raises(ZooError, match="not a regular expression"):
        run.predict(files[:1], pattern="[0-9")


def test_greedy_and_beam_agree_on_a_peaked_distribution():
    from zoo_ocr.decode import read_beam, read_greedy

    alphabet = "AB"
    ids = [1, 1, 0, 1, 2, 0, 0]  # A A _ A B _ _ -> "AAB"
    lp = torch.full((len(ids), 3), -9.0)
    lp[range(len(ids)), ids] = 0.0
    lp = lp.log_softmax(-1)
    g, b = read_greedy(lp, alphabet), read_beam(lp, alphabet, 5)
    assert g.text == b.text == "AAB" and g.confidence > 0.99 and abs(g.confidence - b.confidence) < 1e-3


@pytest.mark.parametrize("name, text, expected", [
    ("AB1x.png", None, "character 'x' (in 'AB1x') is not in the declared alphabet"),
    ("_1.png", None, "empty text"),
])
def test_bad_folder_data_is_one_line(tmp_path, name, text, expected):
    from PIL import Image

    folder = tmp_path / "data"
    folder.mkdir()
    for n in ("AB12.png", "CD34_2.png", name):
        Image.new("L", (60, 20), 255).save(folder / n)
    line = one_line_error(cli("train", "ocr", "--data", folder, "--set", "dataset.alphabet=ABCD1234", "--epochs", "1",
                              "--out", tmp_path / "r"))
    assert expected in line and ("AB1x.png" in line or "_1.png" in line)


def test_bad_csv_rows_are_one_line_naming_file_and_line(tmp_path):
    from PIL import Image

    Image.new("L", (60, 20), 255).save(tmp_path / "a.png")
    (tmp_path / "t.csv").write_text("path,text\na.png,AB\na.png,\n")
    line = one_line_error(cli("train", "ocr", "--data", tmp_path / "t.csv", "--epochs", "1", "--out", tmp_path / "r"))
    assert "t.csv:3: empty text" in line


def test_a_text_longer_than_its_time_steps_is_refused_naming_the_image():
    from zoo_ocr.model import CTCLoss

    targets = {"labels": torch.tensor([1, 2, 3, 4]), "lengths": torch.tensor([4]), "fraction": torch.tensor([1.0]),
               "texts": ["ABCD"], "ids": ["tiny.png"]}
    with pytest.raises(ZooError, match=r"tiny.png: text 'ABCD' needs 4 time steps and the image gives 2"):
        CTCLoss()(torch.zeros(1, 2, 5), targets)


def test_push_pull_round_trip(run, lines, hub):
    from zoo_core import load_run, pull

    files = sorted(lines.iterdir())
    res = cli("push", run.dir, "tester/ocr-tiny")
    assert res.exit_code == 0, res.output
    pulled = load_run(pull("tester/ocr-tiny"), device="cpu")
    assert [p.text for p in pulled.predict(files)] == [p.text for p in run.predict(files)]
    assert pulled.info["alphabet"] == run.info["alphabet"]


def test_metrics_give_cer_word_accuracy_baselines_and_cer_by_length():
    from zoo_ocr.metrics import OcrMetrics

    alphabet = "AB"
    m = OcrMetrics({"alphabet": alphabet, "baseline_text": "AB", "baseline_length": 2, "baseline_char": "A"})

    def scores(text, steps=6):  # a peaked (T, 3) reading of `text`, a blank after each character
        ids = [k for c in text for k in (alphabet.index(c) + 1, 0)] + [0] * (steps - 2 * len(text))
        out = torch.full((steps, 3), -9.0)
        out[range(steps), ids] = 0.0
        return out

    read, truth = ["AB", "A", "BBA"], ["AB", "B", "BAA"]  # right; one substitution; one of three wrong
    m.update(torch.stack([scores(t) for t in read]), {"texts": truth, "fraction": torch.ones(3)})
    s = m.compute()
    assert abs(s["cer"] - 2 / 6) < 1e-6 and abs(s["word_accuracy"] - 1 / 3) < 1e-6
    assert abs(s["baseline_word_accuracy"] - 1 / 3) < 1e-6 and s["length_baseline_cer"] > s["cer"]
    by_length = m.details()["cer_by_length"]
    assert by_length["1"]["cer"] == 1.0 and by_length["2"]["cer"] == 0.0 and abs(by_length["3"]["cer"] - 1 / 3) < 1e-3
    assert "length" in m.table()
