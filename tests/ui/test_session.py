"""Signed session cookies and CSRF tokens: forgery, expiry, tampering, per-session tokens."""

from __future__ import annotations

from tokenyard.server.ui import session as s

SECRET = s.signing_key("admin-key-one")


def test_round_trip() -> None:
    session = s.new_session("account", "key:key_1", "acct_1", now=1000.0)
    back = s.decode(s.encode(session, SECRET), SECRET, now=1001.0)
    assert back == session
    assert back.key_id == "key_1" and back.may_see("acct_1") and not back.may_see("acct_2")


def test_admin_sees_every_account() -> None:
    session = s.new_session("admin", "admin", None, now=0.0)
    assert session.is_admin and session.may_see("anything") and session.key_id is None


def test_expired_forged_or_tampered_cookies_are_refused() -> None:
    session = s.new_session("admin", "admin", None, now=1000.0)
    cookie = s.encode(session, SECRET)
    assert s.decode(cookie, SECRET, now=1000.0 + s.SESSION_S) is None  # expired
    assert s.decode(cookie, s.signing_key("another-admin-key"), now=1001.0) is None  # rotated
    payload, mac = cookie.split(".")
    client = s.encode(s.new_session("account", "key:k", "acct_1", 1000.0), SECRET)
    assert s.decode(client.split(".")[0] + "." + mac, SECRET, 1001.0) is None  # swapped body
    for junk in (None, "", "abc", "a.b.c", payload + ".", "." + mac):
        assert s.decode(junk, SECRET, 1001.0) is None


def test_an_account_session_must_name_its_account() -> None:
    broken = s.Session("account", "key:k", None, 2000.0, "n")
    assert s.decode(s.encode(broken, SECRET), SECRET, 1000.0) is None


def test_csrf_tokens_are_per_session() -> None:
    one, two = (s.new_session("admin", "admin", None, 0.0) for _ in range(2))
    token = s.csrf_token(SECRET, one.nonce)
    assert s.csrf_ok(SECRET, one.nonce, token)
    assert not s.csrf_ok(SECRET, two.nonce, token)
    assert not s.csrf_ok(SECRET, one.nonce, None)
    assert not s.csrf_ok(SECRET, one.nonce, "")
