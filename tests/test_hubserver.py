"""The real huggingface_hub client against zoo_core/testing/hubserver.py: push, pull, branches, auth, errors, offline."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
from pathlib import Path

import huggingface_hub
import pytest
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from zoo_core.testing.hubserver import HubServer, go_offline

REPO = "tester/demo"
WEIGHTS = random.Random(0).randbytes(200_000)
FILES = {"config.json": b'{"classes": ["cat", "dog"]}\n', "weights.bin": WEIGHTS, "sub/notes.txt": b"hello\n"}


def push(api: HfApi, repo_id: str = REPO, files: dict[str, bytes] = FILES, **kwargs):
    ops = [CommitOperationAdd(path_in_repo=path, path_or_fileobj=data) for path, data in files.items()]
    return api.create_commit(repo_id, operations=ops, commit_message="add files", **kwargs)


@pytest.fixture
def api(hub):  # noqa: F811
    return HfApi(endpoint=hub.endpoint, token=hub.token)


def test_push_list_info_download(hub, api, tmp_path):  # noqa: F811
    url = api.create_repo(REPO, private=False, exist_ok=True)
    assert url.repo_id == REPO and url == f"{hub.endpoint}/{REPO}"
    api.create_repo(REPO, exist_ok=True)  # again: fine
    with pytest.raises(HfHubHTTPError) as err:
        api.create_repo(REPO)
    assert err.value.response.status_code == 409

    info = push(api)
    assert re.fullmatch(r"[0-9a-f]{40}", info.oid) and info.pr_url is None
    assert info.commit_url == f"{hub.endpoint}/{REPO}/commit/{info.oid}" and info.repo_url.repo_id == REPO
    assert push(api).oid == info.oid  # nothing changed: the client skips the commit (preupload oids)

    assert sorted(api.list_repo_files(REPO)) == sorted([".gitattributes", *FILES])
    model = api.model_info(REPO)
    assert model.sha == info.oid and model.private is False
    assert {s.rfilename for s in model.siblings} == {".gitattributes", *FILES}
    sizes = {s.rfilename: s.size for s in api.model_info(REPO, files_metadata=True).siblings}
    assert sizes["weights.bin"] == 200_000
    assert api.model_info(REPO, revision=info.oid[:10]).sha == info.oid
    assert api.file_exists(REPO, "sub/notes.txt") and not api.file_exists(REPO, "nope.txt")
    assert api.revision_exists(REPO, "main") and not api.revision_exists(REPO, "v9")
    assert [b.name for b in api.list_repo_refs(REPO).branches] == ["main"]
    assert [c.title for c in api.list_repo_commits(REPO)] == ["add files", "initial commit"]

    for path, data in FILES.items():  # through the defaults the fixture patched, and with explicit arguments
        assert Path(hf_hub_download(REPO, path)).read_bytes() == data
        local = hf_hub_download(REPO, path, revision=info.oid, endpoint=hub.endpoint, cache_dir=tmp_path / "c")
        assert Path(local).read_bytes() == data and info.oid in local
    assert huggingface_hub.model_info(REPO).sha == info.oid
    assert not hub.errors


def test_snapshot_then_offline(hub, api, monkeypatch):  # noqa: F811
    api.create_repo(REPO)
    oid = push(api).oid
    folder = Path(snapshot_download(REPO))
    assert folder.name == oid
    assert {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()} == {
        ".gitattributes": hub.repos[("model", REPO)].resolve("main").tree[".gitattributes"], **FILES}

    hub.stop()  # nothing to talk to any more
    go_offline(monkeypatch)
    assert Path(snapshot_download(REPO)) == folder
    assert Path(snapshot_download(REPO, revision=oid)) == folder
    assert Path(hf_hub_download(REPO, "weights.bin")).read_bytes() == WEIGHTS
    with pytest.raises(LocalEntryNotFoundError):
        snapshot_download("tester/never-downloaded")


def test_branch_commit_leaves_main(hub, api, tmp_path):  # noqa: F811
    api.create_repo(REPO)
    first = push(api).oid
    api.create_branch(REPO, branch="v2")
    with pytest.raises(HfHubHTTPError):
        api.create_branch(REPO, branch="v2")
    api.create_branch(REPO, branch="v2", exist_ok=True)

    folder = tmp_path / "v2"
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_text('{"classes": ["cat", "dog", "eel"]}\n')
    (folder / "sub" / "extra.txt").write_text("new\n")
    second = api.upload_folder(repo_id=REPO, folder_path=folder, revision="v2", commit_message="v2").oid
    third = api.create_commit(REPO, operations=[CommitOperationDelete("sub/notes.txt")], commit_message="rm",
                              revision="v2").oid

    assert api.model_info(REPO).sha == first
    assert api.model_info(REPO, revision="v2").sha == third != second
    assert sorted(api.list_repo_files(REPO, revision="v2")) == [".gitattributes", "config.json", "sub/extra.txt",
                                                                "weights.bin"]
    assert Path(hf_hub_download(REPO, "config.json")).read_bytes() == FILES["config.json"]
    assert b"eel" in Path(hf_hub_download(REPO, "config.json", revision="v2")).read_bytes()
    assert b"eel" in Path(hf_hub_download(REPO, "config.json", revision=second)).read_bytes()
    assert Path(hf_hub_download(REPO, "sub/notes.txt", revision=second)).read_bytes() == b"hello\n"
    assert {b.name: b.target_commit for b in api.list_repo_refs(REPO).branches} == {"main": first, "v2": third}
    api.delete_branch(REPO, branch="v2")
    with pytest.raises(RevisionNotFoundError):
        api.model_info(REPO, revision="v2")
    assert not hub.errors


def test_private_repo_and_tokens(hub, api, tmp_path):  # noqa: F811
    api.create_repo("tester/secret", private=True)
    oid = push(api, "tester/secret").oid
    assert api.model_info("tester/secret").private is True
    assert api.whoami()["name"] == "tester"

    anonymous = HfApi(endpoint=hub.endpoint, token=False)
    with pytest.raises(RepositoryNotFoundError):
        anonymous.model_info("tester/secret")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("tester/secret", "config.json", token=False, cache_dir=tmp_path / "anon")
    with pytest.raises(RepositoryNotFoundError):
        push(anonymous, "tester/secret", {"x.txt": b"x"})
    with pytest.raises(HfHubHTTPError) as err:
        anonymous.create_repo("tester/other")
    assert err.value.response.status_code == 401

    wrong = HfApi(endpoint=hub.endpoint, token="hf_wrong")
    for call in (wrong.whoami, lambda: wrong.model_info(REPO), lambda: wrong.create_repo("tester/x")):
        with pytest.raises(HfHubHTTPError) as err:
            call()
        assert err.value.response.status_code == 401
    assert Path(hf_hub_download("tester/secret", "sub/notes.txt", revision=oid)).read_bytes() == b"hello\n"

    hub.commit("tester/public", {"a.txt": b"a"})  # seeded directly; public repos need no token
    hub.commit("tester/public", {"a.txt": b"b"}, branch="dev")
    assert Path(hf_hub_download("tester/public", "a.txt", token=False, cache_dir=tmp_path / "p")).read_bytes() == b"a"
    assert Path(hf_hub_download("tester/public", "a.txt", revision="dev")).read_bytes() == b"b"


def test_subprocess_reaches_hub_through_env(hub):  # noqa: F811
    """A child process (like the zoo CLI) imports huggingface_hub afresh: the fixture's env vars are enough."""
    hub.commit("tester/secret", {"w.txt": b"private bytes"}, private=True)
    code = "from huggingface_hub import hf_hub_download; print(hf_hub_download('tester/secret', 'w.txt'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=os.environ)
    local = Path(out.stdout.strip())
    assert local.read_bytes() == b"private bytes", out.stderr
    assert local.is_relative_to(os.environ["HF_HOME"])


def test_errors_map_to_client_exceptions(hub, api, tmp_path):  # noqa: F811
    api.create_repo(REPO)
    push(api)
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("tester/missing")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("tester/missing", "config.json")
    with pytest.raises(RevisionNotFoundError):
        api.model_info(REPO, revision="nope")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(REPO, "config.json", revision="nope")
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(REPO, "missing.txt")
    with pytest.raises(EntryNotFoundError):
        api.create_commit(REPO, operations=[CommitOperationDelete("missing.txt")], commit_message="rm")
    with pytest.raises(RevisionNotFoundError):
        push(api, revision="no-such-branch")
    assert not api.repo_exists("tester/missing") and api.repo_exists(REPO)
    api.delete_repo(REPO)
    assert not api.repo_exists(REPO)
    assert not hub.errors


def test_context_manager_stops():
    with HubServer(token="t", user="u") as server:
        assert HfApi(endpoint=server.endpoint, token="t").whoami()["name"] == "u"
    with pytest.raises(Exception):
        HfApi(endpoint=server.endpoint, token="t").whoami()
