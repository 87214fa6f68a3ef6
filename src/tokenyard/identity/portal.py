"""The self-serve portal's rules: sign-up (open or by invite, rate-limited per client
address, with a starter credit), password sign-in, invite codes and disabling an account.
No web framework here: the dashboard and the admin API are thin shells over it.

Passwords are hashed with argon2id (``argon2-cffi``'s defaults) in a worker thread — a hash
is tens of milliseconds of CPU that must not stall the event loop — and exist nowhere else:
never stored, logged or put in an error. A sign-in for an unknown address verifies against a
dummy hash, so the answer takes as long as for a known one and does not reveal who has an
account. Invite codes are stored as SHA-256 digests and compared by digest, i.e. by an
index lookup, never character by character.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from tokenyard.errors import (
    AuthenticationFailed,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    RateLimited,
    ServiceUnavailable,
)
from tokenyard.identity.service import Identity
from tokenyard.store.ledger import MAX_NANO
from tokenyard.store.limits import WINDOW_S, KeyLimiter
from tokenyard.store.portal import EmailTaken, InviteRefused, SqlPortal, UserRow

Signup = Literal["open", "invite", "off"]
MIN_PASSWORD = 10
MAX_PASSWORD = 1024  # hashing megabytes on request would be a denial of service
MAX_EMAIL = 320
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
INVITE_MARK = "inv-"
HOUR_SCALE = 60
"""The sign-up limiter runs the per-minute ``KeyLimiter`` on a clock 60 times slower, so its
window is an hour. Its answers (seconds to wait) are scaled back with this factor."""


def hour_clock(clock: float) -> float:
    """The time the sign-up limiter sees: its "minute" window is one real hour."""
    return clock / HOUR_SCALE


def hour_window_ttl_s() -> int:
    """How long the Redis counters of an hour window must live: two of its windows."""
    return 2 * WINDOW_S * HOUR_SCALE


def invite_digest(code: str) -> str:
    return hashlib.sha256(code.strip().encode()).hexdigest()


def check_email(email: str) -> str:
    email = email.strip().lower()
    if len(email) > MAX_EMAIL or not _EMAIL.match(email):
        raise InvalidRequest("enter a valid e-mail address", param="email")
    return email


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidRequest(
            f"the password must have at least {MIN_PASSWORD} characters", param="password"
        )
    if len(password) > MAX_PASSWORD:
        raise InvalidRequest(
            f"the password must have at most {MAX_PASSWORD} characters", param="password"
        )


class Portal:
    def __init__(
        self,
        store: SqlPortal,
        identity: Identity,
        limiter: KeyLimiter,
        *,
        signup: Signup,
        signup_credit_nano: int,
        signups_per_hour: int,
        hasher: PasswordHasher | None = None,
    ):
        self.store = store
        self.signup = signup
        self.signup_credit_nano = signup_credit_nano
        self._identity = identity
        self._limiter = limiter
        self._per_hour = signups_per_hour
        self._hasher = hasher or PasswordHasher()
        self._dummy: str | None = None

    async def sign_up(
        self, email: str, password: str, *, invite: str | None, client: str
    ) -> UserRow:
        """A new user and account, credited ``signup_credit`` once, in the same transaction
        (ledger reference ``signup:<user id>``). Every well-formed attempt counts against the
        client's hourly allowance — refused ones too, so invite codes and addresses cannot be
        guessed fast."""
        if self.signup == "off":
            raise NotFound("sign-up is off on this gateway")
        if self.signup_credit_nano > MAX_NANO:  # no account could hold it: refuse, write nothing
            raise ServiceUnavailable(
                "sign-up is unavailable: the starter credit (billing.signup_credit) is more "
                "than an account can hold; ask the operator"
            )
        email = check_email(email)
        check_password(password)
        invite = (invite or "").strip() or None
        if self.signup == "invite" and invite is None:
            raise InvalidRequest("an invite code is required to sign up here", param="invite")
        wait = await self._limiter.admit(f"signup:{client}", self._per_hour, None, 0)
        if wait:
            raise RateLimited(
                "too many sign-ups from your address; try again later",
                retry_after_s=int(wait * HOUR_SCALE),
            )
        digest = await asyncio.to_thread(self._hasher.hash, password)
        code = invite_digest(invite) if self.signup == "invite" and invite else None
        try:
            user = await self.store.create_user(
                email, digest, invite_hash=code, credit_nano=self.signup_credit_nano
            )
        except EmailTaken:
            raise InvalidRequest(
                "an account with this e-mail address exists: sign in instead", param="email"
            ) from None
        except InviteRefused:
            raise PermissionDenied(
                "this invite code is not valid or was used already", param="invite"
            ) from None
        return user

    async def sign_in(self, email: str, password: str) -> UserRow:
        """The user whose address and password these are. One answer for an unknown address
        and a wrong password; a disabled account is said only after the password matched."""
        if len(password) > MAX_PASSWORD or len(email) > MAX_EMAIL:
            raise AuthenticationFailed("that e-mail address and password do not match")
        user = await self.store.user_by_email(email)
        stored = user.password_hash if user is not None else await self._dummy_hash()
        matched = await asyncio.to_thread(self._verify, stored, password)
        if user is None or not matched:
            raise AuthenticationFailed("that e-mail address and password do not match")
        if user.disabled_at is not None:
            raise PermissionDenied("this account is disabled; ask the operator")
        return user

    async def user_still_valid(self, user_id: str, account_id: str) -> bool:
        """For the session check on every page: the user exists, owns that account, and the
        account is not disabled."""
        user = await self.store.user_by_id(user_id)
        return user is not None and user.account_id == account_id and user.disabled_at is None

    async def new_invite(self) -> str:
        """A single-use code; only its digest is stored, so it is shown only this once."""
        code = INVITE_MARK + secrets.token_urlsafe(16)
        await self.store.add_invite(invite_digest(code))
        return code

    async def disable(self, account_id: str) -> int | None:
        """Disable an account: its keys fail at once on every process (revoked in the store,
        then announced through the revocation epoch), its users cannot sign in and their
        sessions end at the next page. Returns the keys revoked; None: no such account."""
        revoked = await self.store.disable_account(account_id)
        if revoked is not None:
            self._identity.forget_account(account_id)
        return revoked

    def _verify(self, stored: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False

    async def _dummy_hash(self) -> str:
        if self._dummy is None:
            self._dummy = await asyncio.to_thread(self._hasher.hash, secrets.token_hex(16))
        return self._dummy
