"""What a fresh install and a Hugging Face Space read: the README's front matter and
requirements.txt."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def requirements() -> dict[str, Requirement]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    reqs = [Requirement(line) for line in (x.split("#")[0].strip() for x in lines) if line]
    return {r.name.lower(): r for r in reqs}


def test_readme_front_matter_configures_a_gradio_space() -> None:
    text = (ROOT / "README.md").read_text()
    match = re.match(r"---\n(.*?)\n---\n", text, re.S)
    assert match, "README.md must start with YAML front matter"
    meta = yaml.safe_load(match.group(1))
    assert meta["sdk"] == "gradio"
    assert (ROOT / meta["app_file"]).is_file() and meta["app_file"] == "app.py"
    assert isinstance(meta["python_version"], str)  # "3.11", not the float 3.11
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert Version(meta["python_version"]) in Requirement(f"python{requires}").specifier
    assert Version(meta["sdk_version"]) in requirements()["gradio"].specifier


def test_no_unused_torchvision() -> None:
    assert "torchvision" not in requirements()
    sources = [p for p in ROOT.rglob("*.py") if ".venv" not in p.parts]
    assert not [p for p in sources if re.search(r"^\s*(import|from) torchvision",
                                                p.read_text(), re.M)]


def test_torch_is_pinned_to_one_release_for_the_cpu_wheel_too() -> None:
    """README installs torch==<pin> from PyTorch's CPU index first; the pin must match it."""
    pin = str(requirements()["torch"].specifier)
    assert re.fullmatch(r"==\d+\.\d+\.\d+", pin), pin
    readme = (ROOT / "README.md").read_text()
    assert f"pip install torch{pin} --index-url https://download.pytorch.org/whl/cpu" in readme
