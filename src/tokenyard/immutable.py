"""``@immutable``: how tokenyard declares an immutable record.

An ``@immutable`` class is a dataclass with slots, equality and a hash of its fields, that the
type checker treats as frozen: assigning to a field is an error under ``mypy --strict``,
which CI runs on every change. At run time it is not frozen, and that is the point.

A frozen dataclass's ``__init__`` sets every field through ``object.__setattr__``, a
Python-level call per field, to get past its own ``__setattr__`` that refuses. A request
builds about fifteen records with some hundred fields between them (its parsed body, plan,
hold, usage, charge, log row...). Built frozen, they took ~4 % of a request's CPU: a
six-field record costs 710 ns frozen and 177 ns as a plain slotted dataclass. The guarantee
that matters — no code of ours writes to a record — is the type checker's either way
(docs/decisions/0018-records-frozen-for-the-type-checker.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar, dataclass_transform

T = TypeVar("T")


@dataclass_transform(frozen_default=True)
def immutable(cls: type[T]) -> type[T]:
    """``cls`` as a slotted dataclass, frozen for the type checker, hashable by its fields
    (as a frozen one is)."""
    return dataclass(slots=True, unsafe_hash=True)(cls)
