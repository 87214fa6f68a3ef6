"""Fixtures shared by the wire tests."""

from tests.roundtrip.fixtures import bench

__all__ = ["bench"]
