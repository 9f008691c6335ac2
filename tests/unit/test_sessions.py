"""Session cookies: pure functions, no server."""

from __future__ import annotations

import time

from dashboard.auth import Session, decode_session, encode_session

KEY = b"k" * 32


def test_a_session_round_trips_and_resists_tampering() -> None:
    session = Session("alice", int(time.time()) + 60, "token", "fp")
    cookie = encode_session(KEY, session)
    assert decode_session(KEY, cookie) == session
    assert decode_session(b"other-key", cookie) is None
    forged = encode_session(b"other-key", Session("mallory", session.expires, "t", "fp"))
    assert decode_session(KEY, forged.split(".")[0] + "." + cookie.split(".")[1]) is None
    for junk in ("", ".", "abc", "abc.def", cookie + "x", "!!!." + cookie.split(".")[1]):
        assert decode_session(KEY, junk) is None


def test_an_expired_session_is_no_session() -> None:
    cookie = encode_session(KEY, Session("alice", int(time.time()) - 1, "token", "fp"))
    assert decode_session(KEY, cookie) is None
