"""Per-fleet ingest tokens, kept only as SHA-256 digests.

A token is 256 random bits, so a fast hash is enough: nobody can guess one from its digest, and
there is no password to stretch. The tokens file (one ``FLEET sha256:HEX`` per line, ``#``
comments allowed) fits a Kubernetes Secret mounted as a file; a fleet may hold several tokens at
once, which is how a token is rotated.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path

PREFIX = "dt_"
_FLEET = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_LINE = re.compile(r"^(?P<fleet>\S+)\s+sha256:(?P<hex>[0-9a-f]{64})\s*$")


class TokenFileError(ValueError):
    """The tokens file has a line that is not ``FLEET sha256:HEX``; names the line."""


def valid_fleet(fleet: str) -> bool:
    return bool(_FLEET.match(fleet))


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def line(fleet: str, token: str) -> str:
    """The tokens-file line that admits ``token`` for ``fleet``."""
    return f"{fleet} sha256:{digest(token).hex()}\n"


def parse(lines: Iterable[str], source: str = "tokens") -> dict[bytes, str]:
    """Digest -> fleet, from the file's lines."""
    table: dict[bytes, str] = {}
    for number, raw in enumerate(lines, 1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        match = _LINE.match(text)
        if match is None or not valid_fleet(match["fleet"]):
            raise TokenFileError(f"{source}:{number}: expected 'FLEET sha256:<64 hex digits>'")
        table[bytes.fromhex(match["hex"])] = match["fleet"]
    return table


def load(path: Path) -> dict[bytes, str]:
    """The table from ``path``; a missing file means no token is valid yet."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    return parse(text.splitlines(), str(path))


def create(path: Path, fleet: str) -> str:
    """Make a token for ``fleet``, append its digest to ``path`` (mode 0600) and return it: the
    only time the token itself exists anywhere."""
    if not valid_fleet(fleet):
        raise ValueError(f"fleet {fleet!r} must be 1-64 characters of [A-Za-z0-9._-]")
    token = new_token()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as out:
        out.write(line(fleet, token))
    return token


def revoke(path: Path, token: str) -> bool:
    """Remove the line of ``token`` from ``path``; False if it was not there. The file is
    rewritten in place, not replaced by another: a file bind-mounted into a container (a Compose
    secret) stays the file it was when mounted, so a replacement would never reach the service.
    (Ingest applies a file only once two reads of it agree, so it never takes a half-written
    one.)"""
    wanted = line(token=token, fleet="").split()[-1]
    try:
        with path.open("r+") as file:
            lines = file.read().splitlines(True)
            kept = [ln for ln in lines if wanted not in ln]
            if len(kept) == len(lines):
                return False
            file.seek(0)
            file.write("".join(kept))
            file.truncate()
    except FileNotFoundError:
        return False
    return True


def fleet_for(table: Mapping[bytes, str], token: str) -> str | None:
    """The fleet ``token`` belongs to, or None."""
    return TokenTable(table).fleet_for(token)


class TokenTable:
    """Finds a token's fleet: a lookup by the digest's first 8 bytes (a selector that tells an
    attacker nothing about any token), then a constant-time comparison of the whole digest."""

    def __init__(self, table: Mapping[bytes, str]) -> None:
        self.digests = dict(table)  # what it was made from, to tell whether a reload changes it
        self._buckets: dict[bytes, list[tuple[bytes, str]]] = {}
        for full, fleet in table.items():
            self._buckets.setdefault(full[:8], []).append((full, fleet))

    def __len__(self) -> int:
        return sum(len(b) for b in self._buckets.values())

    def fleet_for(self, token: str) -> str | None:
        if not token.isascii():  # no token is; a header that is not UTF-8 arrives as surrogates
            return None
        presented = digest(token)
        for stored, fleet in self._buckets.get(presented[:8], ()):
            if hmac.compare_digest(stored, presented):
                return fleet
        return None
