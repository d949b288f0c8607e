"""Class 4, the Hub: a repo anyone can write is read as hostile. A config.json asking for a gigantic
input (a 190-byte edit that made `zoo predict hf-hub:` reach 9.5 GB) is refused before anything is
allocated; a repo of an uninstalled task names the pip install; a missing repo or revision is one line
with no token printed; offline with an empty cache is one line. Run against the local Hub server."""

from __future__ import annotations

import json
import resource

import pytest

from .faultkit import cli_error, one_line_error, zoo_process

pytestmark = pytest.mark.zoo_plugins("classify")  # trains them: skipped without

GIANT = 200_000  # pixels a side: 120 GB for one RGB float input, if it were ever allocated


def giant(model: dict) -> dict:
    return {**model, "image_size": GIANT, "data_config": {**model["data_config"], "input_size": [3, GIANT, GIANT]}}


def repack(folder, config: dict) -> None:
    """config.json and its weights made to agree again, as a hostile author would: the digest the weights
    carry is recomputed, so only the size check stands between the file and the allocation."""
    from safetensors.torch import load_file, save_file

    from zoo_core.training.rundir import model_digest, weights_metadata

    (folder / "config.json").write_text(json.dumps(config))
    for name in ("best.safetensors", "last.safetensors", "model.safetensors"):
        path = folder / name
        if path.exists():
            meta = {**(weights_metadata(path) or {}), "model_digest": model_digest(config["model"])}
            save_file(load_file(path), path, metadata=meta)


def test_a_run_asking_for_a_gigantic_input_is_refused_before_allocating(run_copy):
    config = json.loads((run_copy / "config.json").read_text())
    repack(run_copy, {**config, "model": giant(config["model"])})
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    proc = zoo_process("predict", run_copy, run_copy / "config.json")
    line = one_line_error(proc.returncode, proc.stderr)
    assert "config.json" in line and str(GIANT) in line and "4096" in line, line
    assert resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss < max(before, 2_500_000), "allocated"


@pytest.mark.parametrize("bad", [0, -3, 2.5, "224", [3, 4]], ids=["zero", "negative", "float", "string", "list"])
def test_a_damaged_image_size_is_one_line(run_copy, bad):
    config = json.loads((run_copy / "config.json").read_text())
    repack(run_copy, {**config, "model": {**config["model"], "image_size": bad}})
    assert "image_size" in cli_error("predict", run_copy, run_copy / "config.json")


def test_a_hub_repo_asking_for_a_gigantic_input_is_refused_before_allocating(hub, trained, tmp_path):
    from huggingface_hub import HfApi, hf_hub_download

    from zoo_core.hub.hub import push

    push(trained, "tester/giant")
    config = json.loads(open(hf_hub_download("tester/giant", "config.json")).read())
    folder = tmp_path / "repo"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(open(hf_hub_download("tester/giant", "model.safetensors"), "rb").read())
    repack(folder, {**config, "model": giant(config["model"])})
    HfApi().upload_folder(repo_id="tester/giant", folder_path=folder, commit_message="hostile")
    import os

    proc = zoo_process("predict", "hf-hub:tester/giant", trained / "config.json",
                       env={"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": os.environ["HF_ENDPOINT"]})
    line = one_line_error(proc.returncode, proc.stderr)
    assert str(GIANT) in line and "4096" in line, line


def test_a_repo_of_an_uninstalled_task_names_the_pip_install(hub, trained):
    from huggingface_hub import HfApi, hf_hub_download

    from zoo_core.hub.hub import push

    push(trained, "tester/alien")
    config = json.loads(open(hf_hub_download("tester/alien", "config.json")).read())
    config["model"]["task"] = "alien"
    config["plugin"] = {**config.get("plugin", {}), "requires": "zoo-alien>=1"}
    HfApi().upload_file(path_or_fileobj=json.dumps(config).encode(), path_in_repo="config.json", repo_id="tester/alien")
    line = cli_error("pull", "tester/alien")
    assert "alien" in line and "pip install 'zoo-alien>=1'" in line, line


@pytest.mark.parametrize("ref", ["tester/nothing-here", "tester/alien@0123456789abcdef0123456789abcdef01234567"],
                         ids=["missing-repo", "missing-revision"])
def test_a_missing_repo_or_revision_is_one_line_without_the_token(hub, trained, ref):
    from zoo_core.hub.hub import push

    push(trained, "tester/alien")
    import os

    line = cli_error("pull", ref)
    token = os.environ.get("HF_TOKEN")
    assert ref.split("@")[0] in line and (not token or token not in line), line


def test_offline_with_an_empty_cache_is_one_line(tmp_path, trained):
    proc = zoo_process("predict", "hf-hub:tester/never-pulled", trained / "config.json",
                       env={"HF_HOME": str(tmp_path / "hf"), "HF_HUB_CACHE": str(tmp_path / "hf" / "hub")})
    line = one_line_error(proc.returncode, proc.stderr)
    assert "tester/never-pulled" in line, line

