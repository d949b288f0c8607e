"""Class 3, the server: a request brings bytes, never a path. Options that name files are unreachable
from a request; only the options a task marks safe for requests are taken, typed and bounded. Bad, empty,
oversized, mistyped and bomb bodies, traversal in upload names and static URLs, class names carrying HTML,
50 requests at once: each answered in one line of JSON, never a 5xx, and the server still serves."""

from __future__ import annotations

import io
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("fastapi")

from zoo_core import Setting, ZooError  # noqa: E402
from zoo_core.serve import BackgroundServer, check_host, load_predictor  # noqa: E402
from zoo_core.serve.client import predict, request  # noqa: E402

from .imagekit import png_bomb  # noqa: E402

pytestmark = pytest.mark.zoo_plugins("classify")  # trains them: skipped without


def png(colour=(200, 30, 30), size=(20, 20)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def hostile_task(task):
    """The run's task with the shapes the issue found: a path option (a restoration plugin's `save`), a free
    string option nobody marked safe, and the real, request-safe top_k."""
    class WithPaths(type(task)):
        predict_options = (*task.predict_options,
                           Setting("save", str, None, "Write a file per image into this folder.", nullable=True, path=True),
                           Setting("note", str, "", "Free text (not marked safe for requests)."))

        def predict(self, outputs, geometry, info, save=None, note="", **options):
            if save:
                (Path(save) / "written.txt").write_text("the server wrote here")
            return super().predict(outputs, geometry, info, **options)

    clone = WithPaths.__new__(WithPaths)
    clone.__dict__.update(task.__dict__)
    return clone


@pytest.fixture(scope="module")
def predictor(trained):
    p = load_predictor(str(trained), device="cpu")
    p.task = hostile_task(p.task)
    return p


@pytest.fixture(scope="module")
def server(predictor):
    with BackgroundServer(predictor, "pets", max_upload_mb=1, max_pixels=1_000_000) as s:
        yield s


def alive(server):
    assert request(server.url + "/health").json() == {"status": "ok"}


def one_line_json(answer, status):
    assert answer.status == status, answer
    body = answer.json()
    assert set(body) == {"error"} and "\n" not in body["error"] and "Traceback" not in body["error"], body
    return body["error"]


def test_a_path_option_cannot_be_set_by_a_request(server, tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    for query in (f"save={target}", f"save={target}&top_k=1", "save=/tmp"):
        line = one_line_json(predict(server.url, [("a.png", png())], query), 400)
        assert "save" in line and "path" in line and "zoo serve --option" in line, line
    assert not list(target.iterdir())
    alive(server)


@pytest.mark.parametrize("query,words", [("note=hi", "cannot be set by a request"), ("top_k=0", ">= 1"),
                                         ("top_k=10001", "<= 10000"), ("top_k=abc", "integer"),
                                         ("nope=1", "no prediction option"), ("top_k=1e400", "integer")])
def test_request_options_are_only_the_safe_ones_typed_and_bounded(server, query, words):
    assert words in one_line_json(predict(server.url, [("a.png", png())], query), 400)
    alive(server)


def test_a_safe_option_works_and_the_model_lists_only_safe_options(server):
    answer = predict(server.url, [("a.png", png())], "top_k=2")
    assert answer.status == 200 and len(answer.json()[0]["top"]) == 2, answer
    names = [o["name"] for o in request(server.url + "/model").json()["predict_options"]]
    assert names == ["top_k"]


def test_options_fixed_at_start_are_checked_and_a_path_must_exist(predictor, tmp_path):
    with pytest.raises(ZooError, match="no such file or folder"):
        BackgroundServer(predictor, "pets", predict_options={"save": str(tmp_path / "missing")})
    with pytest.raises(ZooError, match="top_k"):
        BackgroundServer(predictor, "pets", predict_options={"top_k": "-4"})
    (tmp_path / "out").mkdir()
    with BackgroundServer(predictor, "pets", predict_options={"save": str(tmp_path / "out")}) as s:
        assert predict(s.url, [("a.png", png())]).status == 200
    assert (tmp_path / "out" / "written.txt").exists()  # the operator's folder, chosen at start


def test_a_path_option_with_request_true_is_refused_by_the_contract():
    with pytest.raises(ValueError, match="path"):
        Setting("out", str, None, "a folder", path=True, request=True)
    assert not Setting("free", str, "", "unbounded", request=True).request_safe
    assert not Setting("n", int, 1, "no max", min=1, request=True).request_safe
    assert Setting("n", int, 1, "bounded", min=1, max=9, request=True).request_safe


BAD_BODIES = [
    ("empty", b"", {"Content-Type": "image/png"}, 400),
    ("text", b"hello, not an image", {"Content-Type": "image/png"}, 415),
    ("json-typed", b'{"a": 1}', {"Content-Type": "application/json"}, 415),
    ("oversized", b"\0" * 1_200_000, {"Content-Type": "image/png"}, 413),
    ("bad-multipart", b"--x\r\nnonsense", {"Content-Type": "multipart/form-data; boundary=x"}, 400),
    ("no-files", b"--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--x--\r\n",
     {"Content-Type": "multipart/form-data; boundary=x"}, 400),
]


@pytest.mark.parametrize("body,headers,status", [b[1:] for b in BAD_BODIES], ids=[b[0] for b in BAD_BODIES])
def test_bad_bodies_are_one_line_of_json_and_the_server_goes_on(server, body, headers, status):
    one_line_json(request(server.url + "/predict", "POST", body, headers), status)
    alive(server)


def test_a_decompression_bomb_upload_is_refused_from_its_header(server, tmp_path):
    bomb = png_bomb(tmp_path / "bomb.png", 60_000, 60_000).read_bytes()
    line = one_line_json(predict(server.url, [("bomb.png", bomb)]), 413)
    assert "pixels" in line and "bomb.png" in line
    alive(server)


@pytest.mark.parametrize("name", ["../../../../tmp/evil.png", "..\\..\\evil.png", "/etc/passwd", "a/../../b.png"])
def test_upload_names_with_traversal_are_base_names_only(server, name):
    answer = predict(server.url, [(name, png())])
    assert answer.status == 200, answer
    shown = answer.json()[0]["image"]
    assert "/" not in shown and "\\" not in shown and not shown.startswith(".."), shown


@pytest.mark.parametrize("path", ["/static/..%2F..%2Fapp.py", "/static/%2e%2e/%2e%2e/app.py", "/static/../app.py",
                                  "/static/..%5c..%5capp.py", "/docs-assets/..%2F..%2F..%2Fetc%2Fpasswd"])
def test_url_encoded_traversal_on_static_routes_serves_nothing_outside(server, path):
    answer = request(server.url + path)
    assert answer.status in (404, 400, 405), answer
    assert b"def create_app" not in answer.body and b"root:" not in answer.body
    alive(server)


def test_fifty_concurrent_requests_get_no_5xx(server):
    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(lambda i: predict(server.url, [(f"{i}.png", png((i * 5, 100, 200)))]), range(50)))
    assert all(a.status == 200 for a in answers), [a for a in answers if a.status != 200][:3]
    assert [a.json()[0]["image"] for a in answers] == [f"{i}.png" for i in range(50)]


def test_class_names_with_html_are_escaped_in_the_page_and_plain_in_json(trained, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained, run)
    p = load_predictor(str(run), device="cpu")
    evil = "<script>alert(1)</script>"
    p.info = {**p.info, "classes": [evil, "b&b", "<img src=x onerror=alert(2)>"]}
    with BackgroundServer(p, "evil") as s:
        answer = predict(s.url, [("a.png", png())])
        assert answer.status == 200 and "application/json" in answer.headers["content-type"]
        json.dumps(answer.json())  # valid JSON, names as plain strings
        page = request(s.url + "/").body.decode()
        assert evil not in page  # the page is static; names reach it only through the JSON API
    app_js = (Path(__import__("zoo_core.serve", fromlist=["x"]).__file__).parent / "static" / "app.js").read_text()
    for line in app_js.splitlines():  # the one innerHTML assignment writes a constant, never data
        if "innerHTML" in line:
            assert "+" not in line.split("innerHTML", 1)[1] and "${" not in line, line


def test_it_binds_to_the_loopback_unless_told_and_then_needs_a_key(server):
    assert server.url.startswith("http://127.0.0.1:")
    with pytest.raises(ZooError, match="--api-key"):
        check_host("0.0.0.0", None)
    check_host("0.0.0.0", "a-key")
    check_host("127.0.0.1", None)
