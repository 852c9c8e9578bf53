"""What a new user copies from the README and params.yaml must work."""

import re
from pathlib import Path

from components.params import load_params

ROOT = Path(__file__).resolve().parents[1]


def test_readme_python_example_runs():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert blocks, "README has no python example"
    namespace: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    assert {"loss", "reward", "ce"} <= set(namespace["out"].metrics)


def test_params_file_is_valid():
    params = load_params(ROOT / "params.yaml")
    assert params.ebft_config().layout.num_blocks == 16


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    assert "make test" in (ROOT / "README.md").read_text()
