"""Developer and CI sessions.

The sessions run in the environment nox itself was installed into (``python=False``): install
once with ``pip install -e '.[dev]'`` (the README's first command does), then ``nox`` runs them
all. The Codex binary comes from the ``openai-codex-cli-bin`` dependency; tests that need it fail
loudly when it is missing, they never skip.
"""

from __future__ import annotations

import stat
import sys
import zipfile
from pathlib import Path

import nox

nox.options.sessions = ["lint", "typecheck", "tests", "fuzz", "faults", "smoke", "compat"]
nox.options.error_on_missing_interpreters = True


@nox.session(python=False)
def tests(session: nox.Session) -> None:
    """The test suite (pytest + pytest-trio), real Codex binary included."""
    session.run(
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "--ignore=tests/faults",
        "--ignore=tests/fuzz",
        "--cov=codexd",
        "--cov-branch",
        "--cov-report=term:skip-covered",
        *session.posargs,
    )


@nox.session(python=False)
def fuzz(session: nox.Session) -> None:
    """Property-based fuzzing (hypothesis) of handshakes, frames, params, config, child output.

    ``CODEXD_FUZZ_PROFILE=deep nox -s fuzz`` for a long local run; see tests/fuzz/README.md.
    """
    session.run(sys.executable, "-m", "pytest", "-q", "tests/fuzz", *session.posargs)


@nox.session(python=False)
def faults(session: nox.Session) -> None:
    """The fault-injection suite (real kills and stops, fake-server faults); prints a table."""
    session.run(sys.executable, "-m", "pytest", "-q", "tests/faults", *session.posargs)


@nox.session(python=False)
def lint(session: nox.Session) -> None:
    """ruff, the layout rules (no import cycle, no module over 600 lines) and no dead code."""
    paths = ("codexd", "tests", "bench", "tools", "examples", "noxfile.py")
    session.run(sys.executable, "-m", "ruff", "check", *paths)
    session.run(sys.executable, "-m", "ruff", "format", "--check", *paths)
    session.run(sys.executable, "tools/check_layout.py")
    session.run(sys.executable, "-m", "vulture", "codexd", "--min-confidence", "80")


@nox.session(python=False)
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package."""
    session.run(sys.executable, "-m", "mypy", "--strict", "codexd")


@nox.session(python=False)
def smoke(session: nox.Session) -> None:
    """The embedded smoke, then the real-Codex smoke against the fake model provider."""
    session.run(sys.executable, "-m", "codexd", "smoke")
    session.run(sys.executable, "-m", "codexd", "smoke", "--real")


@nox.session(python=False)
def bench(session: nox.Session) -> None:
    """Benchmarks (not a test; not a default session): throughput, WebSocket fan-out,
    latency, real turns against the SDK, start-up, store, memory; writes bench/results.json.

    Installs the official ``openai-codex`` SDK to measure its notification loop and its turns
    as the peer baseline (same binary, same fake provider).
    """
    session.run(sys.executable, "-m", "pip", "install", "--quiet", "openai-codex==0.163.0")
    session.run(sys.executable, "bench/bench.py", *session.posargs)


#: The oldest Codex codexd supports (docs/api.md, "Codex versions"); the newest is the pinned one.
COMPAT_OLDEST = "0.149.0"
#: The tests that run the real binary's app-server and exec runs.
COMPAT_TESTS = (
    "tests/test_appserver_real.py",
    "tests/test_runs.py",
    "tests/test_reach_passthrough.py",
    "tests/test_reach_threads.py",
    "tests/test_reach_runs.py",
)


def _oldest_codex(session: nox.Session) -> Path:
    """The oldest supported Codex binary, from its wheel on the package index (cached in .nox)."""
    root = Path(".nox") / "compat-codex" / COMPAT_OLDEST
    codex = root / "codex_cli_bin" / "bin" / "codex"
    if codex.is_file():
        return codex.resolve()
    wheels = root / "wheel"
    session.run(
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--no-deps",
        "--only-binary=:all:",
        "--dest",
        str(wheels),
        f"openai-codex-cli-bin=={COMPAT_OLDEST}",
    )
    wheel = next(wheels.glob("openai_codex_cli_bin-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(root)
    # Zip files do not keep the executable bits.
    for path in (root / "codex_cli_bin").rglob("*"):
        if path.is_file() and path.parent.name in ("bin", "codex-path", "zsh", "codex-resources"):
            path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return codex.resolve()


@nox.session(python=False)
def compat(session: nox.Session) -> None:
    """The real-binary app-server and run tests on the oldest supported Codex, then the pinned.

    The oldest binary comes from ``pip download openai-codex-cli-bin==COMPAT_OLDEST`` and is
    extracted under ``.nox/compat-codex``; the tests run it through ``CODEXD_TEST_CODEX``
    (tests/conftest.py).
    """
    codex = _oldest_codex(session)
    session.log(f"Codex {COMPAT_OLDEST}: {codex}")
    pytest = (sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider")
    session.run(*pytest, *COMPAT_TESTS, *session.posargs, env={"CODEXD_TEST_CODEX": str(codex)})
    session.log("Codex pinned (openai-codex-cli-bin)")
    session.run(*pytest, *COMPAT_TESTS, *session.posargs, env={"CODEXD_TEST_CODEX": ""})
