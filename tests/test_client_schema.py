"""The API's JSON Schema: generated from the method table, current in docs/, and complete."""

from __future__ import annotations

import inspect
from pathlib import Path

import jsonschema

import codexd
from codexd import CLIENT_METHODS, Client, SyncClient
from codexd._methods import METHODS
from codexd._schema import api_schema, api_schema_json, method_schema

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "docs" / "api.schema.json"
REGENERATE = "codexd api-schema > docs/api.schema.json"


def test_docs_schema_is_current() -> None:
    assert SCHEMA_FILE.read_text() == api_schema_json(), (
        f"docs/api.schema.json is stale; regenerate it with: {REGENERATE}"
    )


def test_the_cli_prints_the_same_schema() -> None:
    from click.testing import CliRunner

    from codexd._cli import main

    result = CliRunner().invoke(main, ["api-schema"])
    assert result.exit_code == 0, result.output
    assert result.output == api_schema_json()


def test_schema_is_valid_draft_2020_12_and_covers_every_method() -> None:
    schema = api_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(schema["properties"]) == set(METHODS)
    for name, method in METHODS.items():
        entry = schema["properties"][name]
        assert entry["description"] == method.summary
        for part in ("params", "result"):
            # Every $ref resolves (an unresolvable one raises here).
            jsonschema.Draft202012Validator(method_schema(name, part)).is_valid({})


def test_params_schema_agrees_with_the_params_records() -> None:
    """What the records accept, the schema accepts; unknown keys and wrong types it refuses."""
    valid = {
        "session/create": {"purpose": "x", "cwd": "/tmp", "metadata": {"a": "b"}},
        "turn/start": {"sessionId": "s", "input": [{"type": "text", "text": "hi"}]},
        "turn/wait": {"sessionId": "s", "timeoutS": 1.5},
        "run/create": {"prompt": "p", "config": ["a=b"], "env": {"A": "1"}},
        "approval/respond": {"approvalId": "a", "decision": "accept", "content": {"x": 1}},
        "events/subscribe": {"since": 3, "type": "turn."},
        "daemon/status": {},
    }
    invalid = {
        "session/create": {"purpose": 5},
        "turn/start": {"sessionId": "s"},
        "turn/wait": {"sessionId": "s", "timeoutS": "1"},
        "approval/respond": {"approvalId": "a", "decision": "maybe"},
        "events/subscribe": {"sinse": 3},
        "daemon/status": {"extra": True},
    }
    for name, params in valid.items():
        validator = jsonschema.Draft202012Validator(method_schema(name, "params"))
        assert not list(validator.iter_errors(params)), (name, params)
        codexd._params.parse(METHODS[name].params, params)  # the daemon accepts it too
    for name, params in invalid.items():
        validator = jsonschema.Draft202012Validator(method_schema(name, "params"))
        assert list(validator.iter_errors(params)), (name, params)


def test_results_use_the_converter_wire_names() -> None:
    defs = api_schema()["$defs"]
    session = defs["Session"]
    assert "sessionId" in session["required"]
    assert "currentTurnId" in session["properties"]
    assert session["properties"]["status"] == {"enum": ["active", "closed"], "type": "string"}
    assert defs["Snapshot"]["properties"]["sessions"] == {
        "items": {"$ref": "#/$defs/Session"},
        "type": "array",
    }
    turn_start = defs["TurnStartParams"]
    assert set(turn_start["required"]) == {"sessionId", "input"}
    assert turn_start["additionalProperties"] is False


def test_every_method_has_a_typed_client_method() -> None:
    """Every entry of the method table has a Client method (and a blocking SyncClient one)."""
    missing = sorted(set(METHODS) - set(CLIENT_METHODS))
    assert not missing, f"API methods without a typed client method: {missing}"
    for name in METHODS:
        attr = CLIENT_METHODS[name]
        assert inspect.iscoroutinefunction(getattr(Client, attr)) or attr == "events", name
        assert callable(getattr(SyncClient, attr)), name
