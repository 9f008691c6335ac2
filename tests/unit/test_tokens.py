"""Fleet tokens: only digests are stored, a token maps to exactly its fleet, and the file format
is strict enough to catch a bad Secret."""

from __future__ import annotations

import io
import stat
from pathlib import Path

import pytest

from dronetrack import cli, tokens


def test_a_created_token_is_stored_only_as_its_digest(tmp_path: Path) -> None:
    path = tmp_path / "secret" / "tokens"
    token = tokens.create(path, "fleet-a")
    text = path.read_text()
    assert token.startswith("dt_")
    assert len(token) > 40
    assert token not in text
    assert text == f"fleet-a sha256:{tokens.digest(token).hex()}\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_each_token_names_its_own_fleet_and_nothing_else(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    a1, a2, b = tokens.create(path, "a"), tokens.create(path, "a"), tokens.create(path, "b")
    table = tokens.TokenTable(tokens.load(path))
    assert len(table) == 3
    assert [table.fleet_for(t) for t in (a1, a2, b)] == ["a", "a", "b"]
    assert table.fleet_for(b + "x") is None
    assert table.fleet_for("") is None


def test_revoking_removes_only_that_token(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    keep, drop = tokens.create(path, "a"), tokens.create(path, "a")
    tokens.revoke(path, drop)
    table = tokens.TokenTable(tokens.load(path))
    assert (table.fleet_for(keep), table.fleet_for(drop)) == ("a", None)


def test_a_missing_file_admits_nobody(tmp_path: Path) -> None:
    assert tokens.load(tmp_path / "absent") == {}


def test_comments_and_blank_lines_are_allowed_and_bad_lines_named() -> None:
    good = "# fleet tokens\n\nalpha sha256:" + "ab" * 32 + "\n"
    assert list(tokens.parse(good.splitlines()).values()) == ["alpha"]
    with pytest.raises(tokens.TokenFileError, match="tokens:2: expected"):
        tokens.parse([good.splitlines()[2], "alpha dt_plaintext-token"])


@pytest.mark.parametrize("fleet", ["", "a b", "x" * 65, "fleet/1"])
def test_fleet_names_are_checked(tmp_path: Path, fleet: str) -> None:
    with pytest.raises(ValueError, match="fleet"):
        tokens.create(tmp_path / "tokens", fleet)


def test_token_create_prints_the_token_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "tokens"
    assert cli.main(["token", "create", "ops-1", "--file", str(path)]) == 0
    out, err = capsys.readouterr()
    token = out.strip()
    assert tokens.TokenTable(tokens.load(path)).fleet_for(token) == "ops-1"
    assert token not in err
    assert token not in path.read_text()


def test_token_revoke_reads_the_token_from_stdin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "tokens"
    keep, drop = tokens.create(path, "ops-1"), tokens.create(path, "ops-1")
    monkeypatch.setattr("sys.stdin", io.StringIO(drop + "\n"))
    assert cli.main(["token", "revoke", "--file", str(path)]) == 0
    table = tokens.TokenTable(tokens.load(path))
    assert (table.fleet_for(keep), table.fleet_for(drop)) == ("ops-1", None)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    monkeypatch.setattr("sys.stdin", io.StringIO(drop + "\n"))
    assert cli.main(["token", "revoke", "--file", str(path)]) == 1
    err = capsys.readouterr().err
    assert "not in" in err
    assert drop not in err


def test_revoking_rewrites_the_file_in_place(tmp_path: Path) -> None:
    """A Compose secret is the file bind-mounted at start: a file put in its place would never
    reach the container, so the revocation must land in the same file."""
    path = tmp_path / "tokens"
    keep, drop = tokens.create(path, "a"), tokens.create(path, "b")
    inode = path.stat().st_ino
    assert tokens.revoke(path, drop)
    assert path.stat().st_ino == inode
    assert path.read_text() == tokens.line("a", keep)


@pytest.mark.parametrize("token", ["\udcff\udcfe", "dt_é", "\ud800"])
def test_a_token_that_is_not_ascii_names_no_fleet(tmp_path: Path, token: str) -> None:
    """A header's bytes that are not UTF-8 reach the service as surrogate escapes."""
    path = tmp_path / "tokens"
    tokens.create(path, "a")
    assert tokens.TokenTable(tokens.load(path)).fleet_for(token) is None
