"""`zoo serve`: a trained model over HTTP, with a page to try it in a browser.

    zoo serve runs/classify-001                     # http://127.0.0.1:8000: the page, /predict, /docs
    curl -F file=@cat.jpg http://127.0.0.1:8000/predict

In Python (a server in a background thread, e.g. for tests):

    from zoo_core.serve import BackgroundServer, ServeOptions, load_predictor
    with BackgroundServer(load_predictor("runs/classify-001"), "classify-001") as server:
        requests.post(server.url + "/predict", files={"file": open("cat.jpg", "rb")})

This module imports no web framework until a server is made: `zoo --help` stays fast, and zoo-core
without the `serve` extra says what to install.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ..base.errors import ZooError

EXTRA_HINT = "pip install 'zoo-core[serve]'"
API_KEY_ENV = "ZOO_API_KEY"


def _require_extra():
    from importlib.util import find_spec

    # python-multipart, which Starlette parses uploads with, is python_multipart (formerly multipart)
    for module, distribution in (("fastapi", "fastapi"), ("uvicorn", "uvicorn"), ("python_multipart", "python-multipart")):
        if find_spec(module) is None and not (module == "python_multipart" and find_spec("multipart")):
            raise ZooError(f"zoo serve needs the serve extra ({distribution} is missing): {EXTRA_HINT}")


def load_predictor(target: str, runtime: str = "torch", device: str = "auto"):
    """The Predictor for a run, hf-hub:ID or backbone: the same as `zoo predict --runtime RUNTIME` uses."""
    from ..prediction.predictor import load_target

    return load_target(target, device=device, runtime=runtime)


def model_name(target: str) -> str:
    """What the server calls its model: the hf-hub ID, or the run folder's name (never the server's path)."""
    return target if target.startswith("hf-hub:") else Path(target).resolve().name


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, made before the model loads so a taken port is a one-line error at once."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        raise ZooError(f"--host {host}: not an address of this machine") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as e:
        sock.close()
        if e.errno in (98, 48, 10048):  # EADDRINUSE on Linux, macOS, Windows
            raise ZooError(f"--port {port}: already in use on {host}; pick another (or --port 0 for any free one)") from None
        raise ZooError(f"--host {host} --port {port}: cannot listen there ({e.strerror})") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _uvicorn_server(app, sock: socket.socket):
    import uvicorn

    # No access log: a line per request costs more than a small model's inference. Errors still show.
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_keep_alive=30)
    return uvicorn.Server(config)


def check_host(host: str, api_key: str | None) -> None:
    if not is_loopback(host) and not api_key:
        raise ZooError(f"--host {host} lets other machines reach the model: give --api-key KEY (or set {API_KEY_ENV}), "
                       "or keep the default --host 127.0.0.1")


def serve(target: str, host: str = "127.0.0.1", port: int = 8000, runtime: str = "torch", device: str = "auto",
          echo=print, **settings: Any) -> None:
    """`zoo serve`: load the model, listen, serve until Ctrl-C. `settings` are ServeOptions' fields."""
    _require_extra()
    from .app import ServeOptions, create_app

    options = ServeOptions(runtime=runtime, **settings)
    check_host(host, options.api_key)
    sock = bind(host, port)
    try:
        predictor = load_predictor(target, runtime, device)
        app = create_app(predictor, model_name(target), options)
        server = _uvicorn_server(app, sock)
        url = f"http://{'[' + host + ']' if ':' in host else host}:{sock.getsockname()[1]}"
        echo(f"serving {predictor.task.name} model {model_name(target)} on {url}  (page: /, API docs: /docs, "
             f"key: {'required' if options.api_key else 'none'}); Ctrl-C stops")
        sys.stdout.flush()
        server.run(sockets=[sock])
    finally:
        sock.close()


class BackgroundServer:
    """A server for `predictor` on 127.0.0.1 (a free port by default) in a daemon thread; a context manager."""

    def __init__(self, predictor, name: str = "model", host: str = "127.0.0.1", port: int = 0, **settings: Any):
        _require_extra()
        from .app import ServeOptions, create_app

        check_host(host, settings.get("api_key"))
        self.sock = bind(host, port)
        self.url = f"http://{host}:{self.sock.getsockname()[1]}"
        self.app = create_app(predictor, name, ServeOptions(**settings))
        self.server = _uvicorn_server(self.app, self.sock)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> "BackgroundServer":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


__all__ = ["serve", "load_predictor", "BackgroundServer", "API_KEY_ENV"]
