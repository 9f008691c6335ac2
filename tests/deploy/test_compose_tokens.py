"""Compose mounts the tokens file as a file secret, which Docker Compose bind-mounts as it is on
the host (it does not apply a secret's uid/gid/mode to a file source). `dronetrack token create`
writes it 0600 for whoever ran it, so ingest, running as the compose user, could not read it and
stopped with PermissionError. The guide's step makes the file the container user's; this checks
that step, as that user, on a file made by the real `token create`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dronetrack import tokens
from tests.deploy.manifests import DOCS, ROOT, load_compose

READ = "import sys; print(open(sys.argv[1]).read(), end='')"


def _ingest_user() -> tuple[int, int]:
    uid, gid = load_compose()["services"]["ingest"]["user"].split(":")
    return int(uid), int(gid)


def _documented_owner() -> tuple[int, int]:
    found = re.findall(r"chown (\d+):(\d+) var/ingest-tokens", DOCS.read_text())
    assert found, "docs/operations.md does not say how to give var/ingest-tokens to ingest's user"
    assert len(set(found)) == 1
    return int(found[0][0]), int(found[0][1])


def test_the_secret_is_the_file_ingest_reads() -> None:
    compose = load_compose()
    ingest = compose["services"]["ingest"]
    (secret,) = ingest["secrets"]
    path = compose["secrets"][secret["source"]]["file"]
    assert (ROOT / path).relative_to(ROOT) == Path("var/ingest-tokens")
    target = ingest["environment"]["DRONETRACK_INGEST_TOKENS_FILE"]
    assert target == f"/run/secrets/{secret['target']}"


def test_the_guide_gives_the_file_to_ingests_user() -> None:
    assert _documented_owner() == _ingest_user()


def _read_as(user: tuple[int, int], path: Path) -> subprocess.CompletedProcess[str]:
    python = shutil.which("python3", path="/usr/bin:/usr/local/bin")  # one any user may run
    assert python
    return subprocess.run(
        [python, "-c", READ, str(path)],
        user=user[0],
        group=user[1],
        extra_groups=[],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory other users can enter (pytest's own tmp_path is private to root)."""
    with tempfile.TemporaryDirectory(dir="/tmp") as name:
        Path(name).chmod(0o755)
        yield Path(name)


@pytest.mark.skipif(os.geteuid() != 0, reason="reading as another user needs root")
def test_ingests_user_reads_the_file_after_the_guides_step(shared_dir: Path) -> None:
    path = shared_dir / "ingest-tokens"
    tokens.create(path, "demo")
    user = _ingest_user()
    as_made = _read_as(user, path)
    assert as_made.returncode != 0, "a 0600 file of root's is unreadable to the container user"
    assert "PermissionError" in as_made.stderr

    os.chown(path, *_documented_owner())
    read = _read_as(user, path)
    assert read.returncode == 0, read.stderr
    assert read.stdout.startswith("demo sha256:")
    assert path.stat().st_mode & 0o777 == 0o600, "the tokens stay unreadable to anyone else"

    # Adding a token later (as root on the host) keeps the file the container user's.
    tokens.create(path, "second")
    assert (path.stat().st_uid, path.stat().st_gid) == user
    assert "second sha256:" in _read_as(user, path).stdout
