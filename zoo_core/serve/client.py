"""A client for zoo serve in a few lines of the standard library, for scripts, tests and bench/serve.py:

    from zoo_core.serve.client import predict
    predict("http://127.0.0.1:8000", [("cat.jpg", open("cat.jpg", "rb").read())]).json()

No client library, so what a benchmark measures is the server."""

from __future__ import annotations

import http.client
import json
import uuid
from typing import Any
from urllib.parse import urlsplit


class Answer:
    def __init__(self, status: int, headers: dict[str, str], body: bytes):
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self):
        return f"<{self.status} {self.body[:200]!r}>"


def multipart(files: list[tuple[str, bytes]], field: str = "file") -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, data in files:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
                     f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def request(url: str, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None,
            connection: http.client.HTTPConnection | None = None, timeout: float = 60) -> Answer:
    parts = urlsplit(url)
    conn = connection or http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), body=body, headers=headers or {})
        response = conn.getresponse()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        if connection is None:
            conn.close()


def predict(url: str, files: list[tuple[str, bytes]], query: str = "", headers: dict[str, str] | None = None,
            connection=None) -> Answer:
    body, content_type = multipart(files)
    return request(f"{url}/predict{'?' + query if query else ''}", "POST", body,
                   {"Content-Type": content_type, **(headers or {})}, connection)
