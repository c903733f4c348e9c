"""Answers to app-server *server requests*, each of the valid shape for its kind, failing closed.

The Codex app-server asks its client things: command and file-change approvals, extra
permissions, user input, MCP elicitations, dynamic tool calls, auth token refreshes. It has no
timeout of its own, so an unanswered request blocks its turn forever; an answer of the wrong
shape is rejected. :func:`build_reply` turns codexd's decision vocabulary into a body valid for
that kind's response schema. It fails closed: a decision the server did not offer becomes the
nearest MORE restrictive one that it did offer (never an accept in place of a decline), and the
kinds codexd cannot honestly answer positively (auth tokens, attestation) get a JSON-RPC error.
(The official Python SDK accepts everything by default; codexd must not.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import attrs

Decision = Literal["accept", "acceptForSession", "decline", "cancel"]

#: From most to least permissive; fail-closed fallbacks walk rightwards.
_ORDER: tuple[Decision, ...] = ("acceptForSession", "accept", "decline", "cancel")

KNOWN_SERVER_REQUESTS: frozenset[str] = frozenset(
    {
        "item/commandExecution/requestApproval",
        "item/fileChange/requestApproval",
        "item/permissions/requestApproval",
        "item/tool/requestUserInput",
        "item/tool/call",
        "mcpServer/elicitation/request",
        "account/chatgptAuthTokens/refresh",
        "attestation/generate",
        "applyPatchApproval",
        "execCommandApproval",
    }
)

#: Legacy (v1) approvals speak ReviewDecision; a denial is an object carrying the reason.
_LEGACY: dict[Decision, Any] = {
    "accept": "approved",
    "acceptForSession": "approved_for_session",
    "decline": {"denied": {"rejection": "declined by codexd"}},
    "cancel": "abort",
}

UNSUPPORTED_REQUEST = -32601
REFUSED = -32000


@attrs.frozen
class ReplyBody:
    """What to send back: a ``result`` object, or an ``error`` as ``(code, message)``."""

    result: dict[str, Any] | None = None
    error: tuple[int, str] | None = None


def _offered(params: Mapping[str, Any]) -> list[str] | None:
    available = params.get("availableDecisions")
    if not isinstance(available, list):
        return None
    # Decisions may be plain strings or objects (amendments); only plain ones are ours to pick.
    return [d for d in available if isinstance(d, str)]


def fail_closed(decision: Decision, offered: Sequence[str] | None) -> Decision:
    """``decision`` if it is allowed, else the nearest more restrictive one.

    ``availableDecisions`` limits what may be *approved*: an accept that is not offered becomes
    ``acceptForSession`` -> ``accept`` -> ``decline`` (never the other way). A refusal is always
    sent as chosen: ``decline`` and ``cancel`` are valid in every approval schema, and the
    0.163.0 server honours ``decline`` even when its list omits it (with ``untrusted`` it offers
    only accept, an amendment and cancel), whereas ``cancel`` would end the whole turn.
    """
    if decision in ("decline", "cancel") or offered is None or decision in offered:
        return decision
    for candidate in _ORDER[_ORDER.index(decision) + 1 :]:
        if candidate in offered or candidate == "decline":
            return candidate
    return "decline"


def build_reply(
    method: str,
    params: Mapping[str, Any],
    decision: Decision,
    *,
    answers: Mapping[str, Sequence[str]] | None = None,
    content: Any = None,
    permissions: Any = None,
) -> ReplyBody:
    """The answer to server request ``method`` for ``decision``; valid for its response schema."""
    if method in ("item/commandExecution/requestApproval", "item/fileChange/requestApproval"):
        return ReplyBody(result={"decision": fail_closed(decision, _offered(params))})
    if method in ("applyPatchApproval", "execCommandApproval"):
        return ReplyBody(result={"decision": _LEGACY[fail_closed(decision, None)]})
    if method == "item/permissions/requestApproval":
        granted: Any = {}
        if decision in ("accept", "acceptForSession"):
            requested = params.get("permissions")
            granted = permissions if permissions is not None else (requested or {})
        scope = "session" if decision == "acceptForSession" else "turn"
        return ReplyBody(result={"permissions": granted, "scope": scope})
    if method == "item/tool/requestUserInput":
        given = answers if decision in ("accept", "acceptForSession") and answers else {}
        return ReplyBody(result={"answers": {k: {"answers": list(v)} for k, v in given.items()}})
    if method == "mcpServer/elicitation/request":
        action = {"accept": "accept", "acceptForSession": "accept"}.get(decision, decision)
        return ReplyBody(
            result={"action": action, "content": content if action == "accept" else None}
        )
    if method == "item/tool/call":
        return ReplyBody(
            result={
                "success": False,
                "contentItems": [
                    {"type": "inputText", "text": "codexd does not run dynamic tools."}
                ],
            }
        )
    if method in ("account/chatgptAuthTokens/refresh", "attestation/generate"):
        return ReplyBody(error=(REFUSED, f"codexd cannot answer {method}"))
    return ReplyBody(
        error=(UNSUPPORTED_REQUEST, f"codexd does not support server request {method}")
    )


def describe(method: str, params: Mapping[str, Any]) -> str:
    """A one-line human summary of a server request, for events and tables."""
    if method in ("item/commandExecution/requestApproval", "execCommandApproval"):
        command = params.get("command")
        if isinstance(command, list):
            command = " ".join(str(c) for c in command)
        where = params.get("cwd")
        text = f"run `{command}`" if command else "run a command"
        return text + (f" in {where}" if where else "")
    if method in ("item/fileChange/requestApproval", "applyPatchApproval"):
        changes = params.get("fileChanges") or params.get("changes")
        count = len(changes) if isinstance(changes, dict | list) else None
        return f"edit {count} file(s)" if count is not None else "apply file changes"
    if method == "item/permissions/requestApproval":
        return f"grant extra permissions: {params.get('reason') or 'no reason given'}"
    if method == "item/tool/requestUserInput":
        questions = params.get("questions")
        return f"answer {len(questions) if isinstance(questions, list) else '?'} question(s)"
    if method == "mcpServer/elicitation/request":
        return f"MCP server {params.get('serverName', '?')} asks for input"
    if method == "item/tool/call":
        return f"call dynamic tool {params.get('tool', '?')}"
    return method
