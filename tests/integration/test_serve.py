"""zoo serve over real HTTP on 127.0.0.1: predictions equal `zoo predict --json` for classify and
localize (from a run and from hf-hub:), requests arriving together are batched, bad uploads get one
line of JSON and a 4xx while the server keeps serving, the API key, and `zoo serve`'s one-line errors."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from zoo_core.cli import main
from zoo_core.registry.plugins import get_zoo
from zoo_core.serve import BackgroundServer, load_predictor
from zoo_core.serve.client import predict, request

pytestmark = pytest.mark.zoo_plugins("classify", "localize")

KEY = "s3cret-key"


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def zoo(*args: str):
    get_zoo.cache_clear()
    return CliRunner().invoke(main, list(args))


def one_line_error(result) -> str:
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


def png(size=(40, 24), colour=(200, 40, 40), fmt="PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> list[Path]:
    """Images of different sizes and formats, as a user would send."""
    root = tmp_path_factory.mktemp("images")
    out = []
    for i, (size, fmt) in enumerate([((40, 24), "PNG"), ((24, 40), "JPEG"), ((61, 33), "PNG")]):
        path = root / f"img{i}.{fmt.lower().replace('jpeg', 'jpg')}"
        path.write_bytes(png(size, (60 * i, 200 - 50 * i, 90), fmt))
        out.append(path)
    return out


def cli_predictions(target: str, paths: list[Path], *extra: str) -> list[dict]:
    res = zoo("predict", target, *map(str, paths), "--json", "--device", "cpu", *extra)
    assert res.exit_code == 0, res.output
    return [{**p, "image": Path(p["image"]).name} for p in json.loads(res.stdout)]


def served(run: Path, **settings) -> BackgroundServer:
    return BackgroundServer(load_predictor(str(run), device="cpu"), run.name, **settings)


@pytest.fixture(scope="module")
def classify_server(runs):
    with served(runs["classify"], max_upload_mb=0.2, max_pixels=1_000_000) as server:
        yield server


# ----------------------------------------------------------------------------------------- predictions

@pytest.mark.parametrize("task", ["classify", "localize"])
def test_predictions_are_what_zoo_predict_json_prints(runs, files, task):
    expected = cli_predictions(str(runs[task]), files)
    with served(runs[task]) as server:
        several = predict(server.url, [(p.name, p.read_bytes()) for p in files])
        assert several.status == 200 and several.headers["content-type"] == "application/json", several
        assert several.json() == expected
        raw = request(server.url + "/predict", "POST", files[1].read_bytes(), {"X-Filename": files[1].name})
        assert raw.json() == [expected[1]]
        drawn = predict(server.url, [(files[0].name, files[0].read_bytes())], "draw=1")
        assert drawn.status == 200 and drawn.headers["content-type"] == "image/png"
        picture = Image.open(io.BytesIO(drawn.body))
        assert picture.width == 40 and picture.height >= 24  # the original image, the prediction drawn on it
        grid = predict(server.url, [(p.name, p.read_bytes()) for p in files], "draw=1")
        assert grid.status == 200 and Image.open(io.BytesIO(grid.body)).format == "PNG"
        facts = request(server.url + "/model").json()
        assert facts["task"] == task and facts["zoo_version"] and facts["metrics"]
        assert facts["preprocessing"]["input_size"][1:] == [16, 16] if task == "classify" else [32, 32]
        assert request(server.url + "/health").json() == {"status": "ok"}


def test_task_options_come_as_query_parameters(runs, files, classify_server):
    expected = cli_predictions(str(runs["classify"]), files[:1], "--top-k", "1")
    answer = predict(classify_server.url, [(files[0].name, files[0].read_bytes())], "top_k=1")
    assert answer.json() == expected and len(answer.json()[0]["top"]) == 1
    bad = predict(classify_server.url, [(files[0].name, files[0].read_bytes())], "top_k=0")
    assert bad.status == 400 and "top_k" in bad.json()["error"]


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(runs, files):
    expected = cli_predictions(str(runs["classify"]), files)
    with served(runs["classify"], max_batch=8, batch_wait_ms=50) as server:
        jobs = [files[i % 3] for i in range(12)]
        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(lambda p: predict(server.url, [(p.name, p.read_bytes())]), jobs))
        by_name = {e["image"]: e for e in expected}
        for path, answer in zip(jobs, answers):
            got = answer.json()[0]
            want = by_name[path.name]
            assert got["label"] == want["label"] and got["probability"] == pytest.approx(want["probability"], abs=1e-5)
        stats = request(server.url + "/model").json()["batching"]
        assert stats["images"] == 12 and stats["largest_batch"] > 1, stats


# ------------------------------------------------------------------------------------------ bad input

def truncated() -> bytes:
    """The first half of a noisy PNG: the header is fine, the pixels stop."""
    buffer = io.BytesIO()
    Image.effect_noise((64, 64), 80).convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()[: len(buffer.getvalue()) // 2]


def bomb() -> bytes:
    """5000 x 5000 black pixels: 25 MP from a few kilobytes."""
    buffer = io.BytesIO()
    Image.new("L", (5000, 5000)).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


@pytest.mark.parametrize("name, data, status, words", [
    ("notes.png", b"these are not pixels", 415, "not an image"),
    ("empty.png", b"", 400, "empty"),
    ("half.png", truncated(), 400, "truncated"),
    ("bomb.png", bomb(), 413, "too many pixels"),
    ("big.bin", os.urandom(300_000), 413, "over the limit"),
])
def test_bad_uploads_get_one_line_of_json_and_the_server_goes_on(classify_server, files, name, data, status, words):
    answer = predict(classify_server.url, [(name, data)])
    assert answer.status == status, answer
    message = answer.json()["error"]
    assert words in message and "\n" not in message and "Traceback" not in message
    assert name in message or status == 413
    good = predict(classify_server.url, [(files[0].name, files[0].read_bytes())])
    assert good.status == 200 and good.json()[0]["label"]


def test_requests_cannot_name_files_on_the_server(classify_server, tmp_path):
    secret = tmp_path / "secret.png"
    secret.write_bytes(png())
    as_name = predict(classify_server.url, [(str(secret), b"not an image")])
    assert as_name.status == 415 and str(tmp_path) not in as_name.body.decode()  # only the base name is echoed
    as_body = request(classify_server.url + "/predict", "POST", json.dumps({"image": str(secret)}).encode(),
                      {"Content-Type": "application/json"})
    assert as_body.status == 415
    as_query = request(f"{classify_server.url}/predict?image={secret}", "POST", b"")
    assert as_query.status == 400 and "image must be 1 or 0" in as_query.json()["error"]  # a flag, never a path
    assert request(classify_server.url + "/static/../../../../etc/passwd").status == 404
    no_file = request(classify_server.url + "/predict", "POST", b"--x--\r\n", {"Content-Type": "multipart/form-data; boundary=x"})
    assert no_file.status == 400 and "no image" in no_file.json()["error"]


def test_unknown_routes_and_methods_answer_json(classify_server):
    assert request(classify_server.url + "/nothing").json() == {"error": "Not Found"}
    assert request(classify_server.url + "/predict").status == 405


# -------------------------------------------------------------------------------------------- API key

def test_the_api_key_guards_everything_but_the_page_and_health(runs, files):
    image = [(files[0].name, files[0].read_bytes())]
    with served(runs["classify"], api_key=KEY) as server:
        assert request(server.url + "/health").status == 200
        page = request(server.url + "/")
        assert page.status == 200 and b'id="api-key"' in page.body  # the page lets the user type it
        assert request(server.url + "/static/app.js").status == 200
        for headers in ({}, {"X-API-Key": "wrong"}, {"X-API-Key": ""}):
            assert predict(server.url, image, headers=headers).status == 401
            denied = request(server.url + "/model", headers=headers)
            assert denied.status == 401 and "API key" in denied.json()["error"]
        assert predict(server.url, image, headers={"X-API-Key": KEY}).status == 200
        assert request(server.url + "/model", headers={"X-API-Key": KEY}).json()["api_key_required"] is True
        schema = request(server.url + "/openapi.json").json()
        assert "APIKeyHeader" in schema["components"]["securitySchemes"]


def test_docs_work_offline(classify_server):
    docs = request(classify_server.url + "/docs")
    assert docs.status == 200 and b"/docs-assets/swagger-ui-bundle.js" in docs.body and b"cdn" not in docs.body.lower()
    assert request(classify_server.url + "/docs-assets/swagger-ui-bundle.js").status == 200
    assert "/predict" in request(classify_server.url + "/openapi.json").json()["paths"]


# ----------------------------------------------------------------------------------- zoo serve, the CLI

def start(*args: str, env: dict | None = None) -> tuple[subprocess.Popen, str]:
    """`zoo serve ... --port 0` in a subprocess and the URL it printed."""
    proc = subprocess.Popen([sys.executable, "-m", "zoo_core.cli", "serve", *args, "--port", "0", "--device", "cpu"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})
    line = proc.stdout.readline()
    if "serving" not in line:
        proc.kill()
        raise AssertionError(line + proc.stderr.read())
    return proc, line.split(" on ")[1].split()[0]


def test_zoo_serve_from_the_hub(hub, runs, files):  # noqa: F811
    res = zoo("push", str(runs["localize"]), "tester/localize-tiny")
    assert res.exit_code == 0, res.output
    expected = cli_predictions(str(runs["localize"]), files)
    proc, url = start("hf-hub:tester/localize-tiny")
    try:
        assert predict(url, [(p.name, p.read_bytes()) for p in files]).json() == expected
        assert request(url + "/model").json()["model"] == "hf-hub:tester/localize-tiny"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert "Traceback" not in proc.stderr.read()


def test_bad_flags_are_one_line_errors(runs, tmp_path):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = str(taken.getsockname()[1])
    try:
        assert "already in use" in one_line_error(zoo("serve", str(runs["classify"]), "--port", port))
    finally:
        taken.close()
    assert "not a zoo run directory" in one_line_error(zoo("serve", str(tmp_path), "--port", "0"))
    assert "neither a run directory nor a backbone" in one_line_error(zoo("serve", "no-such-run", "--port", "0"))
    assert "--api-key" in one_line_error(zoo("serve", str(runs["classify"]), "--host", "0.0.0.0", "--port", "0"))
    assert "--max-batch" in one_line_error(zoo("serve", str(runs["classify"]), "--max-batch", "0"))


def test_runtime_onnx_serves_what_zoo_predict_runtime_onnx_prints(runs, files):
    expected = cli_predictions(str(runs["classify"]), files, "--runtime", "onnx")
    predictor = load_predictor(str(runs["classify"]), runtime="onnx", device="cpu")
    with BackgroundServer(predictor, runs["classify"].name) as server:
        answer = predict(server.url, [(p.name, p.read_bytes()) for p in files])
        assert answer.status == 200 and answer.json() == expected


def test_without_the_serve_extra_it_says_what_to_install(runs, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "uvicorn" else real(name, *a))
    message = one_line_error(zoo("serve", str(runs["classify"]), "--port", "0"))
    assert "uvicorn is missing" in message and "pip install 'zoo-core[serve]'" in message
