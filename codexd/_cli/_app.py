"""What every ``codexd`` command shares: the options users may type anywhere, and exit codes.

``--config``, ``--state-dir`` and ``--json`` are accepted before or after any subcommand
(``codexd --json status`` and ``codexd status --json`` mean the same): :func:`shared_options`
adds them to every group and command, and each occurrence is merged into one
:class:`Settings` object on the root context (the one nearest the end of the line wins).
:class:`CodexdGroup` is the group class of the whole tree: it applies the shared options to every
subcommand added to it, and its ``main`` reports every error the same way (a line on stderr, or
a JSON object on stderr under ``--json``) with the documented exit code.
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TypeVar

import attrs
import click

from .._config import Config, load_config
from .._errors import ConfigError
from ._term import error_console

#: Exit codes a script can rely on.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_INTERRUPTED = 130

F = TypeVar("F", bound=Callable[..., Any])


@attrs.define
class Settings:
    """The shared options, merged from every position they were given in."""

    config_path: str | None = None
    state_dir: str | None = None
    as_json: bool = False


class CliError(click.ClickException):
    """A failure reported to the user: one message, an exit code, and for API errors the
    daemon's error code and the field it names."""

    def __init__(
        self,
        message: str,
        *,
        exit_code: int = EXIT_FAILED,
        kind: str = "error",
        code: int | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # a ClassVar in click
        self.kind = kind
        self.code = code
        self.field = field


def settings(ctx: click.Context) -> Settings:
    """The merged shared options of this invocation."""
    obj = ctx.find_root().ensure_object(Settings)
    return obj


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    if value is None or value is False:
        return
    target = settings(ctx)
    if param.name == "config_path":
        target.config_path = value
    elif param.name == "state_dir":
        target.state_dir = value
    elif param.name == "as_json":
        target.as_json = True


#: The shared options: their declarations and settings.
_SHARED: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    (
        ("--config", "config_path"),
        {
            "type": click.Path(dir_okay=False),
            "help": "TOML configuration file (default: $CODEXD_CONFIG; none needed).",
        },
    ),
    (
        ("--state-dir", "state_dir"),
        {
            "type": click.Path(file_okay=False),
            "help": "State directory of the daemon (default: $CODEXD_STATE_DIR or the config's).",
        },
    ),
    (
        ("--json", "as_json"),
        {
            "is_flag": True,
            "default": False,
            "help": "Machine-readable output (errors too: a JSON object on stderr).",
        },
    ),
]


def shared_options(f: F) -> F:
    """Add ``--config``, ``--state-dir`` and ``--json`` to a command or group (or its function)."""
    if isinstance(f, click.Command):
        for decls, kwargs in _SHARED:
            f.params.append(
                click.Option(list(decls), expose_value=False, callback=_remember, **kwargs)
            )
        return f
    for decls, kwargs in reversed(_SHARED):
        f = click.option(*decls, expose_value=False, callback=_remember, **kwargs)(f)
    return f


def _has_shared(command: click.Command) -> bool:
    return any(p.name == "as_json" for p in command.params)


def _add_shared(command: click.Command) -> None:
    """Give a command (and, for a group, every subcommand) the shared options."""
    if not _has_shared(command):
        shared_options(command)
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _add_shared(sub)


class CodexdGroup(click.Group):
    """A group whose subcommands all take the shared options; ``main`` reports errors."""

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        _add_shared(cmd)
        super().add_command(cmd, name)

    def main(  # type: ignore[override]
        self, args: Sequence[str] | None = None, prog_name: str | None = None, **extra: Any
    ) -> NoReturn:
        argv = list(sys.argv[1:] if args is None else args)
        try:
            super().main(argv, prog_name=prog_name or "codexd", standalone_mode=False, **extra)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except (click.Abort, KeyboardInterrupt):
            # click turns Ctrl-C into Abort; 130 is what shells report for SIGINT.
            fail_exit(_wants_json(argv), "interrupted", EXIT_INTERRUPTED, kind="interrupted")
        except click.ClickException as exc:
            report_exception(exc, _wants_json(argv))
        sys.exit(EXIT_OK)


class DefaultCommandGroup(CodexdGroup):
    """A group that runs ``default`` when the first word is not one of its commands.

    ``codexd turn SESSION TEXT`` is ``codexd turn start SESSION TEXT``; ``codexd turn wait``
    is its own command.
    """

    def __init__(self, *args: Any, default: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.default = default

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = [self.default, *args]
        elif not args:
            args = [self.default]
        return super().parse_args(ctx, args)


def _wants_json(argv: Sequence[str]) -> bool:
    options = argv[: argv.index("--")] if "--" in argv else argv
    return "--json" in options


def report_exception(exc: click.ClickException, as_json: bool) -> NoReturn:
    """Print a click error (usage or ours) and exit with its code."""
    if isinstance(exc, CliError):
        fail_exit(
            as_json, exc.message, exc.exit_code, kind=exc.kind, code=exc.code, field=exc.field
        )
    if isinstance(exc, click.UsageError):
        hint = ""
        if exc.ctx is not None and not as_json:
            hint = f"\nTry '{exc.ctx.command_path} --help' for help."
        fail_exit(as_json, exc.format_message() + hint, exc.exit_code, kind="usage")
    fail_exit(as_json, exc.format_message(), exc.exit_code)


def fail_exit(
    as_json: bool,
    message: str,
    exit_code: int,
    *,
    kind: str = "error",
    code: int | None = None,
    field: str | None = None,
) -> NoReturn:
    """Report one error on stderr (text, or a JSON object) and exit with ``exit_code``."""
    report_error(as_json, message, exit_code, kind=kind, code=code, field=field)
    sys.exit(exit_code)


def report_error(
    as_json: bool,
    message: str,
    exit_code: int,
    *,
    kind: str = "error",
    code: int | None = None,
    field: str | None = None,
) -> None:
    """Print one error on stderr: ``codexd: message`` (red on a colour terminal), or under
    ``--json`` the object ``{"error": {"kind", "message", "exitCode", "code"?, "field"?}}``."""
    if as_json:
        error: dict[str, Any] = {"kind": kind, "message": message, "exitCode": exit_code}
        if code is not None:
            error["code"] = code
        if field is not None:
            error["field"] = field
        sys.stderr.write(json.dumps({"error": error}) + "\n")
    else:
        where = f" (field: {field})" if field else ""
        error_console().print(f"codexd: {message}{where}", style="bold red")
    sys.stderr.flush()


def load(ctx: click.Context, overrides: dict[str, Any] | None = None) -> Config:
    """The configuration: defaults < file < ``CODEXD_*`` env < shared options < ``overrides``."""
    s = settings(ctx)
    merged: dict[str, Any] = {"state_dir": s.state_dir} if s.state_dir else {}
    merged.update(overrides or {})
    try:
        return load_config(s.config_path, overrides=merged)
    except ConfigError as exc:
        raise CliError(str(exc), kind="config") from None


def command_line(ctx: click.Context, *words: str, raw: str = "") -> str:
    """``codexd WORDS [RAW] [--config F] [--state-dir D]``: a command a person can paste to
    reach the same daemon as this invocation (``raw`` is left unquoted, e.g. ``a|b``)."""
    s = settings(ctx)
    parts = ["codexd", *(shlex.quote(w) for w in words if w)]
    if raw:
        parts.append(raw)
    if s.config_path:
        parts += ["--config", shlex.quote(s.config_path)]
    if s.state_dir:
        parts += ["--state-dir", shlex.quote(s.state_dir)]
    return " ".join(parts)


def state_dir_given(ctx: click.Context) -> bool:
    """Whether ``--state-dir`` was given on the command line."""
    return settings(ctx).state_dir is not None
