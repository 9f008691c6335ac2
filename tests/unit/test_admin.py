"""`dronetrack db ...` and `dronetrack user ...` against the SQLite store, in-process."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest

from dronetrack import cli
from dronetrack.passwords import verify_password
from dronetrack.store.sqlite import SqliteStore


@pytest.fixture
def db_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "admin.sqlite3"
    monkeypatch.setenv("DRONETRACK_SQLITE_PATH", str(path))
    monkeypatch.setenv("DRONETRACK_STORE", "sqlite")
    return path


def run(argv: list[str], monkeypatch: pytest.MonkeyPatch, stdin: str = "") -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return cli.main(argv)


def test_db_migrate_is_idempotent_and_version_reports_it(
    db_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["db", "version"], monkeypatch) == 0
    assert "version 0 of 6" in capsys.readouterr().out
    assert run(["db", "migrate"], monkeypatch) == 0
    assert run(["db", "migrate"], monkeypatch) == 0
    assert "schema version 6 -> 6" in capsys.readouterr().out
    assert run(["db", "version"], monkeypatch) == 0
    assert "version 6 of 6" in capsys.readouterr().out
    assert run(["db", "create-keyspace"], monkeypatch) == 0


def test_users_are_created_with_a_hashed_password_listed_and_disabled(
    db_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["user", "create", "ada", "--fleet", "f2", "--fleet", "f1"]
    assert run(argv, monkeypatch, stdin="correct horse\n") == 0
    assert run(argv, monkeypatch, stdin="correct horse\n") == 1
    assert "exists" in capsys.readouterr().err
    assert run(["user", "create", "bob", "--fleet", "f1"], monkeypatch, stdin="short\n") == 1
    assert run(["user", "create", "bob", "--fleet", "no/slash"], monkeypatch, stdin="x" * 9) == 1

    async def get_ada() -> tuple[str, list[str], bool]:
        store = SqliteStore(db_path)
        await store.open()
        try:
            user = await store.get_user("ada")
        finally:
            await store.close()
        assert user is not None
        return user.password_hash, user.fleets, user.disabled

    password_hash, fleets, disabled = asyncio.run(get_ada())
    assert "correct horse" not in password_hash
    assert verify_password(password_hash, "correct horse")
    assert (fleets, disabled) == (["f1", "f2"], False)

    assert run(["user", "disable", "ada"], monkeypatch) == 0
    assert run(["user", "disable", "zed"], monkeypatch) == 1
    capsys.readouterr()
    assert run(["user", "list"], monkeypatch) == 0
    assert capsys.readouterr().out == "ada\tdisabled\tf1,f2\n"
    assert asyncio.run(get_ada())[2] is True
