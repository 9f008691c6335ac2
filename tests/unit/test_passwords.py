from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from dronetrack.passwords import WeakPassword, hash_password, needs_rehash, verify_password


def test_hashes_are_salted_argon2id_and_verify() -> None:
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first.startswith("$argon2id$")
    assert first != second, "each hash has its own salt"
    assert verify_password(first, "correct horse")
    assert not verify_password(first, "correct horsE")
    assert not needs_rehash(first)


def test_unknown_users_and_broken_hashes_never_verify() -> None:
    assert not verify_password(None, "dronetrack-no-such-user")
    assert not verify_password("", "anything")
    assert not verify_password("not-a-hash", "anything")


def test_short_passwords_are_refused() -> None:
    with pytest.raises(WeakPassword):
        hash_password("short")


def test_hashes_with_other_parameters_verify_and_ask_for_a_rehash() -> None:
    old = PasswordHasher(time_cost=1, memory_cost=8_192, parallelism=1).hash("correct horse")
    assert verify_password(old, "correct horse")
    assert needs_rehash(old)
