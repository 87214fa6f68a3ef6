"""``@immutable`` records: read-only to mypy, values at run time (decision 0018)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from mypy import api

from tokenyard.immutable import immutable

PROGRAM = """\
from tokenyard.immutable import immutable

@immutable
class Point:
    x: int
    y: int = 0

point = Point(1)
point.x = 2
"""


def test_mypy_refuses_an_assignment_to_a_field(tmp_path: Path) -> None:
    program = tmp_path / "program.py"
    program.write_text(textwrap.dedent(PROGRAM))
    out, _, status = api.run(["--strict", "--no-incremental", str(program)])
    assert status == 1
    assert 'program.py:9: error: Property "x" defined in "Point" is read-only' in out
    assert out.count("error:") == 1  # the construction itself is fine


@immutable
class _Pair:
    left: str
    right: int = 0


def test_records_are_equal_and_hash_by_their_fields() -> None:
    assert _Pair("a", 1) == _Pair("a", 1) != _Pair("a", 2)
    assert hash(_Pair("a", 1)) == hash(_Pair("a", 1))
    assert {_Pair("a"): "found"}[_Pair("a", 0)] == "found"


def test_records_have_slots_and_no_dict() -> None:
    assert _Pair.__slots__ == ("left", "right")
    assert not hasattr(_Pair("a"), "__dict__")
