"""Password hashing for dashboard users: argon2id, a memory-hard KDF (RFC 9106).

Parameters are OWASP's first argon2id choice (46 MiB, 1 pass, 1 lane): as costly to attack as
the heavier presets, but one lane keeps a login from taking both cores of a small dashboard
host. The encoded hash carries its own salt and parameters, so hashes made with other
parameters still verify, and ``needs_rehash`` tells a login to store a fresh one.
"""

from __future__ import annotations

import functools
import hashlib

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher(time_cost=1, memory_cost=47_104, parallelism=1)
MIN_LENGTH = 8


class WeakPassword(ValueError):
    """The password is too short to protect a fleet."""


@functools.cache
def _dummy_hash() -> str:
    # Verified for unknown users so that a login takes as long for an unknown name as for a
    # wrong password and does not reveal which names exist.
    return _hasher.hash("dronetrack-no-such-user")


def fingerprint(password_hash: str) -> str:
    """A short digest of a stored hash, which changes whenever the password does: a session
    carries it, so setting a new password ends every session made with the old one. It tells
    nothing about the password (the hash's salt is not in it)."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def hash_password(password: str) -> str:
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"a password needs at least {MIN_LENGTH} characters")
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True only if the password matches; never raises for a wrong password or a bad hash.
    Pass ``None`` for an unknown user: the work done is the same. CPU-bound for ~0.1 s, so
    call it from a thread (``asyncio.to_thread``) in a server."""
    try:
        ok = _hasher.verify(password_hash or _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return False
    return ok and password_hash is not None


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with other parameters than today's."""
    return _hasher.check_needs_rehash(password_hash)
