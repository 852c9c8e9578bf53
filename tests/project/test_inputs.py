"""The user's data and models are inputs in inputs/: local paths elsewhere are refused (DVC would not see them
change), and a refresh records what arrived or changed there as a DVC version (real dvc in a temporary git repo)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from components.params.loading import validate_params
from components.project.inputs import InputsError, check_inside_inputs, local_inputs, refresh

DVC = str(Path(sys.executable).parent / "dvc")


def params(**groups):
    return validate_params(groups)


def test_local_inputs_outside_inputs_are_refused_with_the_fix(tmp_path):
    outside = params(data={"source": "jsonl", "paths": ["inputs/data/a.jsonl", "/srv/feed/new.jsonl"]})
    with pytest.raises(InputsError) as err:
        check_inside_inputs(outside, tmp_path)
    message = str(err.value)
    assert "data.paths[1]='/srv/feed/new.jsonl' is outside inputs/data/" in message
    assert "dvc import-url /srv/feed/new.jsonl inputs/data/new.jsonl" in message and "data.paths[0]" not in message
    (tmp_path / "my-model").mkdir()
    with pytest.raises(InputsError, match=r"model.base='\./my-model' is outside inputs/models/"):
        check_inside_inputs(params(model={"base": "./my-model"}), tmp_path)
    with pytest.raises(InputsError, match=r"data.paths\[0\]='inputs/models/x.jsonl' is outside inputs/data/"):
        check_inside_inputs(params(data={"source": "jsonl", "paths": ["inputs/models/x.jsonl"]}), tmp_path)


def test_inputs_inside_their_area_hub_ids_and_packaged_sources_pass(tmp_path):
    check_inside_inputs(
        params(data={"source": "jsonl", "paths": ["inputs/data/*.jsonl", "inputs/data/more"]}), tmp_path
    )
    check_inside_inputs(params(data={"source": "hf", "hf_dataset": "inputs/data/my_ds"}), tmp_path)
    check_inside_inputs(
        params(model={"base": "inputs/models/smol"}, features={"network": "inputs/models/enc"}), tmp_path
    )
    hub = params(model={"base": "HuggingFaceTB/SmolLM2-135M"}, data={"source": "hf", "hf_dataset": "org/ds"})
    assert local_inputs(hub) == [] and local_inputs(params()) == []  # hub ids, stdlib-code, smollm2-135m


def sh(cwd: Path, *cmd: str) -> str:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=os.environ | {"DVC_NO_ANALYTICS": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def append(path: Path, *texts: str) -> None:
    with open(path, "a") as f:
        f.writelines(json.dumps({"text": t}) + "\n" for t in texts)


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "project"
    (root / "inputs/data").mkdir(parents=True)
    (root / "inputs/models").mkdir()
    for area in ("data", "models"):
        (root / f"inputs/{area}/README.md").write_text("kept in git\n")
    sh(root, "git", "init", "-q")
    sh(root, "git", "config", "user.email", "ci@example.invalid")
    sh(root, "git", "config", "user.name", "ci")
    sh(root, DVC, "init", "-q")
    append(root / "inputs/data/local.jsonl", "one", "two")
    sh(root, DVC, "add", "-q", "inputs/data/local.jsonl")
    upstream = tmp_path / "upstream"
    upstream.mkdir()
    append(upstream / "feed.jsonl", "feed one")
    sh(root, DVC, "import-url", "-q", str(upstream / "feed.jsonl"), "inputs/data/feed.jsonl")
    sh(root, "git", "add", "-A")
    sh(root, "git", "commit", "-qm", "inputs")
    return root


def test_refresh_with_nothing_new_changes_nothing(project):
    before = {p: p.read_bytes() for p in (project / "inputs").rglob("*.dvc")}
    report = refresh(project, DVC)
    assert not report.changed and report.summary() == "inputs: nothing new"
    assert {p: p.read_bytes() for p in (project / "inputs").rglob("*.dvc")} == before
    assert sh(project, "git", "status", "--porcelain") == ""


def test_refresh_records_edited_dropped_and_upstream_data_as_dvc_versions(project):
    append(project / "inputs/data/local.jsonl", "three")  # edited in place
    (project / "inputs/data/batch-2").mkdir()  # a new folder dropped in
    append(project / "inputs/data/batch-2/part.jsonl", "four")
    append(project.parent / "upstream/feed.jsonl", "feed two")  # new data where an import lives
    report = refresh(project, DVC)
    assert report.updated == ["inputs/data/feed.jsonl.dvc"]
    assert report.new_versions == ["inputs/data/local.jsonl"]
    assert report.newly_tracked == ["inputs/data/batch-2"]
    assert (project / "inputs/data/feed.jsonl").read_text().count("\n") == 2
    assert (project / "inputs/data/batch-2.dvc").exists()
    status = sh(project, DVC, "status", "--json")
    assert json.loads(status) == {}  # every input is now a version in the DVC cache
    assert "inputs: updated from their source: inputs/data/feed.jsonl.dvc; new versions" in report.summary()
    assert not refresh(project, DVC).changed  # and a second refresh finds nothing new


def test_refresh_never_undoes_a_newer_version_that_came_through_git(project):
    """A teammate's new version arrives as a newer .dvc file (git pull) before its data (dvc pull): re-adding the old
    data would silently point the project back at it, so refresh leaves it for `dvc pull`."""
    local = project / "inputs/data/local.jsonl"
    append(local, "three")
    sh(project, DVC, "add", "-q", str(local.relative_to(project)))
    sh(project, "git", "commit", "-qam", "version B")
    newer = (project / "inputs/data/local.jsonl.dvc").read_bytes()
    sh(project, "git", "checkout", "-q", "HEAD~1", "--", "inputs/data/local.jsonl.dvc")
    sh(project, DVC, "checkout", "-q", "inputs/data/local.jsonl.dvc")  # the data is version A again
    sh(project, "git", "checkout", "-q", "HEAD", "--", "inputs/data/local.jsonl.dvc")  # "git pull" brings B's pointer
    report = refresh(project, DVC)
    assert (project / "inputs/data/local.jsonl.dvc").read_bytes() == newer
    assert report.behind == ["inputs/data/local.jsonl"] and not report.new_versions
    assert "behind its .dvc file: `dvc pull` restores it" in report.summary()
    sh(project, DVC, "checkout", "-q")
    assert local.read_text().count("\n") == 3 and not refresh(project, DVC).changed
