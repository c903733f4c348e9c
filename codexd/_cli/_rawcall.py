"""``codexd api METHOD [PARAMS]``: any method of codexd's own API table, params as JSON.

(``codexd call`` is the pass-through to the app-server itself: :mod:`codexd._cli._codex`.)

Every method in :data:`codexd._methods.METHODS` is reachable this way the moment it is added
to the table (the choices are read from it), before it has a command of its own. The answer is
printed as JSON.
"""

from __future__ import annotations

import json
from typing import Any

import click

from .._methods import METHODS
from ._app import CliError
from ._calls import call
from ._output import Output

#: Methods that act on the connection itself: meaningless for one call.
_CONNECTION_METHODS = frozenset({"events/subscribe", "events/unsubscribe"})


def _params(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="PARAMS") from None
    if not isinstance(value, dict):
        raise click.BadParameter("must be a JSON object", param_hint="PARAMS")
    return value


@click.command("api")
@click.argument(
    "method", type=click.Choice(sorted(set(METHODS) - _CONNECTION_METHODS)), metavar="METHOD"
)
@click.argument("params", required=False)
@click.pass_context
def api_command(ctx: click.Context, method: str, params: str | None) -> None:
    """Call one API method with PARAMS (a JSON object); print the answer as JSON.

    Example: codexd api session/get '{"sessionId": "session-..."}'
    """
    out = Output.of(ctx)
    result = call(ctx, method, _params(params))
    if result is None:
        raise CliError(f"{method} returned nothing")
    out.json(result)
