"""The public surface: every exported name resolves, and unknown names fail clearly."""

from __future__ import annotations

import pytest

import cupatch


@pytest.mark.parametrize("name", cupatch.__all__)
def test_every_export_resolves(name):
    assert getattr(cupatch, name) is not None
    assert name in dir(cupatch)


def test_unknown_attribute_raises_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        cupatch.not_a_name  # noqa: B018


def test_version_matches_build_info():
    assert cupatch.build_info()["version"] == cupatch.__version__
