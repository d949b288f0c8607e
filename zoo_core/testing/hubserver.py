"""A tiny in-memory stand-in for the Hugging Face Hub, so the real `huggingface_hub` client runs offline in tests.

Emulated (the wire format huggingface_hub 2.x speaks, for model, dataset and space repos alike):
  GET  /api/whoami-v2                                    who the token belongs to
  POST /api/repos/create, DELETE /api/repos/delete       create_repo (public/private, exist_ok) / delete_repo
  POST /api/validate-yaml                                README.md check done before a commit (always fine)
  GET  /api/{type}s/{ns}/{name}[/revision/{rev}]         model_info / repo_info: sha, private, siblings
                                                         (size and blobId only with files_metadata=True, as on the Hub)
  GET  /api/{type}s/{ns}/{name}/tree/{rev}[/{path}]      list_repo_tree / list_repo_files (snapshot_download uses it)
  GET  /api/{type}s/{ns}/{name}/refs, /commits/{rev}     list_repo_refs (branches only) / list_repo_commits
  POST /api/{type}s/{ns}/{name}/preupload/{rev}          always answers "uploadMode": "regular"
  POST /api/{type}s/{ns}/{name}/commit/{rev}             NDJSON commit: base64 files, deletedFile, deletedFolder
  POST|DELETE /api/{type}s/{ns}/{name}/branch/{branch}   create_branch / delete_branch
  HEAD|GET /[datasets/|spaces/]{ns}/{name}/resolve/{rev}/{path}   hf_hub_download / file_exists: X-Repo-Commit,
                                                         ETag (git blob sha1) and Content-Length, no redirects
A revision is a branch name, a full commit id or a unique prefix of 7+ hex digits. A new repo starts, as on the Hub,
with one commit holding a `.gitattributes`. Errors carry the Hub's X-Error-Code header, so the client raises its own
classes: RepoNotFound -> RepositoryNotFoundError, RevisionNotFound -> RevisionNotFoundError, EntryNotFound ->
RemoteEntryNotFoundError (an EntryNotFoundError). One user and one token: a wrong token gets 401 "Invalid
credentials in Authorization header" everywhere; without a token, writes and private repos get 401 RepoNotFound
(as the Hub does, so the client raises RepositoryNotFoundError); reading public repos needs no token.

Not emulated: LFS and Xet transfers (preupload never asks for them, so with hf_xet installed upload_folder still
commits plainly; an `lfsFile` line is refused), pull requests (create_pr), tags, gated repos, Range requests,
pagination, cardData / YAML parsing, paths-info, namespace permissions (the token may write anywhere), persistence.
The server listens on 127.0.0.1 only, on an ephemeral port, in daemon threads; one connection per request
(HTTP/1.0); request bodies are capped at MAX_BODY; `stop()` (or leaving the `with` block / the `hub` fixture of zoo_core.testing.fixtures) ends it.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import itertools
import json
import threading
import time
import traceback
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

MAX_BODY = 256 * 1024 * 1024
GITATTRIBUTES = b"*.bin filter=lfs diff=lfs merge=lfs -text\n*.pt filter=lfs diff=lfs merge=lfs -text\n" \
                b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.onnx filter=lfs diff=lfs merge=lfs -text\n"
_counter = itertools.count()


def blob_oid(data: bytes) -> str:
    """git's blob id: what the Hub sends as the ETag of a regular (non-LFS) file."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None, **extra):
        super().__init__(message)
        self.status, self.message, self.code, self.headers, self.extra = status, message, code, headers or {}, extra


@dataclass
class Commit:
    id: str
    parent: str | None
    title: str
    message: str
    tree: dict[str, bytes]
    date: str = field(default_factory=_now)


@dataclass
class Repo:
    type: str
    id: str
    private: bool
    created: str = field(default_factory=_now)
    branches: dict[str, str] = field(default_factory=dict)
    commits: dict[str, Commit] = field(default_factory=dict)

    def resolve(self, rev: str) -> Commit:
        if rev in self.branches:
            return self.commits[self.branches[rev]]
        hits = [c for cid, c in self.commits.items() if len(rev) >= 7 and cid.startswith(rev.lower())]
        if len(hits) == 1:
            return hits[0]
        raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")

    def url(self, endpoint: str) -> str:
        return f"{endpoint}/{'' if self.type == 'model' else self.type + 's/'}{self.id}"


class HubServer:
    """`with HubServer() as hub:` -> hub.endpoint ("http://127.0.0.1:PORT"), hub.token, hub.user, hub.repos.

    Helpers for seeding without the client: `create_repo(repo_id, private=...)`, `commit(repo_id, files, ...)`.
    `hub.requests` logs (method, path) of every request; `hub.errors` holds tracebacks of server-side bugs.
    """

    def __init__(self, token: str = "hf_test", user: str = "tester"):
        self.token, self.user = token, user
        self.repos: dict[tuple[str, str], Repo] = {}
        self.requests: collections.deque[tuple[str, str]] = collections.deque(maxlen=10_000)
        self.errors: list[str] = []
        self.faults: dict[str, int] = {}  # a path fragment -> the HTTP status every matching request gets (403, 503, ...)
        self.delay = 0.0  # seconds to wait before answering anything: a slow or hung Hub
        self.lock = threading.RLock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), type("Handler", (_Handler,), {"hub": self}))
        self.endpoint = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join(timeout=5)
        self._httpd.server_close()

    def __enter__(self) -> HubServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- state ------------------------------------------------------------------------------------
    def create_repo(self, repo_id: str, *, private: bool = False, repo_type: str = "model") -> Repo:
        with self.lock:
            repo = self.repos[(repo_type, repo_id)] = Repo(repo_type, repo_id, private)
            self._commit(repo, "main", "initial commit", "", {".gitattributes": GITATTRIBUTES})
            return repo

    def commit(self, repo_id: str, files: dict[str, bytes], message: str = "seed", *, branch: str = "main",
               repo_type: str = "model", private: bool = False) -> str:
        """Commit `files` (path -> bytes) on top of `branch` (made from main if new), creating the repo if needed.

        For seeding a test without the client; returns the commit id."""
        with self.lock:
            repo = self.repos.get((repo_type, repo_id)) or self.create_repo(repo_id, private=private, repo_type=repo_type)
            base = repo.commits[repo.branches.get(branch) or repo.branches["main"]]
            return self._commit(repo, branch, message, "", {**base.tree, **files}).id

    def _commit(self, repo: Repo, branch: str, title: str, message: str, tree: dict[str, bytes]) -> Commit:
        """Caller holds self.lock."""
        parent = repo.branches.get(branch)
        digest = hashlib.sha1(json.dumps([parent, title, sorted((p, blob_oid(b)) for p, b in tree.items()),
                                          next(_counter)]).encode()).hexdigest()
        commit = repo.commits[digest] = Commit(digest, parent, title, message, tree)
        repo.branches[branch] = digest
        return commit


class _Handler(BaseHTTPRequestHandler):
    hub: HubServer
    server_version = "hubserver/1"
    timeout = 30  # seconds a client may take to send its request

    def log_message(self, *args) -> None:
        pass

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            raise HubError(411, "hubserver wants a Content-Length (no chunked request bodies)")
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise HubError(413, "Request body too large")
        return self.rfile.read(length)

    def _dispatch(self) -> None:
        hub, url, method = self.hub, urlsplit(self.path), self.command
        status, headers, body = 200, {}, b""
        try:
            self.body = self._read_body() if method in ("POST", "DELETE") else b""
            self.query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            parts = [unquote(p) for p in url.path.split("/")[1:]]
            if hub.delay:
                time.sleep(hub.delay)
            fault = next((code for fragment, code in hub.faults.items() if fragment in url.path), None)
            if fault:
                raise HubError(fault, f"injected HTTP {fault}")
            with hub.lock:
                hub.requests.append((method, url.path))
                self.user = self._auth()
                result = self._route(method, parts)
            if isinstance(result, tuple):  # raw file: (bytes, headers)
                body, headers = result
            else:
                body, headers = json.dumps(result).encode(), {"Content-Type": "application/json"}
        except HubError as e:
            status, body = e.status, json.dumps({"error": e.message, **e.extra}).encode()
            headers = {"Content-Type": "application/json", "X-Error-Message": e.message, **e.headers}
            if e.code:
                headers["X-Error-Code"] = e.code
        except Exception as e:  # a bug here: 400 rather than 500, which the client would retry for a minute
            hub.errors.append(traceback.format_exc())
            status, body = 400, json.dumps({"error": f"hubserver internal error: {e!r}"}).encode()
            headers = {"Content-Type": "application/json"}
        self.send_response(status)
        for key, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(key, value)
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_POST = do_DELETE = _dispatch

    def _auth(self) -> str | None:
        auth = self.headers.get("Authorization")
        if auth is None:
            return None
        if auth != f"Bearer {self.hub.token}":
            raise HubError(401, "Invalid credentials in Authorization header")
        return self.hub.user

    def _json(self) -> dict:
        return json.loads(self.body or b"{}")

    def _repo(self, repo_type: str, repo_id: str, write: bool) -> Repo:
        repo = self.hub.repos.get((repo_type, repo_id))
        if repo is None or (self.user is None and (write or repo.private)):
            raise HubError(401 if self.user is None else 404, "Repository not found", "RepoNotFound")
        return repo

    # -- routes ----------------------------------------------------------------------------------
    def _route(self, method: str, parts: list[str]):
        hub = self.hub
        if parts[:1] != ["api"]:
            return self._resolve(method, parts)
        p = parts[1:]
        if p == ["whoami-v2"] and method == "GET":
            if self.user is None:
                raise HubError(401, "Invalid credentials in Authorization header")
            return {"type": "user", "id": "0" * 24, "name": self.user, "fullname": self.user, "orgs": [],
                    "email": f"{self.user}@example.invalid", "emailVerified": True, "isPro": False,
                    "auth": {"type": "access_token", "accessToken": {"displayName": "hubserver", "role": "write"}}}
        if p == ["validate-yaml"] and method == "POST":
            return {"errors": [], "warnings": []}
        if p in (["repos", "create"], ["repos", "delete"]) and method in ("POST", "DELETE"):
            if self.user is None:
                raise HubError(401, "You must be authenticated to do this")
            data = self._json()
            repo_id = f"{data.get('organization') or self.user}/{data['name']}"
            key = (data.get("type") or "model", repo_id)
            if p[1] == "delete":
                if hub.repos.pop(key, None) is None:
                    raise HubError(404, "Repository not found", "RepoNotFound")
                return {}
            if key in hub.repos:
                raise HubError(409, f"You already created this {key[0]} repo", url=hub.repos[key].url(hub.endpoint))
            private = data.get("visibility") == "private" or data.get("private") is True
            repo = hub.create_repo(repo_id, private=private, repo_type=key[0])
            return {"url": repo.url(hub.endpoint), "name": repo_id, "id": repo_id}
        if len(p) < 3 or p[0] not in ("models", "datasets", "spaces"):
            raise HubError(404, f"Not found: /{'/'.join(parts)}")
        repo = self._repo(p[0][:-1], f"{p[1]}/{p[2]}", write=method != "GET")
        action, args = (p[3], p[4:]) if len(p) > 3 else ("revision", [])
        if method == "GET" and action == "revision":
            commit = repo.resolve(args[0] if args else "main")
            blobs = self.query.get("blobs", "").lower() in ("1", "true")
            siblings = [{"rfilename": path, **({"size": len(data), "blobId": blob_oid(data)} if blobs else {})}
                        for path, data in sorted(commit.tree.items())]
            return {"_id": repo.id, "id": repo.id, "author": repo.id.split("/")[0], "sha": commit.id,
                    "private": repo.private, "gated": False, "disabled": False, "lastModified": commit.date,
                    "createdAt": repo.created, "tags": [], "downloads": 0, "likes": 0, "siblings": siblings}
        if method == "GET" and action == "tree" and args:
            return self._tree(repo.resolve(args[0]), "/".join(args[1:]).strip("/"))
        if method == "GET" and action == "refs":
            return {"branches": [{"name": name, "ref": f"refs/heads/{name}", "targetCommit": cid}
                                 for name, cid in sorted(repo.branches.items())],
                    "converts": [], "tags": [], "pullRequests": []}
        if method == "GET" and action == "commits" and args:
            commit, out = repo.resolve(args[0]), []
            while commit is not None:
                out.append({"id": commit.id, "title": commit.title, "message": commit.message,
                            "authors": [{"user": hub.user}], "date": commit.date})
                commit = repo.commits.get(commit.parent) if commit.parent else None
            return out
        if method == "POST" and action == "preupload" and args:
            commit = repo.resolve(args[0])
            return {"commitOid": commit.id, "files": [
                {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                 "oid": blob_oid(commit.tree[f["path"]]) if f["path"] in commit.tree else None}
                for f in self._json().get("files", [])]}
        if method == "POST" and action == "commit" and args:
            return self._commit(repo, args[0])
        if action == "branch" and args and method in ("POST", "DELETE"):
            name = "/".join(args)
            if method == "DELETE":
                if name not in repo.branches:
                    raise HubError(404, f"Invalid rev id: {name}", "RevisionNotFound")
                if name == "main":
                    raise HubError(403, "hubserver does not delete the main branch")
                del repo.branches[name]
                return {}
            if name in repo.branches:
                raise HubError(409, "Reference already exists")
            repo.branches[name] = repo.resolve(self._json().get("startingPoint") or "main").id
            return {}
        raise HubError(404, f"Not found: {method} /{'/'.join(parts)}")

    def _tree(self, commit: Commit, folder: str) -> list[dict]:
        recursive = self.query.get("recursive", "").lower() in ("1", "true")
        prefix = folder + "/" if folder else ""
        entries: dict[str, dict] = {}
        for path, data in commit.tree.items():
            if not path.startswith(prefix):
                continue
            rel = path[len(prefix):].split("/")
            for depth in range(1, len(rel) if recursive else min(2, len(rel))):
                sub = prefix + "/".join(rel[:depth])
                entries[sub] = {"type": "directory", "path": sub,
                                "oid": hashlib.sha1(f"{commit.id}:{sub}".encode()).hexdigest()}
            if recursive or len(rel) == 1:
                entries[path] = {"type": "file", "path": path, "size": len(data), "oid": blob_oid(data)}
        if folder and not entries:
            raise HubError(404, f"Entry not found: {folder}", "EntryNotFound")
        return [entries[k] for k in sorted(entries)]

    def _commit(self, repo: Repo, branch: str) -> dict:
        if self.query.get("create_pr"):
            raise HubError(400, "hubserver does not emulate pull requests (create_pr)")
        head = repo.resolve(branch)
        if branch not in repo.branches:
            raise HubError(400, f"Cannot commit to {branch}: not a branch")
        tree, header = dict(head.tree), {}
        for line in self.body.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                header = value
            elif key == "file":
                raw = value["content"]
                tree[value["path"]] = base64.b64decode(raw) if value.get("encoding") == "base64" else raw.encode()
            elif key == "deletedFile":
                if tree.pop(value["path"], None) is None:
                    raise HubError(404, f"A file with this name doesn't exist: {value['path']}", "EntryNotFound")
            elif key == "deletedFolder":
                prefix = value["path"].rstrip("/") + "/"
                tree = {path: data for path, data in tree.items() if not path.startswith(prefix)}
            else:
                raise HubError(400, f"hubserver does not emulate {key!r} commit operations (no LFS/Xet)")
        parent = header.get("parentCommit")
        if parent and not head.id.startswith(parent):
            raise HubError(412, f"A commit has happened since {parent}: the head of {branch} is {head.id}")
        commit = self.hub._commit(repo, branch, header.get("summary", ""), header.get("description", ""), tree)
        return {"success": True, "commitOid": commit.id, "commitMessage": commit.title, "hookOutput": "",
                "commitUrl": f"{repo.url(self.hub.endpoint)}/commit/{commit.id}", "pullRequestUrl": None}

    def _resolve(self, method: str, parts: list[str]):
        repo_type = "model"
        if parts[:1] in (["datasets"], ["spaces"]):
            repo_type, parts = parts[0][:-1], parts[1:]
        if method not in ("GET", "HEAD") or len(parts) < 5 or parts[2] != "resolve":
            raise HubError(404, f"Not found: {method} {self.path}")
        commit = self._repo(repo_type, f"{parts[0]}/{parts[1]}", write=False).resolve(parts[3])
        path = "/".join(parts[4:])
        if path not in commit.tree:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": commit.id})
        data = commit.tree[path]
        return data, {"Content-Type": "application/octet-stream", "X-Repo-Commit": commit.id,
                      "ETag": f'"{blob_oid(data)}"', "Content-Disposition": f'inline; filename="{parts[-1]}"'}


def go_offline(monkeypatch) -> None:
    """HF_HUB_OFFLINE=1 for subprocesses and for zoo, and the constant huggingface_hub read at import time."""
    import huggingface_hub.constants as constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
