"""Fixtures shared by the provider tests."""

from tests.roundtrip.fixtures import bench

__all__ = ["bench"]
