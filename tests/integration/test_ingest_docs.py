"""docs/ingest.md as a newcomer uses it: every shell example runs as written, in order, against
a real ingest process, and answers with the statuses and bodies the page shows."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from dronetrack.settings import Settings
from tests.integration.helpers import ingest_process

BLOCK = re.compile(r"^```sh\n(.*?)^```", re.S | re.M)
# What the page says comes back: a status line (curl -i, or -w 'HTTP %{http_code}'), a 202 body.
SHOWN = re.compile(r"^# (HTTP(?:/1\.1)? \d{3}\b.*|\{\"accepted\".*)$", re.M)
ANSWERED = re.compile(r"^(HTTP(?:/1\.1)? \d{3}\b.*|\{\"accepted\".*)$", re.M)
BASH = shutil.which("bash") or "/bin/bash"
PASSWORD = "a long enough password\n"  # what `user create` reads from stdin


def blocks(page: str) -> list[str]:
    return BLOCK.findall(page)


def test_the_page_has_the_examples_this_test_runs(repo_root: Path) -> None:
    page = (repo_root / "docs" / "ingest.md").read_text()
    assert len(blocks(page)) == 5
    assert len(SHOWN.findall(page)) == 8


def test_every_example_of_the_ingest_page_runs_as_written(
    settings: Settings, repo_root: Path, tmp_path: Path
) -> None:
    page = (repo_root / "docs" / "ingest.md").read_text()
    examples = blocks(page)
    # Fresh files, so the page's fleet, user and files touch nothing of the repository.
    local = settings.replace(
        ingest_tokens_file=tmp_path / "ingest-tokens", sqlite_path=tmp_path / "docs.sqlite3"
    )
    (tmp_path / ".venv").symlink_to(repo_root / ".venv")
    script = "set -euo pipefail\n" + "".join(
        f"echo; echo '@@ example {i}'\n{block}" for i, block in enumerate(examples)
    )
    with ingest_process(local, tmp_path / "ingest.log") as (url, _):
        env = {**os.environ, **local.to_env(), "INGEST": url}
        env.pop("VIRTUAL_ENV", None)
        done = subprocess.run(
            [BASH, "-c", script],
            cwd=tmp_path,
            env=env,
            input=PASSWORD,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, done.stdout + done.stderr
    outputs = re.split(r"^@@ example \d+\n", done.stdout, flags=re.M)[1:]
    assert len(outputs) == len(examples), done.stdout
    for example, output in zip(examples, outputs, strict=True):
        shown = SHOWN.findall(example)
        answered = [line.rstrip("\r") for line in ANSWERED.findall(output)]
        assert answered == shown, f"{example}\n---\n{output}\n{done.stderr}"


@pytest.mark.parametrize("stale", ["2026-11-21T", "$REC1", "curl -sS https"])
def test_the_page_no_longer_shows_what_did_not_run(repo_root: Path, stale: str) -> None:
    assert stale not in (repo_root / "docs" / "ingest.md").read_text()
