"""Developer and CI sessions.

The sessions run in the environment nox itself was installed into (``python=False``): install
once with ``pip install -e '.[dev]'`` (the README's first command does), then ``nox`` runs them
all. The Codex binary comes from the ``openai-codex-cli-bin`` dependency; tests that need it fail
loudly when it is missing, they never skip.
"""

from __future__ import annotations

import sys

import nox

nox.options.sessions = ["lint", "typecheck", "tests", "fuzz", "faults", "smoke"]
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
    """ruff check and ruff format --check."""
    session.run(sys.executable, "-m", "ruff", "check", "codexd", "tests", "bench", "noxfile.py")
    session.run(
        sys.executable, "-m", "ruff", "format", "--check", "codexd", "tests", "bench", "noxfile.py"
    )


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
