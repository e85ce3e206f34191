"""environment.yml and pyproject.toml pin the same versions."""

import re
import tomllib

import yaml

from brainldm.settings import project_root


def test_conda_environment_matches_pyproject_pins():
    root = project_root()
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    pins = project["dependencies"] + [p for extra in ("book", "test") for p in project["optional-dependencies"][extra]]
    env = yaml.safe_load((root / "environment.yml").read_text())
    conda_pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    normalise = lambda spec: re.sub(r"\s", "", spec).lower()  # noqa: E731
    assert sorted(map(normalise, pins)) == sorted(map(normalise, conda_pip))
