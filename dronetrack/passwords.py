"""Password hashing for dashboard users: argon2id, a memory-hard KDF, with the library's
defaults (RFC 9106's second recommended profile). The encoded hash carries its own parameters,
so stronger defaults later still verify old hashes."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    """True only for the right password; a malformed stored hash is a mismatch, not an error."""
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False
