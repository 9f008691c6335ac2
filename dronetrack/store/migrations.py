"""Versioned schema files, one directory per store kind (``schema/sqlite``, ``schema/cassandra``).

A file is named ``NNNN_what.sql`` / ``NNNN_what.cql``; its number is the schema version it brings
the store to. Files are applied in order and never edited once released: a change is a new file.
Numbers must be unique and increasing but may leave gaps (a number is reserved when a change is
planned, so 0005 may be released before 0003): a store applies every file numbered above its
version, so a reserved number must be released before any store passes it.
"""

from __future__ import annotations

import itertools
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.resources import files
from typing import Literal

Kind = Literal["sqlite", "cassandra"]
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.(sql|cql)$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    text: str

    def statements(self, params: Mapping[str, object] | None = None) -> list[str]:
        """The file's statements, comments stripped and ``${name}`` placeholders filled."""
        return [string.Template(s).substitute(params or {}) for s in split_statements(self.text)]


def load(kind: Kind) -> list[Migration]:
    """Every migration of one store kind, oldest first."""
    found = []
    for entry in files("dronetrack.store").joinpath("schema", kind).iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text()))
    found.sort(key=lambda m: m.version)
    check_versions(kind, [m.version for m in found])
    return found


def check_versions(kind: Kind, versions: list[int]) -> None:
    """Numbers start at 1 and never repeat (gaps are allowed)."""
    for a, b in itertools.pairwise(versions):
        if a == b:
            raise RuntimeError(f"{kind} migrations: version {a} is used twice: {versions}")
    if versions and versions[0] != 1:
        raise RuntimeError(f"{kind} migrations must start at 0001: {versions}")


def pending(kind: Kind, version: int) -> list[Migration]:
    """The migrations a store at ``version`` still needs, oldest first."""
    return [m for m in load(kind) if m.version > version]


def latest_version(kind: Kind) -> int:
    found = load(kind)
    return found[-1].version if found else 0


def split_statements(text: str) -> list[str]:
    """Split on ``;`` at line ends, dropping ``--`` comments (the schema files keep semicolons
    and dashes out of string literals so that this stays simple)."""
    lines = [ln.split("--", 1)[0].rstrip() for ln in text.splitlines()]
    parts = "\n".join(lines).split(";\n")
    return [" ".join(p.split()).rstrip(";") for p in parts if p.strip()]
