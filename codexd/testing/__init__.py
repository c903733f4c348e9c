"""Public testing kit for codexd and for programs that embed it (like ``trio.testing``).

- :func:`open_fake_provider`, :class:`Reply`: a fake OpenAI Responses API on 127.0.0.1 that the
  REAL Codex binary talks to, so whole turns run offline with no API key.
- :func:`write_codex_home`: a throw-away ``CODEX_HOME``/``HOME`` pointing Codex at it, with every
  network feature off.
- :class:`FakeAppServerScript`: a scriptable fake of ``codex app-server`` for fault injection.
- :func:`wait_event`, :func:`events_of`: synchronise a test on a daemon's events.
"""

from ._codex_home import CodexHome, codex_binary, write_codex_home
from ._events import events_of, wait_event
from ._provider import FakeModelProvider, RecordedRequest, Reply, open_fake_provider
from .fake_appserver import FakeAppServerScript, FakeTurn, fake_records

__all__ = [
    "CodexHome",
    "FakeAppServerScript",
    "FakeModelProvider",
    "FakeTurn",
    "RecordedRequest",
    "Reply",
    "codex_binary",
    "events_of",
    "fake_records",
    "open_fake_provider",
    "wait_event",
    "write_codex_home",
]
