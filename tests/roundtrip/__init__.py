"""Shared parts of the round-trip properties (tests/providers/test_roundtrip_*.py and
tests/wire/test_roundtrip_*.py): Hypothesis strategies for canonical content, a scripted
upstream that answers with exactly the bytes a test wrote, and the canonical reading of
answers and streams that every family is compared on."""
