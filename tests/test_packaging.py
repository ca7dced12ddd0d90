"""pyproject.toml and environment.yml declare the same packages (so they never drift)."""

from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + project["optional-dependencies"]["dev"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert sorted(pip) == sorted(declared)
    assert "python=3.11" in env["dependencies"]


def test_makefile_installs_tinysoundfont_without_its_playback_dependency():
    make = (ROOT / "Makefile").read_text()
    assert "--no-deps tinysoundfont==0.3.7" in make
    assert "test: setup" in make and "reproduce: setup" in make


def test_ci_runs_make_test_only():
    lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert lines[-1] == "make test"
