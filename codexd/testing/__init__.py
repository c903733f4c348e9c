"""Public testing kit for codexd and for programs that embed it (like ``trio.testing``).

- :class:`FakeAppServerScript`: a scriptable fake of ``codex app-server`` for fault injection.
"""

from .fake_appserver import FakeAppServerScript, FakeTurn, fake_records

__all__ = ["FakeAppServerScript", "FakeTurn", "fake_records"]
