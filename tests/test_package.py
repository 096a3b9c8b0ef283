"""The public surface: every exported name resolves, and unknown names fail clearly."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

import pytest

import cupatch

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


@pytest.mark.parametrize("name", cupatch.__all__)
def test_every_export_resolves(name):
    assert getattr(cupatch, name) is not None
    assert name in dir(cupatch)


def test_unknown_attribute_raises_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        cupatch.not_a_name  # noqa: B018


def test_version_is_the_projects():
    """``__version__`` comes from the build; it must be the version in pyproject.toml."""
    with PYPROJECT.open("rb") as f:
        declared = tomllib.load(f)["project"]["version"]
    assert cupatch.__version__ == declared
    assert cupatch.build_info()["version"] == declared


def test_version_matches_the_installed_metadata():
    try:
        installed = importlib.metadata.version("cupatch")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("cupatch runs from a build tree without installed metadata")
    assert cupatch.__version__ == installed
