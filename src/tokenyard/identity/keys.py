"""Client keys: ``ty-`` followed by 32 random bytes (URL-safe base64). Only a SHA-256 hash
and a short visible prefix are stored; a key with 256 bits of entropy needs no slow hash."""

from __future__ import annotations

import hashlib
import secrets

KEY_MARK = "ty-"
PREFIX_LENGTH = 11  # "ty-" and 8 characters: enough to tell keys apart in a list


def generate_key() -> str:
    return KEY_MARK + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def visible_prefix(key: str) -> str:
    return key[:PREFIX_LENGTH]
