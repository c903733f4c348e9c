"""The ``codexd`` command line (``codexd = codexd._cli:main``; also ``python -m codexd``).

One click group, :data:`main`, with one module per concept. ``_serve`` runs the daemon in the
foreground (``_fake``: its ``--fake-provider`` demo model); ``_local`` holds ``smoke``,
``config show`` and ``api-schema``; ``_status``, ``_sessions``, ``_turns``, ``_runs``,
``_approvals``, ``_events``, ``_codex`` (Codex through the daemon: ``call`` the pass-through,
``threads``, ``models``, ``account``, ``review``, ``console``) and ``_rawcall`` (``codexd api
METHOD PARAMS``: any method of codexd's own API table) are clients of a running daemon.
``_live`` (what a person sees of a turn or run), ``_follow`` (feeding it the events) and
``_screen`` (the terminal) follow a turn or a run as it happens; ``_output`` and ``_term`` print
for people and programs; ``_calls`` reaches the daemon; ``_app`` holds what every command shares
(``--config``, ``--state-dir`` and ``--json``, accepted before or after any subcommand, and the
error reporting).

Adding a command: write it in its own module as a plain ``@click.command()`` (or group) and add
it to :data:`COMMANDS`. It gets the shared options by being added to :data:`main`; it reads them
with ``_app.settings(ctx)``, the config with ``_app.load(ctx)``, calls the daemon with
``_calls.call(ctx, method, params)`` and prints with ``_output.Output.of(ctx)``.

Exit codes a script can rely on: 0 ok, 1 a failed turn/run/check or an error, 2 usage error,
3 daemon unreachable (or lost while following).
"""

from __future__ import annotations

import click

from .._version import __version__
from ._app import EXIT_FAILED, EXIT_UNREACHABLE, EXIT_USAGE, CodexdGroup, shared_options
from ._approvals import approvals_group
from ._codex import account, call_command, console, models, review, threads
from ._events import events
from ._local import api_schema, config_group, smoke
from ._rawcall import api_command
from ._runs import run_group
from ._serve import serve
from ._sessions import session_group
from ._status import restart_child, status
from ._turns import interrupt, turn_group


@click.group(cls=CodexdGroup)
@click.version_option(__version__, prog_name="codexd")
@shared_options
def main() -> None:
    """codexd: a local supervisor for OpenAI's Codex app-server.

    --config, --state-dir and --json may be given before or after any subcommand.
    """


#: Every top-level command (``codexd --help`` lists them by name).
COMMANDS: list[click.Command] = [
    serve,
    smoke,
    config_group,
    status,
    restart_child,
    session_group,
    turn_group,
    interrupt,
    run_group,
    approvals_group,
    events,
    call_command,
    api_command,
    threads,
    models,
    account,
    review,
    console,
    api_schema,
]

for _command in COMMANDS:
    main.add_command(_command)

__all__ = ["COMMANDS", "EXIT_FAILED", "EXIT_UNREACHABLE", "EXIT_USAGE", "main"]
