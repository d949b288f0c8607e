"""The embed task end to end on tiny data: train, predict, eval, index, search, export, push and pull."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from zoo_core.testing import cli, one_line_error, tiny_train


@pytest.fixture(scope="module")
def trained(tmp_path_factory, make_identities):
    root = tmp_path_factory.mktemp("embed")
    data = make_identities(root / "ids")
    run = tiny_train("embed", root, data=str(data), val_fraction=0.34, epochs=2)
    return run, data


def test_predict_gives_a_normalised_embedding(trained):
    run, data = trained
    p = run.predict([data / "id00" / "0.png"])[0]
    e = torch.tensor(p.to_json()["embedding"])
    assert e.shape == (128,) and abs(float(e.norm()) - 1) < 1e-4


def test_class_weights_are_saved_and_eval_uses_them(trained):
    run, _ = trained
    assert (run.dir / "best.loss.safetensors").is_file()
    rows = [json.loads(line) for line in (run.dir / "metrics.jsonl").read_text().splitlines()]
    best = json.loads((run.dir / "config.json").read_text())["best"]["epoch"]
    scores, _ = run.evaluate(workers=0)
    assert "recall_at_1" in scores and "baseline_recall_at_1" in scores
    assert scores["loss"] == pytest.approx(rows[best - 1]["val_loss"], rel=1e-4)  # ArcFace's trained W, not fresh ones


def test_index_build_search_add_and_another_model_refused(trained, tmp_path):
    run, data = trained
    index = tmp_path / "gallery.safetensors"
    r = cli("index", "build", run.dir, data, "-o", index)
    assert r.exit_code == 0, r.output
    query = data / "id03" / "1.png"
    r = cli("search", index, query, "-k", "3", "--json", "--draw", tmp_path / "grid.png")
    assert r.exit_code == 0, r.output
    hits = json.loads(r.stdout.strip().splitlines()[0])["neighbours"]
    assert len(hits) == 3 and hits[0]["path"] == str(query.resolve()) and hits[0]["similarity"] > 0.999
    assert (tmp_path / "grid.png").is_file()

    more = tmp_path / "more"
    shutil.copytree(data / "id01", more / "id01")
    r = cli("index", "add", index, more)
    assert r.exit_code == 0 and "added 4 image(s)" in r.output, r.output

    r = cli("predict", run.dir, query, "--json", "--index", index, "-k", "2")
    assert r.exit_code == 0, r.output
    (record,) = json.loads(r.stdout)
    assert len(record["embedding"]) == 128 and len(record["neighbours"]) == 2

    other = tiny_train("embed", tmp_path / "other", data=str(data), val_fraction=0.34, seed=7)
    assert "built by another model" in one_line_error(cli("search", index, query, "--run", other.dir))

    (tmp_path / "notes.jpg").write_text("not an image")
    assert "notes.jpg" in one_line_error(cli("search", index, tmp_path / "notes.jpg"))


def test_export_onnx_gives_the_normalised_embedding(trained, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    run, data = trained
    out = tmp_path / "embed.onnx"
    r = cli("export", run.dir, "--format", "onnx", "-o", out)
    assert r.exit_code == 0, r.output
    x = torch.randn(2, *run.data_config.input_size)
    session = ort.InferenceSession(str(out))
    (onnx_out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        torch_out = run.model(x)
    assert torch.allclose(torch.from_numpy(onnx_out), torch_out, atol=1e-4)
    assert torch.allclose(torch.from_numpy(onnx_out).norm(dim=1), torch.ones(2), atol=1e-4)


def test_push_pull_round_trip(trained, hub):
    from zoo_core import load_run, pull

    run, data = trained
    r = cli("push", run.dir, "tester/embed-tiny")
    assert r.exit_code == 0, r.output
    pulled = load_run(pull("tester/embed-tiny"), device="cpu")
    image = data / "id02" / "0.png"
    assert pulled.predict([image])[0].embedding == run.predict([image])[0].embedding
    assert (pulled.dir / "loss.safetensors").is_file()


def test_serve_answers_with_neighbours_of_the_index_fixed_at_start(trained, tmp_path):
    pytest.importorskip("fastapi")
    import subprocess
    import sys
    import urllib.error
    import urllib.request

    run, data = trained
    r = cli("serve", run.dir, "--port", "0", "--option", f"index={tmp_path / 'missing.safetensors'}")
    assert "no such file or folder" in one_line_error(r)  # checked at start, before serving

    index = tmp_path / "gallery.safetensors"
    assert cli("index", "build", run.dir, data, "-o", index).exit_code == 0
    zoo = shutil.which("zoo", path=str(Path(sys.executable).parent)) or "zoo"
    server = subprocess.Popen([zoo, "serve", str(run.dir),
                               "--port", "0", "--device", "cpu", "--option", f"index={index}"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = server.stdout.readline()
        while line and "serving" not in line:
            line = server.stdout.readline()
        url = line.split(" on ")[1].split()[0]
        body = (data / "id04" / "2.png").read_bytes()
        answer = json.loads(urllib.request.urlopen(urllib.request.Request(f"{url}/predict?top_k=3", data=body),
                                                   timeout=60).read())
        assert len(answer[0]["neighbours"]) == 3 and answer[0]["neighbours"][0]["similarity"] > 0.999
        with pytest.raises(urllib.error.HTTPError) as refused:  # a request cannot point the server at a file
            urllib.request.urlopen(urllib.request.Request(f"{url}/predict?index=/etc/passwd", data=body), timeout=60)
        assert refused.value.code == 400
    finally:
        server.terminate()
        server.wait(30)
